"""The query side of `photos similar`: embed one image given as a local file or a URL."""

from __future__ import annotations

from pathlib import Path

from myapp.vectorization.embeddings import AzureImageEmbedder, Vector
from myapp.vectorization.images import DEFAULT_MAX_IMAGE_BYTES, ImageLoader, load_image_file


async def embed_query_image(
    source: str,
    *,
    embedder: AzureImageEmbedder,
    images: ImageLoader,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
) -> Vector:
    """The vector of `source`: an http(s) or blob URL, else a local file path."""
    if "://" in source:
        image = await images.load(source, max_bytes=max_bytes)
    else:
        image = await load_image_file(Path(source), max_bytes=max_bytes)
    [vector] = await embedder.embed([image])
    return vector
