"""The packaged migrations bring a fresh database to head, and match the models exactly."""

from __future__ import annotations

from sqlalchemy import inspect

from myapp.data.database import create_engine
from myapp.data.migrations import current_revision, head_revision, schema_drift, upgrade_to_head
from myapp.data.models import Base


async def test_a_fresh_database_reaches_head_with_every_table(fresh_url: str) -> None:
    assert await current_revision(fresh_url) is None

    await upgrade_to_head(fresh_url)
    await upgrade_to_head(fresh_url)  # idempotent: a second worker starting is harmless

    assert head_revision() is not None
    assert await current_revision(fresh_url) == head_revision()
    engine = create_engine(fresh_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            indexes = await connection.run_sync(
                lambda sync: {ix["name"] for ix in inspect(sync).get_indexes("product_photos")}
            )
    finally:
        await engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert "ix_product_photos_claimable" in indexes


async def test_migrations_match_the_models_no_drift(db_url: str) -> None:
    assert await schema_drift(db_url) == []


async def test_drift_check_notices_a_missing_index(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("DROP INDEX ix_product_photos_claimable")
    finally:
        await engine.dispose()

    drift = await schema_drift(db_url)

    assert [(kind, index.name) for kind, index in drift] == [
        ("add_index", "ix_product_photos_claimable")
    ]
