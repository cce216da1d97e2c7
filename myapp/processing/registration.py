"""HandlerRegistration: one handler under one name, with its quota and purpose."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from myapp.processing.work_item import ProcessorPurpose

DEFAULT_MAX_ITEMS_PER_CYCLE = 10


@dataclass(frozen=True, kw_only=True)
class HandlerRegistration:
    """A named registration of a handler.

    `handler_factory` is any zero-argument callable returning a handler; a dependency-injector
    provider is one. It is called afresh for every fetch and every process call.
    """

    handler_factory: Callable[[], Any]
    name: str
    max_items_per_cycle: int = DEFAULT_MAX_ITEMS_PER_CYCLE
    purpose: ProcessorPurpose = ProcessorPurpose.INTERNAL
    max_concurrency: int | None = None
    item_timeout: timedelta | None = None
    poll_interval: timedelta | None = None
    """Continuous mode: the longest this handler sleeps with no work (else the service's)."""
    enabled: bool = True
    disabled_reason: str | None = None

    def __init__(
        self,
        handler_factory: Callable[[], Any],
        *,
        name: str,
        max_items_per_cycle: int = DEFAULT_MAX_ITEMS_PER_CYCLE,
        purpose: ProcessorPurpose | int = ProcessorPurpose.INTERNAL,
        max_concurrency: int | None = None,
        item_timeout: timedelta | None = None,
        poll_interval: timedelta | None = None,
        enabled: bool = True,
        disabled_reason: str | None = None,
    ) -> None:
        label = f"Handler registration {name!r}"
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{label}: name must not be blank")
        if not callable(handler_factory):
            raise ValueError(f"{label}: handler_factory must be callable")
        if max_items_per_cycle < 1:
            raise ValueError(
                f"{label}: max_items_per_cycle must be >= 1, got {max_items_per_cycle}"
            )
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"{label}: max_concurrency must be >= 1, got {max_concurrency}")
        if item_timeout is not None and item_timeout <= timedelta(0):
            raise ValueError(f"{label}: item_timeout must be positive, got {item_timeout}")
        if poll_interval is not None and poll_interval <= timedelta(0):
            raise ValueError(f"{label}: poll_interval must be positive, got {poll_interval}")
        set_ = object.__setattr__
        set_(self, "handler_factory", handler_factory)
        set_(self, "name", name)
        set_(self, "max_items_per_cycle", max_items_per_cycle)
        set_(self, "purpose", ProcessorPurpose(purpose))
        set_(self, "max_concurrency", max_concurrency)
        set_(self, "item_timeout", item_timeout)
        set_(self, "poll_interval", poll_interval)
        set_(self, "enabled", enabled)
        set_(self, "disabled_reason", disabled_reason)
