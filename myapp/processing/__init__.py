"""The framework: work items, handlers, registrations, the engine and its hosting.

It knows nothing of Shein, Azure or our tables. Everything a handler author touches is
imported from here, and only from here:

    from myapp.processing import ClaimingHandler, ClaimSpec, ProcessorPurpose, add_handler
"""

from myapp.processing.claim_columns import ClaimColumns, UtcDateTime
from myapp.processing.claiming_handler import ClaimingHandler
from myapp.processing.claims import ClaimSpec, RetryPolicy
from myapp.processing.engine import WorkItemProcessingEngine
from myapp.processing.errors import ConfigurationError, PermanentError, RegistrationError
from myapp.processing.options import HandlerOptions
from myapp.processing.registration import HandlerRegistration
from myapp.processing.report import CycleReport, HandlerCycleStats
from myapp.processing.scope import Scope, ScopeError, scoped
from myapp.processing.timespan import (
    AgeTimeSpan,
    DelayTimeSpan,
    IntervalTimeSpan,
    LeaseTimeSpan,
    TimeoutTimeSpan,
)
from myapp.processing.wiring import add_handler
from myapp.processing.work_item import (
    BatchProcessor,
    BatchResult,
    ClaimLifecycle,
    DueTime,
    ProcessorPurpose,
    WorkItem,
    WorkItemHandler,
)

__all__ = [
    "AgeTimeSpan",
    "BatchProcessor",
    "BatchResult",
    "ClaimColumns",
    "ClaimLifecycle",
    "ClaimSpec",
    "ClaimingHandler",
    "ConfigurationError",
    "CycleReport",
    "DelayTimeSpan",
    "DueTime",
    "HandlerCycleStats",
    "HandlerOptions",
    "HandlerRegistration",
    "IntervalTimeSpan",
    "LeaseTimeSpan",
    "PermanentError",
    "ProcessorPurpose",
    "RegistrationError",
    "RetryPolicy",
    "Scope",
    "ScopeError",
    "TimeoutTimeSpan",
    "UtcDateTime",
    "WorkItem",
    "WorkItemHandler",
    "WorkItemProcessingEngine",
    "add_handler",
    "scoped",
]
