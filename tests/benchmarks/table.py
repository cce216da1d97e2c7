"""One row of a benchmark table, as every suite returns it (tests/benchmarks/__main__.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

COLUMNS = ("benchmark", "value", "unit", "ideal_or_anchor", "ratio", "notes")


def row(
    benchmark: str,
    value: float,
    unit: str,
    anchor: str = "",
    ratio: float | None = None,
    notes: str = "",
) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "value": round(value, 3),
        "unit": unit,
        "ideal_or_anchor": anchor,
        "ratio": None if ratio is None else round(ratio, 3),
        "notes": notes,
    }


def print_table(rows: Iterable[dict[str, Any]]) -> None:
    """The rows as a markdown table on stdout (a suite run on its own)."""
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for result in rows:
        cells = ["-" if result[c] in (None, "") else str(result[c]) for c in COLUMNS]
        print("| " + " | ".join(cells) + " |")
