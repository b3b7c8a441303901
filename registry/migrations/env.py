"""Alembic environment: always driven by ``registry.db.migrate`` with a live connection.

The connection arrives inside a transaction that already serialises migrators
(``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so several
processes opening a fresh database at once apply each migration exactly once.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
