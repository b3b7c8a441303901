"""Alembic environment: always driven by ``monitors.ingest.migrate`` with a live connection.

The version table is ``monitors_alembic_version`` so that the ingest tables can live
in the registry's database without either migration history seeing the other's.
The connection arrives inside a transaction that serialises migrators (``BEGIN
IMMEDIATE`` on SQLite), so concurrent openers apply each revision exactly once.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=None,
    transactional_ddl=True,
    version_table="monitors_alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
