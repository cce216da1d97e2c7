"""Every operator test has the user's own table beside ours."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.operations.user_app import create_user_table


@pytest.fixture
async def user_engine(db_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    await create_user_table(db_engine)
    yield db_engine
