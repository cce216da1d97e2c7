"""Work-item processing: the handler registrations.

Registering a handler is one statement (`add_handler`), the mirror of .NET's
`AddWorkItemProcessing().AddHandler<THandler, TItem>(name, maxItemsPerCycle, purpose)`:

    class MyProcessing(ProcessingContainer):  # the built-in handlers and yours
        greeting = add_handler(GreetingHandler, name="Greeting", max_items_per_cycle=10)

A handlers container collects its `add_handler` providers (inherited ones first, in the order
declared) into `registrations`, binds each one's `BackgroundProcessing:<Name>` section and gives
its constructor `session`, `worker_id` and `clock` when it asks for them. A subclass that sets
`registrations` itself runs exactly those. `HandlersContainer` has the dependencies and no
handler; `ProcessingContainer` adds the built-in ones. The engine and the service are built
from `registrations` by `myapp.bootstrap`.
"""

from typing import Any

from dependency_injector import containers, providers

from myapp.handlers.blob_cleanup import BlobCleanupHandler
from myapp.handlers.image_vectorization import ImageVectorizationHandler
from myapp.handlers.shein_batch import SheinBatchHandler
from myapp.processing import ProcessorPurpose, add_handler
from myapp.processing.wiring import collect_registrations


class HandlersContainer(containers.DeclarativeContainer):
    config = providers.Configuration()
    core = providers.DependenciesContainer()
    database = providers.DependenciesContainer()
    azure = providers.DependenciesContainer()

    registrations = providers.List()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        collect_registrations(
            cls,
            sections=cls.config.BackgroundProcessing,
            defaults={
                "session": cls.database.session,
                "worker_id": cls.core.worker_id,
                "clock": cls.core.clock,
            },
        )


class ProcessingContainer(HandlersContainer):
    shein = add_handler(
        SheinBatchHandler,
        name="Shein",
        max_items_per_cycle=5,
        purpose=ProcessorPurpose.INGESTION,
        requires={"Secrets:CookieKey": HandlersContainer.database.cookie_key},
        cookie_cipher=HandlersContainer.database.cookie_cipher,
    )
    image_vectorization = add_handler(
        ImageVectorizationHandler,
        name="ImageVectorization",
        max_items_per_cycle=10,
        purpose=ProcessorPurpose.INTERNAL,
        requires={
            "AzureAI:Endpoint": HandlersContainer.config.AzureAI.Endpoint,
            "AzureAI:ApiKey": HandlersContainer.config.AzureAI.ApiKey,
        },
        embeddings=HandlersContainer.azure.embedding_batcher,
        images=HandlersContainer.azure.image_loader,
    )
    blob_cleanup = add_handler(
        BlobCleanupHandler,
        name="BlobCleanup",
        max_items_per_cycle=100,
        purpose=ProcessorPurpose.INTERNAL,
        requires={
            "ConnectionStrings:BlobStorage": HandlersContainer.config.ConnectionStrings.BlobStorage
        },
        blob_store=HandlersContainer.azure.blob_store,
    )
