"""`python -m myapp`: help everywhere, exit codes, config errors, handlers listing, run --once."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from loguru import logger

from myapp import cli

PROJECT_ROOT = Path(__file__).parents[2]
SUPPORT_CONTAINER = "tests.unit.support:Container"
SECRET = "s3cr3t-Pa55w0rd-do-not-print"
SUBPROCESS_GUARD_S = 60


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "appsettings.json").write_text("{}")
    return tmp_path


@pytest.fixture
def clean_env(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment for the app: its own config dir and SQLite file, nothing inherited."""
    for name in list(os.environ):
        if "__" in name or name.startswith("MYAPP_"):
            monkeypatch.delenv(name)
    values = {
        "MYAPP_CONFIG_DIR": str(workdir / "config"),
        "ConnectionStrings__Database": f"sqlite+aiosqlite:///{workdir / 'db.sqlite'}",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(workdir)
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}


@pytest.fixture(autouse=True)
def restore_loguru() -> Iterator[None]:
    """In-process commands reconfigure loguru (sinks on this test's captured stderr)."""
    yield
    logger.remove()
    logger.add(sys.stderr)


def settings_file(workdir: Path, document: dict[str, Any] | str) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    (workdir / "config" / "appsettings.json").write_text(text)


def myapp(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "myapp", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_GUARD_S,
    )


def all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(cli.app)
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    return paths


def test_the_expected_commands_exist() -> None:
    paths = all_command_paths()
    for expected in ([], ["run"], ["handlers"], ["db"], ["db", "upgrade"]):
        assert expected in paths


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p) or "myapp")
def test_help_on_every_command_exits_zero(
    path: list[str], flag: str, clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*path, flag]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out
    assert "--help" in out and "-h" in out


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert cli.main(["--version"]) == 0

    assert capsys.readouterr().out == f"myapp {version('myapp')}\n"


@pytest.mark.parametrize("path", [p for p in all_command_paths() if p], ids=" ".join)
def test_every_command_accepts_the_global_options_after_it(path: list[str]) -> None:
    command: Any = typer.main.get_command(cli.app)
    for name in path:
        command = command.commands[name]

    options = {opt for param in command.params for opt in param.opts}
    assert {"--container", "--environment", "-e", "--config-dir"} <= options


