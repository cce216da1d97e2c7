"""The claim protocol's statements, built once per claim spec and database, and the claimed
rows as model instances.

A claim is one `UPDATE ... WHERE id IN (pick) RETURNING ...` (see claims.py); an acknowledgement
(complete, extend, release) one fenced `UPDATE ... WHERE id = ANY(:ids) AND locked_by = :worker`.
Building them anew for every call (their CASEs and subqueries, then SQLAlchemy walking them for
its cache key), and loading the claimed rows through the ORM's identity map only to expunge
them, cost a worker ~75 us of CPU per claimed row. Here each statement is built once, with what
changes per call (limit, worker id, lease, ids, plain values) as bind parameters, and the claimed
rows come back as plain columns turned into detached instances: what a session would return
after an expunge, without the session's bookkeeping.

Handlers build their `ClaimSpec` anew for every call, with new filter objects, so statements are
cached by what they say, not by object: the spec's table, columns and values, and its SQL (filters,
order, SQL values such as `completions + 1`) by SQLAlchemy's cache key plus its bound values. What
cannot be a key (an unhashable value) gets a statement built for the call, as before.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    case,
    func,
    inspect,
    literal,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapper, QueryableAttribute
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.sql import operators
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import BindParameter, ClauseElement, UnaryExpression

from myapp.processing.claim_columns import ClaimColumns, UtcDateTime
from myapp.processing.driver_statement import DriverPath
from myapp.processing.sql_time import database_time, offset_parameter

if TYPE_CHECKING:
    from myapp.processing.claims import ClaimSpec

EXHAUSTED_ERROR = "attempts exhausted: the lease of the last attempt ran out before it finished"
# How many claim statements a process keeps: one per (spec, dialect, clock kind) in use.
CACHED_STATEMENTS = 64

M = TypeVar("M", bound=ClaimColumns)
T = TypeVar("T")
BOUND = "bound"  # the key of a value given at execution
SortKey = tuple[int, bool, bool]  # (returned column, descending, NULLs first)
# A returned row: SQLAlchemy's Row, or the columns the driver returned (driver_statement.py).
ReturnedRow = Sequence[Any]


@dataclass(frozen=True)
class ClaimStatement(Generic[M]):
    """One spec's claim statement, and how to read what it returns."""

    statement: Update
    mapper: Mapper[M]
    keys: tuple[str, ...]  # the attribute each returned column loads
    status: int  # where the status column is among them
    id: int
    sort: tuple[SortKey, ...]
    driver: DriverPath  # the same statement sent straight to asyncpg

    def parameters(
        self, limit: int, worker_id: str, lease: timedelta, now: datetime | None
    ) -> dict[str, Any]:
        """The bind parameters of one claim; `now` is an explicit clock's reading (or None:
        the database's clock, read in the statement)."""
        if now is None:
            return {"claim_limit": limit, "claim_worker": worker_id, "claim_lease": lease}
        return {
            "claim_limit": limit,
            "claim_worker": worker_id,
            "claim_now": now,
            "claim_lease_end": now + lease,
        }

    def in_order(self, rows: Iterable[ReturnedRow]) -> list[ReturnedRow]:
        """The rows in the spec's order (RETURNING has none): NULLs where PostgreSQL puts them."""
        return sorted(rows, key=functools.cmp_to_key(self._compare))

    def instances(self, rows: Iterable[ReturnedRow]) -> list[M]:
        """Each row as a detached model instance: what a session returns for a row it loaded
        and then expunged (its columns loaded, its identity key set, no history), so a handler
        may read it anywhere and `merge` or `add` it to its own session. Set here directly: the
        ORM's `make_transient_to_detached` costs 13 us per row, this 2 us."""
        new_instance = self.mapper.class_manager.new_instance
        identity_key = self.mapper.identity_key_from_primary_key
        keys, id = self.keys, self.id
        instances = []
        for row in rows:
            instance = new_instance()
            instance.__dict__.update(zip(keys, row, strict=True))
            instance_state(instance).key = identity_key((row[id],))
            instances.append(instance)
        return instances

    def _compare(self, left: ReturnedRow, right: ReturnedRow) -> int:
        for index, descending, nulls_first in self.sort:
            a, b = left[index], right[index]
            if a == b:
                continue
            if a is None or b is None:
                return -1 if (a is None) == nulls_first else 1
            order = -1 if a < b else 1
            return -order if descending else order
        a, b = left[self.id], right[self.id]
        return int(a > b) - int(a < b)


def claim_statement(
    spec: ClaimSpec[M],
    dialect_name: str,
    *,
    explicit_clock: bool,
    asynchronous_commit: bool = False,
) -> ClaimStatement[M]:
    """The claim statement for `spec` on this database; with `asynchronous_commit` (PostgreSQL,
    a statement that is its own transaction) its commit does not wait for the disk."""
    key = _key("claim", spec, dialect_name, explicit_clock, asynchronous_commit)
    return _cached(
        key,
        lambda: _build_claim(
            spec, dialect_name, explicit_clock, asynchronous_commit, reusable=key is not None
        ),
    )


