"""`myapp shein submit COOKIES.json`, `myapp shein batches` and `myapp shein retry BATCH`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from myapp.cli_context import (
    Context,
    format_table,
    prepare_database,
    require_current_schema,
    run_async,
)
from myapp.data.wakeups import wake_workers
from myapp.handlers.shein_batch import HANDLER_NAME, SheinOptions
from myapp.processing.scope import Scope
from myapp.processing.wiring import handler_options
from myapp.scraping.batches import BatchError, list_batches, requeue_batch, submit_cookie_file
from myapp.scraping.cookie_cipher import CookieCipher
from myapp.scraping.cookie_storage import read_and_seal
from myapp.scraping.errors import ScrapeError

shein_app = typer.Typer(help="Shein order scraping: submit cookie files, list batches.")
BAD_INPUT_EXIT = 1


@shein_app.command()
def submit(
    ctx: typer.Context,
    cookies: Annotated[Path, typer.Argument(help="The cookie file the collector app wrote.")],
    supplier: Annotated[
        str | None, typer.Option(help="Supplier name (created if needed; default Shein).")
    ] = None,
) -> None:
    """Queue a Shein batch for a cookie file; the worker scrapes it on its next cycle."""
    context: Context = ctx.obj

    async def submit_batch() -> str:
        container = context.container
        cipher, max_bytes = _cookie_sealing(container)  # no key: exit 2 before anything else
        await prepare_database(context)
        async with Scope():
            batch = await submit_cookie_file(
                container.database.session(),
                cookies,
                supplier,
                container.core.clock(),
                cipher=cipher,
                max_bytes=max_bytes,
            )
        await wake_workers(container.database.engine(), HANDLER_NAME)  # scrape it now
        return str(batch.id)

    try:
        batch_id = run_async(context, submit_batch)
    except (ScrapeError, BatchError, ValueError) as error:
        typer.echo(f"Not submitted: {error}", err=True)
        raise typer.Exit(BAD_INPUT_EXIT) from None
    typer.echo(f"Queued batch {batch_id}")


@shein_app.command()
def batches(ctx: typer.Context) -> None:
    """List Shein batches with status, order counts and errors."""
    context: Context = ctx.obj

    async def summaries() -> list[tuple[str, ...]]:
        await require_current_schema(context)  # read only: never migrates
        async with Scope():
            rows = await list_batches(context.container.database.session())
        return [
            (
                str(b.id),
                b.status.value,
                b.supplier or "",
                f"{b.started_at:%Y-%m-%d %H:%M}" if b.started_at else "",
                f"{b.completed_at:%Y-%m-%d %H:%M}" if b.completed_at else "",
                str(b.order_count),
                str(b.failed_order_count),
                (b.error or "")[:80],
            )
            for b in rows
        ]

    rows = run_async(context, summaries)
    header = ("BATCH", "STATUS", "SUPPLIER", "STARTED", "COMPLETED", "ORDERS", "FAILED", "ERROR")
    typer.echo(format_table(header, rows))


@shein_app.command()
def retry(
    ctx: typer.Context,
    batch_id: Annotated[uuid.UUID, typer.Argument(help="A Completed or Failed batch.")],
    cookies: Annotated[
        Path | None,
        typer.Option(
            "--cookies",
            help="The cookie file again: a finished batch's own was erased when it finished.",
        ),
    ] = None,
) -> None:
    """Queue a finished batch to be scraped again: failed orders are retried, staged orders
    updated in place, imported orders left alone."""
    context: Context = ctx.obj

    async def requeue() -> None:
        container = context.container
        clock = container.core.clock()
        cookie_file = None
        if cookies is not None:
            cipher, max_bytes = _cookie_sealing(container)
            cookie_file = await read_and_seal(cookies, cipher, max_bytes, clock())
        await prepare_database(context)
        async with Scope():
            await requeue_batch(container.database.session(), batch_id, clock, cookie_file)

    try:
        run_async(context, requeue)
    except (ScrapeError, BatchError) as error:
        typer.echo(f"Not queued: {error}", err=True)
        raise typer.Exit(BAD_INPUT_EXIT) from None
    typer.echo(f"Queued batch {batch_id} again")


def _cookie_sealing(container: Any) -> tuple[CookieCipher, int]:
    """The cookie cipher and `BackgroundProcessing:Shein:MaxCookieFileBytes`, as the worker has
    them. Raises `ConfigurationError` (exit 2) when there is no key (PostgreSQL without
    `Secrets:CookieKey`) or the key file is unusable."""
    section = container.config.BackgroundProcessing()
    options = cast(SheinOptions, handler_options(SheinOptions, section, HANDLER_NAME))
    return container.database.cookie_cipher(), options.max_cookie_file_bytes
