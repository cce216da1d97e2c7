"""HandlerRegistration: one handler under one name, with its quota and purpose."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from datetime import timedelta
from typing import Any

from myapp.processing.work_item import ProcessorPurpose

DEFAULT_MAX_ITEMS_PER_CYCLE = 10


@dataclass(frozen=True)
class HandlerRegistration:
    """A named registration of a handler.

    `handler_factory` is any zero-argument callable returning a handler; a dependency-injector
    provider is one. It is called afresh for every fetch and every process call.
    """

    handler_factory: Callable[[], Any]
    _: KW_ONLY
    name: str
    max_items_per_cycle: int = DEFAULT_MAX_ITEMS_PER_CYCLE
    purpose: ProcessorPurpose = ProcessorPurpose.INTERNAL
    max_concurrency: int | None = None
    item_timeout: timedelta | None = None
    poll_interval: timedelta | None = None
    """Continuous mode: the longest this handler sleeps with no work (else the service's)."""
    enabled: bool = True
    disabled_reason: str | None = None

    def __post_init__(self) -> None:
        label = f"Handler registration {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"{label}: name must not be blank")
        if not callable(self.handler_factory):
            raise ValueError(f"{label}: handler_factory must be callable")
        if self.max_items_per_cycle < 1:
            raise ValueError(
                f"{label}: max_items_per_cycle must be >= 1, got {self.max_items_per_cycle}"
            )
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"{label}: max_concurrency must be >= 1, got {self.max_concurrency}")
        for setting in ("item_timeout", "poll_interval"):
            value = getattr(self, setting)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"{label}: {setting} must be positive, got {value}")
        # An int purpose (2) is accepted and stored as the enum member it names.
        object.__setattr__(self, "purpose", ProcessorPurpose(self.purpose))
