"""From settings to a ready container: the one place that builds the composition root."""

from __future__ import annotations

import importlib
from typing import Any

from loguru import logger

from myapp.data.wakeups import EngineWakeups
from myapp.processing.engine import WorkItemProcessingEngine
from myapp.processing.errors import ConfigurationError
from myapp.processing.hosting import BackgroundProcessingService, HostedService
from myapp.processing.registration import HandlerRegistration
from myapp.settings import AppSettings, BackgroundProcessingSettings, IngestionServiceSettings

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
    names = [r.name for r in registrations(container)]  # validates every handler's section
    warn_about_unknown_sections(settings.background_processing.handler_sections(), names)
    return container


def warn_about_unknown_sections(sections: dict[str, Any], handler_names: list[str]) -> None:
    """A section no handler reads is most likely a misspelt name: say so once, at start-up."""
    known = {name.lower() for name in handler_names}
    for section in sections:
        if section.lower() not in known:
            logger.warning(
                "BackgroundProcessing:{} matches no registered handler ({}); it is ignored",
                section,
                ", ".join(handler_names) or "none",
            )


def registrations(container: Any) -> list[HandlerRegistration]:
    """The registrations of `container.processing`, looked up by name on the instance, so a
    subclass that redefines `registrations` (or `processing`) is what runs."""
    return list(container.processing.registrations())


def build_engine(container: Any) -> WorkItemProcessingEngine:
    """The engine over the container's registrations, with `BackgroundProcessing:*` settings."""
    settings = BackgroundProcessingSettings.model_validate(
        container.config.BackgroundProcessing() or {}
    )
    return WorkItemProcessingEngine(
        registrations(container),
        max_concurrency=settings.max_concurrency,
        queue_size=settings.queue_size,
        fetch_timeout=settings.fetch_timeout,
        item_timeout=settings.item_timeout,
        shutdown_timeout=settings.shutdown_timeout,
        heartbeat_interval=settings.heartbeat_interval,
    )


def build_hosted_services(container: Any) -> list[HostedService]:
    """What the host runs: the continuous background processing service, then the wake-ups
    that tell its handlers about new work (stopped first), then the dashboard when
    `Dashboard:Enabled` (stopped before the others)."""
    interval = IngestionServiceSettings.model_validate(
        container.config.IngestionService() or {}
    ).poll_interval
    engine = build_engine(container)
    url = container.config.ConnectionStrings.Database()
    services: list[HostedService] = [
        BackgroundProcessingService(engine, poll_interval=interval),
        EngineWakeups(url, engine),
    ]
    settings = AppSettings.model_validate(container.config() or {})
    if settings.dashboard.enabled:
        from myapp.dashboard.service import build_dashboard_service  # FastAPI only when used

        services.append(build_dashboard_service(container, settings))
    return services
