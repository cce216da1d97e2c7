"""Cross-cutting services: the clock, this worker's identity, and what closes at shutdown."""

from dependency_injector import containers, providers

from myapp.clock import utc_now
from myapp.lifetime import Lifetime
from myapp.processing.worker_id import new_worker_id


class CoreContainer(containers.DeclarativeContainer):
    config = providers.Configuration()

    # "Now" for every handler (leases use the database's clock); tests override it.
    clock = providers.Object(utc_now)
    worker_id = providers.Singleton(new_worker_id)
    # Singletons holding connections register here and are closed once, at shutdown.
    lifetime = providers.Singleton(Lifetime)
