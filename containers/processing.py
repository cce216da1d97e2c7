"""Work-item processing: handler registrations, the engine and the polling service.

Registering a handler is one statement (`add_handler`), the mirror of .NET's
`AddWorkItemProcessing().AddHandler<THandler, TItem>(name, maxItemsPerCycle, purpose)`;
list it in `registrations` to run it.
"""

from dependency_injector import containers, providers

from myapp.processing.engine import WorkItemProcessingEngine
from myapp.processing.hosting import BackgroundProcessingService
from myapp.processing.wiring import add_handler  # noqa: F401  (used by subclasses and below)


class ProcessingContainer(containers.DeclarativeContainer):
    config = providers.Configuration()
    core = providers.DependenciesContainer()
    database = providers.DependenciesContainer()

    # Handlers: add_handler(HandlerClass, name=..., max_items_per_cycle=..., purpose=..., deps...)
    registrations = providers.List()

    engine = providers.Singleton(
        WorkItemProcessingEngine,
        registrations,
        max_concurrency=config.BackgroundProcessing.MaxConcurrency,
        queue_size=config.BackgroundProcessing.QueueSize,
        fetch_timeout=config.BackgroundProcessing.FetchTimeout,
        item_timeout=config.BackgroundProcessing.ItemTimeout,
        shutdown_timeout=config.BackgroundProcessing.ShutdownTimeout,
        heartbeat_interval=config.BackgroundProcessing.HeartbeatInterval,
    )
    background_processing = providers.Singleton(
        BackgroundProcessingService,
        engine,
        poll_interval=config.IngestionService.PollInterval,
    )
    hosted_services = providers.List(background_processing)
