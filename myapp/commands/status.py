"""`myapp status [--since T] [--json]`: every handler at a glance; exit 1 when something needs
attention (ATTENTION_EXIT). Read only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from myapp.cli_context import (
    Context,
    check_database,
    format_table,
    operated_handlers,
    run_async,
)
from myapp.commands.output import JsonOption, age, echo_json, shorten
from myapp.operations.handlers import DEFAULT_SINCE, HandlerStatus
from myapp.operations.since import parse_since
from myapp.operations.status import StatusReport, status_report
from myapp.processing.scope import Scope

ATTENTION_EXIT = 1
BAD_OPTION_EXIT = 2
ERROR_WIDTH = 100


def status(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(help="Count dead letters since: 30m, 24h, 7d or a date-time (default 24h)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Per handler: queued / running / completed / failed rows, oldest queued, expired leases,
    live workers, the last hour's outcomes. Exit 1 when something needs attention."""
    context: Context = ctx.obj
    now = datetime.now(UTC)
    try:
        start = parse_since(since, now) if since else now - DEFAULT_SINCE
    except ValueError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(BAD_OPTION_EXIT) from None

    async def report() -> StatusReport:
        from myapp.data.database import redact_url

        schema = await check_database(context)
        handlers = await operated_handlers(context)
        async with Scope():
            return await status_report(
                context.container.database.session(),
                handlers,
                database=redact_url(context.settings.connection_strings.database),
                schema=schema,
                since=start,
            )

    result = run_async(context, report)
    if as_json:
        echo_json(result)
    else:
        typer.echo(format_status(result))
    if result.attention:
        raise typer.Exit(ATTENTION_EXIT)


def format_status(report: StatusReport) -> str:
    header = (
        "HANDLER",
        "ENABLED",
        "TABLE",
        "QUEUED",
        "RUNNING",
        "COMPLETED",
        "FAILED",
        "OLDEST QUEUED",
        "EXPIRED",
        "WORKERS",
        "LAST HOUR OK/FAILED/DEAD",
    )
    rows = [_row(status) for status in report.handlers]
    lines = [
        f"Database {report.database}: {report.database_schema.describe()}",
        "",
        format_table(header, rows),
    ]
    errors = [s for s in report.handlers if s.last_error or s.problem or s.disabled_reason]
    if errors:
        lines += ["", "Notes:"]
        for s in errors:
            if s.disabled_reason:
                lines.append(f"  {s.name}: disabled: {s.disabled_reason}")
            if s.problem:
                lines.append(f"  {s.name}: {shorten(s.problem, ERROR_WIDTH)}")
            if s.last_error:
                lines.append(f"  {s.name}: last dead letter: {shorten(s.last_error, ERROR_WIDTH)}")
    lines.append("")
    if report.attention:
        lines.append("Needs attention:")
        lines += [f"  - {reason}" for reason in report.attention]
    else:
        lines.append(f"All well (no dead letters since {report.since:%Y-%m-%d %H:%M} UTC)")
    return "\n".join(lines)


def _row(status: HandlerStatus) -> tuple[str, ...]:
    counts = status.counts
    if counts is None:
        numbers: tuple[str, ...] = ("-",) * 4
    else:
        numbers = tuple(
            f"~{getattr(counts, state):,}"
            if state in counts.estimated
            else f"{getattr(counts, state):,}"
            for state in ("queued", "running", "completed", "failed")
        )
    hour = status.last_hour
    outcomes = "-" if hour is None else f"{hour.succeeded}/{hour.failed}/{hour.dead_lettered}"
    return (
        status.name,
        "yes" if status.enabled else "no",
        status.table or "-",
        *numbers,
        age(status.oldest_queued_age_seconds),
        str(status.expired_leases) if counts is not None else "-",
        "-" if status.live_workers is None else str(status.live_workers),
        outcomes,
    )
