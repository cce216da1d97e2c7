from myapp.data.migrations import schema_drift, upgrade_to_head

from pricewatch.models import Base


async def test_pricewatch_migrations_create_what_its_models_declare(database_url: str) -> None:
    await upgrade_to_head(database_url, ["pricewatch.migrations"])

    assert await schema_drift(database_url, Base.metadata) == []
