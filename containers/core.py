"""Cross-cutting services: the clock and this worker's identity."""

from dependency_injector import containers, providers

from myapp.clock import utc_now
from myapp.processing.worker_id import new_worker_id


class CoreContainer(containers.DeclarativeContainer):
    config = providers.Configuration()

    # "Now" for every handler and the claim protocol; tests override it with a fake clock.
    clock = providers.Object(utc_now)
    worker_id = providers.Singleton(new_worker_id)
