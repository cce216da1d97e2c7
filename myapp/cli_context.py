"""What every command shares: the lazily built settings and container, the global options
(accepted before or after the command), and the async runner."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from typer.core import TyperGroup

from myapp.bootstrap import build_container
from myapp.data.errors import DatabaseStartupError, database_startup
from myapp.logs import configure_logging
from myapp.settings import AppSettings, load_settings

if TYPE_CHECKING:
    from myapp.operations.registry import RegisteredHandler
    from myapp.operations.schema import SchemaState

T = TypeVar("T")
# The root's options a user may also give after the command (`run --once --container X`), and
# the Context attribute each one sets.
GLOBAL_OPTIONS = {
    "environment": "environment",
    "config_dir": "config_dir",
    "container": "container_path",
}


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


class GlobalOptionsGroup(TyperGroup):
    """The root command. Its GLOBAL_OPTIONS are accepted after any command too (shown in each
    command's help), where they win over the same option given before the command."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        after = [_after_command(option) for option in self.params if option.name in GLOBAL_OPTIONS]
        for command in _commands_below(self):
            command.params.extend(after)


def _after_command(option: Any) -> Any:
    """A copy of a root option for the commands: it only updates the root's Context. Its
    environment variable and default are the root's business, read once there."""
    after = copy.copy(option)
    after.expose_value = False
    after.envvar = None
    after.default = None
    after.callback = _set_on_context
    return after


def _set_on_context(ctx: typer.Context, option: Any, value: Any) -> Any:
    context = ctx.find_object(Context)
    if value is not None and context is not None:
        setattr(context, GLOBAL_OPTIONS[option.name], value)
    return value


def _commands_below(group: Any) -> Iterator[Any]:
    for command in getattr(group, "commands", {}).values():
        yield command
        yield from _commands_below(command)


async def prepare_database(context: Context) -> None:
    """Every command's first connection: apply the migrations (`Database:MigrateOnStartup`) or
    check that the database answers. One that cannot be used raises DatabaseStartupError,
    which the CLI prints as one line (exit 2) instead of a traceback."""
    from myapp.data.database import check_connection
    from myapp.data.migrations import upgrade_to_head

    url = context.settings.connection_strings.database
    with database_startup(url):
        if context.settings.database.migrate_on_startup:
            await upgrade_to_head(url, context.settings.database.migrations)
        else:
            await check_connection(context.container.database.engine())


async def check_database(context: Context) -> SchemaState:
    """Read-only commands' first connection: the database answers, and its schema is reported,
    never migrated (nor a missing SQLite file created). One that cannot be used raises
    DatabaseStartupError, as `prepare_database` does."""
    from myapp.data.database import normalize_url
    from myapp.operations.schema import missing_sqlite_file, schema_state

    url = context.settings.connection_strings.database
    with database_startup(url):
        missing_sqlite_file(normalize_url(url))
        return await schema_state(context.container.database.engine())


class SchemaNotCurrentError(DatabaseStartupError):
    """A read-only command that needs our newest tables met another schema."""


async def require_current_schema(context: Context) -> None:
    """`check_database`, and a schema at our newest revision: else SchemaNotCurrentError (one
    line, exit 2). For read-only commands that read our tables."""
    from myapp.data.database import redact_url

    schema = await check_database(context)
    if not schema.at_head:
        url = redact_url(context.settings.connection_strings.database)
        raise SchemaNotCurrentError(f"Database {url}: {schema.describe()}")


async def operated_handlers(context: Context) -> list[RegisteredHandler]:
    """Every registered handler with its claim spec, built without opening anything a handler
    holds: the cookie cipher would create its key file on SQLite, and a read-only command
    creates nothing."""
    from dependency_injector import providers

    from myapp.bootstrap import registrations
    from myapp.operations.registry import registered_handlers

    container = context.container
    with container.database.cookie_cipher.override(providers.Object(None)):
        return await registered_handlers(registrations(container))


async def on_database(context: Context, work: Callable[[str], Awaitable[T]]) -> T:
    """`work(url)` on the configured database, failures to use it told as at start-up."""
    url = context.settings.connection_strings.database
    with database_startup(url):
        return await work(url)


def run_async(context: Context, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine; dispose the database engine afterwards if one was made."""

    async def with_cleanup() -> T:
        try:
            return await make()
        finally:
            if context._container is not None:
                await context._container.core.lifetime().aclose()

    return asyncio.run(with_cleanup())


def format_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)
