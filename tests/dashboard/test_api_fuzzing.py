"""Property-based fuzzing of the JSON API from its own OpenAPI schema (schemathesis), against
the dashboard serving a database of each kind with rows in every state: no 500, every response
as the schema says (status codes, content types, bodies), invalid input refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from myapp.data.database import create_engine
from tests.dashboard.chores import HANDLER, create_chores_table
from tests.dashboard.live import dashboard_in_thread
from tests.dashboard.seeding import Seeded, seed_chores

TOKEN = "fuzzing-token-1c9d7e2a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HANDLER_NAMES = ["Shein", "ImageVectorization", "BlobCleanup", HANDLER]
EXAMPLES_PER_OPERATION = 60
known_ids: list[str] = []


@pytest.fixture
def api_schema(db_url: str, tmp_path: Path) -> Iterator[Any]:
    import schemathesis  # here, not at collection: every xdist worker would pay for it

    async def prepare() -> None:
        engine = create_engine(db_url)
        try:
            await create_chores_table(engine)
            seeded: Seeded = await seed_chores(
                engine, completed=5, failed=["ValueError: one", "KeyError: two"], queued=3, held=1
            )
        finally:
            await engine.dispose()
        known_ids[:] = [str(id) for id in [*seeded.completed, *seeded.failed, *seeded.held]]

    with dashboard_in_thread(tmp_path / "config", db_url, prepare, Token=TOKEN) as url:
        loaded = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=AUTH)
        loaded.config.update(base_url=url)
        yield loaded


def cases(operation: Any) -> st.SearchStrategy[Any]:
    """Valid and invalid requests; for a path naming a handler (and an item), also ones naming
    a registered handler and a row that exists, so the fuzzing gets past 404 into the queries."""
    from schemathesis.generation.modes import GenerationMode

    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if "{name}" in operation.path:
        for name in HANDLER_NAMES:
            known = {"name": name}
            if "{item_id}" in operation.path:
                for id in known_ids:
                    strategies.append(
                        operation.as_strategy(path_parameters={**known, "item_id": id})
                    )
            else:
                strategies.append(operation.as_strategy(path_parameters=known))
    return st.one_of(strategies)


def test_the_api_keeps_to_its_schema(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:

        @given(case=cases(operation))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def keeps_to_the_schema(case: Any) -> None:
            case.call_and_validate(headers=AUTH)

        keeps_to_the_schema()
