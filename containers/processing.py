"""Work-item processing: the handler registrations.

Registering a handler is one statement (`add_handler`), the mirror of .NET's
`AddWorkItemProcessing().AddHandler<THandler, TItem>(name, maxItemsPerCycle, purpose)`;
list it in `registrations` to run it. The engine and the polling service are built from
`registrations` by `myapp.bootstrap`, so a subclass that redefines `registrations` runs exactly
those handlers.
"""

from dependency_injector import containers, providers

from myapp.handlers.blob_cleanup import BlobCleanupHandler
from myapp.handlers.image_vectorization import ImageVectorizationHandler
from myapp.handlers.shein_batch import SheinBatchHandler
from myapp.processing.wiring import add_handler
from myapp.processing.work_item import ProcessorPurpose


class ProcessingContainer(containers.DeclarativeContainer):
    config = providers.Configuration()
    core = providers.DependenciesContainer()
    database = providers.DependenciesContainer()
    azure = providers.DependenciesContainer()

    # Handlers: add_handler(HandlerClass, name, max_items_per_cycle, purpose, dependencies...)
    shein = add_handler(
        SheinBatchHandler,
        name="Shein",
        max_items_per_cycle=5,
        purpose=ProcessorPurpose.INGESTION,
        sections=config.BackgroundProcessing,
        requires={"Secrets:CookieKey": database.cookie_key},
        session=database.session,
        worker_id=core.worker_id,
        clock=core.clock,
        cookie_cipher=database.cookie_cipher,
    )

    image_vectorization = add_handler(
        ImageVectorizationHandler,
        name="ImageVectorization",
        max_items_per_cycle=10,
        purpose=ProcessorPurpose.INTERNAL,
        sections=config.BackgroundProcessing,
        requires={
            "AzureAI:Endpoint": config.AzureAI.Endpoint,
            "AzureAI:ApiKey": config.AzureAI.ApiKey,
        },
        session=database.session,
        worker_id=core.worker_id,
        clock=core.clock,
        embeddings=azure.embedding_batcher,
        images=azure.image_loader,
    )
    blob_cleanup = add_handler(
        BlobCleanupHandler,
        name="BlobCleanup",
        max_items_per_cycle=100,
        purpose=ProcessorPurpose.INTERNAL,
        sections=config.BackgroundProcessing,
        requires={"ConnectionStrings:BlobStorage": config.ConnectionStrings.BlobStorage},
        blob_store=azure.blob_store,
        clock=core.clock,
    )

    registrations = providers.List(shein, image_vectorization, blob_cleanup)
