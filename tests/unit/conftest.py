"""Fixtures the unit tests share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config dir; no MYAPP_* or Section__Key variables leak in from outside."""
    for name in list(os.environ):
        if "__" in name or name.startswith("MYAPP_"):
            monkeypatch.delenv(name)
    directory = tmp_path / "config"
    directory.mkdir()
    return directory
