"""Worker ids, backoff and error text: the pure parts of the claim protocol."""

from __future__ import annotations

import os
import random
import re
import socket
from datetime import timedelta

from myapp.processing import RetryPolicy
from myapp.processing.claims import ERROR_TEXT_LIMIT, error_text
from myapp.processing.worker_id import new_worker_id


def test_worker_id_names_host_pid_and_a_random_suffix() -> None:
    first, second = new_worker_id(), new_worker_id()
    assert re.fullmatch(rf"{re.escape(socket.gethostname())}-{os.getpid()}-[0-9a-f]{{6}}", first)
    assert first != second


def test_backoff_doubles_with_bounded_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=1), jitter=0.2)
    rng = random.Random(7)
    for attempt, nominal in [(1, 10), (2, 20), (3, 40)]:
        delays = {policy.delay(attempt, rng).total_seconds() for _ in range(50)}
        assert min(delays) >= nominal * 0.8
        assert max(delays) <= nominal * 1.2
        assert len(delays) > 1  # jittered: workers failing together do not retry together
    assert all(policy.delay(attempt, rng) <= timedelta(minutes=1) for attempt in range(4, 200))


def test_error_text_is_readable_and_bounded() -> None:
    assert error_text(ValueError("bad input")) == "ValueError: bad input"
    assert error_text(TimeoutError()) == "TimeoutError"
    assert error_text("plain") == "plain"
    long = error_text(ValueError("x" * 5000))
    assert len(long) == ERROR_TEXT_LIMIT
    assert long.endswith("…")
