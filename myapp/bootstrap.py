"""From settings to a ready container: the one place that builds the composition root."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from loguru import logger

from myapp.data.outcome_counters import OutcomeCounters
from myapp.data.wakeups import EngineWakeups
from myapp.data.worker_heartbeat import WorkerHeartbeat
from myapp.processing import ConfigurationError, HandlerRegistration, WorkItemProcessingEngine
from myapp.processing.hosting import BackgroundProcessingService, HostedService
from myapp.processing.observers import ProcessingObserver, combine
from myapp.processing.prometheus_metrics import MetricsEndpoint, PrometheusMetrics
from myapp.settings import (
    AppSettings,
    BackgroundProcessingSettings,
    IngestionServiceSettings,
    MetricsSettings,
    WorkersSettings,
)

DEFAULT_CONTAINER = "containers:ApplicationContainer"


def load_container_class(path: str = DEFAULT_CONTAINER) -> Any:
    """`module:attribute`, e.g. `mypackage.containers:MyProcessing` for a user's own handlers:
    an application container, or a handlers container that the default application runs
    (`ApplicationContainer.with_processing`)."""
    container_class = _import_attribute(path)
    if _is_handlers_container(container_class):
        application = _import_attribute(DEFAULT_CONTAINER)
        return application.with_processing(container_class)
    return container_class


def _is_handlers_container(container_class: Any) -> bool:
    """A container of registrations (no `processing` of its own to run them in)."""
    known = getattr(container_class, "providers", {})
    return "registrations" in known and "processing" not in known


def _import_attribute(path: str) -> Any:
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
    names = [r.name for r in registrations(container)]  # validates every section and wiring
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


def build_engine(
    container: Any, observers: Sequence[ProcessingObserver] = ()
) -> WorkItemProcessingEngine:
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
        observer=combine(observers),
    )


def build_counters(container: Any) -> OutcomeCounters | None:
    """The outcome counters (`Metrics:*`), None when `Metrics:Counters` is off."""
    metrics = MetricsSettings.model_validate(container.config.Metrics() or {})
    if not metrics.counters:
        return None
    return OutcomeCounters(
        container.database.engine(),
        flush_interval=metrics.flush_interval,
        retention=timedelta(days=metrics.retention_days),
    )


def build_hosted_services(container: Any) -> list[HostedService]:
    """What the host runs, in start order (stopped in reverse): the metrics endpoint (if
    `Metrics:Port`), the outcome counters and the worker's heartbeat (stopped after the
    processing, so its last items are counted and its row says stopped once they are done),
    the continuous background processing service, the wake-ups that tell its handlers
    about new work, then the dashboard when `Dashboard:Enabled` (stopped first)."""
    interval = IngestionServiceSettings.model_validate(
        container.config.IngestionService() or {}
    ).poll_interval
    metrics = MetricsSettings.model_validate(container.config.Metrics() or {})
    workers = WorkersSettings.model_validate(container.config.Workers() or {})
    database = container.database.engine()
    observers: list[ProcessingObserver] = []
    services: list[HostedService] = []
    if metrics.port:
        prometheus = PrometheusMetrics()
        observers.append(prometheus)
        services.append(MetricsEndpoint(prometheus, port=metrics.port, host=metrics.host))
    if (counters := build_counters(container)) is not None:
        observers.append(counters)
        services.append(counters)
    engine = build_engine(container, observers)
    if metrics.port:
        prometheus.watch(engine)
    if workers.heartbeat:
        retention = timedelta(days=workers.retention_days)
        worker_id = container.core.worker_id()
        services.append(WorkerHeartbeat(database, engine, worker_id, retention=retention))
    url = container.config.ConnectionStrings.Database()
    services += [
        BackgroundProcessingService(engine, poll_interval=interval),
        EngineWakeups(url, engine),
    ]
    settings = AppSettings.model_validate(container.config() or {})
    if settings.dashboard.enabled:
        from myapp.dashboard.service import build_dashboard_service  # FastAPI only when used

        services.append(build_dashboard_service(container, settings))
    return services
