"""Run every benchmark and write the table to docs/benchmarks.md (`make bench`)."""

from __future__ import annotations

import importlib
import platform
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SUITES = {
    "Engine": "tests.benchmarks.engine_bench",
    "Claims on PostgreSQL": "tests.benchmarks.claims_bench",
    "Operational data on PostgreSQL": "tests.benchmarks.operational_bench",
    "Status with a million finished rows": "tests.benchmarks.status_bench",
    "Dashboard with a million finished rows": "tests.benchmarks.dashboard_bench",
    "Wake-ups": "tests.benchmarks.wakeup_bench",
    "Wake-up latency through the engine": "tests.benchmarks.latency_bench",
    "Shein scraping": "tests.benchmarks.shein_bench",
    "Image vectorization": "tests.benchmarks.azure_bench",
}
OUTPUT = Path("docs/benchmarks.md")
COLUMNS = ("benchmark", "value", "unit", "ideal_or_anchor", "ratio", "notes")
READING = """## Reading the claims figures

Every framework row is a ratio to the raw asyncpg loop run just before and just after it, the
median of three rounds: this machine's speed drifts with whatever else runs on it (the raw loop
alone ranged 12,000-46,000 rows/s over one afternoon), and the ratio drifts much less.

The raw loop does no Python work per row: four connections, each claiming 100 rows and
completing them in two autocommit statements. A worker process does, per row: an asyncio task,
a scope, a fresh handler from its provider (no database session is built unless the handler
touches it), the handler's call, and the bookkeeping of slots, leases and the spin guard; per
claim, one statement built once per spec (bind parameters for limit, worker id and lease), its
rows turned into detached model instances without the ORM's identity map; per batch of
completions, one statement with the ids as one array parameter. Each claim and acknowledgement
is one autocommit statement, after the connection pool's pre-ping (three round trips of its own).

One handler keeps one claim in flight: it refills when half its quota is left, so a handler
with quota 100 gets at most 100 rows per claim round trip (5-15 ms here) however fast its items
run. The batch protocol at quota 100 meets that bound with its worker's CPU less than two-thirds
busy; at quota 500 the same worker carries five times the rows per round trip. The per-item
worker is CPU-bound (about 100-130 us of CPU per row). Four worker processes share two cores with
PostgreSQL and each other.

Measured on this machine (worker CPU per row from /proc, drain only; same-run A/B of the code
before and after each change, medians): sessions built on first use, 241 -> 185 us; the claim
statement built once and its rows loaded without the identity map, with acknowledgements as
`id = ANY(:ids)`, 190 -> 122 us; acknowledgement statements built once and run through Core,
complete(100) 35 -> 22 us of CPU per id; one autocommit statement per claim and acknowledgement,
claim(100) 4.5 -> 3.6 ms and complete(100) 2.8 -> 1.8 ms wall. Against main before these
changes, alternating in one run: per-item 280 -> 121 us of CPU per row and 0.090 -> 0.188 of the
raw loop (another run: 224 -> 115, 0.140 -> 0.224); batch protocol at quota 100, 141 -> 66 us and
0.157 -> 0.249; at quota 500, 98 -> 55 us and 0.292 -> 0.426.
"""


def main() -> int:
    sections, failed = [], False
    for title, module_name in SUITES.items():
        print(f"== {title}", flush=True)
        try:
            rows: list[dict[str, Any]] = importlib.import_module(module_name).run()
        except Exception:
            traceback.print_exc()
            failed = True
            continue
        for row in rows:
            print("  ", " | ".join(str(row.get(column, "")) for column in COLUMNS), flush=True)
        sections.append((title, rows))
    OUTPUT.write_text(render(sections), encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 1 if failed else 0


def render(sections: list[tuple[str, list[dict[str, Any]]]]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (not part of `make test`); figures from the last run on "
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, Python {platform.python_version()}, "
        "2 cores. Ratios compare against the ideal or anchor named in each row.",
        "",
    ]
    for title, rows in sections:
        lines += [f"## {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(_cell(r.get(c)) for c in COLUMNS) + " |" for r in rows]
        lines.append("")
    return "\n".join([*lines, READING])


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


if __name__ == "__main__":
    sys.exit(main())
