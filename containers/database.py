"""The database: one async engine per process, one AsyncSession per work-item scope."""

from dependency_injector import containers, providers

from myapp.data.database import close_session, create_engine, create_session_factory
from myapp.lifetime import tracked
from myapp.processing.scope import scoped


class DatabaseContainer(containers.DeclarativeContainer):
    config = providers.Configuration()
    core = providers.DependenciesContainer()

    engine = providers.Singleton(
        tracked, core.lifetime, create_engine, config.ConnectionStrings.Database
    )
    session_factory = providers.Singleton(create_session_factory, engine)
    # Scoped: one session per fetch / process call, shared within it, closed at its end.
    session = providers.Factory(scoped, session_factory, close=close_session)
