"""`myapp trigger [HANDLER]`: wake the running workers so a handler (or all) fetches now."""

from __future__ import annotations

from typing import Annotated

import typer

from myapp.bootstrap import registrations
from myapp.cli_context import Context, on_database, run_async

UNKNOWN_HANDLER_EXIT = 2


def trigger(
    ctx: typer.Context,
    handler: Annotated[
        str | None, typer.Argument(help="The handler to wake (default: every handler).")
    ] = None,
) -> None:
    """Wake the running workers: the handler fetches now instead of at its poll interval.

    PostgreSQL: a notification every worker listens for. SQLite: a commit its worker notices.
    """
    context: Context = ctx.obj
    names = [r.name for r in registrations(context.container)]
    if handler is not None and handler not in names:
        typer.echo(
            f"No handler named {handler!r}; registered: {', '.join(names) or 'none'}", err=True
        )
        raise typer.Exit(UNKNOWN_HANDLER_EXIT)

    async def wake(url: str) -> None:
        from myapp.data.wakeups import wake_workers

        await wake_workers(context.container.database.engine(), handler)

    run_async(context, lambda: on_database(context, wake))
    typer.echo(f"Woke {handler or 'every handler'}")
