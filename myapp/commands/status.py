"""`myapp status`: the claimable tables at a glance."""

from __future__ import annotations

import typer

from myapp.cli_context import Context, format_table, prepare_database, run_async
from myapp.data.models import ProcessingStatus
from myapp.data.status import TableStatus, table_statuses
from myapp.processing import Scope


def status(ctx: typer.Context) -> None:
    """Rows per status in each claimable table, expired leases and the oldest queued row."""
    context: Context = ctx.obj

    async def statuses() -> list[TableStatus]:
        await prepare_database(context)
        async with Scope():
            return await table_statuses(context.container.database.session())

    header = (
        "TABLE",
        *(s.value.upper() for s in ProcessingStatus),
        "EXPIRED LEASES",
        "OLDEST QUEUED",
    )
    rows = [
        (
            t.table,
            *(str(t.counts[s]) for s in ProcessingStatus),
            str(t.expired_leases),
            f"{t.oldest_queued:%Y-%m-%d %H:%M:%S}" if t.oldest_queued else "",
        )
        for t in run_async(context, statuses)
    ]
    typer.echo(format_table(header, rows))
