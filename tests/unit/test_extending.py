"""A handler of one's own, registered in one statement outside the package, plugged into the
application in one line (or run with --container); what is injected by default; what start-up
refuses, naming the handler and what to fix."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from dependency_injector import containers, providers
from loguru import logger

from containers.application import ApplicationContainer
from containers.processing import HandlersContainer, ProcessingContainer
from myapp import cli
from myapp.bootstrap import build_container, build_engine, registrations
from myapp.processing import (
    ClaimingHandler,
    ClaimSpec,
    HandlerOptions,
    HandlerRegistration,
    ProcessorPurpose,
    RegistrationError,
    add_handler,
)
from myapp.settings import load_settings
from tests.fixtures.clock import FakeClock

HERE = "tests.unit.test_extending"
BUILT_IN = ["Shein", "ImageVectorization", "BlobCleanup"]


@dataclass(frozen=True)
class Greeting:
    id: uuid.UUID
    name: str


class GreetingOptions(HandlerOptions):
    salutation: str = "Hello"


class GreetingHandler:
    options_model: ClassVar[type[HandlerOptions]] = GreetingOptions
    greeted: ClassVar[list[str]] = []

    def __init__(self, *, options: GreetingOptions, clock: Callable[[], datetime]) -> None:
        self.options = options
        self.clock = clock

    async def fetch_work_items(self, max_items: int) -> Sequence[Greeting]:
        return [Greeting(uuid.uuid4(), f"friend {n}") for n in range(max_items)]

    async def process(self, item: Greeting) -> None:
        self.greeted.append(f"{self.options.salutation}, {item.name}")


# The one statement: the built-in handlers and this one.
class MyProcessing(ProcessingContainer):
    greeting = add_handler(
        GreetingHandler, name="Greeting", max_items_per_cycle=3, purpose=ProcessorPurpose.EXPORT
    )


# The one line that plugs it into the application.
MyApp = ApplicationContainer.with_processing(MyProcessing)


class OnlyMine(HandlersContainer):  # no built-in handler
    greeting = add_handler(GreetingHandler, name="Greeting", max_items_per_cycle=3)


class ExactlyThese(ProcessingContainer):  # as code outside the project writes it
    greeting = add_handler(GreetingHandler, name="Greeting")
    registrations = providers.List(ProcessingContainer.blob_cleanup, greeting)


class AllListedByHand(ProcessingContainer):  # the form the guide used to show
    greeting = add_handler(
        GreetingHandler,
        name="Greeting",
        sections=ProcessingContainer.config.BackgroundProcessing,
        clock=ProcessingContainer.core.clock,
    )
    registrations = providers.List(*ProcessingContainer.registrations.args, greeting)


class BlobCleanupEveryMinute(ProcessingContainer):  # an inherited handler redeclared
    blob_cleanup = add_handler(GreetingHandler, name="Greetings2")


class ExtendsMine(OnlyMine):
    second = add_handler(GreetingHandler, name="Second")


class Idle:
    """Never has work: these handlers are about what their constructors are given."""

    async def fetch_work_items(self, max_items: int) -> Sequence[Greeting]:
        return []

    async def process(self, item: Greeting) -> None:
        return None


class Needy(Idle):
    def __init__(self, *, embedder: object, clock: Callable[[], datetime]) -> None:
        self.embedder = embedder


class NeedyProcessing(HandlersContainer):
    needy = add_handler(Needy, name="Needy")


class WithoutAzure(ApplicationContainer):  # re-wired by hand, azure= forgotten
    processing = providers.Container(
        ProcessingContainer,
        config=ApplicationContainer.config,
        core=ApplicationContainer.core,
        database=ApplicationContainer.database,
    )


class Injected(Idle):
    """Asks for every default by name."""

    def __init__(
        self,
        session: object,
        worker_id: str,
        clock: Callable[[], datetime],
        options: HandlerOptions,
        extra: str = "default",
    ) -> None:
        self.session, self.worker_id, self.clock = session, worker_id, clock
        self.options, self.extra = options, extra


class ClaimsGreetings(ClaimingHandler[Any]):
    """No constructor of its own: ClaimingHandler's takes session, worker_id and clock."""

    def claim_spec(self) -> ClaimSpec[Any]:
        raise NotImplementedError  # never fetched here

    async def process(self, item: Any) -> None:
        return None


class InjectedProcessing(HandlersContainer):
    defaults = add_handler(Injected, name="Defaults")
    claiming = add_handler(ClaimsGreetings, name="Claiming")
    explicit = add_handler(
        Injected,
        name="Explicit",
        worker_id=providers.Object("given"),
        extra=providers.Object("given"),
    )


class PlainProcessing(containers.DeclarativeContainer):  # not a handlers container
    config = providers.Configuration()
    greeting = add_handler(GreetingHandler, name="Greeting", clock=providers.Object(None))
    registrations = providers.List(greeting)


@pytest.fixture(autouse=True)
def restore_loguru() -> Iterator[None]:
    """In-process commands configure logging for themselves."""
    yield
    logger.remove()
    logger.add(sys.stderr)


def container_for(config_dir: Path, path: str, document: dict[str, Any] | None = None) -> Any:
    (config_dir / "appsettings.json").write_text(json.dumps(document or {}))
    return build_container(load_settings(config_dir=config_dir), path)


def names(container: Any) -> list[str]:
    return [r.name for r in registrations(container)]


def by_name(container: Any, name: str) -> HandlerRegistration:
    return next(r for r in registrations(container) if r.name == name)


