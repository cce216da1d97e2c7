"""One row of a benchmark table, as every suite returns it (tests/benchmarks/__main__.py)."""

from __future__ import annotations

from typing import Any


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
