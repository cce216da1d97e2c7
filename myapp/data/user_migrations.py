"""A user's own alembic migrations, named in `Database:Migrations`: packages of alembic scripts
(an `env.py` and `versions/`) that `db upgrade` runs after ours, each recording its history in
a version table of its own (docs/your-own-tables.md)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from myapp.processing import ConfigurationError

SETTING = "Database:Migrations"
ENV_SCRIPT = "env.py"


@dataclass(frozen=True)
class UserMigrations:
    module: str  # as the setting names it: "pricewatch.migrations"
    directory: Path  # where alembic finds its env.py and versions/


def find_user_migrations(module: str) -> UserMigrations:
    """The package `module` (importable, like `--container`), holding an alembic env.py;
    ConfigurationError naming the setting otherwise."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # its parent package is missing, or a malformed name
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ConfigurationError(SETTING, module, "an importable package of alembic scripts")
    directory = Path(locations[0])
    if not (directory / ENV_SCRIPT).is_file():
        raise ConfigurationError(SETTING, module, f"a package with an alembic {ENV_SCRIPT}")
    return UserMigrations(module, directory)
