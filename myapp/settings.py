"""Typed configuration: config/appsettings.json, its environment overlay, environment variables.

Keys are written as in .NET's appsettings (`IngestionService:PollInterval`); environment variables
use `__` for `:` (`IngestionService__PollInterval=00:00:10`) and match case-insensitively. A bad
value stops start-up with a `ConfigurationError` naming the key, the value and what was expected.
"""

from __future__ import annotations

import json
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_pascal
from pydantic_settings import EnvSettingsSource, NoDecode, SettingsError

from myapp.data.database import DEFAULT_DATABASE_URL, normalize_url
from myapp.data.outcome_counters import DEFAULT_FLUSH_INTERVAL, DEFAULT_RETENTION_DAYS
from myapp.data.worker_heartbeat import DEFAULT_WORKER_RETENTION_DAYS
from myapp.processing import ConfigurationError, IntervalTimeSpan, TimeoutTimeSpan
from myapp.processing.config_keys import with_field_keys
from myapp.processing.engine import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_SHUTDOWN_TIMEOUT,
)
from myapp.processing.errors import NOT_SHOWN
from myapp.processing.options import MAX_CONCURRENCY_LIMIT
from myapp.processing.prometheus_metrics import DEFAULT_METRICS_HOST
from myapp.processing.timespan import ShutdownTimeSpan
from myapp.scraping.cookie_cipher import parse_cookie_keys

DEFAULT_CONFIG_DIR = Path("config")
ENVIRONMENT_VARIABLE = "MYAPP_ENVIRONMENT"
CONFIG_DIR_VARIABLE = "MYAPP_CONFIG_DIR"
BASE_SETTINGS_FILE = "appsettings.json"
# How a missing directory or overlay is named in its error: both ways of giving it.
CONFIG_DIR_KEY = f"--config-dir ({CONFIG_DIR_VARIABLE})"
ENVIRONMENT_KEY = f"--environment ({ENVIRONMENT_VARIABLE})"
# Items fetched and waiting for a slot; more than this is a typo, not a tuning.
QUEUE_SIZE_LIMIT = 10_000
# Days of operational data kept: ten years keeps dates in range.
RETENTION_DAYS_LIMIT = 3650
HIGHEST_PORT = 65535
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
MODULE_NAME_EXPECTED = "importable package names such as pricewatch.migrations"
DATABASE_URL_EXPECTED = (
    "a database URL: sqlite+aiosqlite:///path/to/file.db or postgresql://user:password@host/db"
)
# The Azurite emulator's well-known development account (public, documented by Microsoft).
AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)


