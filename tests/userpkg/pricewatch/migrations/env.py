from myapp.data.alembic_env import run_env

from pricewatch.models import Base

run_env(Base.metadata, version_table="pricewatch_alembic_version")
