"""Schema changes go through Alembic; old databases upgrade in place."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from registry import ModelRegistry
from registry.db import current_revision, head_revision, make_engine, migrate


def test_database_made_by_first_migration_upgrades(db_url: str, tmp_path: object) -> None:
    """Rows written under revision 0001 survive the upgrade and stay usable."""
    engine = make_engine(db_url)
    migrate(engine, "0001")
    assert current_revision(engine) == "0001"
    now = datetime(2024, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO registered_model (name, created_at) VALUES ('old', :t)"),
            {"t": now},
        )
        mid = conn.execute(sa.text("SELECT id FROM registered_model")).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO model_version (model_id, major, minor, patch, stage, metadata,"
                " tags, created_at) VALUES (:m, 2, 0, 0, 'dev', '{}', '[]', :t)"
            ),
            {"t": now, "m": mid},
        )
        vid = conn.execute(sa.text("SELECT id FROM model_version")).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO stage_transition (model_id, version_id, to_stage, kind, actor, at)"
                " VALUES (:m, :v, 'dev', 'register', 'legacy', :t)"
            ),
            {"t": now, "m": mid, "v": vid},
        )
    engine.dispose()
    with ModelRegistry(db_url, home=str(tmp_path)) as reg:
        assert current_revision(reg.store.engine) == head_revision()
        assert str(reg.get_model_version("old", "v2").version) == "v2.0.0"
        assert str(reg.register_model("old", None).version) == "v2.0.1"
        assert reg.get_model_version("old", "v2.0.1").files


def test_opening_twice_is_a_no_op(tmp_path: object) -> None:
    """A database already at head is opened without running migrations again."""
    url = f"sqlite:///{tmp_path}/r.db"
    with ModelRegistry(url, home=str(tmp_path)):
        pass
    engine = make_engine(url)
    migrate(engine)
    assert current_revision(engine) == head_revision()


def test_sqlite_durability_settings(tmp_path: object) -> None:
    """WAL, synchronous=FULL (2) and a busy timeout on every connection."""
    with (
        ModelRegistry(f"sqlite:///{tmp_path}/r.db", home=str(tmp_path)) as reg,
        reg.store.engine.connect() as conn,
    ):
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
