"""`run --once` vectorizes product photos, `photos similar` finds them: the reason vectors exist."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import Product, ProductPhoto
from tests.azure.conftest import API_KEY, MODEL
from tests.azure.fake_inference import FakeImageEmbeddingsServer
from tests.azure.peers import ImageServer, ServedFile, make_image
from tests.fixtures.cli import cli_environment, run_myapp

COLORS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


@pytest.fixture
async def served_images(image_server: ImageServer) -> AsyncIterator[dict[str, str]]:
    yield {
        name: image_server.add(f"/{name}.png", ServedFile(make_image(color)))
        for name, color in COLORS.items()
    }


async def test_vectorize_then_search_by_image(
    tmp_path: Path,
    db_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    fake_ai: FakeImageEmbeddingsServer,
    served_images: dict[str, str],
) -> None:
    async with session_factory() as session:
        product = Product(sku="SKU-1", name="Mug")
        session.add(product)
        session.add_all(
            ProductPhoto(product=product, url=url, caption=name)
            for name, url in served_images.items()
        )
        await session.commit()
    query = tmp_path / "query.png"
    query.write_bytes(make_image(COLORS["green"]))
    config = tmp_path / "config"
    config.mkdir()
    (config / "appsettings.json").write_text("{}")
    env = cli_environment(
        config,
        ConnectionStrings__Database=db_url,
        AzureAI__Endpoint=fake_ai.endpoint,
        AzureAI__ApiKey=API_KEY,
        AzureAI__ImageEmbeddingModel=MODEL,
        BackgroundProcessing__BlobCleanup__Enabled="false",
    )

    cycle = await run_myapp(env, "run", "--once")
    search = await run_myapp(env, "photos", "similar", str(query), "--top", "2")
    missing = await run_myapp(env, "photos", "similar", str(tmp_path / "nope.png"))

    assert cycle.code == 0, cycle.output
    assert re.search(r"^ImageVectorization\s+3\s+0\s+3\s+0\s", cycle.output, re.MULTILINE)
    assert search.code == 0, search.output
    table = search.output[search.output.index("SCORE") :].splitlines()
    rows = [line.split() for line in table[1:]]
    assert len(rows) == 2
    score, _, url, caption = rows[0]
    assert (float(score), url, caption) == (1.0, served_images["green"], "green")
    assert float(rows[1][0]) < 1.0
    assert missing.code == 1 and "Cannot search with" in missing.output
    for result in (cycle, search, missing):
        assert API_KEY not in result.output
        assert "Traceback" not in result.output
