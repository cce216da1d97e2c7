"""What one cycle did, per handler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from time import perf_counter


@dataclass(frozen=True)
class HandlerCycleStats:
    fetched: int = 0
    """Items kept after truncation and de-duplication."""
    truncated: int = 0
    """Items dropped because the handler returned more than its quota."""
    succeeded: int = 0
    failed: int = 0
    seconds: float = 0.0
    duplicates: int = 0
    released: int = 0
    """Items fetched but not started because the engine was stopping."""
    fetch_error: str | None = None
    filled_quota: bool = False
    """The handler returned at least its quota: more work is probably waiting."""
    lost: int = 0
    """Items whose lease another worker took: never started, cancelled, or finished without
    their completion recorded (the other worker runs them)."""
    fetch_exception: BaseException | None = field(default=None, compare=False, repr=False)
    """The error behind `fetch_error`, for callers that decide by its kind (database away)."""


@dataclass(frozen=True)
class CycleReport:
    handlers: Mapping[str, HandlerCycleStats]
    seconds: float = 0.0

    @property
    def succeeded(self) -> int:
        return sum(s.succeeded for s in self.handlers.values())

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.handlers.values())

    @property
    def fetch_errors(self) -> int:
        return sum(1 for s in self.handlers.values() if s.fetch_error is not None)

    @property
    def more_work_waiting(self) -> bool:
        """Some handler filled its quota and got work done: start the next cycle at once.

        A handler whose full quota all failed does not count, so a source that keeps returning
        the same failing items cannot spin the service without its poll interval."""
        return any(s.filled_quota and s.succeeded for s in self.handlers.values())


@dataclass
class HandlerStatsRecorder:
    """Mutable counters for one handler during a cycle; frozen into HandlerCycleStats at the end."""

    fetched: int = 0
    truncated: int = 0
    succeeded: int = 0
    failed: int = 0
    duplicates: int = 0
    released: int = 0
    lost: int = 0
    busy_seconds: float = 0.0
    """Time spent in items that succeeded (for the mean in continuous mode's summary)."""
    filled_quota: bool = False
    fetch_error: str | None = None
    fetch_exception: BaseException | None = None
    started: float = field(default_factory=perf_counter)
    finished: float | None = None

    def freeze(self) -> HandlerCycleStats:
        end = self.finished if self.finished is not None else perf_counter()
        return HandlerCycleStats(
            fetched=self.fetched,
            truncated=self.truncated,
            succeeded=self.succeeded,
            failed=self.failed,
            seconds=end - self.started,
            duplicates=self.duplicates,
            released=self.released,
            fetch_error=self.fetch_error,
            fetch_exception=self.fetch_exception,
            filled_quota=self.filled_quota,
            lost=self.lost,
        )
