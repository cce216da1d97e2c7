"""python -m myapp: run [--once] | handlers | status | items | requeue | health | workers |
trigger | dashboard | db upgrade|stamp | shein ... | photos ..."""

from __future__ import annotations

import sys
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from loguru import logger

from myapp.bootstrap import (
    DEFAULT_CONTAINER,
    build_counters,
    build_engine,
    build_hosted_services,
    registrations,
)
from myapp.cli_context import (
    Context,
    GlobalOptionsGroup,
    format_table,
    on_database,
    prepare_database,
    run_async,
)
from myapp.commands.dashboard import dashboard
from myapp.commands.health import health
from myapp.commands.items import items
from myapp.commands.photos import photos_app
from myapp.commands.requeue import requeue_command
from myapp.commands.shein import shein_app
from myapp.commands.status import status
from myapp.commands.trigger import trigger
from myapp.commands.workers import workers
from myapp.data.clock_skew import warn_if_clock_skewed
from myapp.data.errors import DatabaseStartupError
from myapp.logs import tag_worker
from myapp.processing import ConfigurationError, CycleReport, ProcessorPurpose
from myapp.processing.garbage_collection import freeze_startup_objects
from myapp.processing.hosting import Host, run_one_cycle

CONFIG_ERROR_EXIT = 2
DATABASE_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130
T = TypeVar("T")

DISTRIBUTION = "myapp"

app = typer.Typer(
    cls=GlobalOptionsGroup,  # --container, --environment, --config-dir after the command too
    help="Background work-item processing for a small-business market manager.",
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(shein_app, name="shein")
app.add_typer(photos_app, name="photos")
app.command()(status)
app.command()(trigger)
# The operator's view: read only, except requeue (docs/operations.md).
app.command()(items)
app.command("requeue")(requeue_command)
app.command()(health)
app.command()(workers)
app.command()(dashboard)


class Purpose(StrEnum):
    INGESTION = "ingestion"
    INTERNAL = "internal"
    EXPORT = "export"


def show_version(requested: bool) -> None:
    if requested:
        try:
            installed = version(DISTRIBUTION)
        except PackageNotFoundError:  # run from a source tree that was never installed
            installed = "(not installed)"
        typer.echo(f"{DISTRIBUTION} {installed}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    environment: Annotated[
        str | None,
        typer.Option("--environment", "-e", envvar="MYAPP_ENVIRONMENT", help="Overlay name."),
    ] = None,
    config_dir: Annotated[
        Path | None,
        typer.Option(envvar="MYAPP_CONFIG_DIR", help="Directory of appsettings*.json."),
    ] = None,
    container: Annotated[
        str, typer.Option(help="The container to run, as module:Class.")
    ] = DEFAULT_CONTAINER,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    ctx.obj = Context(environment, config_dir, container)
    if ctx.invoked_subcommand is None:
        run(ctx, once=False)


@app.command()
def run(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Run one cycle, print its report, exit.")
    ] = False,
) -> None:
    """Run the background processing host (the default command)."""
    context: Context = ctx.obj
    report = run_async(context, lambda: _run(context, once))
    if report is not None:
        typer.echo(format_report(report))
        if report.failed or report.fetch_errors:
            raise typer.Exit(1)


async def _run(context: Context, once: bool) -> CycleReport | None:
    container = context.container
    if not once and context.settings.dashboard.enabled:
        from myapp.dashboard.binding import check_bind

        check_bind(context.settings.dashboard)  # refused before anything starts: one line
    await prepare_database(context)
    await warn_if_clock_skewed(container.database.engine(), container.core.clock())
    tag_worker(container.core.worker_id())
    logger.info("Worker {} starting", container.core.worker_id())
    for registration in registrations(container):
        if not registration.enabled:
            logger.info(
                "Handler '{}' is disabled: {}", registration.name, registration.disabled_reason
            )
    if once:  # counted like a running worker's items: the cycle's outcomes, written at its end
        counters = build_counters(container)
        engine = build_engine(container, [counters] if counters is not None else [])
        try:
            return await run_one_cycle(engine)
        finally:
            if counters is not None:
                await counters.flush()
    services = build_hosted_services(container)
    freeze_startup_objects()  # everything built so far lives as long as the worker
    await Host(services).run()
    return None


@app.command()
def handlers(
    ctx: typer.Context,
    purpose: Annotated[
        Purpose | None,
        typer.Option(case_sensitive=False, help="Only handlers of this purpose."),
    ] = None,
) -> None:
    """List handler registrations: name, purpose, max items per cycle, enabled."""
    context: Context = ctx.obj
    engine = build_engine(context.container)
    if purpose is None:
        wanted = list(engine.registrations)
    else:  # the seed's query, as the service would answer it
        names = engine.get_handler_names_by_purpose(ProcessorPurpose[purpose.name])
        wanted = [r for r in engine.registrations if r.name in names]
    rows = [
        (
            r.name,
            r.purpose.name.lower(),
            str(r.max_items_per_cycle),
            "yes" if r.enabled else f"no ({r.disabled_reason})",
        )
        for r in wanted
    ]
    typer.echo(format_table(("NAME", "PURPOSE", "MAX ITEMS", "ENABLED"), rows))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply our migrations up to the newest revision, then those of Database:Migrations."""
    context: Context = ctx.obj
    from myapp.data.database import redact_url
    from myapp.data.migrations import upgrade_to_head

    url = context.settings.connection_strings.database
    theirs = context.settings.database.migrations
    run_async(context, lambda: on_database(context, lambda at: upgrade_to_head(at, theirs)))
    typer.echo(f"Database {redact_url(url)} is at the newest revision")
    for module in theirs:
        typer.echo(f"{module} is at its newest revision")


@db_app.command("stamp")
def db_stamp(ctx: typer.Context) -> None:
    """Record tables made before migrations as the newest revision (only if they match it)."""
    context: Context = ctx.obj
    from myapp.data.database import redact_url
    from myapp.data.migrations import stamp_head

    url = context.settings.connection_strings.database
    revision = run_async(context, lambda: on_database(context, stamp_head))
    typer.echo(f"Database {redact_url(url)} is recorded at revision {revision}, the newest")


def format_report(report: CycleReport) -> str:
    rows = [
        (
            name,
            str(s.fetched),
            str(s.truncated),
            str(s.succeeded),
            str(s.failed),
            f"{s.seconds:.2f}",
            s.fetch_error or "",
        )
        for name, s in report.handlers.items()
    ]
    header = ("HANDLER", "FETCHED", "TRUNCATED", "SUCCEEDED", "FAILED", "SECONDS", "FETCH ERROR")
    return format_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    """Entry point; a configuration error, or a database that cannot be used at start-up,
    exits with 2 and one line, no stack trace."""
    try:
        app(args=argv, prog_name="myapp")
    except ConfigurationError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    except DatabaseStartupError as error:
        print(error, file=sys.stderr)
        return DATABASE_ERROR_EXIT
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except KeyboardInterrupt:  # Ctrl-C outside the host (which handles signals itself)
        return INTERRUPTED_EXIT
    return 0
