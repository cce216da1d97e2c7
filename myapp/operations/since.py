"""`--since`: a moment, or how long ago (`24h`, `30m`, `7d`, `00:30:00`, `PT2H`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter, ValidationError

from myapp.processing.timespan import parse_timespan

_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
EXPECTED = "a time ago such as 30m, 24h, 7d, 00:30:00 or PT2H, or an ISO date-time"


def parse_since(text: str, now: datetime) -> datetime:
    """The moment `text` names, in UTC; a naive date-time is taken as UTC. ValueError when it
    is neither a duration nor a date-time."""
    short = _SHORT.match(text)
    if short:
        amount, unit = short.groups()
        return now - timedelta(**{_UNITS[unit.lower()]: float(amount)})
    duration = parse_timespan(text)
    if isinstance(duration, timedelta):
        return now - duration
    try:
        return now - TypeAdapter(timedelta).validate_python(text)
    except ValidationError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: expected {EXPECTED}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
