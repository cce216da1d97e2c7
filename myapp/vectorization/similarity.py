"""Finding the photos whose stored vectors are closest to a query vector (cosine similarity).

Vectors are streamed from the database in chunks and scored with numpy, keeping only the best
`top` so far: memory stays bounded by the chunk size, not by the number of photos. Only vectors
with the query's dimensions are compared (another model's vectors live in another space).
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

DEFAULT_TOP = 5
SIMILARITY_CHUNK_ROWS = 5000

Scores = npt.NDArray[np.float32]


async def find_similar(
    session: AsyncSession,
    photo_model: type[Any],
    query: npt.NDArray[np.floating[Any]],
    top: int = DEFAULT_TOP,
    *,
    embedding_model: str | None = None,
) -> list[tuple[Any, float]]:
    """The `top` photos most similar to `query`, most similar first, with their cosine score.

    `embedding_model`, when given, compares only vectors made by that model.
    """
    if top < 1:
        return []
    unit_query = _unit(np.asarray(query, dtype=np.float32).ravel())
    statement = select(photo_model.id, photo_model.embedding).where(
        photo_model.embedding.is_not(None),
        photo_model.deleted_at.is_(None),
        photo_model.embedding_dimensions == unit_query.shape[0],
    )
    if embedding_model is not None:
        statement = statement.where(photo_model.embedding_model == embedding_model)

    best_ids: list[uuid.UUID] = []
    best_scores: Scores = np.empty(0, dtype=np.float32)
    result = await session.stream(statement.execution_options(yield_per=SIMILARITY_CHUNK_ROWS))
    async for rows in result.partitions(SIMILARITY_CHUNK_ROWS):
        ids = best_ids + [row[0] for row in rows]
        matrix = np.stack([np.asarray(row[1], dtype=np.float32) for row in rows])
        scores = np.concatenate([best_scores, _cosine(matrix, unit_query)])
        keep = _top_indices(scores, top)
        best_ids, best_scores = [ids[i] for i in keep], scores[keep]

    if not best_ids:
        return []
    photos = await session.execute(select(photo_model).where(photo_model.id.in_(best_ids)))
    by_id = {photo.id: photo for photo in photos.scalars()}
    order = np.argsort(-best_scores, kind="stable")
    return [(by_id[best_ids[i]], float(best_scores[i])) for i in order if best_ids[i] in by_id]


def _cosine(matrix: npt.NDArray[np.float32], unit_query: npt.NDArray[np.float32]) -> Scores:
    norms = np.linalg.norm(matrix, axis=1)
    dots = matrix @ unit_query
    # A zero vector resembles nothing: score 0 instead of dividing by zero.
    scores: Scores = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return scores.astype(np.float32)


def _top_indices(scores: Scores, top: int) -> npt.NDArray[np.intp]:
    if scores.shape[0] <= top:
        return np.arange(scores.shape[0])
    return np.argpartition(-scores, top - 1)[:top]


def _unit(vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norm = float(np.linalg.norm(vector))
    if vector.ndim != 1 or vector.shape[0] == 0 or norm == 0.0:
        raise ValueError("the query vector must be a non-zero 1-D vector")
    unit: npt.NDArray[np.float32] = vector / np.float32(norm)
    return unit