@dataclass(frozen=True)
class OwnedUpdate:
    """`UPDATE ... SET <changes> WHERE <id is one of :ids> AND locked_by = :worker AND status =
    started RETURNING id`: the fenced write of every acknowledgement."""

    statement: Update
    bound: tuple[str, ...]  # the changes given at execution (plain values), by attribute
    driver: DriverPath  # the same statement sent straight to asyncpg

    def parameters(
        self, ids: list[uuid.UUID], worker_id: str, changes: Mapping[Any, Any]
    ) -> dict[str, Any]:
        values = {attribute.key: value for attribute, value in changes.items()}
        parameters: dict[str, Any] = {"ids": ids, "worker": worker_id}
        for key in self.bound:
            value = values[key]
            parameters[f"set_{key}"] = value.value if isinstance(value, BindParameter) else value
        return parameters


def owned_update(
    spec: ClaimSpec[Any],
    dialect_name: str,
    changes: Mapping[Any, Any],
    extra: Sequence[ColumnElement[bool]] = (),
    *,
    asynchronous_commit: bool = False,
) -> OwnedUpdate:
    """The fenced update setting `changes` ({model attribute: value or SQL}); with `extra`
    conditions (a one-off, such as `fail`'s) it is built for the call. `asynchronous_commit`:
    as for `claim_statement`."""
    try:
        shape = tuple(
            sorted((attribute.key, _value_key(value)) for attribute, value in changes.items())
        )
    except TypeError:  # SQL SQLAlchemy does not cache
        shape = None
    key = (
        None
        if extra or shape is None
        else _key("owned", spec, dialect_name, shape, asynchronous_commit)
    )
    return _cached(
        key,
        lambda: _build_owned_update(
            spec, dialect_name, changes, extra, asynchronous_commit, reusable=key is not None
        ),
    )


_statements: dict[Hashable, Any] = {}


def _cached(key: Hashable | None, build: Callable[[], T]) -> T:
    if key is None:
        return build()
    found: T | None = _statements.get(key)
    if found is None:
        found = build()
        if len(_statements) >= CACHED_STATEMENTS:
            del _statements[next(iter(_statements))]  # the oldest
        _statements[key] = found
    return found


def _key(kind: str, spec: ClaimSpec[Any], *rest: Hashable) -> Hashable | None:
    """What a statement says, as a dict key; None if some part cannot be one."""
    try:
        key = (
            kind,
            spec.model,
            spec.status.key,
            spec.queued,
            spec.started,
            spec.failed,
            None if spec.error_column is None else spec.error_column.key,
            tuple(sorted(spec.dead_letter_values.items())),
            _sql_key(spec.order_by),
            _sql_key(spec.where),
            *rest,
        )
        hash(key)
    except TypeError:  # an unhashable value, or SQL SQLAlchemy does not cache either
        return None
    return key


def _value_key(value: Any) -> Hashable:
    """A value an update sets: SQL is part of the statement, a plain value a parameter."""
    if isinstance(value, ClauseElement) and not isinstance(value, BindParameter):
        return _sql_key([value])
    return BOUND


def _sql_key(clauses: Sequence[Any]) -> tuple[Hashable, ...]:
    """SQLAlchemy's own cache key of each clause (its structure), plus its bound values, which
    that key leaves out."""
    keys = []
    for clause in clauses:
        cache_key = clause._generate_cache_key()
        if cache_key is None:
            raise TypeError(f"no cache key for {clause!r}")
        values = tuple(parameter.effective_value for parameter in cache_key.bindparams)
        keys.append((cache_key.key, values))
    return tuple(keys)


def _build_claim(
    spec: ClaimSpec[M],
    dialect_name: str,
    explicit_clock: bool,
    asynchronous_commit: bool,
    *,
    reusable: bool,
) -> ClaimStatement[M]:
    t: Any = spec.model  # columns are looked up by name: the mixin's contract
    if explicit_clock:
        now: ColumnElement[datetime] = bindparam("claim_now", type_=UtcDateTime())
        lease_end: ColumnElement[datetime] = bindparam("claim_lease_end", type_=UtcDateTime())
    else:
        now = database_time(dialect_name)
        lease_end = database_time(dialect_name, offset_parameter("claim_lease"))
    exhausted = t.attempts >= t.max_attempts
    worker = bindparam("claim_worker", type_=String())
    values: dict[Any, Any] = {
        spec.status: case((exhausted, spec.failed), else_=spec.started),
        t.locked_by: case((exhausted, null()), else_=worker),
        t.locked_until: case((exhausted, null()), else_=lease_end),
        t.attempts: case((exhausted, t.attempts), else_=t.attempts + 1),
        t.last_error: case((exhausted, literal(EXHAUSTED_ERROR)), else_=t.last_error),
    }
    if spec.error_column is not None:
        values[spec.error_column] = case(
            (exhausted, literal(EXHAUSTED_ERROR)), else_=spec.error_column
        )
    for key, value in spec.dead_letter_values.items():
        column = getattr(t, key)
        values[column] = case((exhausted, literal(value, column.type)), else_=column)
    mapper: Mapper[M] = inspect(spec.model)
    table: Any = mapper.local_table
    keys, columns = zip(*_loaded_columns(mapper), strict=True)
    statement = (
        update(table).where(_pick(spec, dialect_name, now)).values(values).returning(*columns)
    )
    if asynchronous_commit:
        statement = statement.where(_commit_without_waiting_for_the_disk())
    return ClaimStatement(
        statement,
        mapper,
        keys,
        status=keys.index(spec.status.key),
        id=keys.index("id"),
        sort=tuple(_sort_key(spec, keys, expression) for expression in spec.order_by),
        driver=DriverPath(statement, [column.type for column in columns], reusable=reusable),
    )


