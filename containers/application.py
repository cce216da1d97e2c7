"""The composition root: configuration, core services, database, Azure and processing."""

from dependency_injector import containers, providers

from containers.azure import AzureContainer
from containers.core import CoreContainer
from containers.database import DatabaseContainer
from containers.processing import ProcessingContainer


class ApplicationContainer(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)

    core = providers.Container(CoreContainer, config=config)
    database = providers.Container(DatabaseContainer, config=config, core=core)
    azure = providers.Container(AzureContainer, config=config, core=core)
    processing = providers.Container(
        ProcessingContainer, config=config, core=core, database=database, azure=azure
    )
