"""Outcome charts as inline SVG, drawn on the server: no JavaScript, no chart library.

One bar per bucket: succeeded (green) below, failed and dead-lettered (red) stacked on top, a
tooltip (`<title>`) with the figures. The SVG stretches to the card's width; its labels (the
first and last bucket, the tallest bar's total) are HTML beneath it, so they never stretch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from markupsafe import Markup, escape

BAR_WIDTH = 6
GAP = 1
HEIGHT = 60


class Bucket(Protocol):
    @property
    def start(self) -> datetime: ...

    @property
    def succeeded(self) -> int: ...

    @property
    def failed(self) -> int: ...

    @property
    def dead_lettered(self) -> int: ...


def outcome_chart(buckets: Sequence[Bucket], title: str, time_format: str = "%H:%M") -> Markup:
    tallest = max((b.succeeded + b.failed + b.dead_lettered for b in buckets), default=0)
    scale = HEIGHT / max(tallest, 1)
    width = max(len(buckets), 1) * (BAR_WIDTH + GAP)
    parts = [
        '<figure class="chart">',
        f'<svg viewBox="0 0 {width} {HEIGHT}" role="img" preserveAspectRatio="none" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="0" y1="{HEIGHT}" x2="{width}" y2="{HEIGHT}"/>',
    ]
    for index, bucket in enumerate(buckets):
        parts.append(_bar(bucket, index * (BAR_WIDTH + GAP), scale, time_format))
    parts.append("</svg><figcaption>")
    if buckets:
        first, last = buckets[0].start, buckets[-1].start
        parts.append(f"<span>{first:{time_format}}</span>")
        parts.append(f'<span class="peak">peak {tallest:,}</span>')
        parts.append(f"<span>{last:{time_format}}</span>")
    parts.append("</figcaption></figure>")
    return Markup("".join(parts))


def _bar(bucket: Bucket, x: int, scale: float, time_format: str) -> str:
    bad = bucket.failed + bucket.dead_lettered
    good_height, bad_height = bucket.succeeded * scale, bad * scale
    tip = (
        f"{bucket.start:{time_format}}: {bucket.succeeded} succeeded, {bucket.failed} failed, "
        f"{bucket.dead_lettered} dead-lettered"
    )
    return (
        f"<g><title>{escape(tip)}</title>"
        f'<rect class="ok" x="{x}" y="{HEIGHT - good_height:.2f}" width="{BAR_WIDTH}" '
        f'height="{good_height:.2f}"/>'
        f'<rect class="bad" x="{x}" y="{HEIGHT - good_height - bad_height:.2f}" '
        f'width="{BAR_WIDTH}" height="{bad_height:.2f}"/></g>'
    )