ASYNCHRONOUS_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"


def _commit_without_waiting_for_the_disk() -> ColumnElement[bool]:
    """`synchronous_commit = off` for the transaction of the statement it filters (only ever an
    autocommit statement, its own transaction): a condition that is always true, evaluated once
    (an init plan) before any row. Why, and what it risks: docs/operations.md."""
    return literal_column(ASYNCHRONOUS_COMMIT, Boolean())


def _build_owned_update(
    spec: ClaimSpec[Any],
    dialect_name: str,
    changes: Mapping[Any, Any],
    extra: Sequence[ColumnElement[bool]],
    asynchronous_commit: bool,
    *,
    reusable: bool,
) -> OwnedUpdate:
    t: Any = spec.model
    table: Any = inspect(spec.model).local_table
    if dialect_name == "postgresql":  # one array parameter, whatever the number of ids
        one_of = t.id == any_(bindparam("ids", type_=ARRAY(t.id.type)))
    else:  # SQLite has no arrays: one parameter per id
        one_of = t.id.in_(bindparam("ids", expanding=True))
    owned = and_(t.locked_by == bindparam("worker", type_=String()), spec.status == spec.started)
    values, bound = {}, []
    for attribute, value in changes.items():
        if _value_key(value) == BOUND:
            bound.append(attribute.key)
            value = bindparam(f"set_{attribute.key}", type_=attribute.type)
        values[attribute] = value
    statement = update(table).where(one_of, owned, *extra).values(values).returning(table.c.id)
    if asynchronous_commit:
        statement = statement.where(_commit_without_waiting_for_the_disk())
    driver = DriverPath(statement, [table.c.id.type], reusable=reusable)
    return OwnedUpdate(statement, tuple(bound), driver)


def _loaded_columns(mapper: Mapper[Any]) -> list[tuple[str, Column[Any]]]:
    """(attribute, column) for every column attribute of the model's own table."""
    return [
        (prop.key, prop.columns[0])
        for prop in mapper.column_attrs
        if isinstance(prop.columns[0], Column) and prop.columns[0].table is mapper.local_table
    ]


def _pick(spec: ClaimSpec[Any], dialect_name: str, now: ColumnElement[datetime]) -> Any:
    t: Any = spec.model
    limit = bindparam("claim_limit", type_=Integer())
    candidates = (
        select(t.id)
        .where(*claimable_conditions(spec, now))
        .order_by(*spec.order_by, t.id)
        .limit(limit)
    )
    if dialect_name == "postgresql":
        # ANY(ARRAY(...)): the planner always uses the primary key for this form.
        locked = candidates.with_for_update(skip_locked=True).scalar_subquery()
        return t.id == any_(func.array(locked))
    return t.id.in_(candidates.scalar_subquery())


def claimable_conditions(spec: ClaimSpec[Any], now: Any) -> list[ColumnElement[bool]]:
    """What a row must meet to be claimed at `now` (SQL): Queued, or Started with an expired
    lease; due; not soft-deleted; the spec's own filters. The claim and the wake-up probe
    (myapp.data.claimable_probe) both ask exactly this."""
    t: Any = spec.model
    conditions = [
        # Repeats the partial index predicate so the planner can use the index.
        spec.status.in_([spec.queued, spec.started]),
        or_(
            spec.status == spec.queued,
            and_(
                spec.status == spec.started,
                or_(t.locked_until.is_(None), t.locked_until < now),
            ),
        ),
        or_(t.next_attempt_at.is_(None), t.next_attempt_at <= now),
        *spec.where,
    ]
    if hasattr(t, "deleted_at"):
        conditions.append(t.deleted_at.is_(None))
    return conditions


def _sort_key(spec: ClaimSpec[Any], keys: tuple[str, ...], expression: Any) -> SortKey:
    """(returned column, descending, NULLs first) for one ORDER BY term, to sort the rows.
    NULLs go where PostgreSQL puts them."""
    descending, nulls_first = False, None
    while isinstance(expression, UnaryExpression):
        modifier = expression.modifier
        if modifier is operators.desc_op:
            descending = True
        elif modifier is operators.nulls_first_op:
            nulls_first = True
        elif modifier is operators.nulls_last_op:
            nulls_first = False
        expression = expression.element
    if isinstance(expression, QueryableAttribute):
        key = expression.key
    else:
        key = inspect(spec.model).get_property_by_column(expression).key
    return keys.index(key), descending, descending if nulls_first is None else nulls_first
