"""The composition root: configuration, core services, database, Azure and processing."""

from __future__ import annotations

from dependency_injector import containers, providers

from containers.azure import AzureContainer
from containers.core import CoreContainer
from containers.database import DatabaseContainer
from containers.processing import HandlersContainer, ProcessingContainer

# What a handlers container receives from the application (those of them it declares).
SHARED = ("config", "core", "database", "azure")


class ApplicationContainer(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)

    core = providers.Container(CoreContainer, config=config)
    database = providers.Container(DatabaseContainer, config=config, core=core)
    azure = providers.Container(AzureContainer, config=config, core=core)
    processing = providers.Container(
        ProcessingContainer, config=config, core=core, database=database, azure=azure
    )

    @classmethod
    def with_processing(cls, handlers: type[HandlersContainer]) -> type[ApplicationContainer]:
        """This application running the handlers of `handlers`, wired like the built-in ones:
        `MyApp = ApplicationContainer.with_processing(MyProcessing)`."""

        wired = {name: getattr(cls, name) for name in SHARED if name in handlers.providers}

        class WithProcessing(cls):  # type: ignore[valid-type,misc]
            processing = providers.Container(handlers, **wired)

        WithProcessing.__name__ = WithProcessing.__qualname__ = (
            f"{cls.__name__}[{handlers.__name__}]"
        )
        return WithProcessing
