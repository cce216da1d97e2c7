"""How the operator's commands print: `--json` (a pydantic model's JSON, as the dashboard's API
sends it) or a table, and the small formats they share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def echo_json(value: BaseModel | Sequence[BaseModel]) -> None:
    if not isinstance(value, BaseModel):
        document: Any = [item.model_dump(mode="json") for item in value]
    else:
        document = value.model_dump(mode="json")
    typer.echo(json.dumps(document, indent=2))


def age(seconds: float | None) -> str:
    """`45s`, `12m 5s`, `3h 20m`, `2d 4h`; empty for None."""
    if seconds is None:
        return ""
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def moment(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value is not None else ""


def shorten(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
