"""Executions of the test handler, and the check that none of one row ran at the same time.

Two journals record them. The `process_calls` table (see models.py) is stamped by the database's
clock; a worker killed mid-call leaves a start without an end there, and a terminated connection
loses the event it was writing. The journal FILE survives both: one file per worker process,
opened O_APPEND and written one whole line per `os.write`, so a SIGKILL cannot tear a line, and
stamped with `time.time()`, the OS clock every process on this machine shares (a worker's
skewed application clock never reaches it).

A line: `<time.time()> <pid> <worker id> <call id> <row id> <event>`, event start/finish/error.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

START = "start"
KILLED = "killed"
_FIELDS = 6


@dataclass(frozen=True)
class Call:
    """One execution of `process` on one row: from its start to its end (None: it never ended
    and its worker was not known to be killed)."""

    call_id: uuid.UUID
    row_id: uuid.UUID
    worker_id: str
    started_at: Any
    ended_at: Any | None
    outcome: str | None  # "finish", "error", KILLED (its worker was SIGKILLed), None: no end

    def __str__(self) -> str:
        return (
            f"call {self.call_id} by {self.worker_id} "
            f"[{self.started_at} .. {self.ended_at}] {self.outcome}"
        )


def append_event(
    path: Path, worker_id: str, call_id: uuid.UUID, row_id: uuid.UUID, event: str
) -> None:
    line = f"{time.time():.6f} {os.getpid()} {worker_id} {call_id} {row_id} {event}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_journal(path: Path, killed_at: float | None = None) -> list[Call]:
    """The calls in one worker's journal file. A call with no end ends at `killed_at` (when its
    worker was SIGKILLed), else it has none."""
    starts: list[Call] = []
    ends: dict[uuid.UUID, tuple[float, str]] = {}
    text = path.read_text() if path.exists() else ""
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if len(fields) != _FIELDS:
            raise ValueError(f"{path}:{number}: not a journal line: {line!r}")
        at, _pid, worker_id, call_id, row_id, event = fields
        if event == START:
            starts.append(
                Call(uuid.UUID(call_id), uuid.UUID(row_id), worker_id, float(at), None, None)
            )
        else:
            ends[uuid.UUID(call_id)] = (float(at), event)
    unfinished = (killed_at, None if killed_at is None else KILLED)
    calls = []
    for call in starts:
        ended_at, outcome = ends.get(call.call_id, unfinished)
        calls.append(replace(call, ended_at=ended_at, outcome=outcome))
    return calls


Overlap = tuple[Call, Call]


def overlapping_calls(
    calls: list[Call], ended_by: Mapping[str, Any] | None = None
) -> list[Overlap]:
    """Every pair of calls of one row that ran at the same time, the earlier start first. A call
    with no end counts as running until `ended_by[worker_id]` (its worker's death), else
    forever. Intervals are half-open: a call starting the instant another ends does not overlap.
    """

    def end(call: Call) -> Any:
        if call.ended_at is not None:
            return call.ended_at
        return (ended_by or {}).get(call.worker_id)  # None: forever

    def running_at(call: Call, moment: Any) -> bool:
        ends = end(call)
        return call.started_at <= moment and (ends is None or moment < ends)

    by_row: dict[uuid.UUID, list[Call]] = {}
    for call in calls:
        by_row.setdefault(call.row_id, []).append(call)
    overlaps = []
    for row_calls in by_row.values():
        ordered = sorted(row_calls, key=lambda c: c.started_at)
        for index, earlier in enumerate(ordered):
            for later in ordered[index + 1 :]:
                if not running_at(earlier, later.started_at):
                    break  # the calls after it start later still
                if running_at(later, later.started_at):  # not an empty interval
                    overlaps.append((earlier, later))
    return overlaps


def describe(overlap: Overlap) -> str:
    earlier, later = overlap
    return f"row {earlier.row_id}: {earlier} overlaps {later}"


def runs_per_row(calls: list[Call]) -> dict[uuid.UUID, int]:
    counts: dict[uuid.UUID, int] = {}
    for call in calls:
        counts[call.row_id] = counts.get(call.row_id, 0) + 1
    return counts
