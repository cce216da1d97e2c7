"""A watchdog that notices the event loop blocked, and names the handler and item at fault.

A handler that makes a synchronous call inside `async def process` (a `time.sleep`, a blocking
HTTP client, a long CPU loop) holds the whole worker: no heartbeat renews a lease, no timeout
fires, no other item moves. The watchdog cannot stop it; it makes it visible. The loop stamps a
tick every `TICK_SECONDS`; a daemon thread checks the stamp, and when the loop has not ticked for
`threshold`, it reads the loop thread's stack (`sys._current_frames()`, what py-spy and
faulthandler read), finds the engine's frame that called the handler, and logs one warning with
the handler's name, the item id and the line the loop is stuck on. One warning per stall, and one
line when the loop moves again.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterable
from time import monotonic
from types import CodeType, FrameType

from loguru import logger

DEFAULT_STALL_THRESHOLD_SECONDS = 1.0
TICK_SECONDS = 0.1

# Given the engine's frame that called into a handler: (handler name, item id or None).
Culprit = Callable[[FrameType], tuple[str, object | None]]


class LoopWatchdog:
    def __init__(
        self,
        culprits: dict[CodeType, Culprit],
        threshold: float | None = None,
    ) -> None:
        self._culprits = culprits
        # Read when built, not when defined: a test may shorten the module's default.
        self._threshold = DEFAULT_STALL_THRESHOLD_SECONDS if threshold is None else threshold
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_tick = monotonic()

    def watch(self) -> None:
        """Watch the running loop (idempotent; a new loop gets a new thread)."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        self._loop = loop
        self._last_tick = monotonic()
        loop.call_soon(self._tick, loop)
        thread = threading.Thread(
            target=self._check, args=(loop, threading.get_ident()), daemon=True
        )
        thread.name = "myapp-loop-watchdog"
        thread.start()

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is self._loop:
            self._last_tick = monotonic()
            loop.call_later(TICK_SECONDS, self._tick, loop)

    def _check(self, loop: asyncio.AbstractEventLoop, loop_thread: int) -> None:
        stalled_since: float | None = None
        while not loop.is_closed() and loop is self._loop:
            time.sleep(TICK_SECONDS)
            last_tick = self._last_tick
            blocked = monotonic() - last_tick
            if stalled_since is None and blocked > self._threshold and loop.is_running():
                stalled_since = last_tick
                self._report(loop_thread, blocked)
            elif stalled_since is not None and last_tick > stalled_since:
                logger.warning(
                    "The event loop ran again after being blocked for {:.1f}s",
                    last_tick - stalled_since,
                )
                stalled_since = None

    def _report(self, loop_thread: int, blocked: float) -> None:
        frame = sys._current_frames().get(loop_thread)
        if frame is None:
            return
        stack = list(_outward(frame))
        where = f"{stack[0].f_code.co_filename}:{stack[0].f_lineno} in {stack[0].f_code.co_name}"
        for engine_frame in stack:
            culprit = self._culprits.get(engine_frame.f_code)
            if culprit is not None:
                name, item_id = culprit(engine_frame)
                what = f"work item {item_id}" if item_id is not None else "its fetch"
                logger.error(
                    "The event loop has been blocked for {:.1f}s by handler '{}' ({}) at {}: "
                    "no lease is renewed and no timeout fires meanwhile. Make the blocking call "
                    "awaitable, or define `process` as a plain `def` to run it in a thread.",
                    blocked,
                    name,
                    what,
                    where,
                )
                return
        logger.error("The event loop has been blocked for {:.1f}s at {}", blocked, where)


def _outward(frame: FrameType | None) -> Iterable[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back
