"""The options every handler section `BackgroundProcessing:<Name>` may hold.

A handler with settings of its own subclasses `HandlerOptions`; its fields are written in
PascalCase in configuration (`RequestDelay`) and snake_case in code (`request_delay`). Keys
match case-insensitively, because environment variables lose their case.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_pascal

from myapp.processing.config_keys import with_field_keys
from myapp.processing.timespan import IntervalTimeSpan, TimeoutTimeSpan

# Upper bounds so that a typo (a few zeros too many) stops start-up instead of asking for
# millions of slots. A quota above IDS_PER_STATEMENT (claims.py) would also split every claim.
MAX_CONCURRENCY_LIMIT = 1_000
MAX_ITEMS_PER_CYCLE_LIMIT = 10_000


class HandlerOptions(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_pascal, populate_by_name=True, extra="forbid", frozen=True
    )

    enabled: bool = True
    max_items_per_cycle: int | None = Field(default=None, ge=1, le=MAX_ITEMS_PER_CYCLE_LIMIT)
    max_concurrency: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)
    item_timeout: TimeoutTimeSpan | None = None
    poll_interval: IntervalTimeSpan | None = None

    @model_validator(mode="before")
    @classmethod
    def _match_keys_ignoring_case(cls, data: Any) -> Any:
        return with_field_keys(cls, data)
