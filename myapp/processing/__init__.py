"""The framework: work items, handlers, registrations, the engine and its hosting.

It knows nothing of Shein, Azure or our tables.
"""

from myapp.processing.engine import WorkItemProcessingEngine
from myapp.processing.errors import ConfigurationError, PermanentError
from myapp.processing.options import HandlerOptions
from myapp.processing.registration import HandlerRegistration
from myapp.processing.report import CycleReport, HandlerCycleStats
from myapp.processing.scope import Scope, scoped
from myapp.processing.work_item import (
    ClaimLifecycle,
    ProcessorPurpose,
    WorkItem,
    WorkItemHandler,
    WorkItemProcessor,
    WorkItemSource,
)

__all__ = [
    "ClaimLifecycle",
    "ConfigurationError",
    "CycleReport",
    "HandlerCycleStats",
    "HandlerOptions",
    "HandlerRegistration",
    "PermanentError",
    "ProcessorPurpose",
    "Scope",
    "WorkItem",
    "WorkItemHandler",
    "WorkItemProcessingEngine",
    "WorkItemProcessor",
    "WorkItemSource",
    "scoped",
]
