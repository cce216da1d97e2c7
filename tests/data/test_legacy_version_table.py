"""Our history moved from alembic's default `alembic_version` to `myapp_alembic_version`: a
database migrated before moves on its next upgrade, keeping every row and re-running nothing;
an `alembic_version` that is not ours is left alone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from myapp.data.alembic_env import OUR_VERSION_TABLE
from myapp.data.errors import DatabaseStartupError, UnversionedSchemaError
from myapp.data.migrations import (
    LEGACY_VERSION_TABLE,
    current_revision,
    head_revision,
    stamp_head,
    upgrade_to_head,
)
from myapp.data.models import Base, ProcessingStatus, Product, StagingBatch
from tests.data.version_tables import (
    migrate_the_old_way,
    on_connection,
    record_their_revision,
    table_names,
    version_rows,
)

FIRST_REVISION = "0001"
SECRET_FILE = "a finished batch's cookie file, which revision 0002 erases"
WORKERS = 4


async def add_rows(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A product, and a finished batch whose file only revision 0002 erases: if 0002 runs
    again, the file is gone."""
    product, batch = uuid.uuid4(), uuid.uuid4()

    def add(connection: Connection) -> None:
        connection.execute(insert(Product).values(id=product, sku="SKU-1", name="Kettle"))
        connection.execute(
            insert(StagingBatch).values(
                id=batch,
                batch_processor_name="Shein",
                file_hash="hash-1",
                status=ProcessingStatus.COMPLETED,
                started_at=datetime.now(UTC),
                file_contents=SECRET_FILE,
            )
        )

    await on_connection(url, add)
    return product, batch


async def stored(url: str, product: uuid.UUID, batch: uuid.UUID) -> tuple[str | None, ...]:
    def read(connection: Connection) -> tuple[str | None, ...]:
        name = connection.scalar(select(Product.name).where(Product.id == product))
        contents = connection.scalar(
            select(StagingBatch.file_contents).where(StagingBatch.id == batch)
        )
        return name, contents

    return await on_connection(url, read)


async def test_a_database_at_head_moves_its_history_and_runs_nothing_again(
    fresh_url: str,
) -> None:
    head = str(head_revision())
    await migrate_the_old_way(fresh_url, head)
    product, batch = await add_rows(fresh_url)
    assert await current_revision(fresh_url) == head  # read from alembic_version until moved

    await upgrade_to_head(fresh_url)
    await upgrade_to_head(fresh_url)  # the next worker's start: nothing left to move

    assert await version_rows(fresh_url, OUR_VERSION_TABLE) == [head]
    assert await version_rows(fresh_url, LEGACY_VERSION_TABLE) is None
    assert await current_revision(fresh_url) == head
    # 0001 again would have failed on existing tables; 0002 again would have erased the file.
    assert await stored(fresh_url, product, batch) == ("Kettle", SECRET_FILE)


async def test_a_database_behind_head_moves_its_history_then_runs_only_what_it_lacks(
    fresh_url: str,
) -> None:
    await migrate_the_old_way(fresh_url, FIRST_REVISION)
    product, batch = await add_rows(fresh_url)

    await upgrade_to_head(fresh_url)

    assert await version_rows(fresh_url, OUR_VERSION_TABLE) == [head_revision()]
    assert await version_rows(fresh_url, LEGACY_VERSION_TABLE) is None
    assert await stored(fresh_url, product, batch) == ("Kettle", None)  # 0002 ran, once


async def test_stamp_on_an_old_database_says_it_has_history_and_changes_nothing(
    fresh_url: str,
) -> None:
    head = str(head_revision())
    await migrate_the_old_way(fresh_url, head)

    with pytest.raises(DatabaseStartupError, match="already has migration history"):
        await stamp_head(fresh_url)

    assert await version_rows(fresh_url, LEGACY_VERSION_TABLE) == [head]
    assert not await version_rows(fresh_url, OUR_VERSION_TABLE)
    await upgrade_to_head(fresh_url)  # as the refusal says
    assert await version_rows(fresh_url, OUR_VERSION_TABLE) == [head]


async def test_workers_starting_together_move_it_once(fresh_url: str) -> None:
    """Several workers migrating an old database at once: one moves the history, the others
    wait for the migration lock (SQLite: its write lock) and find nothing to move."""
    head = str(head_revision())
    await migrate_the_old_way(fresh_url, head)
    product, batch = await add_rows(fresh_url)

    await asyncio.gather(*(upgrade_to_head(fresh_url) for _ in range(WORKERS)))

    assert await version_rows(fresh_url, OUR_VERSION_TABLE) == [head]
    assert await version_rows(fresh_url, LEGACY_VERSION_TABLE) is None
    assert await stored(fresh_url, product, batch) == ("Kettle", SECRET_FILE)


@pytest.mark.parametrize("their_revision", ["3c9d1e0a7b42", FIRST_REVISION])
async def test_their_alembic_version_on_a_new_database_is_left_alone(
    fresh_url: str, their_revision: str
) -> None:
    """A user's own alembic history in `alembic_version`, even with a revision id that is one
    of ours, on a database without our tables: ours starts from scratch beside it."""
    await record_their_revision(fresh_url, their_revision)

    await upgrade_to_head(fresh_url)

    assert await version_rows(fresh_url, LEGACY_VERSION_TABLE) == [their_revision]
    assert await version_rows(fresh_url, OUR_VERSION_TABLE) == [head_revision()]
    assert set(Base.metadata.tables) <= await table_names(fresh_url)


async def test_their_alembic_version_beside_ours_is_left_alone(db_url: str) -> None:
    """Ours recorded in myapp_alembic_version: whatever alembic_version holds is theirs."""
    await record_their_revision(db_url, FIRST_REVISION)
    try:
        await upgrade_to_head(db_url)

        assert await version_rows(db_url, LEGACY_VERSION_TABLE) == [FIRST_REVISION]
        assert await version_rows(db_url, OUR_VERSION_TABLE) == [head_revision()]
    finally:
        await on_connection(
            db_url, lambda c: c.exec_driver_sql(f"DROP TABLE {LEGACY_VERSION_TABLE}")
        )


async def test_our_tables_with_someone_elses_history_are_refused_not_taken(
    fresh_url: str,
) -> None:
    """Our tables without our history, and an alembic_version we do not know: the usual
    refusal for tables without history, and their table untouched."""
    await migrate_the_old_way(fresh_url, str(head_revision()))
    await on_connection(
        fresh_url,
        lambda c: c.exec_driver_sql(f"UPDATE {LEGACY_VERSION_TABLE} SET version_num = 'ffff0000'"),
    )

    with pytest.raises(UnversionedSchemaError):
        await upgrade_to_head(fresh_url)

    assert await version_rows(fresh_url, LEGACY_VERSION_TABLE) == ["ffff0000"]
    assert not await version_rows(fresh_url, OUR_VERSION_TABLE)
