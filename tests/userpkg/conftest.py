"""The example's `database_url`: an empty database, from the suite's SQLite and PostgreSQL ones."""

from __future__ import annotations

import pytest


@pytest.fixture
def database_url(fresh_url: str) -> str:
    return fresh_url
