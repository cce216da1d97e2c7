"""find_similar on both databases: nearest first, only comparable vectors, chunked reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import ProcessingStatus, ProductPhoto
from myapp.vectorization import similarity
from myapp.vectorization.embeddings import AzureImageEmbedder
from myapp.vectorization.images import ImageLoader
from myapp.vectorization.query import embed_query_image
from myapp.vectorization.similarity import find_similar
from tests.azure.fake_inference import vector_for
from tests.azure.peers import ImageServer, ServedFile, make_image

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def photo(name: str, vector: np.ndarray | None, model: str = "m1") -> ProductPhoto:
    return ProductPhoto(
        url=f"http://127.0.0.1/{name}.png",
        caption=name,
        status=ProcessingStatus.COMPLETED if vector is not None else ProcessingStatus.QUEUED,
        embedding=vector,
        embedding_model=model if vector is not None else None,
        embedding_dimensions=None if vector is None else int(vector.shape[0]),
    )


async def test_returns_the_nearest_photos_first_with_cosine_scores(
    session_factory: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(similarity, "SIMILARITY_CHUNK_ROWS", 4)  # several chunks to merge
    vectors = {f"p{i}": vector_for(f"image {i}".encode()) for i in range(11)}
    query = vectors["p7"] + 0.05 * vectors["p2"]
    deleted = photo("deleted-twin", query.copy())
    deleted.deleted_at = NOW
    async with session_factory() as session:
        session.add_all([photo(name, vector) for name, vector in vectors.items()])
        session.add_all(
            [
                deleted,
                photo("no-vector", None),
                photo("other-dimensions", np.ones(8, dtype=np.float32)),
                photo("zero", np.zeros(16, dtype=np.float32)),
            ]
        )
        await session.commit()

    async with session_factory() as session:
        found = await find_similar(session, ProductPhoto, query, top=3)

    captions = [p.caption for p, _ in found]
    scores = [score for _, score in found]
    assert captions[0] == "p7"
    assert len(found) == 3 and "deleted-twin" not in captions
    assert scores == sorted(scores, reverse=True)
    expected = {
        name: float(v @ query / (np.linalg.norm(v) * np.linalg.norm(query)))
        for name, v in vectors.items()
    }
    best = sorted(expected, key=lambda name: -expected[name])[:3]
    assert captions == best
    assert scores == pytest.approx([expected[name] for name in best], abs=1e-5)


async def test_can_compare_only_vectors_of_one_model(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    query = vector_for(b"q")
    async with session_factory() as session:
        session.add_all([photo("same-old-model", query, "old"), photo("new", -query, "new")])
        await session.commit()

    async with session_factory() as session:
        found = await find_similar(session, ProductPhoto, query, embedding_model="new")
        nothing = await find_similar(session, ProductPhoto, query, top=0)

    assert [p.caption for p, _ in found] == ["new"]
    assert found[0][1] == pytest.approx(-1.0, abs=1e-6)
    assert nothing == []


async def test_a_zero_query_is_refused(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with session_factory() as session:
        with pytest.raises(ValueError, match="non-zero"):
            await find_similar(session, ProductPhoto, np.zeros(16, dtype=np.float32))


async def test_a_query_image_from_a_file_or_a_url_finds_its_photo(
    session_factory: async_sessionmaker[AsyncSession],
    embedder: AzureImageEmbedder,
    image_server: ImageServer,
    http_client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    colors = {"red": (255, 0, 0), "blue": (0, 0, 255)}
    images = {name: make_image(color) for name, color in colors.items()}
    async with session_factory() as session:
        session.add_all([photo(name, vector_for(content)) for name, content in images.items()])
        await session.commit()
    query_file = tmp_path / "query.png"
    query_file.write_bytes(images["blue"])
    url = image_server.add("/query.png", ServedFile(images["red"]))
    loader = ImageLoader(http=http_client)

    by_file = await embed_query_image(str(query_file), embedder=embedder, images=loader)
    by_url = await embed_query_image(url, embedder=embedder, images=loader)

    async with session_factory() as session:
        [(blue, blue_score)] = await find_similar(session, ProductPhoto, by_file, top=1)
        [(red, _)] = await find_similar(session, ProductPhoto, by_url, top=1)
    assert (blue.caption, red.caption) == ("blue", "red")
    assert blue_score == pytest.approx(1.0, abs=1e-6)
