"""Fakes for the processing core: items, handlers that record what they were asked, scopes that
record opening and closing, a concurrency probe, and a container for the CLI tests.

Every handler instance a registration's factory makes shares one `HandlerState`, so a test sees
what all of them did (how many instances, which items, in what order).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dependency_injector import containers, providers

from containers.application import ApplicationContainer
from myapp.processing import (
    HandlerOptions,
    HandlerRegistration,
    ProcessorPurpose,
    add_handler,
)

ITEM_NAMESPACE = uuid.UUID("6f1c1f3e-8a3d-4c57-9a42-2f1d7f0c0001")


@dataclass(frozen=True)
class Item:
    id: uuid.UUID
    handler: str
    index: int


def items_for(handler: str, count: int, start: int = 0) -> list[Item]:
    """`count` items with ids that depend only on (handler, index): stable across runs."""
    return [
        Item(uuid.uuid5(ITEM_NAMESPACE, f"{handler}/{index}"), handler, index)
        for index in range(start, start + count)
    ]


FetchHook = Callable[[int], Awaitable[Sequence[Any]]]
ProcessHook = Callable[[Any], Awaitable[None]]


@dataclass
class HandlerState:
    """What every instance of one registration's handler did."""

    name: str
    items: list[Any] = field(default_factory=list)
    fetch_hook: FetchHook | None = None
    process_hook: ProcessHook | None = None
    instances: int = 0
    fetch_instances: list[object] = field(default_factory=list)
    fetch_requests: list[int] = field(default_factory=list)
    process_instances: list[object] = field(default_factory=list)
    started: list[Any] = field(default_factory=list)
    processed: list[Any] = field(default_factory=list)
    # ClaimLifecycle calls, in order: ("complete", [items]), ("fail", item, error), ...
    lifecycle_calls: list[tuple[Any, ...]] = field(default_factory=list)

    def calls(self, method: str) -> list[tuple[Any, ...]]:
        return [call[1:] for call in self.lifecycle_calls if call[0] == method]


class FakeHandler:
    def __init__(self, state: HandlerState) -> None:
        state.instances += 1
        self.state = state

    async def fetch_work_items(self, max_items: int) -> Sequence[Any]:
        self.state.fetch_instances.append(self)
        self.state.fetch_requests.append(max_items)
        if self.state.fetch_hook is not None:
            return await self.state.fetch_hook(max_items)
        return list(self.state.items)

    async def process(self, item: Any) -> None:
        self.state.process_instances.append(self)
        self.state.started.append(item)
        if self.state.process_hook is not None:
            await self.state.process_hook(item)
        self.state.processed.append(item)


class FakeClaimHandler(FakeHandler):
    """A handler implementing ClaimLifecycle: records complete/fail/extend/release."""

    async def complete(self, items: Sequence[Any]) -> None:
        self.state.lifecycle_calls.append(("complete", list(items)))

    async def fail(self, item: Any, error: BaseException) -> None:
        self.state.lifecycle_calls.append(("fail", item, error))

    async def extend(self, items: Sequence[Any]) -> None:
        self.state.lifecycle_calls.append(("extend", list(items)))

    async def release(self, items: Sequence[Any]) -> None:
        self.state.lifecycle_calls.append(("release", list(items)))


def registration(
    state: HandlerState, handler_class: type[FakeHandler] = FakeHandler, **options: Any
) -> HandlerRegistration:
    return HandlerRegistration(lambda: handler_class(state), name=state.name, **options)


class ConcurrencyProbe:
    """Counts process calls running at once, overall and per handler, and their order."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.running_by: dict[str, int] = {}
        self.peak_by: dict[str, int] = {}
        self.order: list[Any] = []

    @asynccontextmanager
    async def track(self, key: str, item: Any = None) -> AsyncIterator[None]:
        self.order.append(item)
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.running_by[key] = self.running_by.get(key, 0) + 1
        self.peak_by[key] = max(self.peak_by.get(key, 0), self.running_by[key])
        try:
            yield
        finally:
            self.running -= 1
            self.running_by[key] -= 1

    def hook(self, key: str, delay: float = 0.0) -> ProcessHook:
        async def process(item: Any) -> None:
            async with self.track(key, item):
                await asyncio.sleep(delay)

        return process


class ScopeRecorder:
    """A scope_factory for the engine that counts scopes opened and closed."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0
        self.closed_with: list[type[BaseException] | None] = []

    @property
    def open_now(self) -> int:
        return self.opened - self.closed

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        self.opened += 1
        try:
            yield
        except BaseException as error:
            self.closed_with.append(type(error))
            raise
        else:
            self.closed_with.append(None)
        finally:
            self.closed += 1


# --- A container for the CLI tests: `--container tests.unit.support:Container` ---------------

CLI_ITEMS_PER_CYCLE = 3


class FlakyOptions(HandlerOptions):
    """`BackgroundProcessing:<Name>:FailItems`: how many of its items fail (the first ones)."""

    fail_items: int = 1


class FlakyHandler:
    """Fetches CLI_ITEMS_PER_CYCLE in-memory items; the first `FailItems` of them fail."""

    options_model: ClassVar[type[HandlerOptions]] = FlakyOptions

    def __init__(self, options: FlakyOptions) -> None:
        self.options = options

    async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
        return items_for("cli", min(max_items, CLI_ITEMS_PER_CYCLE))

    async def process(self, item: Item) -> None:
        if item.index < self.options.fail_items:
            raise RuntimeError(f"item {item.index} fails on purpose")


class QuietHandler:
    async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
        return items_for("quiet", min(max_items, CLI_ITEMS_PER_CYCLE))

    async def process(self, item: Item) -> None:
        return None


class SupportProcessingContainer(containers.DeclarativeContainer):
    config = providers.Configuration()
    core = providers.DependenciesContainer()
    database = providers.DependenciesContainer()

    flaky = add_handler(
        FlakyHandler,
        name="Flaky",
        max_items_per_cycle=5,
        purpose=ProcessorPurpose.INGESTION,
        sections=config.BackgroundProcessing,
    )
    quiet = add_handler(
        QuietHandler,
        name="Quiet",
        max_items_per_cycle=7,
        purpose=ProcessorPurpose.EXPORT,
        sections=config.BackgroundProcessing,
    )
    registrations = providers.List(flaky, quiet)


class Container(ApplicationContainer):
    processing = providers.Container(
        SupportProcessingContainer,
        config=ApplicationContainer.config,
        core=ApplicationContainer.core,
        database=ApplicationContainer.database,
    )
