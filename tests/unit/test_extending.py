"""The documented way to add a handler: subclass the containers, run with --container."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from dependency_injector import providers

from containers.application import ApplicationContainer
from containers.processing import ProcessingContainer
from myapp.bootstrap import build_container, build_engine, registrations
from myapp.processing import ProcessorPurpose
from myapp.processing.options import HandlerOptions
from myapp.processing.wiring import add_handler
from myapp.settings import load_settings


@dataclass(frozen=True)
class Greeting:
    id: uuid.UUID
    name: str


class GreetingOptions(HandlerOptions):
    salutation: str = "Hello"


class GreetingHandler:
    options_model: ClassVar[type[HandlerOptions]] = GreetingOptions
    greeted: ClassVar[list[str]] = []

    def __init__(self, *, options: GreetingOptions) -> None:
        self.options = options

    async def fetch_work_items(self, max_items: int) -> Sequence[Greeting]:
        return [Greeting(uuid.uuid4(), f"friend {n}") for n in range(max_items)]

    async def process(self, item: Greeting) -> None:
        self.greeted.append(f"{self.options.salutation}, {item.name}")


class MyProcessing(ProcessingContainer):
    greeting = add_handler(
        GreetingHandler,
        name="Greeting",
        max_items_per_cycle=3,
        purpose=ProcessorPurpose.EXPORT,
        sections=ProcessingContainer.config.BackgroundProcessing,
    )
    registrations = providers.List(*ProcessingContainer.registrations.args, greeting)


class MyApp(ApplicationContainer):
    processing = providers.Container(
        MyProcessing,
        config=ApplicationContainer.config,
        core=ApplicationContainer.core,
        database=ApplicationContainer.database,
        azure=ApplicationContainer.azure,
    )


async def test_a_subclassed_container_runs_its_own_handler_with_its_own_section(
    tmp_path: Path,
) -> None:
    document = {"BackgroundProcessing": {"Greeting": {"Salutation": "Howzit"}}}
    (tmp_path / "appsettings.json").write_text(json.dumps(document))
    container = build_container(
        load_settings(config_dir=tmp_path), "tests.unit.test_extending:MyApp"
    )
    names = [r.name for r in registrations(container)]
    greeting = next(r for r in registrations(container) if r.name == "Greeting")
    GreetingHandler.greeted.clear()

    # Only the new handler runs here; the built-in ones are covered by their own tests.
    with container.processing.registrations.override(providers.List(providers.Object(greeting))):
        engine = build_engine(container)
        report = await engine.run_cycle()

    assert names == ["Shein", "ImageVectorization", "BlobCleanup", "Greeting"]
    assert engine.get_handler_names_by_purpose(ProcessorPurpose.EXPORT) == ["Greeting"]
    assert report.handlers["Greeting"].succeeded == 3
    assert sorted(GreetingHandler.greeted) == [f"Howzit, friend {n}" for n in range(3)]
