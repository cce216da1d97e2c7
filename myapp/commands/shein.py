"""`myapp shein submit COOKIES.json` and `myapp shein batches`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer

from myapp.cli_context import Context, format_table, prepare_database, run_async
from myapp.processing.scope import Scope
from myapp.scraping.batches import BatchError, list_batches, requeue_batch, submit_cookie_file
from myapp.scraping.errors import ScrapeError

shein_app = typer.Typer(help="Shein order scraping: submit cookie files, list batches.")


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
        await prepare_database(context)
        container = context.container
        async with Scope():
            batch = await submit_cookie_file(
                container.database.session(), cookies, supplier, container.core.clock()
            )
            return str(batch.id)

    try:
        batch_id = run_async(context, submit_batch)
    except (ScrapeError, BatchError, ValueError) as error:
        typer.echo(f"Not submitted: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Queued batch {batch_id}")


@shein_app.command()
def batches(ctx: typer.Context) -> None:
    """List Shein batches with status, order counts and errors."""
    context: Context = ctx.obj

    async def summaries() -> list[tuple[str, ...]]:
        await prepare_database(context)
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
) -> None:
    """Queue a finished batch to be scraped again: failed orders are retried, staged orders
    updated in place, imported orders left alone."""
    context: Context = ctx.obj

    async def requeue() -> None:
        await prepare_database(context)
        container = context.container
        async with Scope():
            await requeue_batch(container.database.session(), batch_id, container.core.clock())

    try:
        run_async(context, requeue)
    except BatchError as error:
        typer.echo(f"Not queued: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Queued batch {batch_id} again")
