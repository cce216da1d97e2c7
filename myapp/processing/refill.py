"""Continuous mode, per handler: when to fetch again and how long to sleep when there is no work.

A handler refills when the items it holds (claimed and not finished: waiting to be queued, queued
or running) fall below its low-water mark (half its quota), so the next claim overlaps the
processing of the last one. A claiming handler that ran dry waiting for a full claim (a backlog
it drains faster than one claim per round trip brings) keeps one more quota ahead, and a second
claim may start while one is in flight (never more than MAX_FETCHES_IN_FLIGHT); a slow handler,
whose items are still queued when its claim comes back, never claims ahead of its work.
It sleeps when a fetch comes back short
(its source is dry) until something wakes it (`engine.trigger`, a database notification), the next
item of its own falls due (a retry's backoff, another worker's lease), or its poll interval passes.
A fetch that fails backs off exponentially with jitter. A fetch made mostly of items this worker
has just processed successfully means a handler that never marks its work done: after a few such
fetches it is told once and waits its full poll interval between fetches instead of spinning.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from loguru import logger
from tenacity import RetryCallState, wait_exponential, wait_random

from myapp.processing.timespan import format_timespan

LOW_WATER_FRACTION = 0.5
# Claims of one handler in flight at once, while its claims come back full.
MAX_FETCHES_IN_FLIGHT = 2
# 0.5 s, 1 s, 2 s ... capped at 60 s, plus up to 0.5 s of jitter so workers do not retry in step.
FETCH_ERROR_BACKOFF = wait_exponential(multiplier=0.5, max=60) + wait_random(0, 0.5)
# A fetch is "repeating" when at least this share of its items succeeded here moments ago ...
REPEAT_SHARE = 0.5
# ... and this many repeating fetches in a row make a spinning handler.
SPIN_FETCHES = 3
# How many recent successes per handler the spin guard remembers, in quotas.
RECENT_QUOTAS = 4


class HandlerRefill:
    """The refill state of one handler during one continuous run."""

    def __init__(self, name: str, quota: int, poll_interval: timedelta) -> None:
        self.name = name
        self.quota = quota
        self.poll_interval = poll_interval
        self.low_water = max(1, math.ceil(quota * LOW_WATER_FRACTION))
        self.wake = asyncio.Event()
        self._recent: dict[Any, None] = {}  # ids that succeeded here lately, oldest first
        self._recent_limit = RECENT_QUOTAS * quota
        self._repeating_fetches = 0
        self._fetch_errors = 0
        self.spinning = False
        self.fetching = 0  # fetches started whose items have not come back yet
        self._fetches = 0
        # A full fetch came back to a handler with nothing left to run, and every fetch since
        # came back full: it drains its backlog faster than it is refilled, so it fetches ahead.
        self.ahead = False
        # Set by a fetch that came back short, failed or spun: the sleep before the next one.
        self.pause: float | None = None
        self.pause_after_error = False

    def may_fetch(self, held: int, *, claimed: bool) -> bool:
        """Whether another fetch may start now, holding `held` items: below the low-water mark,
        counting each fetch in flight as a full quota. A handler whose items are claimed (no two
        fetches return the same item) whose last claim came back full keeps one more quota
        ahead, with up to MAX_FETCHES_IN_FLIGHT fetches at once; any other fetches one at a
        time (two listings of an unclaimed source would return the same items)."""
        ahead = claimed and self.ahead
        if self.fetching >= (MAX_FETCHES_IN_FLIGHT if ahead else 1):
            return False
        return held + self.fetching * self.quota < self.low_water + (self.quota if ahead else 0)

    def started(self) -> None:
        self.fetching += 1
        self.wake.clear()  # a wake-up during the fetch makes the next one start at once

    def came_back(self, returned: int | None, kept: int, repeats: int, *, idle: bool) -> None:
        """A fetch's items came back (before they are queued): decide what the next one waits
        for. `returned` is None when the fetch failed; `idle`: the handler had nothing queued or
        running (the run's first fetch does not count: everything starts idle)."""
        self.fetching -= 1
        self._fetches += 1
        pause = self.pause_after(returned, kept, repeats)
        full = returned is not None and returned >= self.quota and not self.spinning
        self.ahead = full and (self.ahead or (idle and self._fetches > 1))
        if pause is not None:
            self.pause, self.pause_after_error = pause, returned is None

    def succeeded(self, item_id: Any) -> None:
        recent = self._recent
        recent[item_id] = None
        if len(recent) > self._recent_limit:
            del recent[next(iter(recent))]

    def repeats(self, entries: Sequence[tuple[Any, Any]]) -> int:
        """How many fetched items (id, item) succeeded here moments ago (checked before they
        are queued)."""
        recent = self._recent
        return sum(1 for item_id, _ in entries if item_id in recent)

    def pause_after(self, returned: int | None, kept: int, repeats: int) -> float | None:
        """Seconds to sleep after a fetch (None: refill as soon as below the low-water mark).
        `returned` is how many items the handler returned (None: the fetch failed), `kept` how
        many were queued, `repeats` how many of those had just succeeded here."""
        if returned is None:
            self._fetch_errors += 1
            state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # waits read attempt_number only
            state.attempt_number = self._fetch_errors
            return float(FETCH_ERROR_BACKOFF(state))
        self._fetch_errors = 0
        if self._is_spinning(kept, repeats):
            return self.poll_interval.total_seconds()
        if returned < self.quota:
            return self.poll_interval.total_seconds()
        return None

    def _is_spinning(self, kept: int, repeats: int) -> bool:
        if not kept or repeats < kept * REPEAT_SHARE:
            self._repeating_fetches = 0
            self.spinning = False
            return False
        self._repeating_fetches += 1
        if self._repeating_fetches >= SPIN_FETCHES and not self.spinning:
            self.spinning = True
            logger.warning(
                "Handler '{}' keeps fetching items it has just processed successfully ({} of {} "
                "in its last fetch): its process probably never marks them done (update their "
                "status, or subclass ClaimingHandler). It now waits its poll interval ({}) "
                "between fetches.",
                self.name,
                repeats,
                kept,
                format_timespan(self.poll_interval),
            )
        return self.spinning
