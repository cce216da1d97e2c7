"""`myapp health [--require-worker] [--json]`: exit 0 when healthy, UNHEALTHY_EXIT otherwise,
with one line saying why. What a container orchestrator's probe runs. Read only."""

from __future__ import annotations

from typing import Annotated

import typer

from myapp.cli_context import Context, run_async
from myapp.commands.output import JsonOption, echo_json
from myapp.operations.health import HealthReport, check_health

UNHEALTHY_EXIT = 1


def health(
    ctx: typer.Context,
    require_worker: Annotated[
        bool, typer.Option("--require-worker", help="Unhealthy unless a worker is alive.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Exit 0 when the database answers and its schema is current (and a worker is alive).

    Healthy: the database answers and its schema is at our newest revision (and, with
    --require-worker, a worker is alive). Exit 0 if healthy, 1 if not.
    """
    context: Context = ctx.obj

    async def probe() -> HealthReport:
        return await check_health(
            context.container.database.engine(), require_worker=require_worker
        )

    report = run_async(context, probe)
    if as_json:
        echo_json(report)
    elif report.healthy:
        workers = f", live workers: {report.live_workers}" if report.live_workers else ""
        typer.echo(f"Healthy: database {report.database} answers, schema at head{workers}")
    else:
        typer.echo(f"Unhealthy: {'; '.join(report.problems)}", err=True)
    if not report.healthy:
        raise typer.Exit(UNHEALTHY_EXIT)
