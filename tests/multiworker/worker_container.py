"""The container the worker subprocesses run: the application's, with only the test handler.

python -m myapp --container tests.multiworker.worker_container:Container run
"""

from __future__ import annotations

from dependency_injector import providers

from containers.application import ApplicationContainer
from containers.processing import ProcessingContainer
from myapp.processing.wiring import add_handler
from myapp.processing.work_item import ProcessorPurpose
from tests.multiworker.handler import HANDLER_NAME, MultiWorkerHandler

DEFAULT_QUOTA = 100


class MultiWorkerProcessing(ProcessingContainer):
    multi_worker = add_handler(
        MultiWorkerHandler,
        name=HANDLER_NAME,
        max_items_per_cycle=DEFAULT_QUOTA,
        purpose=ProcessorPurpose.INTERNAL,
        sections=ProcessingContainer.config.BackgroundProcessing,
        session=ProcessingContainer.database.session,
        worker_id=ProcessingContainer.core.worker_id,
        clock=ProcessingContainer.core.clock,
    )
    # Only the test handler: the built-in ones' tables are not in the test database.
    registrations = providers.List(multi_worker)


class Container(ApplicationContainer):
    processing = providers.Container(
        MultiWorkerProcessing,
        config=ApplicationContainer.config,
        core=ApplicationContainer.core,
        database=ApplicationContainer.database,
        azure=ApplicationContainer.azure,
    )
