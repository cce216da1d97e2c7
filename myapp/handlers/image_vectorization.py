"""ImageVectorization: give every photo without an embedding its image vector.

Claims photo rows (oldest `created_at` first), loads each image (http(s) or a blob), embeds it
with Azure AI and stores the float32 vector with the model name, its dimensions and
`vectorized_at`. It takes the batch protocol (`process_batch`): the photos queued for it are
handled in one call, their images downloaded concurrently, embedded in shared requests (see
`EmbeddingBatcher`) and stored in one transaction; a photo that fails, fails alone. The class
is generic over the photo table: a second registration with `photo_model=DeliveryPhoto` (any
mapped class with ProductPhoto's photo and claim columns) vectorizes another table under another
name and options section.

Claimed rows: no embedding yet, or Started (a worker that stored the vector but died before the
claim was completed must not leave the row Started for ever; `process` then sees the vector of
the same model and has nothing to do).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar

from loguru import logger
from pydantic import Field
from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.claiming import status_claim_spec
from myapp.data.models import ProcessingStatus, ProductPhoto
from myapp.processing import (
    BatchResult,
    ClaimingHandler,
    ClaimSpec,
    HandlerOptions,
    TimeoutTimeSpan,
)
from myapp.vectorization.batching import EmbeddingBatcher
from myapp.vectorization.embeddings import Vector
from myapp.vectorization.images import (
    DEFAULT_DOWNLOAD_TIMEOUT,
    DEFAULT_MAX_IMAGE_BYTES,
    ImageLoader,
)


class ImageVectorizationOptions(HandlerOptions):
    max_image_bytes: int = Field(default=DEFAULT_MAX_IMAGE_BYTES, ge=1)
    download_timeout: TimeoutTimeSpan = DEFAULT_DOWNLOAD_TIMEOUT


class ImageVectorizationHandler(ClaimingHandler[Any]):
    options_model: ClassVar[type[HandlerOptions]] = ImageVectorizationOptions

    def __init__(
        self,
        *,
        session: AsyncSession,
        worker_id: str,
        clock: Callable[[], datetime],
        options: ImageVectorizationOptions,
        embeddings: EmbeddingBatcher,
        images: ImageLoader,
        photo_model: type[Any] = ProductPhoto,
    ) -> None:
        super().__init__(session=session, worker_id=worker_id, clock=clock)
        self._options = options
        self._embeddings = embeddings
        self._images = images
        self._photos = photo_model

    def claim_spec(self) -> ClaimSpec[Any]:
        photos = self._photos
        return status_claim_spec(
            photos,
            order_by=(photos.created_at, photos.id),
            where=(or_(photos.embedding.is_(None), photos.status == ProcessingStatus.STARTED),),
        )

    async def process(self, item: Any) -> None:
        vector = await self._embed(item)
        if vector is not None:
            await self._store([(item, vector)])

    async def process_batch(self, items: Sequence[Any]) -> BatchResult:
        """The photos the engine has queued, at once: their images load concurrently, go to
        the model in shared requests (the batcher) and are stored in one transaction. A photo
        whose image cannot be loaded or embedded fails alone."""
        outcomes = await asyncio.gather(
            *(self._embed(item) for item in items), return_exceptions=True
        )
        failed: dict[uuid.UUID, BaseException] = {}
        done: list[tuple[Any, Vector]] = []
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BaseException):
                failed[item.id] = outcome
            elif outcome is not None:
                done.append((item, outcome))
        if done:
            await self._store(done)
        return BatchResult(failed)

    async def _embed(self, item: Any) -> Vector | None:
        """The photo's vector; None if it already has one from this model."""
        if item.embedding is not None and item.embedding_model == self._embeddings.model:
            self._log(item).info("Photo {id} already has its vector; nothing to do", id=item.id)
            return None
        async with self._embeddings.reserve() as reservation:
            image = await self._images.load(
                item.url,
                max_bytes=self._options.max_image_bytes,
                download_timeout=self._options.download_timeout,
            )
            return await reservation.embed(image)

    async def _store(self, vectors: Sequence[tuple[Any, Vector]]) -> None:
        photos, model, now = self._photos, self._embeddings.model, self._clock()
        for item, vector in vectors:
            await self._session.execute(
                update(photos)
                .where(photos.id == item.id)
                .values(
                    embedding=vector,
                    embedding_model=model,
                    embedding_dimensions=int(vector.shape[0]),
                    vectorized_at=now,
                )
            )
        await self._session.commit()
        for item, vector in vectors:
            self._log(item).info(
                "Vectorized photo {id}: {dimensions} dimensions with {model}",
                id=item.id,
                dimensions=vector.shape[0],
                model=model,
            )

    def _log(self, item: Any) -> Any:
        return logger.bind(item_id=str(item.id), table=self._photos.__name__)  # a batch's item
