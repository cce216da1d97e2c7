"""`myapp requeue HANDLER (--id ID ... | --failed [--since T]) [--json]`: rows back to queued,
attempts reset, never one a live lease holds; then the workers are woken."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer

from myapp.cli_context import (
    Context,
    operated_handlers,
    require_current_schema,
    run_async,
)
from myapp.commands.output import JsonOption, echo_json
from myapp.operations.items import NoTableError
from myapp.operations.registry import UnknownHandlerError, find_handler
from myapp.operations.requeue import RequeueError, RequeueResult, requeue
from myapp.operations.since import parse_since
from myapp.processing.scope import Scope

BAD_REQUEST_EXIT = 2
NOT_ALL_REQUEUED_EXIT = 1


def requeue_command(
    ctx: typer.Context,
    handler: Annotated[str, typer.Argument(help="The handler whose rows to requeue.")],
    ids: Annotated[
        list[uuid.UUID] | None, typer.Option("--id", help="A row to requeue (repeat for more).")
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Requeue the failed (dead-lettered) rows.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="With --failed: only rows failed since 30m, 24h, 7d or a date-time."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Put rows back in the queue with their attempts reset (the last error is kept).

    Rows a live worker holds are left alone. Exit 1 when some ids asked for were not requeued.
    """
    context: Context = ctx.obj
    if bool(ids) == failed or (since is not None and not failed):
        typer.echo("Give --id ID (one or more) or --failed [--since T]", err=True)
        raise typer.Exit(BAD_REQUEST_EXIT)
    try:
        failed_since = parse_since(since, datetime.now(UTC)) if since else None
    except ValueError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(BAD_REQUEST_EXIT) from None

    async def run() -> RequeueResult:
        await require_current_schema(context)
        chosen = find_handler(await operated_handlers(context), handler)
        async with Scope():
            session = context.container.database.session()
            return await requeue(session, chosen, ids or None, failed_since, failed=failed)

    try:
        result = run_async(context, run)
    except (UnknownHandlerError, NoTableError, RequeueError) as error:
        typer.echo(str(error).strip("'\""), err=True)
        raise typer.Exit(BAD_REQUEST_EXIT) from None
    if as_json:
        echo_json(result)
    else:
        typer.echo(format_requeue(result))
    if result.held or result.not_found:
        raise typer.Exit(NOT_ALL_REQUEUED_EXIT)


def format_requeue(result: RequeueResult) -> str:
    lines = [f"Requeued {len(result.requeued)} {result.handler} rows"]
    lines += [f"  {id}" for id in result.requeued]
    if result.held:
        lines.append(f"Left alone, a live worker holds them: {', '.join(map(str, result.held))}")
    if result.not_found:
        lines.append(f"Not found: {', '.join(map(str, result.not_found))}")
    if result.requeued:
        lines.append(f"Woke the workers for {result.handler}")
    return "\n".join(lines)
