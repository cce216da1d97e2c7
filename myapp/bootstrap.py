"""From settings to a ready container: the one place that builds the composition root."""

from __future__ import annotations

import importlib
from typing import Any

from myapp.processing.errors import ConfigurationError
from myapp.processing.registration import HandlerRegistration
from myapp.settings import AppSettings

DEFAULT_CONTAINER = "containers:ApplicationContainer"


def load_container_class(path: str = DEFAULT_CONTAINER) -> Any:
    """`module:attribute`, e.g. `mypackage.containers:Container` for a user's own handlers."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError("--container", path, "module:ContainerClass")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigurationError(
            "--container", path, f"an importable container ({error})"
        ) from None


def build_container(settings: AppSettings, container_path: str = DEFAULT_CONTAINER) -> Any:
    """The application container, configured; every handler section validated now."""
    container = load_container_class(container_path)()
    container.config.from_dict(settings.model_dump(by_alias=True))
    registrations(container)  # validates BackgroundProcessing:<Name> sections at start-up
    return container


def registrations(container: Any) -> list[HandlerRegistration]:
    return list(container.processing.registrations())
