"""ClaimableWatcher: one dedicated PostgreSQL connection per worker that notices claimable rows
and calls `on_wake(name)` for the claim specs that have some.

- The probe (myapp.data.claimable_probe) runs every DEFAULT_PROBE_INTERVAL_S: one statement, an
  indexed EXISTS per spec, by the database's clock (as the claim). It sees whatever made a row
  claimable — a plain SQL INSERT from any program, a requeue, a retry coming due, a lease
  running out — and costs writers nothing: no trigger, nothing to install, any table the
  worker can read.
  Level-triggered: while a spec has claimable rows, every probe wakes it (the engine ignores
  wake-ups it has no room for). A worker whose handlers are all busy (`wanted()` is false: none
  sleeps on a dry source) skips its probes: a row it would find is claimed by the next fetch
  anyway, and N busy workers do not cost the server N probes every 50 ms.
- LISTEN on WAKEUP_CHANNEL: `send_wakeup` (the CLI, code in any process) wakes a name at once,
  or every name with an empty payload (`on_wake(None)`).

Why a probe and not NOTIFY triggers: measured in tests/benchmarks/wakeup_bench.py and
docs/operations.md ("Wake-ups"). In short, every trigger on the write path cost 35-100 us of
server CPU per insert transaction here (a per-row NOTIFY also serializes commits), which is
more than 10 % of 8-connection insert throughput on this machine; the probe costs writers
nothing and meets the latency bound at a 50 ms interval.

The connection runs in autocommit (it never holds a snapshot open). Lost (asyncpg's
termination callback, or a failing probe), it reconnects at once, then with capped exponential
backoff and jitter, and calls `on_wake(None)`: explicit wake-ups sent meanwhile are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loguru import logger
from sqlalchemy import literal, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.expression import Executable
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.wait import wait_base, wait_exponential, wait_random

from myapp.clock import Clock
from myapp.data.claimable_probe import NOW, probe_statement
from myapp.data.database import normalize_url, redact_url
from myapp.data.wakeups import OnWake, WakeSource
from myapp.processing import ClaimSpec
from myapp.processing.sql_time import database_time

WAKEUP_CHANNEL = "myapp_wakeup"
DEFAULT_PROBE_INTERVAL_S = 0.05
# Without specs there is nothing to probe: a SELECT 1 this often notices a dead connection.
HEALTH_CHECK_INTERVAL_S = 15.0
PROBE_TIMEOUT_S = 5.0
# A probe that fails on a live connection (a table missing, a bad filter) is retried this often.
FAILING_PROBE_INTERVAL_S = 1.0
REPEAT_WARNING_AFTER_S = 60.0
CONNECT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 2.0
RECONNECT_INITIAL_S = 0.2
RECONNECT_MAX_S = 30.0
RECONNECT_JITTER_S = 0.5
APPLICATION_NAME = "myapp-wakeups"


@dataclass(frozen=True)
class _Session:
    connection: AsyncConnection
    driver: Any  # the asyncpg connection under it: LISTEN, termination callback
    lost: asyncio.Event


class ClaimableWatcher(WakeSource):
    def __init__(
        self,
        url: str,
        specs: Mapping[str, ClaimSpec[Any]],
        on_wake: OnWake,
        *,
        clock: Clock | None = None,
        interval: float = DEFAULT_PROBE_INTERVAL_S,
        channel: str = WAKEUP_CHANNEL,
        reconnect_wait: wait_base | None = None,
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(on_wake)
        self._url = normalize_url(url)
        self._where = redact_url(self._url)
        self._names = list(specs)
        # The database's clock, as the claim uses; a given clock (tests) is bound instead.
        now = None if clock is not None else database_time(self._url.get_backend_name())
        self._statement: Executable = probe_statement(specs, now) if specs else select(literal(1))
        self._interval = interval if specs else HEALTH_CHECK_INTERVAL_S
        # Asked before each probe: False (nobody would act on a wake-up now: every handler is
        # busy) skips that probe. Notifications still arrive.
        self._wanted = wanted if specs else None
        self._clock = clock
        self._channel = channel
        # 0.2 s, 0.4 s, ... capped at 30 s, each plus up to 0.5 s so workers spread out.
        self._reconnect_wait = reconnect_wait or (
            wait_exponential(multiplier=RECONNECT_INITIAL_S, max=RECONNECT_MAX_S)
            + wait_random(0, RECONNECT_JITTER_S)
        )
        self._watching = asyncio.Event()
        self._last_warning = ("", 0.0)

    @property
    def watching(self) -> bool:
        return self._watching.is_set()

    async def wait_until_watching(self) -> None:
        """Return once connected and listening (wrap in `asyncio.timeout` to bound the wait)."""
        await self._watching.wait()

    async def _run(self) -> None:
        engine = create_async_engine(
            self._url,
            poolclass=NullPool,
            connect_args={
                "timeout": CONNECT_TIMEOUT_S,
                "server_settings": {"application_name": APPLICATION_NAME},
            },
        )
        try:
            await self._reconnecting(engine)
        finally:
            await engine.dispose()

    async def _reconnecting(self, engine: AsyncEngine) -> None:
        first = True
        while True:
            session = await self._connect(engine)
            logger.info(
                "{} for claimable rows on {} (probe every {:g} s, channel {})",
                "Watching" if first else "Reconnected: watching again",
                self._where,
                self._interval,
                self._channel,
            )
            first = False
            try:
                self._watching.set()
                self._wake(None)  # catch up: explicit wake-ups sent before this were lost
                await self._watch(session)
            finally:
                self._watching.clear()
                await _close(session.connection)
            logger.warning(
                "Lost the wake-up connection to {}; reconnecting (until then workers only poll)",
                self._where,
            )

    async def _connect(self, engine: AsyncEngine) -> _Session:
        retrying = AsyncRetrying(
            wait=self._reconnect_wait,
            retry=retry_if_exception_type(Exception),
            before_sleep=self._log_retry,
        )
        session: _Session = await retrying(self._open, engine)
        return session

    async def _open(self, engine: AsyncEngine) -> _Session:
        connection = await engine.connect()
        try:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            driver = (await connection.get_raw_connection()).driver_connection
            if driver is None:
                raise RuntimeError("the wake-up connection has no asyncpg connection under it")
            lost = asyncio.Event()
            driver.add_termination_listener(lambda _connection: lost.set())
            await driver.add_listener(self._channel, self._on_notification)
        except BaseException:
            await _close(connection)
            raise
        return _Session(connection, driver, lost)

    async def _watch(self, session: _Session) -> None:
        """Probe until the connection is gone."""
        while not session.lost.is_set():
            delay: float | None = self._interval
            if self._wanted is None or self._wanted():
                delay = await self._probe(session)
                if delay is None:
                    return
            try:
                async with asyncio.timeout(delay):
                    await session.lost.wait()
            except TimeoutError:
                pass

    async def _probe(self, session: _Session) -> float | None:
        """One probe, waking the specs with claimable rows; the wait before the next one, or
        None when the connection is gone."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                answers = (await session.connection.execute(self._statement, self._now())).one()
        except TimeoutError:
            self._warn(f"no probe answer within {PROBE_TIMEOUT_S:g} s")
            return None
        except Exception as error:
            if session.lost.is_set() or session.driver.is_closed() or _broken(error):
                return None
            # The connection is fine, the statement is not (a table missing, a bad filter):
            # keep watching, slowly, so it starts working once the cause is fixed.
            self._warn(f"the probe failed: {_reason(error)}")
            return FAILING_PROBE_INTERVAL_S
        for name, claimable in zip(self._names, answers, strict=False):
            if claimable:
                self._wake(name)
        return self._interval

    def _now(self) -> dict[str, Any]:
        return {NOW: self._clock()} if self._names and self._clock is not None else {}

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, name: str) -> None:
        self._wake(name or None)

    def _warn(self, problem: str) -> None:
        """A warning, repeated at most every REPEAT_WARNING_AFTER_S while it stays the same."""
        last, at = self._last_warning
        now = time.monotonic()
        if problem != last or now - at >= REPEAT_WARNING_AFTER_S:
            self._last_warning = (problem, now)
            logger.warning("Wake-up connection to {}: {}", self._where, problem)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "Could not open the wake-up connection to {} (attempt {}): {}; retrying in {:.1f}s",
            self._where,
            state.attempt_number,
            _reason(error),
            delay,
        )


async def send_wakeup(
    engine: AsyncEngine, name: str | None = None, *, channel: str = WAKEUP_CHANNEL
) -> None:
    """Wake the workers watching this PostgreSQL database: the handler `name`, or all of them.
    On SQLite nothing is sent (its one worker notices commits, not messages)."""
    if engine.dialect.name != "postgresql":
        return
    async with engine.begin() as connection:
        await connection.execute(
            text("SELECT pg_notify(:channel, :name)"), {"channel": channel, "name": name or ""}
        )


def _broken(error: Exception) -> bool:
    """Whether `error` means the connection itself is unusable (reconnect) rather than the
    statement failed on it."""
    return not isinstance(error, DBAPIError) or error.connection_invalidated


async def _close(connection: AsyncConnection) -> None:
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await connection.close()
    except Exception:  # TimeoutError included: drop it without the goodbye
        with contextlib.suppress(Exception):
            await connection.invalidate()


def _reason(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    if isinstance(error, DBAPIError) and error.orig is not None:
        error = error.orig
    message = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
