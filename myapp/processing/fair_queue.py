"""The bounded queue between fetch and process: round-robin across handlers, per-handler caps.

A plain FIFO would let the handler that fetched first occupy every slot, and a worker that picks
an item of a handler already at its cap would block a global slot. Here `get` hands out the next
item of the next handler in turn that still has a free slot, so one slow handler cannot hold
every slot and no handler's items wait behind another's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    def __init__(self, maxsize: int, caps: Mapping[str, int | None]) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._maxsize = maxsize
        self._caps = dict(caps)
        self._items: dict[str, deque[T]] = {key: deque() for key in caps}
        self._in_flight: dict[str, int] = dict.fromkeys(caps, 0)
        self._turn: list[str] = list(caps)
        self._size = 0
        self._closed = False
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return self._size

    def in_flight(self, key: str) -> int:
        return self._in_flight[key]

    async def put(self, key: str, item: T) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._size < self._maxsize or self._closed)
            if self._closed:
                raise QueueClosedError(key)
            self._items[key].append(item)
            self._size += 1
            self._changed.notify_all()

    async def get(self) -> tuple[str, T] | None:
        """The next item in round-robin order, or None once closed and empty."""
        async with self._changed:
            while True:
                picked = self._pick()
                if picked is not None:
                    self._changed.notify_all()
                    return picked
                if self._closed and self._size == 0:
                    return None
                await self._changed.wait()

    async def task_done(self, key: str) -> None:
        async with self._changed:
            self._in_flight[key] -= 1
            self._changed.notify_all()

    async def close(self) -> None:
        """No more puts; `get` returns None once what is queued has been handed out."""
        async with self._changed:
            self._closed = True
            self._changed.notify_all()

    async def take_remaining(self) -> dict[str, list[T]]:
        """Close the queue and take every item not yet handed out (for a graceful stop)."""
        async with self._changed:
            self._closed = True
            remaining = {key: list(items) for key, items in self._items.items() if items}
            for items in self._items.values():
                items.clear()
            self._size = 0
            self._changed.notify_all()
            return remaining

    def _pick(self) -> tuple[str, T] | None:
        for index, key in enumerate(self._turn):
            cap = self._caps[key]
            if self._items[key] and (cap is None or self._in_flight[key] < cap):
                # The served handler goes to the back of the line.
                self._turn.append(self._turn.pop(index))
                self._in_flight[key] += 1
                self._size -= 1
                return key, self._items[key].popleft()
        return None


class QueueClosedError(RuntimeError):
    def __init__(self, key: str) -> None:
        super().__init__(f"the queue was closed before {key!r} could add its items")