class Section(BaseModel):
    """A section: PascalCase keys, matched case-insensitively; unknown keys are refused."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _match_keys_ignoring_case(cls, data: Any) -> Any:
        return with_field_keys(cls, data)


class IngestionServiceSettings(Section):
    poll_interval: IntervalTimeSpan = DEFAULT_POLL_INTERVAL


class BackgroundProcessingSettings(Section):
    """Engine settings; every other key is a handler's own section, validated by that handler."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="allow")

    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, ge=1, le=MAX_CONCURRENCY_LIMIT)
    queue_size: int | None = Field(default=None, ge=1, le=QUEUE_SIZE_LIMIT)
    fetch_timeout: TimeoutTimeSpan | None = None
    item_timeout: TimeoutTimeSpan | None = None
    shutdown_timeout: ShutdownTimeSpan = DEFAULT_SHUTDOWN_TIMEOUT
    heartbeat_interval: IntervalTimeSpan = DEFAULT_HEARTBEAT_INTERVAL

    def handler_sections(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ConnectionStringsSettings(Section):
    database: str = DEFAULT_DATABASE_URL
    blob_storage: SecretStr = SecretStr(AZURITE_CONNECTION_STRING)

    @field_validator("database")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        try:
            normalize_url(value)
        except ValueError:
            raise ValueError(DATABASE_URL_EXPECTED) from None
        return value


class DatabaseSettings(Section):
    migrate_on_startup: bool = True
    # A user's own packages of alembic scripts, run after ours (docs/your-own-tables.md).
    # NoDecode: from the environment it is a comma-separated list, not JSON.
    migrations: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("migrations", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # `Database__Migrations=pricewatch.migrations,other.migrations` from the environment.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("migrations")
    @classmethod
    def _module_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for module in value:
            if not MODULE_NAME.fullmatch(module):
                raise ValueError(f"{MODULE_NAME_EXPECTED}, not {module!r}")
        return value


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class LogLevel(StrEnum):
    """.NET level names, as appsettings.json writes them."""

    TRACE = "Trace"
    DEBUG = "Debug"
    INFORMATION = "Information"
    WARNING = "Warning"
    ERROR = "Error"
    CRITICAL = "Critical"
    NONE = "None"

    @classmethod
    def _missing_(cls, value: object) -> LogLevel | None:
        for member in cls:
            if str(value).lower() == member.value.lower():
                return member
        return None


class LogLevelSettings(Section):
    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="allow")

    default: LogLevel = LogLevel.INFORMATION


class LoggingSettings(Section):
    log_level: LogLevelSettings = LogLevelSettings()
    format: LogFormat = LogFormat.TEXT


class AzureAISettings(Section):
    endpoint: str | None = None
    api_key: SecretStr | None = None
    image_embedding_model: str | None = None


class SecretsSettings(Section):
    """Keys for data at rest. Held as `SecretStr`: never logged, never repeated in an error."""

    # Seals stored cookie files (myapp.scraping.cookie_cipher): one Fernet key, or several
    # separated by commas to rotate (the first seals, all open). Unset on SQLite: a key file
    # beside the database is used; unset on PostgreSQL: the Shein handler is disabled.
    cookie_key: SecretStr | None = None

    @field_validator("cookie_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cookie_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_cookie_keys(value.get_secret_value())
        return value


class MetricsSettings(Section):
    """The worker's Prometheus endpoint (off unless `Port` is set) and the outcome counters."""

    port: int = Field(default=0, ge=0, le=HIGHEST_PORT)
    """0: no endpoint."""
    host: str = DEFAULT_METRICS_HOST
    counters: bool = True
    """Per-minute outcome counters in the database (myapp_handler_outcomes)."""
    flush_interval: IntervalTimeSpan = DEFAULT_FLUSH_INTERVAL
    retention_days: int = Field(default=DEFAULT_RETENTION_DAYS, ge=1, le=RETENTION_DAYS_LIMIT)


class WorkersSettings(Section):
    """The workers table (myapp_workers)."""

    heartbeat: bool = True
    """False: this worker writes no row (invisible to `workers`, `status` and `health`)."""

    retention_days: int = Field(
        default=DEFAULT_WORKER_RETENTION_DAYS, ge=1, le=RETENTION_DAYS_LIMIT
    )
    """Rows of workers stopped or gone longer than this are deleted."""


DEFAULT_DASHBOARD_HOST = "127.0.0.1"
DEFAULT_DASHBOARD_PORT = 8000


class DashboardSettings(Section):
    """The web dashboard (`python -m myapp dashboard`, or inside a worker when enabled).

    A host other than a loopback address requires `token` (checked when the dashboard starts).
    """

    enabled: bool = False
    host: str = DEFAULT_DASHBOARD_HOST
    port: int = Field(default=DEFAULT_DASHBOARD_PORT, ge=0, le=HIGHEST_PORT)
    token: SecretStr | None = None
    read_only: bool = False

    @field_validator("token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


class AppSettings(Section):
    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="ignore")

    ingestion_service: IngestionServiceSettings = IngestionServiceSettings()
    background_processing: BackgroundProcessingSettings = BackgroundProcessingSettings()
    connection_strings: ConnectionStringsSettings = ConnectionStringsSettings()
    database: DatabaseSettings = DatabaseSettings()
    logging: LoggingSettings = LoggingSettings()
    azure_ai: AzureAISettings = Field(default_factory=AzureAISettings, alias="AzureAI")
    secrets: SecretsSettings = SecretsSettings()
    metrics: MetricsSettings = MetricsSettings()
    workers: WorkersSettings = WorkersSettings()
    dashboard: DashboardSettings = DashboardSettings()


def read_json_file(path: Path) -> dict[str, Any]:
    try:
        # utf-8-sig: Visual Studio writes appsettings.json with a byte-order mark.
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise ConfigurationError(
            str(path), f"line {error.lineno} column {error.colno}", f"valid JSON ({error.msg})"
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigurationError(str(path), f"byte {error.start}", "a UTF-8 text file") from None
    if not isinstance(document, dict):
        raise ConfigurationError(str(path), type(document).__name__, "a JSON object at the top")
    return document


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    lowered = {key.lower(): key for key in merged}
    for key, value in overlay.items():
        existing = lowered.get(key.lower(), key)
        if isinstance(value, dict) and isinstance(merged.get(existing), dict):
            merged[existing] = deep_merge(merged[existing], value)
        else:
            merged.pop(existing, None)
            merged[key] = value
            lowered[key.lower()] = key
    return merged


def load_settings(environment: str | None = None, config_dir: Path | None = None) -> AppSettings:
    """Read and validate every source; raises ConfigurationError naming the first bad key, or
    the configuration directory or environment overlay that was named and does not exist."""
    document: dict[str, Any] = {}
    for path in settings_files(environment, config_dir):
        document = deep_merge(document, read_json_file(path))
    document = deep_merge(document, environment_variables())
    try:
        return AppSettings.model_validate(document)
    except ValidationError as error:
        raise ConfigurationError.from_validation_error(error) from None


def settings_files(environment: str | None, config_dir: Path | None) -> list[Path]:
    """The files to read, in order. The default directory (./config) may be absent or hold no
    appsettings.json: the defaults apply. A directory that was named (argument, --config-dir,
    MYAPP_CONFIG_DIR) must exist and hold appsettings.json; an environment that was named must
    have its overlay there. Either is otherwise most likely a typo, not a wish for defaults."""
    named_dir = config_dir or _variable_path(CONFIG_DIR_VARIABLE)
    environment = environment or os.environ.get(ENVIRONMENT_VARIABLE) or None
    directory = named_dir or DEFAULT_CONFIG_DIR
    base = directory / BASE_SETTINGS_FILE
    if named_dir is not None and not named_dir.is_dir():
        raise ConfigurationError(CONFIG_DIR_KEY, str(named_dir), "an existing directory")
    if named_dir is not None and not base.is_file():
        expected = f"a directory holding {BASE_SETTINGS_FILE} (it may hold just {{}})"
        raise ConfigurationError(CONFIG_DIR_KEY, str(named_dir), expected)
    files = [base] if base.is_file() else []
    if environment:
        overlay = directory / f"appsettings.{environment}.json"
        if not overlay.is_file():
            expected = f"an overlay file {overlay} ({_overlays_in(directory)})"
            raise ConfigurationError(ENVIRONMENT_KEY, environment, expected)
        files.append(overlay)
    return files


def _variable_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _overlays_in(directory: Path) -> str:
    """What a misspelt environment name was probably meant to be."""
    if not directory.is_dir():
        return f"{directory} does not exist"
    overlays = sorted(path.name for path in directory.glob("appsettings.*.json"))
    return f"{directory} has {', '.join(overlays)}" if overlays else f"{directory} has none"


def environment_variables() -> dict[str, Any]:
    """`Section__Key=value` variables (parsed by pydantic-settings) as a nested document."""
    # EnvSettingsSource only reads model_fields and model_config, which a BaseModel has too.
    source = EnvSettingsSource(
        AppSettings,  # type: ignore[arg-type]
        case_sensitive=False,
        env_nested_delimiter="__",
    )
    try:
        parsed = source()
    except SettingsError as error:  # e.g. a whole section given as malformed JSON
        raise ConfigurationError("environment", NOT_SHOWN, f"valid values ({error})") from None
    aliases = {name: field.alias or name for name, field in AppSettings.model_fields.items()}
    return {aliases.get(key, key): value for key, value in parsed.items()}
