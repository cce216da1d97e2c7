"""A claim-protocol statement sent straight to asyncpg: SQLAlchemy compiles it once, then each
call binds its values and sends the SQL text on the pooled connection's asyncpg connection.

Why: a claim of 100 rows cost 0.45 ms of worker CPU through `AsyncConnection.execute` and
0.22 ms sent this way (the execution context, cursor adapter, greenlet switches and per-row
result objects are skipped), and claims and completions are most of a busy worker's CPU
(docs/benchmarks.md). Only statements that are their own transaction (autocommit, the protocol's
common case) go this way: SQLAlchemy then holds no transaction state that the direct call could
put out of step. Each statement's first call still goes through SQLAlchemy: its result's
description gives the column type codes that some result processors need (a `Numeric`).

What SQLAlchemy would do is still done: the same SQL text (its expanding `IN` lists, whose
values are constants of the claim spec, rendered once), a column's Python-side `onupdate` value
computed for each call (an `updated_at = utc_now()`), each parameter through its type's bind
processor, each returned column through its type's result processor (enums, `UtcDateTime`).
A connection-level error invalidates the pooled connection, as SQLAlchemy does, so the pool
hands out a new one; the error itself reaches the caller as asyncpg raised it (the engine's
transient-error checks read SQLSTATEs and closed-connection errors from either).

SQLAlchemy has no public call that renders a statement's expanding parameters without executing
it (`render_postcompile` wants every value at compile time), so `compile` uses the compiler's own
`_process_parameters_for_postcompile`; should a SQLAlchemy release drop it, `compile` returns
None and the caller keeps the ordinary path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from loguru import logger
from sqlalchemy import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Update
from sqlalchemy.types import TypeEngine

from myapp.processing.transient import is_database_unavailable

Processor = Callable[[Any], Any]
ValueOf = Callable[[Mapping[str, Any]], Any]  # a parameter's value, given the call's


class DriverStatement:
    """One compiled statement: its SQL text and how to turn values into its parameters and its
    returned columns into Python values."""

    def __init__(
        self,
        sql: str,
        template: Sequence[Any],
        per_call: Sequence[tuple[int, ValueOf, Processor | None]],
        returning: Sequence[TypeEngine[Any]],
        dialect: Dialect,
    ) -> None:
        self.sql = sql
        self._template = tuple(template)  # every positional parameter, constants processed
        # (position, the call's value, its bind processor) for what changes from call to call
        self._per_call = tuple(per_call)
        self._returning = tuple(returning)
        self._dialect = dialect
        # (column, processor) where one is needed: known once SQLAlchemy ran it (`describe`)
        self._results: tuple[tuple[int, Processor], ...] | None = None

    @classmethod
    def compile(
        cls,
        statement: Update,
        returning: Sequence[TypeEngine[Any]],
        dialect: Dialect,
        sample: Mapping[str, Any],
    ) -> DriverStatement | None:
        """`statement` (whose RETURNING columns have the types `returning`) for `dialect`
        (asyncpg's), given one call's parameters `sample`: the names in it are bound per call,
        every other parameter is a constant of the statement. None when this SQLAlchemy cannot
        render it here (the caller executes it as usual)."""
        compiled = statement.compile(dialect=dialect)
        expand = getattr(compiled, "_process_parameters_for_postcompile", None)
        generated = _generated_values(compiled)
        if expand is None or not compiled.positional or generated is None:
            return None
        values = {name: functools.partial(_given, name) for name in sample} | generated
        first = {name: value(sample) for name, value in values.items()}
        expanded = expand(compiled.construct_params(first))
        if expanded.positiontup is None:
            return None
        template: list[Any] = []
        per_call = []
        for position, name in enumerate(expanded.positiontup):
            processor = expanded.processors.get(name)
            if name in values:
                template.append(None)
                per_call.append((position, values[name], processor))
            else:
                value = expanded.parameters[name]
                template.append(processor(value) if processor else value)
        return cls(expanded.statement, template, per_call, returning, dialect)

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        arguments = list(self._template)
        for position, value_of, processor in self._per_call:
            value = value_of(parameters)
            arguments[position] = processor(value) if processor else value
        return arguments

    @property
    def described(self) -> bool:
        """Whether the returned columns' processors are known (after `describe`)."""
        return self._results is not None

    def describe(self, description: Sequence[Sequence[Any]]) -> None:
        """Learn each returned column's result processor from a DB-API description of the
        statement's result (SQLAlchemy's own execution of it): the types are asked with the
        type codes SQLAlchemy asks them with (asyncpg's: the columns' type OIDs)."""
        dialect, results = self._dialect, []
        for index, (column_type, column) in enumerate(
            zip(self._returning, description, strict=True)
        ):
            processor = column_type.dialect_impl(dialect).result_processor(dialect, column[1])
            if processor is not None:
                results.append((index, processor))
        self._results = tuple(results)

    async def fetch(
        self, connection: AsyncConnection, parameters: Mapping[str, Any]
    ) -> list[Sequence[Any]]:
        """Run it on `connection` (autocommit: the statement is its own transaction); the
        returned rows, their values processed as SQLAlchemy would. Only once `described`."""
        results = self._results
        assert results is not None, "describe() first"
        pooled = await connection.get_raw_connection()
        driver = pooled.driver_connection
        assert driver is not None
        try:
            records = await driver.fetch(self.sql, *self.arguments(parameters))
        except Exception as error:
            if is_database_unavailable(error):
                await connection.invalidate(error)
            raise
        if not results:
            return records  # type: ignore[no-any-return]
        rows: list[Sequence[Any]] = []
        for record in records:
            row = list(record)
            for index, processor in results:
                row[index] = processor(row[index])
            rows.append(row)
        return rows


def _given(name: str, parameters: Mapping[str, Any]) -> Any:
    return parameters[name]


def _generated_values(compiled: Any) -> dict[str, Callable[[Mapping[str, Any]], Any]] | None:
    """The values SQLAlchemy computes in Python at each execution (a column's `onupdate`
    function or constant), by parameter name; None if one needs SQLAlchemy's execution context
    (then the statement keeps the ordinary path). Each such function is called once here, when
    the statement is compiled, to find out."""
    generated: dict[str, Callable[[Mapping[str, Any]], Any]] = {}
    for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
        default = column.onupdate if column in compiled.update_prefetch else column.default
        if default is None:
            return None
        if default.is_scalar:
            generated[column.key] = functools.partial(_constant, default.arg)
        elif default.is_callable:
            try:  # SQLAlchemy wraps a function of no arguments in one taking the context
                default.arg(None)
            except Exception:
                return None  # it reads the execution context
            generated[column.key] = functools.partial(_called, default.arg)
        else:
            return None
    return generated


def _constant(value: Any, _parameters: Mapping[str, Any]) -> Any:
    return value


def _called(function: Callable[[Any], Any], _parameters: Mapping[str, Any]) -> Any:
    return function(None)


class DriverPath:
    """How one statement runs as its own transaction: its first call through SQLAlchemy, which
    describes the result's columns, then straight to asyncpg. Always through SQLAlchemy for
    another driver, for a statement built for one call only (compiling it would cost more than
    it saves), and when it cannot be compiled this way."""

    def __init__(
        self, statement: Update, returning: Sequence[TypeEngine[Any]], *, reusable: bool
    ) -> None:
        self.statement = statement
        self._returning = returning
        self._reusable = reusable
        self._compiled: DriverStatement | None = None
        self._tried = False

    async def rows(
        self, connection: AsyncConnection, parameters: Mapping[str, Any], *, direct: bool
    ) -> Sequence[Sequence[Any]]:
        """Run the statement on `connection`; the returned rows. Straight to the driver only
        when `direct`: the statement is its own transaction (`connection` in autocommit)."""
        compiled = self.compiled(connection.dialect, parameters) if direct else None
        if compiled is not None and compiled.described:
            return await compiled.fetch(connection, parameters)
        result = await connection.execute(self.statement, parameters)
        if compiled is not None and result.cursor is not None:
            try:
                compiled.describe(result.cursor.description)
            except Exception:  # a column this path cannot read as SQLAlchemy does: keep its path
                logger.opt(exception=True).debug("Statement kept on SQLAlchemy's path")
                self._compiled = None
        return result.all()

    def compiled(self, dialect: Dialect, parameters: Mapping[str, Any]) -> DriverStatement | None:
        if not self._reusable or dialect.driver != "asyncpg":
            return None
        if not self._tried:
            self._tried = True
            self._compiled = DriverStatement.compile(
                self.statement, self._returning, dialect, parameters
            )
        return self._compiled
