"""Alembic environment of our own tables (myapp.data.models), recorded in myapp_alembic_version.

The URL comes from the config (`sqlalchemy.url`, set by myapp.data.migrations) or, for the
alembic CLI, from MYAPP_DATABASE_URL. When the API passes an open connection in
`config.attributes["connection"]`, migrations run on it. See myapp.data.alembic_env.
"""

from __future__ import annotations

from myapp.data.alembic_env import OUR_VERSION_TABLE, run_env
from myapp.data.models import Base

run_env(Base.metadata, version_table=OUR_VERSION_TABLE)
