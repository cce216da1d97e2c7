"""App-lifetime objects that hold connections, closed once at shutdown if they were created.

dependency-injector singletons are created on first use; `tracked(lifetime, factory, ...)`
records each one so that `await lifetime.aclose()` closes exactly those, newest first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar

from loguru import logger
from pydantic import SecretStr

T = TypeVar("T")
CLOSE_METHODS = ("aclose", "close", "dispose")


class AsyncClosing:
    """`async with client:` closes it with `await client.close()`."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class Lifetime:
    def __init__(self) -> None:
        self._closers: list[tuple[str, Callable[[], Awaitable[Any]]]] = []

    def track(self, instance: object) -> None:
        for method in CLOSE_METHODS:
            close = getattr(instance, method, None)
            if close is not None:
                self._closers.append((type(instance).__name__, close))
                return

    async def aclose(self) -> None:
        while self._closers:
            name, close = self._closers.pop()
            try:
                await close()
            except Exception:
                logger.exception("Error closing {}", name)


def tracked(lifetime: Lifetime, factory: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    instance = factory(*args, **kwargs)
    lifetime.track(instance)
    return instance


def secret_value(value: SecretStr | str | None) -> str | None:
    """The plain text of a secret setting, for the one client that needs it."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value
