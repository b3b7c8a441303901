"""Alembic environment of the controller's tables (version table ``controller_alembic_version``)."""
