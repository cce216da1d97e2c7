"""Registering a handler in a dependency-injector container: the mirror of .NET's
`AddWorkItemProcessing().AddHandler<THandler, TItem>(name, maxItemsPerCycle, purpose)`.

    shein = add_handler(
        SheinBatchHandler, name="Shein", max_items_per_cycle=5,
        purpose=ProcessorPurpose.INGESTION, sections=config.BackgroundProcessing,
        session=database.session, clock=core.clock,
    )

The handler's own section `BackgroundProcessing:<Name>` is validated (once, at start-up) into
the class's `options_model` and injected as `options=`; `Enabled`, `MaxItemsPerCycle`,
`MaxConcurrency` and `ItemTimeout` in it override the registration. `requires` names settings
without which the handler is left out, with the reason shown by `myapp handlers`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dependency_injector import providers
from pydantic import SecretStr, ValidationError

from myapp.processing.errors import ConfigurationError
from myapp.processing.options import HandlerOptions
from myapp.processing.registration import DEFAULT_MAX_ITEMS_PER_CYCLE, HandlerRegistration
from myapp.processing.work_item import ProcessorPurpose

SECTION_ROOT = "BackgroundProcessing"


def add_handler(
    handler_class: type[Any],
    *,
    name: str,
    max_items_per_cycle: int = DEFAULT_MAX_ITEMS_PER_CYCLE,
    purpose: ProcessorPurpose = ProcessorPurpose.INTERNAL,
    sections: providers.Provider[Any] | Mapping[str, Any] | None = None,
    requires: Mapping[str, providers.Provider[Any]] | None = None,
    **dependencies: Any,
) -> providers.Singleton[HandlerRegistration]:
    """A provider of the `HandlerRegistration` for `handler_class` under `name`."""
    options_model: type[HandlerOptions] = getattr(handler_class, "options_model", HandlerOptions)
    options = providers.Singleton(handler_options, options_model, sections, name)
    if hasattr(handler_class, "options_model"):
        dependencies = {**dependencies, "options": options}
    handler_factory = providers.Factory(handler_class, **dependencies)
    return providers.Singleton(
        registration_from_options,
        handler_factory.provider,
        options,
        name=name,
        max_items_per_cycle=max_items_per_cycle,
        purpose=purpose,
        requirements=providers.Dict(dict(requires or {})),
    )


def handler_options(
    options_model: type[HandlerOptions], sections: Mapping[str, Any] | None, name: str
) -> HandlerOptions:
    """The validated `BackgroundProcessing:<name>` section (keys match case-insensitively)."""
    section = next(
        (value for key, value in (sections or {}).items() if str(key).lower() == name.lower()),
        None,
    )
    try:
        return options_model.model_validate(section or {})
    except ValidationError as error:
        raise ConfigurationError.from_validation_error(error, f"{SECTION_ROOT}:{name}") from None


def registration_from_options(
    handler_factory: Callable[[], Any],
    options: HandlerOptions,
    *,
    name: str,
    max_items_per_cycle: int,
    purpose: ProcessorPurpose,
    requirements: Mapping[str, Any],
) -> HandlerRegistration:
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


def _is_set(value: Any) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is not None and value != ""
