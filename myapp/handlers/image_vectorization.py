"""ImageVectorization: give every photo without an embedding its image vector.

Claims photo rows (oldest `created_at` first), loads each image (http(s) or a blob), embeds it
with Azure AI and stores the float32 vector with the model name, its dimensions and
`vectorized_at`. Photos processed at the same time share one embeddings request (see
`EmbeddingBatcher`). The class is generic over the photo table: a second registration with
`photo_model=DeliveryPhoto` (any mapped class with ProductPhoto's photo and claim columns)
vectorizes another table under another name and options section.

Claimed rows: no embedding yet, or Started (a worker that stored the vector but died before the
claim was completed must not leave the row Started for ever; `process` then sees the vector of
the same model and has nothing to do).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from loguru import logger
from pydantic import Field
from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.claiming import status_claim_spec
from myapp.data.models import ProcessingStatus, ProductPhoto
from myapp.processing.claiming_handler import ClaimingHandler
from myapp.processing.claims import ClaimSpec
from myapp.processing.options import HandlerOptions
from myapp.processing.timespan import TimeoutTimeSpan
from myapp.processing.work_item import ProcessorPurpose
from myapp.vectorization.batching import EmbeddingBatcher
from myapp.vectorization.images import (
    DEFAULT_DOWNLOAD_TIMEOUT,
    DEFAULT_MAX_IMAGE_BYTES,
    ImageLoader,
)

HANDLER_NAME = "ImageVectorization"
PURPOSE = ProcessorPurpose.INTERNAL
DEFAULT_MAX_ITEMS_PER_CYCLE = 10


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
        log = logger.bind(handler=HANDLER_NAME, item_id=str(item.id), table=self._photos.__name__)
        model = self._embeddings.model
        if item.embedding is not None and item.embedding_model == model:
            log.info("Photo {id} already has its vector; nothing to do", id=item.id)
            return
        async with self._embeddings.reserve() as reservation:
            image = await self._images.load(
                item.url,
                max_bytes=self._options.max_image_bytes,
                download_timeout=self._options.download_timeout,
            )
            vector = await reservation.embed(image)
        photos = self._photos
        await self._session.execute(
            update(photos)
            .where(photos.id == item.id)
            .values(
                embedding=vector,
                embedding_model=model,
                embedding_dimensions=int(vector.shape[0]),
                vectorized_at=self._clock(),
            )
        )
        await self._session.commit()
        log.info(
            "Vectorized photo {id}: {dimensions} dimensions with {model}",
            id=item.id,
            dimensions=vector.shape[0],
            model=model,
        )
