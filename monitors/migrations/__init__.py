"""Alembic migrations of the ingest tables (version table ``monitors_alembic_version``)."""
