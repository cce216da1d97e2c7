"""Every registered handler and, for those over a claimable table, its claim spec: what the
operator's commands and the dashboard look at.

A handler is built once, in a scope of its own, as the engine builds it, and asked for
`claim_spec()`. A disabled handler often cannot be built (Shein without its cookie key, image
vectorization without Azure AI), yet its table still holds rows an operator wants to see: when
building fails, each dependency that cannot be made is given as None and the handler is built
again — `claim_spec()` needs its table, not its clients. A handler that still cannot be built
is listed with `spec_error` and no table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dependency_injector import providers
from loguru import logger
from sqlalchemy import inspect

from myapp.processing.claiming_handler import ClaimingHandler
from myapp.processing.claims import ClaimSpec
from myapp.processing.registration import HandlerRegistration
from myapp.processing.scope import Scope
from myapp.processing.work_item import ProcessorPurpose


class UnknownHandlerError(LookupError):
    """No registered handler has that name."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(f"No handler named {name!r}; registered: {', '.join(known) or 'none'}")


@dataclass(frozen=True)
class RegisteredHandler:
    name: str
    purpose: ProcessorPurpose
    enabled: bool
    disabled_reason: str | None
    spec: ClaimSpec[Any] | None
    """None: not a `ClaimingHandler` (BlobCleanup), or it could not be built (`spec_error`)."""
    spec_error: str | None = None

    @property
    def table(self) -> str | None:
        return None if self.spec is None else str(inspect(self.spec.model).local_table.name)


async def registered_handlers(
    registrations: Sequence[HandlerRegistration],
) -> list[RegisteredHandler]:
    """Each registration, in order, with its claim spec when it claims rows from a table."""
    return [await _registered(registration) for registration in registrations]


def find_handler(handlers: Sequence[RegisteredHandler], name: str) -> RegisteredHandler:
    """The handler called `name` (case-insensitive, as handler sections are)."""
    for handler in handlers:
        if handler.name.lower() == name.lower():
            return handler
    raise UnknownHandlerError(name, [h.name for h in handlers])


async def _registered(registration: HandlerRegistration) -> RegisteredHandler:
    spec, error = None, None
    try:
        async with Scope():
            handler = _build(registration)
            if isinstance(handler, ClaimingHandler):
                spec = handler.claim_spec()
    except Exception as failure:
        error = f"{type(failure).__name__}: {failure}"
        logger.debug("Cannot find the table of handler {}: {}", registration.name, error)
    return RegisteredHandler(
        name=registration.name,
        purpose=registration.purpose,
        enabled=registration.enabled,
        disabled_reason=registration.disabled_reason,
        spec=spec,
        spec_error=error,
    )


def _build(registration: HandlerRegistration) -> Any:
    factory = registration.handler_factory
    try:
        return factory()
    except Exception:
        if not isinstance(factory, providers.Factory):
            raise
        missing = {name: None for name in _unbuildable_dependencies(factory)}
        if not missing:
            raise
        return factory(**missing)


def _unbuildable_dependencies(factory: providers.Factory[Any]) -> list[str]:
    names = []
    for name, dependency in factory.kwargs.items():
        if not isinstance(dependency, providers.Provider):
            continue
        try:
            dependency()
        except Exception:
            names.append(name)
    return names
