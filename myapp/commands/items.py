"""`myapp items HANDLER [--status S] [--search TEXT] [--limit N] [--after ID] [--json]`: a
handler's rows with attempts, next attempt, holder, lease end and last error. Read only."""

from __future__ import annotations

from typing import Annotated

import typer

from myapp.cli_context import (
    Context,
    format_table,
    operated_handlers,
    require_current_schema,
    run_async,
)
from myapp.commands.output import JsonOption, echo_json, moment, shorten
from myapp.operations.items import DEFAULT_LIMIT, MAX_LIMIT, ItemPage, NoTableError, list_items
from myapp.operations.registry import UnknownHandlerError, find_handler
from myapp.operations.states import ItemState
from myapp.processing.scope import Scope

BAD_HANDLER_EXIT = 2
ERROR_WIDTH = 80


def items(
    ctx: typer.Context,
    handler: Annotated[str, typer.Argument(help="The handler whose rows to list.")],
    status: Annotated[
        ItemState | None, typer.Option(case_sensitive=False, help="Only rows in this state.")
    ] = None,
    search: Annotated[
        str | None, typer.Option(help="An id (or its first digits), or text in the last error.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help="Rows per page.")] = (
        DEFAULT_LIMIT
    ),
    after: Annotated[
        str | None, typer.Option(help="The next page: the cursor the previous one printed.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List a handler's rows (in id order, a page at a time)."""
    context: Context = ctx.obj

    async def page() -> ItemPage:
        await require_current_schema(context)
        chosen = find_handler(await operated_handlers(context), handler)
        async with Scope():
            session = context.container.database.session()
            return await list_items(session, chosen, status, search, limit, after)

    try:
        result = run_async(context, page)
    except (UnknownHandlerError, NoTableError, ValueError) as error:
        typer.echo(str(error).strip("'\""), err=True)
        raise typer.Exit(BAD_HANDLER_EXIT) from None
    if as_json:
        echo_json(result)
        return
    typer.echo(format_items(result))


def format_items(page: ItemPage) -> str:
    header = ("ID", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "HELD BY", "LEASE UNTIL", "LAST ERROR")
    rows = [
        (
            str(item.id),
            item.state.value,
            f"{item.attempts}/{item.max_attempts}",
            moment(item.next_attempt_at),
            item.locked_by or "",
            moment(item.locked_until),
            shorten(item.last_error, ERROR_WIDTH),
        )
        for item in page.items
    ]
    lines = [format_table(header, rows)]
    if not page.items:
        lines = [f"No {page.handler} rows match in {page.table}"]
    if page.next_cursor:
        lines.append(f"More: --after {page.next_cursor}")
    return "\n".join(lines)
