"""The container the worker subprocesses run: the application's, with only the test handler.

python -m myapp --container tests.multiworker.worker_container:Container run

With MYAPP_TEST_CLOCK_OFFSET_SECONDS set (e.g. `10` or `-10`) the worker's application clock,
`core.clock`, runs that far from the real one: a machine whose clock is off. Only the clock the
application is given moves; the OS clock (and so the journal file's timestamps) does not.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from dependency_injector import providers
from loguru import logger

from containers.application import ApplicationContainer
from containers.processing import ProcessingContainer
from myapp.clock import Clock, utc_now
from myapp.processing import ProcessorPurpose, add_handler
from tests.multiworker.handler import (
    BATCH_HANDLER_NAME,
    HANDLER_NAME,
    MultiWorkerBatchHandler,
    MultiWorkerHandler,
)

DEFAULT_QUOTA = 100
CLOCK_OFFSET_VARIABLE = "MYAPP_TEST_CLOCK_OFFSET_SECONDS"


def clock_from_environment() -> Clock:
    """`utc_now`, or `utc_now() + offset` when CLOCK_OFFSET_VARIABLE says so."""
    offset = timedelta(seconds=float(os.environ.get(CLOCK_OFFSET_VARIABLE) or 0))
    if not offset:
        return utc_now
    logger.warning("Test clock: core.clock runs {:+g} s off the real clock", offset.total_seconds())

    def skewed_now() -> datetime:
        return utc_now() + offset

    return skewed_now


def _registration(handler_class: type[Any], name: str) -> Any:
    return add_handler(
        handler_class,
        name=name,
        max_items_per_cycle=DEFAULT_QUOTA,
        purpose=ProcessorPurpose.INTERNAL,
        sections=ProcessingContainer.config.BackgroundProcessing,
        session=ProcessingContainer.database.session,
        worker_id=ProcessingContainer.core.worker_id,
        clock=ProcessingContainer.core.clock,
    )


class MultiWorkerProcessing(ProcessingContainer):
    multi_worker = _registration(MultiWorkerHandler, HANDLER_NAME)
    # The same rows through the batch protocol; off unless BackgroundProcessing:MultiWorkerBatch
    # :Enabled is true.
    multi_worker_batch = _registration(MultiWorkerBatchHandler, BATCH_HANDLER_NAME)
    # Only the test handlers: the built-in ones' tables are not in the test database.
    registrations = providers.List(multi_worker, multi_worker_batch)


class Container(ApplicationContainer):
    processing = providers.Container(
        MultiWorkerProcessing,
        config=ApplicationContainer.config,
        core=ApplicationContainer.core,
        database=ApplicationContainer.database,
        azure=ApplicationContainer.azure,
    )

    def __new__(cls, **overriding_providers: Any) -> Any:
        # Overridden on the instance (the class's providers are ApplicationContainer's own), so
        # every provider that reads `core.clock`, in any sub-container, sees the skew.
        container = super().__new__(cls, **overriding_providers)
        container.core.clock.override(providers.Object(clock_from_environment()))
        return container
