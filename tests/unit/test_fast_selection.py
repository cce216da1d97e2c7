"""`pytest --fast` (`make test-fast`): which tests need a service is found, not remembered; a
test misfiled as fast fails and names the mark it lacks."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

PLUGINS = (
    *("-p", "tests.fixtures.database", "-p", "tests.fixtures.services"),
    *("-o", "asyncio_default_fixture_loop_scope=function"),
)

SUITE = """
import subprocess
import sys

import pytest


def run_tool():
    return subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_on_both_databases(fresh_url):
    pass


def test_through_a_helper_that_starts_a_process():
    run_tool()


@pytest.mark.parametrize("fresh_url", ["postgresql"], indirect=True)
def test_on_postgresql_only(fresh_url):
    pass


def test_pure():
    pass
"""

SNEAKY = """
import importlib


def test_starts_a_process_by_a_name_nobody_reads():
    importlib.import_module("subprocess").run(["true"])
"""


def test_fast_runs_only_the_tests_that_need_no_service_and_fails_a_misfiled_one(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SUITE, test_sneaky=SNEAKY)

    result = pytester.runpytest_inprocess(*PLUGINS, "--fast", "-v")

    result.assert_outcomes(passed=2, failed=1, deselected=3)
    result.stdout.fnmatch_lines_random(
        [
            "*test_suite.py::test_on_both_databases?sqlite? PASSED*",
            "*test_suite.py::test_pure PASSED*",
            "*needs a service under --fast: mark it @pytest.mark.subprocess*",
        ]
    )


def test_without_fast_every_test_is_kept_and_marked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)

    result = pytester.runpytest_inprocess(
        *PLUGINS, "--collect-only", "-q", "-m", "postgres or subprocess"
    )

    collected = [line for line in result.outlines if "::" in line]
    assert collected == [
        "test_suite.py::test_on_both_databases[postgresql]",
        "test_suite.py::test_through_a_helper_that_starts_a_process",
        "test_suite.py::test_on_postgresql_only[postgresql]",
    ]
