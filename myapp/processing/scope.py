"""The per-call unit of work.

The engine opens a `Scope` around every fetch and every process call. Anything resolved through
`scoped(factory)` inside it (the `AsyncSession`, anything built on it) is created once for that
scope, shared by the handler and its collaborators, and closed when the scope ends: on success,
error or cancellation. An object that is an async context manager is closed through its
`__aexit__` (an `AsyncSession` rolls back what was not committed).

dependency-injector has no scoped provider; the container declares
`session = providers.Factory(scoped, session_factory)` and the scope, carried in a context
variable, does the rest. Each call runs in its own asyncio task, so concurrent calls never share
a scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
Closer = Callable[[T], Awaitable[object]]

_current_scope: ContextVar[Scope | None] = ContextVar("myapp_scope", default=None)


class ScopeError(RuntimeError):
    """A scoped object was resolved outside any scope."""


class Scope:
    def __init__(self) -> None:
        self._instances: dict[int, Any] = {}
        self._exit_stack = AsyncExitStack()
        self._closeables = 0
        self._token: Token[Scope | None] | None = None

    def get_or_create(self, factory: Callable[[], T], close: Closer[T] | None = None) -> T:
        key = id(factory)
        if key not in self._instances:
            instance = factory()
            self._instances[key] = instance
            closeable: Any = instance
            if close is not None:
                self._exit_stack.push_async_callback(close, instance)
                self._closeables += 1
            elif hasattr(closeable, "__aexit__"):
                self._exit_stack.push_async_exit(closeable)
                self._closeables += 1
        return self._instances[key]  # type: ignore[no-any-return]

    async def __aenter__(self) -> Scope:
        self._token = _current_scope.set(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._closeables:
                # Shielded: a second cancellation while closing must not leave a session open.
                await asyncio.shield(self._exit_stack.aclose())
        finally:
            if self._token is not None:
                _current_scope.reset(self._token)
                self._token = None
            self._instances.clear()


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
    `close(instance)` (default: its `__aexit__`, if it has one) when the scope ends."""
    return current_scope().get_or_create(factory, close)
