"""Run every benchmark and write the table to docs/benchmarks.md (`make bench`).

python -m tests.benchmarks                                 # every suite, the whole page
python -m tests.benchmarks --only "Claims on PostgreSQL"   # one suite: its section is
                                                           # replaced, the rest kept
"""

from __future__ import annotations

import argparse
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
completing them in two autocommit statements, every commit waiting for the WAL flush (the
server's `synchronous_commit = on`). A worker process does, per row: an asyncio task, a scope, a
fresh handler from its provider (no database session is built unless the handler touches it),
the handler's call, and the bookkeeping of slots, leases and the spin guard; per claim, one
statement built once per spec, its rows turned into detached model instances without the ORM's
identity map; per batch of completions (those finishing within 20 ms of each other), one
statement with the ids as one array parameter. Each claim and acknowledgement is one autocommit
statement that does not wait for the WAL flush (10-13 ms per flushed commit on this machine
under load; operations.md has the durability trade-off), on a pooled connection that is pinged
only after 1 s idle. The row "synchronous_commit off" is the raw loop without the flush wait, so
that each framework row can also be read against a loop that waits no more than it does.

A claiming handler that ran dry waiting for a full claim fetches ahead: one more quota claimed
and up to two claims in flight, so a fast handler is not held to one quota per round trip. The
default queue holds both claims, so a batch handler's batch is its whole quota and a fetch
never waits for room item by item. The workers start on an empty table and the rows fall due
once every worker is up and asleep, so no drain counts another worker's start-up.

The worker is CPU-bound: one worker and PostgreSQL share two cores (per row, about 30 us of
worker CPU per-item, 15 batch at quota 100, 11 at quota 500, and 17-25 us of the server's).
What this round changed, measured same-run against the code before it (medians of three
rounds, machine quiet): `python -m myapp run` freezes what start-up built and collects the
young generation every 50,000 allocations instead of 700 (the collector had taken ~40 % of a
batch drain's CPU walking ~170,000 start-up objects), and the engine reads each item's id once
(a dozen descriptor calls per item before): per-item 0.251 -> 0.321 of the raw loop, worker CPU
58 -> 40 us per row; batch at quota 100 0.290 -> 0.419 (36 -> 21 us); batch at quota 500
0.363 -> 0.602 (30 -> 14 us). Then the queue that holds both claims, the dispatcher's plain
awaits, the refill waiter woken only when it may fetch and busy workers skipping their wake-up
probes: per-item 1.06x, four workers 1.09x. Four worker processes share the same two cores
with PostgreSQL and each other: they add no CPU, only contention (52-60 us of worker CPU per
row against 40 for one), so they stay near one worker's figure, below or above it by the round.

Then (the third round of issue 11): a claim, completion, release or renewal that is its own
transaction goes straight to asyncpg after its first call, SQLAlchemy compiling it once
(`driver_statement.py`: claim(100) 0.80 -> 0.69 ms of worker CPU, complete(100) 0.51 -> 0.43
ms), and a finished `process_batch` is acknowledged at once instead of after the 20 ms window
(rows completed but not yet acknowledged are still Started, and every claim steps over them:
claim(100) took 0.55 ms of server time with none ahead, 0.83 ms with 500, 1.31 ms with 2,000).
Same run against the code before, medians of three rounds: batch at quota 100 0.464 -> 0.523
of the raw loop (1.13x), per-item 0.99x, four workers 1.03x. Four workers on two cores stay
just under one: per row they spend 42-47 us of worker CPU against 29-31 for one worker, yet
they run the same Python per row (cProfile of every worker over three drains: 195 function
calls per row against 193), so the difference is what four interpreters and their PostgreSQL
backends pay for sharing two cores (each worker is preempted 3.4 times per 100 rows against
0.35 for a worker alone, and its caches with it), not work the engine adds; two workers
drained 1.11x one (30,300 against 27,200 rows/s, same hour). The server pays too: 27 us per
row with four workers against 20 with one, as their claims step over more leased rows (each
worker holds its own claims ahead); without the second claim in flight four workers drained
5 % faster and one worker 15 % slower, so the fetch-ahead stays.

A batch costs about 0.5 ms of worker CPU per claim, batch and acknowledgement whatever its
size, so quota 100 reads about 0.5 of the raw loop and quota 500 about 0.6: a batch handler
over cheap items should take a bigger quota (background-processing.md, "Batches").
Earlier rounds: sessions built on first use, 241 -> 185 us per row; the claim statement built
once and its rows loaded without the identity map, with acknowledgements as `id = ANY(:ids)`,
190 -> 122 us; one autocommit statement per claim and acknowledgement, claim(100) 4.5 -> 3.6 ms
and complete(100) 2.8 -> 1.8 ms wall; the idle-only ping, fetching ahead and unflushed commits,
97 us; the 20 ms completion window, 83 us.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description="run the benchmarks, write docs/benchmarks.md")
    parser.add_argument("--only", choices=list(SUITES), help="run one suite, keep the others")
    only = parser.parse_args().only
    sections, failed = [], False
    for title, module_name in SUITES.items():
        if only is not None and title != only:
            continue
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
    if only is None:
        OUTPUT.write_text(render(sections), encoding="utf-8")
    elif sections:
        page = OUTPUT.read_text(encoding="utf-8")
        OUTPUT.write_text(replace_section(page, *sections[0]), encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 1 if failed else 0


def replace_section(page: str, title: str, rows: list[dict[str, Any]]) -> str:
    """The page with `title`'s table replaced by `rows` and the closing text brought up to date
    (the other sections keep their last figures)."""
    head, _, rest = page.partition(f"## {title}\n")
    if not rest:
        raise ValueError(f"docs/benchmarks.md has no section {title!r}: run them all")
    tail = rest[rest.index("\n## ") + 1 :]
    tail = tail[: tail.index(READING.splitlines()[0])]
    return head + "\n".join([*table(title, rows), tail.rstrip("\n"), "", READING])


def table(title: str, rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"## {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    return [*lines, ""]


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
        lines += table(title, rows)
    return "\n".join([*lines, READING])


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


if __name__ == "__main__":
    sys.exit(main())
