"""python -m myapp: run | run --once | handlers | db upgrade | shein ... | photos ..."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from loguru import logger

from myapp.bootstrap import DEFAULT_CONTAINER, build_container, registrations
from myapp.logs import configure_logging
from myapp.processing.errors import ConfigurationError
from myapp.processing.hosting import Host
from myapp.processing.report import CycleReport
from myapp.processing.work_item import ProcessorPurpose
from myapp.settings import AppSettings, load_settings

CONFIG_ERROR_EXIT = 2
T = TypeVar("T")

app = typer.Typer(
    help="Background work-item processing for a small-business market manager.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


class Purpose(StrEnum):
    INGESTION = "ingestion"
    INTERNAL = "internal"
    EXPORT = "export"


class Context:
    """What the global options decided, resolved lazily by each command."""

    def __init__(self, environment: str | None, config_dir: Path | None, container: str):
        self.environment = environment
        self.config_dir = config_dir
        self.container_path = container
        self._settings: AppSettings | None = None
        self._container: Any = None

    @property
    def settings(self) -> AppSettings:
        if self._settings is None:
            self._settings = load_settings(self.environment, self.config_dir)
            logging_settings = self._settings.logging
            configure_logging(logging_settings.log_level.default, logging_settings.format)
        return self._settings

    @property
    def container(self) -> Any:
        if self._container is None:
            self._container = build_container(self.settings, self.container_path)
        return self._container


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
    await _prepare_database(context)
    logger.info("Worker {} starting", container.core.worker_id())
    for registration in registrations(container):
        if not registration.enabled:
            logger.info(
                "Handler '{}' is disabled: {}", registration.name, registration.disabled_reason
            )
    if once:
        return await container.processing.engine().run_cycle()  # type: ignore[no-any-return]
    await Host(container.processing.hosted_services()).run()
    return None


async def _prepare_database(context: Context) -> None:
    if context.settings.database.migrate_on_startup:
        from myapp.data.migrations import upgrade_to_head

        await upgrade_to_head(context.settings.connection_strings.database)


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
    wanted = [
        r
        for r in registrations(context.container)
        if purpose is None or r.purpose == ProcessorPurpose[purpose.name]
    ]
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
    """Apply the database migrations up to the newest revision."""
    context: Context = ctx.obj
    from myapp.data.database import redact_url
    from myapp.data.migrations import upgrade_to_head

    url = context.settings.connection_strings.database
    run_async(context, lambda: upgrade_to_head(url))
    typer.echo(f"Database {redact_url(url)} is at the newest revision")


def run_async(context: Context, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine; dispose the database engine afterwards if one was made."""

    async def with_cleanup() -> T:
        try:
            return await make()
        finally:
            if context._container is not None:
                await context._container.database.engine().dispose()

    return asyncio.run(with_cleanup())


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


def format_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point; a configuration error exits with 2 and one line, no stack trace."""
    try:
        app(args=argv, prog_name="myapp")
    except ConfigurationError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0
