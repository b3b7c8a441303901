"""Schema changes go through Alembic; old databases upgrade in place."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from registry import ModelRegistry
from registry.db import current_revision, head_revision, make_engine, migrate
from registry.errors import UnusableDatabase


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


@pytest.mark.parametrize("package", ["registry", "controller", "monitors"])
def test_head_read_from_files_is_alembics(package: str) -> None:
    """Stores compare against ``head_revision`` on every open without importing
    Alembic; it must name the head Alembic itself would."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    location = Path(__file__).parents[2] / package / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    assert head_revision(location) == ScriptDirectory.from_config(cfg).get_current_head()


def test_head_of_a_branched_history_is_left_to_alembic(tmp_path: Path) -> None:
    (tmp_path / "versions").mkdir()
    for name, revision, down in [("a", "a1", None), ("b", "b1", "a1"), ("c", "c1", "a1")]:
        (tmp_path / "versions" / f"{name}.py").write_text(
            f'revision = "{revision}"\ndown_revision = {down!r}\n'
        )
    with pytest.raises(Exception, match="multiple heads"):
        head_revision(tmp_path)


def test_several_rows_in_the_version_table_are_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('0001'), ('0002')")
    with pytest.raises(UnusableDatabase, match="several schema revisions"):
        current_revision(engine)


def test_table_definitions_match_the_migrated_schema(db_url: str, tmp_path: Path) -> None:
    """``registry.schema`` is written by hand beside the migrations; Alembic's
    comparison finds no column, type or constraint that differs. The four indexes
    only the migrations create (for queries, not needed by the code's statements)
    are the one known difference."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from registry.schema import metadata

    with ModelRegistry(db_url, home=str(tmp_path)) as reg, reg.store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert sorted(d[1].name for d in diff if d[0] == "remove_index") == [
        "ix_experiment_increment",
        "ix_lineage_edge_dst",
        "ix_policy_model_stage",
        "ix_version_increment",
    ]
    assert [d for d in diff if d[0] != "remove_index"] == []
