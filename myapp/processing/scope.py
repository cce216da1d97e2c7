"""The per-call unit of work.

The engine opens a `Scope` around every fetch and every process call. Anything resolved through
`scoped(factory)` inside it (the `AsyncSession`, anything built on it) is created once for that
scope, shared by the handler and its collaborators, and closed when the scope ends: on success,
error or cancellation. An object that is an async context manager is closed through its
`__aexit__` (an `AsyncSession` rolls back what was not committed).

dependency-injector has no scoped provider; the container declares
`session = providers.Factory(scoped, session_factory, close=close_session)` and the scope,
carried in a context variable, does the rest. Each call runs in its own asyncio task, so
concurrent calls never share a scope.

A scope whose objects have nothing to close (a `close` that returns None: a session nothing
used) ends without awaiting anything: no task, no shield. That is the common case for a handler
call that never touches the database, and it runs once per work item.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
# Closes an instance at the end of its scope; returns None when there is nothing to close.
Closer = Callable[[T], Awaitable[object] | None]

_current_scope: ContextVar[Scope | None] = ContextVar("myapp_scope", default=None)


class ScopeError(RuntimeError):
    """A scoped object was resolved outside any scope."""


class Scope:
    def __init__(self) -> None:
        self._instances: dict[int, Any] = {}
        self._closers: list[tuple[Closer[Any], Any]] = []
        self._token: Token[Scope | None] | None = None

    def get_or_create(self, factory: Callable[[], T], close: Closer[T] | None = None) -> T:
        key = id(factory)
        if key in self._instances:
            return self._instances[key]  # type: ignore[no-any-return]
        instance = self._instances[key] = factory()
        if close is not None:
            self._closers.append((close, instance))
        elif hasattr(instance, "__aexit__"):
            self._closers.append((_exit, instance))
        return instance

    async def __aenter__(self) -> Scope:
        self._token = _current_scope.set(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        closing: list[Awaitable[object]] = []
        try:
            for close, instance in reversed(self._closers):  # the last created closes first
                if (awaitable := close(instance)) is not None:
                    closing.append(awaitable)
        finally:
            try:
                if closing:
                    # Shielded: a second cancellation while closing must not leave a session open.
                    await asyncio.shield(_await_all(closing))
            finally:
                if self._token is not None:
                    _current_scope.reset(self._token)
                    self._token = None
                self._instances.clear()
                self._closers.clear()


def _exit(instance: Any) -> Awaitable[object]:
    return instance.__aexit__(None, None, None)  # type: ignore[no-any-return]


async def _await_all(closing: list[Awaitable[object]]) -> None:
    """Await every close, in order, even after one fails; then raise the first failure."""
    failure: BaseException | None = None
    for awaitable in closing:
        try:
            await awaitable
        except BaseException as error:  # the others must still close
            failure = failure or error
    if failure is not None:
        raise failure


def current_scope() -> Scope:
    scope = _current_scope.get()
    if scope is None:
        raise ScopeError(
            "a scoped object was resolved outside a work-item scope; "
            "open one with `async with Scope():`"
        )
    return scope


def scoped(factory: Callable[[], T], close: Closer[T] | None = None) -> T:
    """The instance of `factory` for the current scope, created on first use, closed with
    `close(instance)` (default: its `__aexit__`, if it has one) when the scope ends; a `close`
    that returns None had nothing to close."""
    return current_scope().get_or_create(factory, close)