def test_a_global_option_after_the_command_wins_over_the_same_before_it(
    clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--container", "containers:ApplicationContainer", "handlers"]

    assert cli.main([*args, "--container", SUPPORT_CONTAINER]) == 0

    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names == ["Flaky", "Quiet"]


def test_handlers_lists_every_registration(
    clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--container", SUPPORT_CONTAINER, "handlers"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "PURPOSE", "MAX", "ITEMS", "ENABLED"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["Flaky", "ingestion", "5", "yes"],
        ["Quiet", "export", "7", "yes"],
    ]


@pytest.mark.parametrize(
    ("purpose", "expected"),
    [("ingestion", ["Flaky"]), ("EXPORT", ["Quiet"]), ("internal", [])],
)
def test_handlers_filters_by_purpose(
    purpose: str,
    expected: list[str],
    clean_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--container", SUPPORT_CONTAINER, "handlers", "--purpose", purpose]) == 0

    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names == expected


def test_handlers_of_the_default_container_filter_by_purpose(
    clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["handlers"]) == 0
    everything = capsys.readouterr().out.splitlines()[1:]
    assert cli.main(["handlers", "--purpose", "ingestion"]) == 0
    ingestion = capsys.readouterr().out.splitlines()[1:]

    assert ingestion
    assert all(line.split()[1] == "ingestion" for line in ingestion)
    rows = [line.split() for line in everything]
    assert [line.split() for line in ingestion] == [row for row in rows if row[1] == "ingestion"]
    assert len(everything) > len(ingestion)


def test_handlers_shows_overrides_and_disabled_reasons(
    workdir: Path, clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    settings_file(
        workdir,
        {"BackgroundProcessing": {"Flaky": {"MaxItemsPerCycle": 2}, "Quiet": {"Enabled": False}}},
    )

    assert cli.main(["--container", SUPPORT_CONTAINER, "handlers"]) == 0

    out = capsys.readouterr().out
    flaky = next(line for line in out.splitlines() if line.startswith("Flaky"))
    quiet = next(line for line in out.splitlines() if line.startswith("Quiet"))
    assert flaky.split()[:4] == ["Flaky", "ingestion", "2", "yes"]
    assert "no" in quiet and "BackgroundProcessing:Quiet:Enabled" in quiet


def test_an_unknown_purpose_is_an_error_listing_the_valid_ones(
    clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["--container", SUPPORT_CONTAINER, "handlers", "--purpose", "bogus"])

    assert code != 0
    err = capsys.readouterr().err
    assert "bogus" in err
    for valid in ("ingestion", "internal", "export"):
        assert valid in err


def assert_one_line_config_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", [["handlers"], ["run", "--once"]])
def test_a_config_error_exits_2_with_one_line_naming_the_key(
    command: list[str], workdir: Path, clean_env: dict[str, str]
) -> None:
    settings_file(workdir, {"IngestionService": {"PollInterval": "abc"}})

    result = myapp(clean_env, *command, cwd=workdir)

    assert_one_line_config_error(result, "IngestionService:PollInterval", "'abc'", "00:05:00")


@pytest.mark.parametrize("command", [["handlers"], ["run", "--once"]])
@pytest.mark.parametrize(
    ("variable", "value", "fragments"),
    [
        (
            "BackgroundProcessing__ShutdownTimeout",
            "99999999.00:00:00",
            ("BackgroundProcessing:ShutdownTimeout = '99999999.00:00:00'", "at most 01:00:00"),
        ),
        (
            "BackgroundProcessing__Shein__ClaimLease",
            "00:00:00.0001",
            ("BackgroundProcessing:Shein:ClaimLease = '00:00:00.0001'", "at least 00:00:01"),
        ),
    ],
    ids=["ShutdownTimeout 99,999,999 days", "ClaimLease 100 us"],
)
def test_a_duration_out_of_range_in_the_environment_exits_2_with_one_line(
    command: list[str],
    variable: str,
    value: str,
    fragments: tuple[str, ...],
    workdir: Path,
    clean_env: dict[str, str],
) -> None:
    result = myapp({**clean_env, variable: value}, *command, cwd=workdir)

    assert_one_line_config_error(result, "Configuration error: ", *fragments)
    assert not (workdir / "db.sqlite").exists()  # refused before any work


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("Metrics__RetentionDays", "0", "Metrics:RetentionDays = '0'"),
        ("Metrics__Port", "70000", "Metrics:Port = '70000'"),
        ("Workers__RetentionDays", "99999", "Workers:RetentionDays = '99999'"),
    ],
)
def test_an_operational_data_setting_out_of_range_exits_2_naming_the_key(
    variable: str, value: str, key: str, workdir: Path, clean_env: dict[str, str]
) -> None:
    result = myapp({**clean_env, variable: value}, "handlers", cwd=workdir)

    assert_one_line_config_error(result, "Configuration error: ", key)


def test_malformed_json_exits_2_naming_file_and_line(
    workdir: Path, clean_env: dict[str, str]
) -> None:
    settings_file(workdir, '{\n  "IngestionService": {\n    "PollInterval": 5,,\n  }\n}')

    result = myapp(clean_env, "handlers", cwd=workdir)

    assert_one_line_config_error(result, "appsettings.json", "line 3")


@pytest.mark.parametrize(
    ("where", "fragments"),
    [
        (
            ["--config-dir", "/nonexistent"],
            ("--config-dir", "'/nonexistent'", "existing directory"),
        ),
        (["-e", "Prodution"], ("--environment", "'Prodution'", "appsettings.Prodution.json")),
        ({"MYAPP_CONFIG_DIR": "/nonexistent"}, ("MYAPP_CONFIG_DIR", "'/nonexistent'")),
        ({"MYAPP_ENVIRONMENT": "Prodution"}, ("MYAPP_ENVIRONMENT", "'Prodution'")),
    ],
    ids=["--config-dir", "-e", "MYAPP_CONFIG_DIR", "MYAPP_ENVIRONMENT"],
)
def test_a_named_config_dir_or_environment_that_does_not_exist_exits_2_with_one_line(
    where: list[str] | dict[str, str],
    fragments: tuple[str, ...],
    workdir: Path,
    clean_env: dict[str, str],
) -> None:
    """An option after the command, or a variable; the default ./config may be absent."""
    env = {**clean_env, **where} if isinstance(where, dict) else clean_env
    options = where if isinstance(where, list) else []

    result = myapp(env, "run", "--once", *options, cwd=workdir)

    assert_one_line_config_error(result, "Configuration error: ", *fragments)
    assert not (workdir / "db.sqlite").exists()  # refused before any work


def test_a_bad_handler_section_exits_2_naming_the_section_key(
    workdir: Path, clean_env: dict[str, str]
) -> None:
    settings_file(workdir, {"BackgroundProcessing": {"Flaky": {"MaxItemsPerCycle": 0}}})

    result = myapp(clean_env, "--container", SUPPORT_CONTAINER, "handlers", cwd=workdir)

    assert_one_line_config_error(result, "BackgroundProcessing:Flaky:MaxItemsPerCycle", "0")


def test_a_config_error_on_a_secret_never_prints_it(
    workdir: Path, clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    settings_file(workdir, {"AzureAI": {"ApiKey": [SECRET]}})

    assert cli.main(["handlers"]) == 2

    captured = capsys.readouterr()
    assert "AzureAI:ApiKey" in captured.err
    assert SECRET not in captured.err + captured.out


def test_an_unknown_container_is_a_config_error(
    clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--container", "no.such.module:Container", "handlers"]) == 2
    assert "--container" in capsys.readouterr().err


def report_rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.strip().splitlines()
    header = lines.index(next(line for line in lines if line.startswith("HANDLER")))
    return {line.split()[0]: line.split()[1:] for line in lines[header + 1 :]}


def test_run_once_prints_the_report_and_exits_1_when_an_item_failed(
    workdir: Path, clean_env: dict[str, str]
) -> None:
    result = myapp(clean_env, "--container", SUPPORT_CONTAINER, "run", "--once", cwd=workdir)

    assert result.returncode == 1, result.stderr
    rows = report_rows(result.stdout)
    # FETCHED TRUNCATED SUCCEEDED FAILED SECONDS
    assert rows["Flaky"][:4] == ["3", "0", "2", "1"]
    assert rows["Quiet"][:4] == ["3", "0", "3", "0"]
    assert "Error processing work item" in result.stderr
    assert (workdir / "db.sqlite").exists()  # migrated on start-up


def test_each_run_once_adds_its_outcomes_to_the_counters_a_restart_keeps(
    workdir: Path, clean_env: dict[str, str]
) -> None:
    import sqlite3

    for _ in range(2):  # two worker processes, one after the other
        result = myapp(clean_env, "--container", SUPPORT_CONTAINER, "run", "--once", cwd=workdir)
        assert result.returncode == 1, result.stderr

    with sqlite3.connect(workdir / "db.sqlite") as db:
        totals = db.execute(
            "SELECT handler, sum(succeeded), sum(failed), sum(dead_lettered), sum(count) "
            "FROM myapp_handler_outcomes GROUP BY handler ORDER BY handler"
        ).fetchall()
    assert totals == [("Flaky", 4, 2, 0, 4), ("Quiet", 6, 0, 0, 6)]


def test_a_failing_item_logs_one_entry_with_the_handlers_frame_only(
    workdir: Path, clean_env: dict[str, str]
) -> None:
    """`--container` after the command; the failure: its line and the handler's one frame, no
    runpy/typer/asyncio frames (the whole traceback is at Debug)."""
    result = myapp(clean_env, "run", "--once", "--container", SUPPORT_CONTAINER, cwd=workdir)

    assert result.returncode == 1, result.stderr
    assert report_rows(result.stdout)["Flaky"][:4] == ["3", "0", "2", "1"]
    lines = result.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if "Error processing work item" in line)
    entry = [
        lines[start],
        *itertools.takewhile(lambda line: line.startswith("  "), lines[start + 1 :]),
    ]
    assert entry[0].endswith("from handler Flaky: RuntimeError: item 0 fails on purpose")
    assert len(entry) == 2, entry
    assert "support.py:" in entry[1] and " in process: raise RuntimeError(" in entry[1]
    for noise in ("Traceback", "runpy", "typer", "asyncio", "engine.py"):
        assert noise not in result.stderr


def test_run_once_exits_0_when_every_item_succeeded(
    workdir: Path, clean_env: dict[str, str]
) -> None:
    env = {**clean_env, "BackgroundProcessing__Flaky__FailItems": "0"}

    result = myapp(env, "--container", SUPPORT_CONTAINER, "run", "--once", cwd=workdir)

    assert result.returncode == 0, result.stderr
    rows = report_rows(result.stdout)
    assert rows["Flaky"][:4] == ["3", "0", "3", "0"]
    assert rows["Quiet"][:4] == ["3", "0", "3", "0"]


def read_until(process: subprocess.Popen[str], fragment: str, seen: list[str]) -> None:
    assert process.stderr is not None
    for line in process.stderr:  # blocks until the app writes the line (or exits)
        seen.append(line)
        if fragment in line:
            return
    pytest.fail(f"never saw {fragment!r}:\n" + "".join(seen))


def test_python_m_myapp_runs_the_host_with_zero_setup_and_stops_on_signals(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    """Zero setup: no config dir, SQLite under ./data. SIGTERM starts a graceful stop (which
    waits for the running cycle); a second signal stops at once."""
    bare = tmp_path / "bare"
    bare.mkdir()
    own = ("MYAPP_CONFIG_DIR", "ConnectionStrings__Database")
    env = {k: v for k, v in clean_env.items() if k not in own}
    process = subprocess.Popen(
        [sys.executable, "-m", "myapp"],
        cwd=bare,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        read_until(process, "Unified background processing service started with 00:05:00", seen)
        process.send_signal(signal.SIGTERM)
        read_until(process, "Stopping", seen)
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=SUBPROCESS_GUARD_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    output = "".join(seen) + rest
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert "Stopping at once" in output
    assert (bare / "data" / "myapp.db").exists()


def test_trigger_names_an_unknown_handler_and_exits_2(
    clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--container", SUPPORT_CONTAINER, "trigger", "Flakey"]) == 2

    error = capsys.readouterr().err
    assert "No handler named 'Flakey'" in error and "Flaky" in error


def test_trigger_wakes_a_handler_through_the_sqlite_file(
    clean_env: dict[str, str], workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    assert cli.main(["db", "upgrade"]) == 0
    watcher = sqlite3.connect(workdir / "db.sqlite")  # what the worker's watcher reads
    before = watcher.execute("PRAGMA data_version").fetchone()[0]

    assert cli.main(["--container", SUPPORT_CONTAINER, "trigger", "Flaky"]) == 0

    assert "Woke Flaky" in capsys.readouterr().out
    assert watcher.execute("PRAGMA data_version").fetchone()[0] != before
    watcher.close()
