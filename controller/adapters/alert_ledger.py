"""Alert instances already acted on, kept in the controller's database.

``monitors.alerts.AlertIntake`` deduplicates in memory; this ledger makes that
memory survive a restart. Alertmanager re-sends a firing alert every
``repeat_interval``: a restarted daemon that forgot it would act again, e.g. roll
production back a second time and walk down the version chain. The daemon loads
the ledger into the intake at start and records each delivery's new keys once
its actions are committed. Rows older than ``remember`` are pruned (on load and
on every write), matching the intake's own horizon.

An instance is ``(fingerprint, startsAt)``; its row key is a SHA-256 of both, so
an over-long fingerprint cannot overflow the primary key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from controller.adapters.writes import Writes

__all__ = ["AlertKey", "AlertLedger", "insert_missing", "insert_seen", "seen_rows"]

AlertKey = tuple[str, datetime]  # (fingerprint, startsAt), as ``AlertEvent.key``

_METADATA = sa.MetaData()
SEEN = sa.Table(
    "controller_alert_seen",
    _METADATA,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.Text),
    sa.Column("starts_at", sa.String(40)),
    sa.Column("first_seen", sa.Float),
)


def _row_key(key: AlertKey) -> str:
    fingerprint, starts_at = key
    return hashlib.sha256(f"{fingerprint}\0{starts_at.isoformat()}".encode()).hexdigest()


class AlertLedger:
    """Persisted alert keys with when each was first seen; the tables come from the
    controller's migrations (``controller.adapters.rollout_store.migrate``)."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        remember: timedelta = timedelta(days=7),
        writes: Writes | None = None,
    ) -> None:
        if remember <= timedelta(0):
            raise ValueError(f"alert ledger: remember must be positive, got {remember}")
        self._engine = engine
        self._remember = remember
        self._writes = writes or Writes(engine)  # the rollout store's: group-committed

    def load(self, *, now: datetime) -> dict[AlertKey, datetime]:
        """Every key seen within ``remember`` of ``now`` (older rows are deleted)."""
        with self._engine.begin() as conn:
            self._prune(conn, now)
            rows = conn.execute(sa.select(SEEN.c.fingerprint, SEEN.c.starts_at, SEEN.c.first_seen))
            return {
                (row.fingerprint, datetime.fromisoformat(row.starts_at)): datetime.fromtimestamp(
                    row.first_seen, UTC
                )
                for row in rows
            }

    def remember(self, keys: Iterable[tuple[AlertKey, datetime]], *, now: datetime) -> None:
        """Record ``(key, first seen)`` pairs; keys already recorded keep their row."""
        values = [row for key, first in keys for row in seen_rows([key], first.timestamp())]
        if not values:
            return

        def write(conn: sa.Connection) -> None:
            insert_seen(conn, values)
            self._prune(conn, now)

        self._writes.run(write)

    def _prune(self, conn: sa.Connection, now: datetime) -> None:
        horizon = (now - self._remember).timestamp()
        conn.execute(sa.delete(SEEN).where(SEEN.c.first_seen < horizon))


def seen_rows(keys: Iterable[AlertKey], first_seen: float) -> list[dict[str, object]]:
    """The ledger rows of alert instances ``keys`` first seen at ``first_seen`` (epoch)."""
    return [
        {"key": _row_key(key), "fingerprint": key[0], "starts_at": key[1].isoformat(),
         "first_seen": first_seen}
        for key in keys
    ]  # fmt: skip


def insert_seen(conn: sa.Connection, values: list[dict[str, object]]) -> None:
    """In the caller's transaction: INSERT the rows whose key is not present yet (a
    concurrent delivery, a replay). Several daemons: the owner of the alerted model
    records them with the request it applied, under its fence."""
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(SEEN).on_conflict_do_nothing(index_elements=["key"]),
                     values)  # fmt: skip
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(SEEN).on_conflict_do_nothing(index_elements=["key"]), values)
    else:
        insert_missing(conn, values)


def insert_missing(conn: sa.Connection, values: list[dict[str, object]]) -> None:
    """Portable INSERT of the rows whose key is absent, for backends without an
    ON CONFLICT clause (a concurrent insert of the same key then fails the write)."""
    keys = [v["key"] for v in values]
    present = set(conn.execute(sa.select(SEEN.c.key).where(SEEN.c.key.in_(keys))).scalars())
    fresh = [v for v in values if v["key"] not in present]
    if fresh:
        conn.execute(sa.insert(SEEN), fresh)
