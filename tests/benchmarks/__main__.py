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
    "Shein scraping": "tests.benchmarks.shein_bench",
    "Image vectorization": "tests.benchmarks.azure_bench",
}
OUTPUT = Path("docs/benchmarks.md")
COLUMNS = ("benchmark", "value", "unit", "ideal_or_anchor", "ratio", "notes")


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
        lines += ["| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
