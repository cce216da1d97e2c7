"""The declarative containers, configured from settings, overridden with fakes as users will;
add_handler's per-name option sections, overrides and requirements."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from dependency_injector import containers, providers

from containers.application import ApplicationContainer
from myapp.bootstrap import build_container, build_engine, build_hosted_services
from myapp.clock import Clock
from myapp.data.outcome_counters import OutcomeCounters
from myapp.data.wakeups import EngineWakeups
from myapp.data.worker_heartbeat import WorkerHeartbeat
from myapp.processing import (
    ConfigurationError,
    HandlerOptions,
    HandlerRegistration,
    ProcessorPurpose,
    WorkItemProcessingEngine,
)
from myapp.processing.errors import NOT_SHOWN
from myapp.processing.hosting import BackgroundProcessingService
from myapp.processing.wiring import add_handler
from myapp.settings import load_settings
from tests.fixtures.clock import FakeClock
from tests.unit.support import HandlerState, Item, items_for, registration


class GreeterOptions(HandlerOptions):
    greeting: str = "hello"


class Greeter:
    """A handler with its own options section and a clock."""

    options_model: ClassVar[type[HandlerOptions]] = GreeterOptions
    greeted: ClassVar[list[tuple[str, Any]]] = []

    def __init__(self, options: GreeterOptions, clock: Clock) -> None:
        self.options = options
        self.clock = clock

    async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
        return items_for(self.options.greeting, 1)

    async def process(self, item: Item) -> None:
        Greeter.greeted.append((self.options.greeting, self.clock()))


class Remote:
    """A handler without options that needs a setting to be useful."""

    async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
        return []

    async def process(self, item: Item) -> None:
        return None


class GreeterProcessing(containers.DeclarativeContainer):
    config = providers.Configuration()
    core = providers.DependenciesContainer()
    database = providers.DependenciesContainer()

    a = add_handler(
        Greeter,
        name="A",
        max_items_per_cycle=5,
        sections=config.BackgroundProcessing,
        clock=core.clock,
    )
    b = add_handler(
        Greeter,
        name="B",
        max_items_per_cycle=6,
        purpose=ProcessorPurpose.EXPORT,
        sections=config.BackgroundProcessing,
        clock=core.clock,
    )
    remote = add_handler(
        Remote,
        name="Remote",
        purpose=ProcessorPurpose.INGESTION,
        sections=config.BackgroundProcessing,
        requires={
            "AzureAI:Endpoint": config.AzureAI.Endpoint,
            "AzureAI:ApiKey": config.AzureAI.ApiKey,
        },
    )
    registrations = providers.List(a, b, remote)


class App(ApplicationContainer):
    processing = providers.Container(
        GreeterProcessing,
        config=ApplicationContainer.config,
        core=ApplicationContainer.core,
        database=ApplicationContainer.database,
    )


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if "__" in name:
            monkeypatch.delenv(name)
    directory = tmp_path / "config"
    directory.mkdir()
    return directory


def container_with(config_dir: Path, document: dict[str, Any], cls: type = App) -> Any:
    (config_dir / "appsettings.json").write_text(json.dumps(document))
    container = cls()
    container.config.from_dict(load_settings(config_dir=config_dir).model_dump(by_alias=True))
    return container


def by_name(container: Any) -> dict[str, HandlerRegistration]:
    return {r.name: r for r in container.processing.registrations()}


def test_the_application_container_is_configured_from_settings(config_dir: Path) -> None:
    container = container_with(
        config_dir,
        {
            "IngestionService": {"PollInterval": "00:00:42"},
            "BackgroundProcessing": {"MaxConcurrency": 7, "ShutdownTimeout": "00:00:03"},
        },
        ApplicationContainer,
    )

    engine = build_engine(container)
    assert isinstance(engine, WorkItemProcessingEngine)
    assert engine.max_concurrency == 7
    assert engine.shutdown_timeout.total_seconds() == 3
    counters, heartbeat, service, wakeups = build_hosted_services(container)
    # Counters and heartbeat start before the service and stop after it; wake-ups the reverse.
    assert isinstance(counters, OutcomeCounters)
    assert isinstance(heartbeat, WorkerHeartbeat)
    assert isinstance(service, BackgroundProcessingService)
    assert isinstance(wakeups, EngineWakeups)
    assert service.poll_interval.total_seconds() == 42
    assert [r.name for r in service.engine.registrations] == [
        "Shein",
        "ImageVectorization",
        "BlobCleanup",
    ]


async def test_registrations_can_be_overridden_with_fakes(config_dir: Path) -> None:
    container = container_with(config_dir, {}, ApplicationContainer)
    fake = HandlerState("Fake", items_for("Fake", 3))

    with container.processing.registrations.override(providers.List(registration(fake))):
        report = await build_engine(container).run_cycle()

    assert report.handlers["Fake"].succeeded == 3
    assert len(fake.processed) == 3


async def test_the_clock_can_be_overridden_and_reaches_the_handlers(config_dir: Path) -> None:
    container = container_with(config_dir, {})
    clock = FakeClock()
    Greeter.greeted.clear()

    with container.core.clock.override(providers.Object(clock)):
        report = await build_engine(container).run_cycle()

    assert report.succeeded == 2
    assert sorted(Greeter.greeted, key=lambda g: g[0]) == [("hello", clock.now)] * 2


def test_one_class_under_two_names_reads_two_sections(config_dir: Path) -> None:
    container = container_with(
        config_dir,
        {"BackgroundProcessing": {"A": {"Greeting": "bonjour"}, "b": {"greeting": "hallo"}}},
    )

    registrations = by_name(container)
    greeting_a = registrations["A"].handler_factory().options.greeting
    greeting_b = registrations["B"].handler_factory().options.greeting
    assert (greeting_a, greeting_b) == ("bonjour", "hallo")
    assert registrations["A"].max_items_per_cycle == 5
    assert registrations["B"].max_items_per_cycle == 6
    assert registrations["B"].purpose is ProcessorPurpose.EXPORT


def test_a_missing_section_gives_the_options_defaults(config_dir: Path) -> None:
    container = container_with(config_dir, {"BackgroundProcessing": {"A": {"Greeting": "hi"}}})

    assert by_name(container)["B"].handler_factory().options == GreeterOptions()


def test_the_section_overrides_max_items_per_cycle_and_enabled(config_dir: Path) -> None:
    container = container_with(
        config_dir,
        {
            "BackgroundProcessing": {
                "A": {"MaxItemsPerCycle": 50, "MaxConcurrency": 2},
                "B": {"Enabled": False},
            }
        },
    )

    registrations = by_name(container)
    assert registrations["A"].max_items_per_cycle == 50
    assert registrations["A"].max_concurrency == 2
    assert registrations["A"].enabled
    assert not registrations["B"].enabled
    assert "BackgroundProcessing:B:Enabled" in (registrations["B"].disabled_reason or "")
    engine = build_engine(container)
    assert [r.name for r in engine.enabled_registrations] == ["A"]  # Remote lacks its settings


def test_section_overrides_also_come_from_environment_variables(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKGROUNDPROCESSING__A__MAXITEMSPERCYCLE", "17")
    monkeypatch.setenv("BackgroundProcessing__B__Enabled", "false")

    registrations = by_name(container_with(config_dir, {}))

    assert registrations["A"].max_items_per_cycle == 17
    assert not registrations["B"].enabled


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ({"MaxItemsPerCycle": 0}, "BackgroundProcessing:A:MaxItemsPerCycle", 0),
        ({"MaxItemsPerCycle": "many"}, "BackgroundProcessing:A:MaxItemsPerCycle", "many"),
        ({"ItemTimeout": "soon"}, "BackgroundProcessing:A:ItemTimeout", "soon"),
        ({"Enabled": "perhaps"}, "BackgroundProcessing:A:Enabled", "perhaps"),
        # An unknown key's value is not repeated: it may be a misplaced secret.
        ({"Greting": "sk-typo"}, "BackgroundProcessing:A:Greting", NOT_SHOWN),
    ],
)
def test_a_bad_section_value_is_a_configuration_error_naming_the_key(
    config_dir: Path, section: dict[str, Any], key: str, value: Any
) -> None:
    container = container_with(config_dir, {"BackgroundProcessing": {"A": section}})

    with pytest.raises(ConfigurationError) as raised:
        container.processing.registrations()

    assert raised.value.key == key
    assert raised.value.value is value if value is NOT_SHOWN else raised.value.value == value
    assert "sk-typo" not in str(raised.value)
    assert key in str(raised.value)
    assert raised.value.expected


def test_build_container_validates_every_section_at_start_up(config_dir: Path) -> None:
    (config_dir / "appsettings.json").write_text(
        json.dumps({"BackgroundProcessing": {"B": {"MaxItemsPerCycle": 0}}})
    )
    settings = load_settings(config_dir=config_dir)

    with pytest.raises(ConfigurationError, match="BackgroundProcessing:B:MaxItemsPerCycle"):
        build_container(settings, "tests.unit.test_containers:App")


def test_a_missing_required_setting_disables_the_handler_naming_the_setting(
    config_dir: Path,
) -> None:
    registrations = by_name(container_with(config_dir, {"AzureAI": {"ApiKey": "sk-123"}}))

    remote = registrations["Remote"]
    assert not remote.enabled
    assert remote.disabled_reason is not None
    assert "AzureAI:Endpoint" in remote.disabled_reason
    assert "AzureAI:ApiKey" not in remote.disabled_reason  # that one is set
    assert "sk-123" not in remote.disabled_reason


def test_the_handler_is_enabled_once_its_required_settings_are_set(config_dir: Path) -> None:
    registrations = by_name(
        container_with(
            config_dir,
            {"AzureAI": {"Endpoint": "http://127.0.0.1:1/models", "ApiKey": "sk-123"}},
        )
    )

    assert registrations["Remote"].enabled
    assert registrations["Remote"].disabled_reason is None


def test_purpose_filtering_through_the_container(config_dir: Path) -> None:
    engine = build_engine(container_with(config_dir, {}))

    assert engine.get_handler_names_by_purpose(ProcessorPurpose.INTERNAL) == ["A"]
    assert engine.get_handler_names_by_purpose(ProcessorPurpose.EXPORT) == ["B"]
    assert engine.get_handler_names_by_purpose(ProcessorPurpose.INGESTION) == ["Remote"]
