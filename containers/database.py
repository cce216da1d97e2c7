"""The database: one async engine per process, one AsyncSession per work-item scope, and the key
that seals what must not lie in it in clear (cookie files)."""

from dependency_injector import containers, providers

from myapp.data.database import close_session, create_engine, create_session_factory
from myapp.lifetime import tracked
from myapp.processing import scoped
from myapp.scraping.cookie_keys import find_cookie_key, open_cookie_cipher


class DatabaseContainer(containers.DeclarativeContainer):
    config = providers.Configuration()
    core = providers.DependenciesContainer()

    engine = providers.Singleton(
        tracked, core.lifetime, create_engine, config.ConnectionStrings.Database
    )
    session_factory = providers.Singleton(create_session_factory, engine)
    # Scoped: one session per fetch / process call, shared within it, closed at its end;
    # built on first use, so a call that never touches it costs no session and no close.
    session = providers.Factory(scoped, session_factory, close=close_session)

    # Secrets:CookieKey, or on SQLite a key file beside the database; None on PostgreSQL without
    # the setting (the Shein handler requires it). The cipher creates the key file on first use.
    cookie_key = providers.Singleton(
        find_cookie_key, config.Secrets.CookieKey, config.ConnectionStrings.Database
    )
    cookie_cipher = providers.Singleton(open_cookie_cipher, cookie_key)
