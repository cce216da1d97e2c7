"""The data layer: models, engine and session factories, migrations."""
