"""`myapp workers [--json]`: the workers table, each worker live, stale or stopped. Read only."""

from __future__ import annotations

import typer

from myapp.cli_context import Context, format_table, require_current_schema, run_async
from myapp.commands.output import JsonOption, age, echo_json, moment
from myapp.operations.workers import WorkerInfo, list_workers
from myapp.processing.scope import Scope


def workers(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every worker that registered, live, stale or stopped.

    Shows host, pid, version, state, last heartbeat, handlers and items in flight.
    """
    context: Context = ctx.obj

    async def rows() -> list[WorkerInfo]:
        await require_current_schema(context)
        async with Scope():
            return await list_workers(context.container.database.session()) or []

    found = run_async(context, rows)
    if as_json:
        echo_json(found)
        return
    typer.echo(format_workers(found))


def format_workers(found: list[WorkerInfo]) -> str:
    if not found:
        return "No workers have registered"
    header = (
        "WORKER",
        "HOST",
        "PID",
        "VERSION",
        "STATE",
        "STARTED",
        "HEARTBEAT",
        "IN FLIGHT",
        "HANDLERS",
    )
    rows = [
        (
            w.id,
            w.host,
            str(w.pid),
            w.version,
            w.state.value,
            moment(w.started_at),
            f"{age(w.heartbeat_age_seconds)} ago",
            str(w.in_flight),
            ", ".join(w.handlers),
        )
        for w in found
    ]
    return format_table(header, rows)
