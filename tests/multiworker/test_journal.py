"""The execution journal: what the handler appends reads back as calls, and the overlap check
finds exactly the pairs of one row's calls whose intervals intersect."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.multiworker.journal import (
    KILLED,
    Call,
    append_event,
    overlapping_calls,
    read_journal,
    runs_per_row,
)

ROWS = [uuid.UUID(int=n) for n in range(3)]
KILL_TIME = 100.0


def test_a_journal_file_reads_back_as_calls(tmp_path: Path) -> None:
    path = tmp_path / "worker.journal"
    finished, failed, cut_short = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    append_event(path, "vm-1-a", finished, ROWS[0], "start")
    append_event(path, "vm-1-a", failed, ROWS[1], "start")
    append_event(path, "vm-1-a", finished, ROWS[0], "finish")
    append_event(path, "vm-1-a", cut_short, ROWS[2], "start")
    append_event(path, "vm-1-a", failed, ROWS[1], "error")

    alive = {call.call_id: call for call in read_journal(path)}
    killed = {call.call_id: call for call in read_journal(path, killed_at=KILL_TIME)}

    assert {id: call.outcome for id, call in alive.items()} == {
        finished: "finish",
        failed: "error",
        cut_short: None,
    }
    assert alive[finished].row_id == ROWS[0] and alive[finished].worker_id == "vm-1-a"
    assert alive[finished].started_at <= alive[finished].ended_at
    assert alive[cut_short].ended_at is None
    assert (killed[cut_short].ended_at, killed[cut_short].outcome) == (KILL_TIME, KILLED)
    assert killed[finished] == alive[finished]
    assert runs_per_row(list(alive.values())) == {row: 1 for row in ROWS}


def test_a_missing_journal_file_has_no_calls(tmp_path: Path) -> None:
    assert read_journal(tmp_path / "never-written.journal") == []


@st.composite
def calls(draw: st.DrawFn) -> list[Call]:
    """Calls on a few rows by a few workers, on a coarse time grid (so ends meet starts), some
    never ended."""
    result = []
    for _ in range(draw(st.integers(0, 12))):
        start = draw(st.integers(0, 20))
        length = draw(st.none() | st.integers(0, 6))
        result.append(
            Call(
                call_id=uuid.uuid4(),
                row_id=draw(st.sampled_from(ROWS)),
                worker_id=draw(st.sampled_from(["w1", "w2", "w3"])),
                started_at=start,
                ended_at=None if length is None else start + length,
                outcome=None if length is None else "finish",
            )
        )
    return result


@given(calls(), st.dictionaries(st.sampled_from(["w1", "w2"]), st.integers(0, 30)))
def test_overlaps_are_exactly_the_intersecting_pairs(
    journal: list[Call], killed_at: dict[str, int]
) -> None:
    def end(call: Call) -> float:
        if call.ended_at is not None:
            return float(call.ended_at)
        return float(killed_at.get(call.worker_id, float("inf")))

    expected = {
        frozenset((a.call_id, b.call_id))
        for a, b in itertools.combinations(journal, 2)
        if a.row_id == b.row_id and max(a.started_at, b.started_at) < min(end(a), end(b))
    }
    found = overlapping_calls(journal, killed_at)

    assert {frozenset((a.call_id, b.call_id)) for a, b in found} == expected
    assert len(found) == len(expected)  # each pair once
    assert all(a.started_at <= b.started_at for a, b in found)
