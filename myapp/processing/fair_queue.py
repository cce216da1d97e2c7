"""The bounded queue between fetch and process: round-robin across handlers, per-handler caps.

A plain FIFO would let the handler that fetched first occupy every slot, and a worker that picks
an item of a handler already at its cap would block a global slot. Here `get` hands out the next
item of the next handler in turn that still has a free slot, so one slow handler cannot hold
every slot and no handler's items wait behind another's. One consumer (the engine's dispatcher)
reads it; any number of fetches write to it and wait while it is full.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueClosedError(RuntimeError):
    def __init__(self, key: str) -> None:
        super().__init__(f"the queue was closed before {key!r} could add its items")


class FairQueue(Generic[T]):
    def __init__(self, maxsize: int, caps: Mapping[str, int | None]) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._caps = dict(caps)
        self._items: dict[str, deque[T]] = {key: deque() for key in caps}
        self._in_flight: dict[str, int] = dict.fromkeys(caps, 0)
        self._turn: list[str] = list(caps)
        self._size = 0
        self._closed = False
        self._space = asyncio.Semaphore(maxsize)
        self._changed = asyncio.Event()  # an item arrived, a slot was freed, or the queue closed
        self._waiting_putters = 0
        self._finished = {key: asyncio.Event() for key in caps}  # an item of `key` finished
        self._ready: dict[str, Callable[[], bool]] = {}  # what each waiter of wait_until waits for
        self._interrupted = False

    async def put(self, key: str, item: T) -> None:
        """Add an item, waiting while the queue is full; raises QueueClosedError once closed
        (also for a fetch that was waiting when the queue closed)."""
        if not self._closed:
            self._waiting_putters += 1
            try:
                await self._space.acquire()
            finally:
                self._waiting_putters -= 1
        if self._closed:
            raise QueueClosedError(key)
        self._items[key].append(item)
        self._size += 1
        self._changed.set()

    def get_nowait(self) -> tuple[str, T] | None:
        """The next item in turn if one can be handed out now, else None."""
        for index, key in enumerate(self._turn):
            cap = self._caps[key]
            if self._items[key] and (cap is None or self._in_flight[key] < cap):
                self._turn.append(self._turn.pop(index))  # served: to the back of the line
                self._in_flight[key] += 1
                self._size -= 1
                self._space.release()
                return key, self._items[key].popleft()
        return None

    def take_more(self, key: str, limit: int) -> list[T]:
        """Up to `limit` more queued items of `key` at once (a batch), whatever its cap: a batch
        handler's cap counts the calls it runs at once, each of which may carry a batch."""
        items = self._items[key]
        taken = [items.popleft() for _ in range(min(limit, len(items)))]
        self._in_flight[key] += len(taken)
        self._size -= len(taken)
        for _ in taken:
            self._space.release()
        return taken

    async def get(self) -> tuple[str, T] | None:
        """The next item in turn, waiting for one; None once closed and empty, or interrupted."""
        while not self._interrupted:
            entry = self.get_nowait()
            if entry is not None:
                return entry
            if self._closed and self._size == 0:
                return None
            self._changed.clear()
            await self._changed.wait()
        return None

    def interrupt(self) -> None:
        """`get` returns None from now on (the consumer is stopping)."""
        self._interrupted = True
        self._changed.set()

    def task_done(self, key: str, count: int = 1) -> None:
        """`count` items of `key` finished: its handler has a free slot again. Its waiter
        (wait_until) is woken only if what it waits for is now true: asked here, that costs no
        task switch per item."""
        self._in_flight[key] -= count
        self._changed.set()
        ready = self._ready.get(key)
        if ready is None or ready():
            self._finished[key].set()

    def outstanding(self, key: str) -> int:
        """Items of `key` queued or handed out and not finished."""
        return len(self._items[key]) + self._in_flight[key]

    def load(self, key: str) -> tuple[int, int]:
        """Items of `key` (queued, handed out and not finished)."""
        return len(self._items[key]), self._in_flight[key]

    async def wait_until(self, key: str, ready: Callable[[], bool]) -> None:
        """Wait until `ready()`, asked again each time an item of `key` finishes or `poke(key)`
        is called (one waiter per key)."""
        finished = self._finished[key]
        self._ready[key] = ready
        try:
            while not ready():
                finished.clear()
                await finished.wait()
        finally:
            del self._ready[key]

    def poke(self, key: str) -> None:
        """Ask `key`'s waiter (wait_until) again: something it waits on changed."""
        self._finished[key].set()

    def close(self) -> None:
        """No more puts; `get` returns None once what is queued has been handed out."""
        self._closed = True
        for _ in range(self._waiting_putters):  # wake every fetch waiting to put
            self._space.release()
        self._changed.set()

    def take_remaining(self) -> dict[str, list[T]]:
        """Close the queue and take every item not yet handed out (for a graceful stop)."""
        self.close()
        remaining = {key: list(items) for key, items in self._items.items() if items}
        for items in self._items.values():
            for _ in items:
                self._space.release()  # wakes fetches waiting to put; they see the queue closed
            items.clear()
        self._size = 0
        return remaining
