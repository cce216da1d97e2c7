"""What the engine tells observers as work happens: items finished, fetches done or failed.

Observers are the seam for operational data (outcome counters in the database, Prometheus
metrics): the engine calls them synchronously on its hot path, so a call must be cheap and
must not block or raise (add to a counter in memory; write elsewhere, later).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol

from loguru import logger


class Outcome(StrEnum):
    """How an item's processing ended. Disjoint: a failure that ended the item's attempts is
    DEAD_LETTERED, not also FAILED."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"


class ProcessingObserver(Protocol):
    def item_finished(self, handler: str, outcome: Outcome, duration_s: float | None) -> None:
        """An item of `handler` finished; `duration_s` is its processing time when known (a
        success's; a failure's is not measured)."""

    def fetched(self, handler: str, count: int, seconds: float) -> None:
        """A fetch (a claim, for a claiming handler) returned `count` items in `seconds`."""

    def fetch_failed(self, handler: str) -> None:
        """A fetch raised or timed out."""


class NoObserver:
    """The default: observes nothing."""

    def item_finished(self, handler: str, outcome: Outcome, duration_s: float | None) -> None:
        pass

    def fetched(self, handler: str, count: int, seconds: float) -> None:
        pass

    def fetch_failed(self, handler: str) -> None:
        pass


class Observers:
    """Several observers as one; one that raises is logged and does not stop the others (or
    the engine)."""

    def __init__(self, observers: Iterable[ProcessingObserver]) -> None:
        self.observers = tuple(observers)

    def item_finished(self, handler: str, outcome: Outcome, duration_s: float | None) -> None:
        for observer in self.observers:
            try:
                observer.item_finished(handler, outcome, duration_s)
            except Exception:
                _failed(observer)

    def fetched(self, handler: str, count: int, seconds: float) -> None:
        for observer in self.observers:
            try:
                observer.fetched(handler, count, seconds)
            except Exception:
                _failed(observer)

    def fetch_failed(self, handler: str) -> None:
        for observer in self.observers:
            try:
                observer.fetch_failed(handler)
            except Exception:
                _failed(observer)


def _failed(observer: ProcessingObserver) -> None:
    logger.opt(exception=True).error("Processing observer {} failed", type(observer).__name__)


def combine(observers: Iterable[ProcessingObserver]) -> ProcessingObserver:
    """One observer for the engine: nothing, or all of them, none able to raise into it."""
    chosen = list(observers)
    return Observers(chosen) if chosen else NoObserver()
