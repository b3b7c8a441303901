"""Alembic environment: driven by ``controller.adapters.rollout_store.migrate`` with a live
connection.

The version table is ``controller_alembic_version`` so that the controller's tables
live in the registry's database without the registry's migration history (or the
ingest store's) seeing them. The connection arrives inside a write transaction
(``BEGIN IMMEDIATE`` on SQLite), so concurrent openers apply each revision once.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=None,
    transactional_ddl=True,
    version_table="controller_alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