async def test_one_statement_adds_a_handler_beside_the_built_in_ones(config_dir: Path) -> None:
    document = {"BackgroundProcessing": {"Greeting": {"Salutation": "Howzit"}}}
    container = container_for(config_dir, f"{HERE}:MyApp", document)
    greeting = by_name(container, "Greeting")
    GreetingHandler.greeted.clear()

    # Only the new handler runs here; the built-in ones are covered by their own tests.
    with container.processing.registrations.override(providers.List(providers.Object(greeting))):
        engine = build_engine(container)
        report = await engine.run_cycle()

    assert names(container) == [*BUILT_IN, "Greeting"]
    assert engine.get_handler_names_by_purpose(ProcessorPurpose.EXPORT) == ["Greeting"]
    assert report.handlers["Greeting"].succeeded == 3
    assert sorted(GreetingHandler.greeted) == [f"Howzit, friend {n}" for n in range(3)]


def test_with_processing_wires_the_users_container_like_the_built_in_one(
    config_dir: Path,
) -> None:
    container = container_for(config_dir, f"{HERE}:MyApp")
    clock = FakeClock()

    with container.core.clock.override(providers.Object(clock)):
        handler = by_name(container, "Greeting").handler_factory()

    assert issubclass(MyApp, ApplicationContainer)
    assert handler.clock is clock
    assert container.processing.azure.blob_store is not None  # azure wired too


@pytest.mark.parametrize(
    ("container_class", "expected"),
    [
        (OnlyMine, ["Greeting"]),
        (ExactlyThese, ["BlobCleanup", "Greeting"]),
        (AllListedByHand, [*BUILT_IN, "Greeting"]),
        (BlobCleanupEveryMinute, ["Shein", "ImageVectorization", "Greetings2"]),
        (ExtendsMine, ["Greeting", "Second"]),
    ],
)
def test_registrations_are_collected_unless_listed_by_hand(
    config_dir: Path, container_class: type[HandlersContainer], expected: list[str]
) -> None:
    container = container_for(config_dir, f"{HERE}:{container_class.__name__}")

    assert names(container) == expected


def test_container_accepts_a_handlers_container_directly(
    config_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYAPP_CONFIG_DIR", str(config_dir))
    (config_dir / "appsettings.json").write_text("{}")

    assert cli.main(["--container", f"{HERE}:OnlyMine", "handlers"]) == 0

    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["Greeting"]
    assert names(container_for(config_dir, f"{HERE}:OnlyMine")) == ["Greeting"]


def test_run_once_runs_a_handlers_container_given_to_container(
    config_dir: Path,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MYAPP_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("ConnectionStrings__Database", db_url)
    (config_dir / "appsettings.json").write_text("{}")
    GreetingHandler.greeted.clear()

    assert cli.main(["--container", f"{HERE}:OnlyMine", "run", "--once"]) == 0

    report = capsys.readouterr().out.splitlines()
    assert [row.split()[:5] for row in report[1:]] == [["Greeting", "3", "0", "3", "0"]]
    assert len(GreetingHandler.greeted) == 3


def test_session_worker_id_clock_and_options_are_injected_when_asked_for(
    config_dir: Path,
) -> None:
    document = {"BackgroundProcessing": {"Defaults": {"MaxConcurrency": 2}}}
    container = container_for(config_dir, f"{HERE}:InjectedProcessing", document)
    session, clock = object(), FakeClock()

    with (
        container.database.session.override(providers.Object(session)),
        container.core.clock.override(providers.Object(clock)),
    ):
        defaults = by_name(container, "Defaults").handler_factory()
        explicit = by_name(container, "Explicit").handler_factory()
        claiming = by_name(container, "Claiming").handler_factory()

    assert defaults.session is session
    assert defaults.worker_id == container.core.worker_id()
    assert defaults.clock is clock
    assert defaults.options.max_concurrency == 2
    assert defaults.extra == "default"  # not a default dependency: its own default stays
    assert (explicit.worker_id, explicit.extra) == ("given", "given")  # given wins
    assert (claiming._session, claiming._worker_id, claiming._clock) == (
        session,
        container.core.worker_id(),
        clock,
    )


def test_the_section_is_bound_without_sections(config_dir: Path) -> None:
    document = {"BackgroundProcessing": {"greeting": {"Enabled": False}}}
    container = container_for(config_dir, f"{HERE}:OnlyMine", document)

    greeting = by_name(container, "Greeting")

    assert not greeting.enabled
    assert greeting.disabled_reason == "BackgroundProcessing:Greeting:Enabled is false"


def test_a_handler_outside_a_handlers_container_must_name_its_section(config_dir: Path) -> None:
    with pytest.raises(RegistrationError, match="BackgroundProcessing:Greeting is not bound"):
        container_for(config_dir, f"{HERE}:PlainProcessing")


@pytest.mark.parametrize(
    ("container_class", "line"),
    [
        (
            "NeedyProcessing",
            "Configuration error: Handler 'Needy' (Needy): constructor parameter 'embedder' has "
            "no provider; pass embedder=<provider> to add_handler",
        ),
        (
            "WithoutAzure",
            "Configuration error: Handler 'ImageVectorization' (ImageVectorizationHandler): "
            "constructor parameter 'embeddings' needs "
            "WithoutAzure.processing.azure.embedding_batcher, which is not wired; "
            "plug the container in with ApplicationContainer.with_processing",
        ),
    ],
)
def test_a_missing_dependency_stops_start_up_with_one_line(
    config_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    container_class: str,
    line: str,
) -> None:
    monkeypatch.setenv("MYAPP_CONFIG_DIR", str(config_dir))
    (config_dir / "appsettings.json").write_text("{}")

    for command in (["handlers"], ["run", "--once"]):
        assert cli.main(["--container", f"{HERE}:{container_class}", *command]) == 2
        assert capsys.readouterr().err.splitlines() == [line]
