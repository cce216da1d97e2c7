"""Coalescing concurrent single-image embed calls into one request.

The engine calls `process(photo)` once per photo, concurrently. Each call first *reserves* a
place (before downloading its image), then submits its image. A batch goes out on the next
event-loop turn once every open reservation has submitted (nobody else is coming) or it reached
`max_batch_size`, and at the latest `max_wait` after its first image (a slow download does not
hold the others back for long). A lone photo is therefore sent at once, with no added latency.

When a batch of several images is refused as a whole with a permanent error (a 400 for one bad
image), each image is retried alone, so only the bad one fails.

One batcher per process (a singleton in the container) shared by every vectorization handler
using the same embedder.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from loguru import logger

from myapp.processing import PermanentError
from myapp.vectorization.embeddings import Vector
from myapp.vectorization.images import LoadedImage

DEFAULT_MAX_BATCH_SIZE = 16
DEFAULT_MAX_WAIT = timedelta(milliseconds=50)


class ImageEmbedder(Protocol):
    @property
    def model(self) -> str: ...

    async def embed(self, images: Sequence[LoadedImage]) -> list[Vector]: ...


@dataclass
class _Request:
    image: LoadedImage
    result: asyncio.Future[Vector] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Reservation:
    """One caller's place in the next batch; `embed` may be called once."""

    def __init__(self, batcher: EmbeddingBatcher) -> None:
        self._batcher = batcher
        self.submitted = False

    async def embed(self, image: LoadedImage) -> Vector:
        if self.submitted:
            raise RuntimeError("a reservation embeds one image")
        self.submitted = True
        return await self._batcher._submit(image)


class EmbeddingBatcher:
    def __init__(
        self,
        embedder: ImageEmbedder,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_wait: timedelta = DEFAULT_MAX_WAIT,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self._embedder = embedder
        self._max_batch_size = max_batch_size
        self._max_wait = max_wait.total_seconds()
        self._open = 0
        self._pending: list[_Request] = []
        self._timer: asyncio.TimerHandle | None = None
        self._soon: asyncio.Handle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def model(self) -> str:
        return self._embedder.model

    @asynccontextmanager
    async def reserve(self) -> AsyncIterator[Reservation]:
        reservation = Reservation(self)
        self._open += 1
        try:
            yield reservation
        finally:
            if not reservation.submitted:
                self._open -= 1
                self._flush_if_due()

    async def embed(self, image: LoadedImage) -> Vector:
        async with self.reserve() as reservation:
            return await reservation.embed(image)

    async def _submit(self, image: LoadedImage) -> Vector:
        request = _Request(image)
        self._pending.append(request)
        self._open -= 1
        self._flush_if_due()
        return await request.result

    def _flush_if_due(self) -> None:
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        if self._open <= 0 or len(self._pending) >= self._max_batch_size:
            # On the next loop turn, not now: callers started in this same turn still join.
            if self._soon is None:
                self._soon = loop.call_soon(self._flush)
        elif self._timer is None:
            self._timer = loop.call_later(self._max_wait, self._flush)

    def _flush(self) -> None:
        for handle in (self._timer, self._soon):
            if handle is not None:
                handle.cancel()
        self._timer = self._soon = None
        while self._pending:
            batch = self._pending[: self._max_batch_size]
            del self._pending[: self._max_batch_size]
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Request]) -> None:
        waiting = [request for request in batch if not request.result.done()]
        if not waiting:
            return
        try:
            vectors = await self._embedder.embed([request.image for request in waiting])
        except PermanentError as error:
            if len(waiting) == 1:
                _set_exception(waiting[0], error)
                return
            logger.bind(batch_size=len(waiting)).info(
                "A batch of {count} images was refused ({error}); embedding them one by one",
                count=len(waiting),
                error=error,
            )
            await asyncio.gather(*(self._send([request]) for request in waiting))
        except Exception as error:
            for request in waiting:
                _set_exception(request, _copy(error))
        except asyncio.CancelledError:
            for request in waiting:
                request.result.cancel()
            raise
        else:
            for request, vector in zip(waiting, vectors, strict=True):
                if not request.result.done():
                    request.result.set_result(vector)


def _copy(error: Exception) -> Exception:
    """A fresh exception per caller: one instance raised in many tasks shares one traceback."""
    try:
        copy = type(error)(*error.args)
    except Exception:
        return error
    copy.__cause__ = error.__cause__
    return copy


def _set_exception(request: _Request, error: Exception) -> None:
    if not request.result.done():
        request.result.set_exception(error)
