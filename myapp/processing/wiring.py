"""Registering a handler in a dependency-injector container: the mirror of .NET's
`AddWorkItemProcessing().AddHandler<THandler, TItem>(name, maxItemsPerCycle, purpose)`.

    class MyProcessing(ProcessingContainer):
        greeting = add_handler(GreetingHandler, name="Greeting", max_items_per_cycle=10)

In a handlers container (`containers.processing.HandlersContainer` and its subclasses) that is
all: the container collects its `add_handler` providers into `registrations`, binds each
handler's section `BackgroundProcessing:<Name>`, and gives the constructor's `session`,
`worker_id` and `clock` parameters the usual providers (`bind_defaults`). Anything given to
`add_handler` by keyword wins over a default.

The section is validated (once, at start-up) into the class's `options_model` and injected as
`options=` when the constructor takes it; `Enabled`, `MaxItemsPerCycle`, `MaxConcurrency`,
`ItemTimeout` and `PollInterval` in it override the registration. `requires` names settings
without which the handler is left out, with the reason shown by `myapp handlers`. A constructor
parameter nothing provides, or a provider that was never wired, stops start-up naming both.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from dependency_injector import providers
from pydantic import SecretStr, ValidationError

from myapp.processing.config_keys import find_value
from myapp.processing.errors import ConfigurationError, RegistrationError
from myapp.processing.options import HandlerOptions
from myapp.processing.registration import DEFAULT_MAX_ITEMS_PER_CYCLE, HandlerRegistration
from myapp.processing.work_item import ProcessorPurpose, WorkItemHandler

SECTION_ROOT = "BackgroundProcessing"
OPTIONS_PARAMETER = "options"


class Unbound:
    """The sections of a handler declared outside a handlers container without `sections=`:
    start-up refuses it rather than silently ignoring `BackgroundProcessing:<Name>`."""


UNBOUND: Any = providers.Object(Unbound)


class HandlerProvider(providers.Singleton[HandlerRegistration]):
    """What `add_handler` returns: the provider of one `HandlerRegistration`.

    It keeps what a handlers container needs to finish it (`bind_defaults`) when the container
    class is created; container instances hold copies that no longer need it.
    """

    handler_class: type[Any] | None = None
    handler: providers.Factory[Any] | None = None
    options: providers.Singleton[HandlerOptions] | None = None

    def bind_defaults(
        self, sections: providers.Provider[Any], defaults: Mapping[str, providers.Provider[Any]]
    ) -> None:
        """Read `sections` unless `sections=` was given; inject each of `defaults` the
        constructor asks for by name unless it was given."""
        assert self.handler_class and self.handler and self.options
        model, bound, name = list(self.options.args)
        if bound is UNBOUND:
            self.options.set_args(model, sections, name)
        wanted = constructor_parameters(self.handler_class)
        given = self.handler.kwargs
        self.handler.add_kwargs(
            **{key: p for key, p in defaults.items() if key in wanted and key not in given}
        )


def add_handler(
    handler_class: type[WorkItemHandler[Any]],
    *,
    name: str,
    max_items_per_cycle: int = DEFAULT_MAX_ITEMS_PER_CYCLE,
    purpose: ProcessorPurpose = ProcessorPurpose.INTERNAL,
    sections: providers.Provider[Any] | Mapping[str, Any] = UNBOUND,
    requires: Mapping[str, providers.Provider[Any]] | None = None,
    **dependencies: Any,
) -> HandlerProvider:
    """A provider of the `HandlerRegistration` for `handler_class` under `name`."""
    options_model: type[HandlerOptions] = getattr(handler_class, "options_model", HandlerOptions)
    options = providers.Singleton(handler_options, options_model, sections, name)
    if OPTIONS_PARAMETER in constructor_parameters(handler_class):
        dependencies = {OPTIONS_PARAMETER: options, **dependencies}
    handler = providers.Factory(handler_class, **dependencies)
    provider = HandlerProvider(
        registration_from_options,
        handler.provider,
        options,
        name=name,
        max_items_per_cycle=max_items_per_cycle,
        purpose=purpose,
        requirements=providers.Dict(dict(requires or {})),
    )
    provider.handler_class, provider.handler, provider.options = handler_class, handler, options
    return provider


def collect_registrations(
    container_class: Any,
    sections: providers.Provider[Any],
    defaults: Mapping[str, providers.Provider[Any]],
) -> None:
    """Finish a handlers container class as it is created: bind the defaults of the handlers
    it declares and, unless it sets `registrations` itself, list them after the inherited ones
    (a handler redeclared under an inherited attribute name takes that one's place)."""
    own = {
        attribute: provider
        for attribute, provider in container_class.cls_providers.items()
        if isinstance(provider, HandlerProvider)
    }
    declared = container_class.cls_providers.get("registrations")
    for provider in [*own.values(), *getattr(declared, "args", ())]:
        if isinstance(provider, HandlerProvider) and provider.handler_class is not None:
            provider.bind_defaults(sections, defaults)
    if declared is not None:
        return
    inherited_names = {
        id(provider): attribute
        for attribute, provider in container_class.inherited_providers.items()
    }
    inherited = [
        own.pop(inherited_names.get(id(provider), ""), provider)
        for provider in container_class.registrations.args
    ]
    container_class.registrations = providers.List(*inherited, *own.values())


def handler_class_of(registration: HandlerRegistration) -> type[Any] | None:
    """The class `add_handler` registered (None for a registration made another way)."""
    return getattr(registration.handler_factory, "cls", None)


def constructor_parameters(handler_class: type[Any]) -> dict[str, inspect.Parameter]:
    """The parameters the constructor takes by name (not *args / **kwargs)."""
    by_name = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    signature = inspect.signature(handler_class)
    return {p.name: p for p in signature.parameters.values() if p.kind in by_name}


def handler_options(
    options_model: type[HandlerOptions],
    sections: Any,
    name: str,
) -> HandlerOptions:
    """The validated `BackgroundProcessing:<name>` section (keys match case-insensitively) of
    `sections`, the `BackgroundProcessing` mapping."""
    if sections is Unbound:
        raise RegistrationError(
            f"Handler {name!r}: its section {SECTION_ROOT}:{name} is not bound; declare it in a "
            "HandlersContainer subclass or pass sections=config.BackgroundProcessing"
        )
    section = find_value(sections or {}, name)
    try:
        return options_model.model_validate(section or {})
    except ValidationError as error:
        raise ConfigurationError.from_validation_error(error, f"{SECTION_ROOT}:{name}") from None


def registration_from_options(
    handler_factory: providers.Factory[Any],
    options: HandlerOptions,
    *,
    name: str,
    max_items_per_cycle: int,
    purpose: ProcessorPurpose,
    requirements: Mapping[str, Any],
) -> HandlerRegistration:
    check_wiring(name, handler_factory)
    missing = [key for key, value in requirements.items() if not _is_set(value)]
    disabled_reason = None
    if not options.enabled:
        disabled_reason = f"{SECTION_ROOT}:{name}:Enabled is false"
    elif missing:
        disabled_reason = f"not configured: set {' and '.join(missing)} to enable it"
    return HandlerRegistration(
        handler_factory,
        name=name,
        max_items_per_cycle=options.max_items_per_cycle or max_items_per_cycle,
        purpose=purpose,
        max_concurrency=options.max_concurrency,
        item_timeout=options.item_timeout,
        poll_interval=options.poll_interval,
        enabled=disabled_reason is None,
        disabled_reason=disabled_reason,
    )


def check_wiring(name: str, handler_factory: providers.Factory[Any]) -> None:
    """Start-up, not the first fetch: every required constructor parameter has a provider and
    every provider reaches only wired dependencies."""
    handler_class = handler_factory.cls
    label = f"Handler {name!r} ({handler_class.__name__})"
    given = handler_factory.kwargs
    for parameter in constructor_parameters(handler_class).values():
        if parameter.name not in given and parameter.default is inspect.Parameter.empty:
            raise RegistrationError(
                f"{label}: constructor parameter {parameter.name!r} has no provider; "
                f"pass {parameter.name}=<provider> to add_handler"
            )
    for keyword, provider in given.items():
        unwired = _first_unwired(provider)
        if unwired is not None:
            raise RegistrationError(
                f"{label}: constructor parameter {keyword!r} needs {unwired}, which is not "
                "wired; plug the container in with ApplicationContainer.with_processing"
            )


def _first_unwired(provider: Any) -> str | None:
    if not isinstance(provider, providers.Provider):
        return None
    for candidate in (provider, *provider.traverse(types=[providers.Dependency])):
        if isinstance(candidate, providers.Dependency) and not candidate.is_defined:
            return str(candidate.parent_name or "a dependency")
    return None


def _is_set(value: Any) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is not None and value != ""
