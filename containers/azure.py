"""Azure clients: blob storage, image downloads and AI Inference image embeddings."""

from datetime import timedelta

import httpx
from dependency_injector import containers, providers

from myapp.lifetime import secret_value, tracked
from myapp.storage.blobs import BlobStore
from myapp.vectorization.batching import EmbeddingBatcher
from myapp.vectorization.embeddings import AzureImageEmbedder
from myapp.vectorization.images import ImageLoader

EMBEDDINGS_REQUEST_TIMEOUT = timedelta(seconds=60)


class AzureContainer(containers.DeclarativeContainer):
    config = providers.Configuration()
    core = providers.DependenciesContainer()

    blob_store = providers.Singleton(
        tracked,
        core.lifetime,
        BlobStore.from_connection_string,
        providers.Callable(secret_value, config.ConnectionStrings.BlobStorage),
    )
    http_client = providers.Singleton(tracked, core.lifetime, httpx.AsyncClient)
    image_loader = providers.Singleton(ImageLoader, http=http_client, blob_store=blob_store)
    image_embedder = providers.Singleton(
        tracked,
        core.lifetime,
        AzureImageEmbedder,
        endpoint=config.AzureAI.Endpoint,
        api_key=providers.Callable(secret_value, config.AzureAI.ApiKey),
        model=config.AzureAI.ImageEmbeddingModel,
        timeout=EMBEDDINGS_REQUEST_TIMEOUT,
    )
    # One batcher per embedder, shared by every vectorization registration.
    embedding_batcher = providers.Singleton(EmbeddingBatcher, image_embedder)
