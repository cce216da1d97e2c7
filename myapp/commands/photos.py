"""`myapp photos similar IMAGE_FILE_OR_URL [--top 5]`: the reason vectors are stored at all."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from myapp.cli_context import Context, format_table, require_current_schema, run_async
from myapp.data.models import ProductPhoto
from myapp.processing.errors import PermanentError
from myapp.processing.scope import Scope
from myapp.vectorization.embeddings import EmbeddingServiceError
from myapp.vectorization.images import ImageDownloadError
from myapp.vectorization.query import embed_query_image
from myapp.vectorization.similarity import find_similar

DEFAULT_TOP = 5

photos_app = typer.Typer(help="Product photos: similarity search over stored vectors.")


@photos_app.command()
def similar(
    ctx: typer.Context,
    image: Annotated[str, typer.Argument(help="A local image file, or an http(s)/blob URL.")],
    top: Annotated[int, typer.Option(min=1, help="How many photos to show.")] = DEFAULT_TOP,
) -> None:
    """Embed IMAGE and print the most similar product photos by cosine similarity."""
    context: Context = ctx.obj
    settings = context.settings
    if not settings.azure_ai.endpoint or settings.azure_ai.api_key is None:
        typer.echo("Not configured: set AzureAI:Endpoint and AzureAI:ApiKey", err=True)
        raise typer.Exit(2)

    async def search() -> list[tuple[Any, float]]:
        await require_current_schema(context)  # read only: never migrates
        azure = context.container.azure
        model = settings.azure_ai.image_embedding_model
        query = await embed_query_image(
            image, embedder=azure.image_embedder(), images=azure.image_loader()
        )
        async with Scope():
            session = context.container.database.session()
            return await find_similar(session, ProductPhoto, query, top, embedding_model=model)

    try:
        matches = run_async(context, search)
    except (
        PermanentError,
        EmbeddingServiceError,
        ImageDownloadError,
        OSError,
        ValueError,
    ) as error:
        typer.echo(f"Cannot search with {image}: {error}", err=True)
        raise typer.Exit(1) from None
    rows = [
        (f"{score:.4f}", str(photo.id), photo.url, photo.caption or "") for photo, score in matches
    ]
    typer.echo(format_table(("SCORE", "PHOTO", "URL", "CAPTION"), rows))
