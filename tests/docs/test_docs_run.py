"""Every page of README.md and docs/ runs as written (docs/docs-are-tested.md): its files are
written, its Python blocks and `sh run` commands run in order in an empty directory, and what
the commands print is what the page shows. A page whose commands use the database runs on
SQLite (the default the page shows) and on PostgreSQL (`ConnectionStrings__Database`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from myapp.data.database import DEFAULT_DATABASE_URL, redact_url
from tests.docs.markdown import blocks
from tests.docs.runner import PageRun, reader_environment
from tests.fixtures.cli import REPO_ROOT

README = REPO_ROOT / "README.md"
FIRST_HANDLER = REPO_ROOT / "docs" / "your-first-handler.md"
PAGES = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]


# Pages whose commands read and write the database: on PostgreSQL too. The others' commands
# (`handlers`) do not touch it, and their Python blocks keep to memory.
ON_BOTH_DATABASES = frozenset({FIRST_HANDLER})
CASES = [
    pytest.param(page, kind, id=f"{page.name}-{kind}")
    for page in PAGES
    for kind in (["sqlite", "postgresql"] if page in ON_BOTH_DATABASES else ["sqlite"])
]


@pytest.fixture
def reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project directory, current and importable, with no settings of ours around;
    the modules imported from it are forgotten afterwards (the next page has its own)."""
    for name in list(os.environ):
        if "__" in name or name.startswith("MYAPP_"):
            monkeypatch.delenv(name)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    try:
        yield project
    finally:
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", "") or "").startswith(str(project)):
                del sys.modules[name]


@pytest.mark.parametrize(("page", "fresh_url"), CASES, indirect=["fresh_url"])
def test_the_page_runs_as_written(
    page: Path, fresh_url: str, reader: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, aliases = {}, {}
    if not fresh_url.startswith("sqlite"):
        settings = {"ConnectionStrings__Database": fresh_url}
        aliases = {redact_url(fresh_url): DEFAULT_DATABASE_URL}
        monkeypatch.setenv("ConnectionStrings__Database", fresh_url)
    run = PageRun(reader, reader_environment(reader, **settings), aliases)

    run.follow(blocks(page))

    not_run = [b.where for b in blocks(page) if b.language == "python" and b not in run.ran]
    assert not_run == []


def files(page: Path) -> dict[str, str]:
    return {block.file: block.body for block in blocks(page) if block.file is not None}


def test_the_readme_example_is_the_first_handler_pages() -> None:
    """README shows files of the page's package, as they are there (the page runs them)."""
    shown = files(README)

    assert shown, "README shows the example handler"
    assert shown == {path: files(FIRST_HANDLER)[path] for path in shown}
