"""Continuous mode, per handler: when to fetch again and how long to sleep when there is no work.

A handler refills when its queued + running items fall below its low-water mark (half its quota),
so the next claim overlaps the processing of the last one. It sleeps when a fetch comes back short
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

    def succeeded(self, item_id: Any) -> None:
        recent = self._recent
        recent[item_id] = None
        if len(recent) > self._recent_limit:
            del recent[next(iter(recent))]

    def repeats(self, items: Sequence[Any]) -> int:
        """How many fetched items succeeded here moments ago (checked before they are queued)."""
        recent = self._recent
        return sum(1 for item in items if item.id in recent)

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
