"""Real protocol peers for the Azure tests: Azurite, a fake Azure AI endpoint, an image server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from azure.storage.blob.aio import BlobServiceClient
from loguru import logger

from myapp.storage.blobs import BlobStore
from myapp.vectorization.embeddings import AzureImageEmbedder
from tests.azure.fake_inference import FakeImageEmbeddingsServer
from tests.azure.peers import Azurite, ImageServer

API_KEY = "test-key-5f1d8c0e-must-never-be-logged"
MODEL = "fake-image-embed-v1"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    problem = None
    try:
        emulator = Azurite.start(tmp_path_factory.mktemp("azurite"))
    except Exception as error:
        problem = f"the Azurite blob emulator could not start: {error}"
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def blob_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string


@pytest.fixture
async def blob_service(blob_connection_string: str) -> AsyncIterator[BlobServiceClient]:
    async with BlobServiceClient.from_connection_string(blob_connection_string) as service:
        yield service


@pytest.fixture
async def blob_store(blob_connection_string: str) -> AsyncIterator[BlobStore]:
    async with BlobStore.from_connection_string(blob_connection_string) as store:
        yield store


@pytest.fixture
def container_name() -> str:
    """A container name no other test uses (Azurite lives for the whole session)."""
    return f"t{uuid.uuid4().hex[:24]}"


@pytest.fixture
async def fake_ai() -> AsyncIterator[FakeImageEmbeddingsServer]:
    server = FakeImageEmbeddingsServer(api_key=API_KEY, model=MODEL)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def embedder(fake_ai: FakeImageEmbeddingsServer) -> AsyncIterator[AzureImageEmbedder]:
    client = AzureImageEmbedder(endpoint=fake_ai.endpoint, api_key=API_KEY, model=MODEL)
    async with client:
        yield client


@pytest.fixture
async def image_server() -> AsyncIterator[ImageServer]:
    server = ImageServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Everything loguru and the stdlib `logging` (azure-core) write during the test, at DEBUG."""
    import logging

    lines: list[str] = []
    sink_id = logger.add(lambda message: lines.append(str(message)), level="DEBUG")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        logger.remove(sink_id)
