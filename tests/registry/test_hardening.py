"""Failure modes and edge cases found in review: each case names the behaviour it pins."""

from __future__ import annotations

import pickle
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from registry import (
    ApprovalRequired,
    IllegalTransition,
    InvalidInput,
    InvalidName,
    ModelGovernance,
    ModelRegistry,
    VersionNotFound,
    track_experiment,
)
from registry.store import Store, Tx
from tests.clock import Clock
from tests.registry.test_cli import cli


def to_production(reg: ModelRegistry, version: str, name: str = "m") -> None:
    reg.promote_model(name, version, to_stage="staging")
    reg.promote_model(name, version, to_stage="production")


class TestWriterRecovery:
    @pytest.mark.postgres
    def test_lost_postgres_connection_is_replaced(self, pg_url: str, tmp_path: Path) -> None:
        """After the server kills the writer's connection, the next write reconnects."""
        with ModelRegistry(pg_url, home=tmp_path) as reg:
            reg.register_model("m", None)
            wconn = reg.store._wconn
            assert wconn is not None
            pid = wconn.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
            admin_engine = sa.create_engine(pg_url)
            with admin_engine.connect() as admin:
                admin.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            admin_engine.dispose()
            import psycopg

            with pytest.raises(psycopg.OperationalError):
                reg.register_model("m", None)
            assert str(reg.register_model("m", None).version) == "v1.0.1"
            assert reg.verify_audit_chain() is None

    def test_failed_commit_releases_the_write_lock(self, tmp_path: Path) -> None:
        """An error raised by COMMIT itself rolls back, so neither we nor others stay locked."""
        url = f"sqlite:///{tmp_path / 'r.db'}"
        with ModelRegistry(url, home=tmp_path) as reg:
            reg.register_model("m", None)

            def broken_at_commit(tx: Tx) -> None:
                tx.cur.raw("PRAGMA defer_foreign_keys=ON")
                tx.conn.exec_driver_sql(
                    "INSERT INTO stage_transition (model_id, version_id, to_stage, kind, actor, at)"
                    " VALUES (999, 999, 'dev', 'register', 'x', '2024-01-01 00:00:00.000000')"
                )

            with pytest.raises(sa.exc.IntegrityError):
                reg.store.write(broken_at_commit)
            other = sqlite3.connect(tmp_path / "r.db", timeout=1)
            other.execute("BEGIN IMMEDIATE")
            other.rollback()
            other.close()
            assert str(reg.register_model("m", None).version) == "v1.0.1"
            assert reg.verify_audit_chain() is None

    def test_batch_rolls_back_partial_sql_of_a_failing_job(
        self, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """In a shared transaction, a job that wrote and then failed leaves no trace."""
        sizes: list[int] = []
        real = Store._transaction

        def spy(self: Store, conn: sa.Connection, batch: list) -> object:  # type: ignore[type-arg]
            sizes.append(len(batch))
            return real(self, conn, batch)

        monkeypatch.setattr(Store, "_transaction", spy)
        with ModelRegistry(db_url, home=tmp_path) as reg:
            reg.register_model("m", None)
            gate = threading.Barrier(6)
            errors: list[BaseException] = []

            def writes_then_fails(tx: Tx) -> None:
                tx.audit(actor="x", action="half", target="m")
                raise RuntimeError("after partial SQL")

            def worker(i: int) -> None:
                gate.wait()
                try:
                    if i == 0:
                        reg.store.write(writes_then_fails)
                    else:
                        reg.register_model("m", None, requirements="")
                except RuntimeError as exc:
                    errors.append(exc)

            # Hold the writer until all six jobs are queued, so they share one transaction.
            with reg.store._writer:
                threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
                for t in threads:
                    t.start()
                deadline = time.monotonic() + 30
                while len(reg.store._queue) < 6 and time.monotonic() < deadline:
                    time.sleep(0.01)
            for t in threads:
                t.join()
            assert len(errors) == 1
            assert max(sizes) == 6
            assert len(reg.list_versions("m")) == 6
            assert "half" not in [e.action for e in reg.audit_log()]
            assert reg.verify_audit_chain() is None


class TestApprovalsCannotBeBypassed:
    def test_rollback_only_returns_to_former_production_versions(self, reg: ModelRegistry) -> None:
        """A never-deployed version cannot enter production through rollback."""
        reg.register_model("m", None)
        reg.register_model("m", None)
        to_production(reg, "v1.0.0")
        with pytest.raises(IllegalTransition, match="never been in production"):
            reg.rollback("m", "v1.0.1", reason="sneaky")
        assert str(reg.resolve("m").version) == "v1.0.0"

    def test_guarded_stage_cannot_be_entered_by_registration(self, reg: ModelRegistry) -> None:
        """Registering straight into a stage an approval policy guards is refused."""
        reg.set_approval_required("staging", ["bob@x"])
        with pytest.raises(ApprovalRequired, match="register into dev"):
            reg.register_model("m", None, stage="staging")
        assert reg.register_model("m", None).stage == "dev"

    def test_rejection_blocks_without_a_policy(self, reg: ModelRegistry) -> None:
        """A standing rejection blocks promotion even where no policy applies."""
        reg.register_model("m", None, stage="staging")
        reg.reject_model("m", "v1", "reviewer", "fails the fairness check")
        with pytest.raises(IllegalTransition, match="fairness"):
            reg.promote_model("m", "v1", to_stage="production")

    def test_repeated_rollback_walks_backwards(self, reg: ModelRegistry) -> None:
        """v3 -> rollback -> v2 -> rollback -> v1, never back to the rolled-back v3."""
        for _ in range(3):
            reg.register_model("m", None)
        for version in ("v1.0.0", "v1.0.1", "v1.0.2"):
            to_production(reg, version)
        assert str(reg.rollback("m", reason="r1").version) == "v1.0.1"
        assert str(reg.rollback("m", reason="r2").version) == "v1.0.0"


class TestArtifacts:
    def test_uploaded_pickle_file_is_never_unpickled(
        self, reg: ModelRegistry, tmp_path: Path
    ) -> None:
        """Only objects the registry serialised are unpickled; a model.pkl file stays a file."""
        hostile = tmp_path / "model.pkl"
        hostile.write_bytes(pickle.dumps({"would": "be unpickled"}))
        mv = reg.register_model("m", hostile)
        assert mv.artifact_format == "file"
        loaded = reg.get_model("m", version="v1")
        assert isinstance(loaded, Path)
        assert loaded.read_bytes() == hostile.read_bytes()
        assert reg.register_model("m", {"w": 1}).artifact_format == "pickle"
        assert reg.get_model("m", version="v1.0.1") == {"w": 1}

    @pytest.mark.parametrize("name", ["metadata.json", "requirements.txt", "features.yaml"])
    def test_reserved_file_names_are_refused(
        self, reg: ModelRegistry, tmp_path: Path, name: str
    ) -> None:
        """A model file may not shadow the version's own metadata files."""
        path = tmp_path / name
        path.write_text("x")
        with pytest.raises(InvalidName, match="reserved"):
            reg.register_model("m", path)
        assert list(reg.artifacts.digests()) == []

    def test_corrupt_blob_is_repaired_when_the_content_comes_again(
        self, reg: ModelRegistry
    ) -> None:
        """Storing identical content replaces a blob whose bytes rotted."""
        mv = reg.register_model("m", {"w": 1})
        assert mv.artifact_digest is not None
        path = reg.artifacts.path_for(mv.artifact_digest)
        path.chmod(0o644)
        path.write_bytes(b"rotten")
        reg.register_model("m", {"w": 1})
        assert reg.get_model("m", version="v1") == {"w": 1}


class TestMatchingAndTime:
    def test_tag_wildcards_match_literally(self, reg: ModelRegistry) -> None:
        """'_' in a tag is not a LIKE wildcard."""
        reg.register_model("m", None, tags=["axb"])
        reg.register_model("m", None, tags=["a_b"])
        assert [str(v.version) for v in reg.list_versions(tag="a_b")] == ["v1.0.1"]

    def test_non_ascii_features_are_found(self, reg: ModelRegistry) -> None:
        """Feature names outside ASCII match (they are stored escaped in JSON)."""
        reg.register_model("m", None, features=["größe", "x"])
        assert [v.ref for v in reg.models_using_feature("größe")] == ["m-v1.0.0"]

    def test_offsets_are_converted_to_utc(self, reg: ModelRegistry, clock: Clock) -> None:
        """13:00+02:00 is 11:00Z on every backend, before a 12:00Z deployment."""
        reg.register_model("m", None)
        clock.set(datetime(2024, 1, 10, 12, 0, tzinfo=UTC))
        to_production(reg, "v1")
        with pytest.raises(VersionNotFound):
            reg.get_model_by_date("m", "2024-01-10T13:00:00+02:00")
        assert str(reg.get_model_by_date("m", "2024-01-10T08:00:00-05:00").version) == "v1.0.0"
        mv = reg.deprecate_model("m", "v1", "old", "2030-01-01T00:00:00+05:00")
        assert mv.deprecation is not None
        assert mv.deprecation.end_of_life == datetime(2029, 12, 31, 19, 0, tzinfo=UTC)

    @pytest.mark.parametrize("bad", ["fraud-v2", "m-v1.2", "x-v1.2.3"])
    def test_names_that_read_as_versions_are_refused(self, reg: ModelRegistry, bad: str) -> None:
        """A model name ending in -v<number> would be ambiguous in NAME-vX references."""
        with pytest.raises(InvalidName, match="reads as a version"):
            reg.register_model(bad, None)


class TestGovernanceEdges:
    def test_report_judges_a_deployment_by_the_policy_of_its_day(
        self, reg: ModelRegistry, clock: Clock
    ) -> None:
        """A policy added after a deployment does not make that deployment non-compliant."""
        reg.register_model("m", None, stage="staging", signature={"inputs": {"a": "int"}})
        clock.set(datetime(2024, 1, 10, tzinfo=UTC))
        reg.promote_model("m", "v1", to_stage="production")
        clock.set(datetime(2024, 2, 10, tzinfo=UTC))
        reg.set_approval_required("production", ["lead@x"])
        report = ModelGovernance(reg).generate_audit_report("m", "2024-01-01", "2024-03-01")
        checks = {c.name: c.passed for c in report.deployments[0].checkpoints}
        assert checks["approvals satisfied"] is None

    def test_parent_model_short_form_joins_the_canonical_node(self, reg: ModelRegistry) -> None:
        """parent_model 'm-v1' and the version m-v1.0.0 are one lineage node."""
        reg.register_model("m", None, metadata={"training_data_version": "d1"})
        reg.register_model("m", None, metadata={"parent_model": "m-v1"})
        graph = reg.get_lineage("m", "v1.0.1")
        assert graph.tree().splitlines()[0] == "data:d1"
        assert {n.key for n in graph.nodes} == {"d1", "m-v1.0.0", "m-v1.0.1"}

    def test_experiment_refuses_both_version_and_auto_version(self, reg: ModelRegistry) -> None:
        """An explicit version with auto_version=True is a contradiction, not silently ignored."""
        with (
            track_experiment("exp-1", registry=reg) as exp,
            pytest.raises(InvalidInput, match="not both"),
        ):
            exp.register_model({"w": 1}, "m", version="v2")


def test_cli_prints_markup_like_text_literally(tmp_path: Path) -> None:
    """Reasons that look like Rich markup are shown as typed, never parsed."""
    assert cli(tmp_path, "register", "m").returncode == 0
    r = cli(tmp_path, "deprecate", "m", "v1", "--reason", "see [/link] and [red]notes")
    assert r.returncode == 0, r.stderr
    r = cli(tmp_path, "info", "m", "v1")
    assert r.returncode == 0, r.stderr
    assert "see [/link] and [red]notes" in r.stdout
    listed = cli(tmp_path, "list", "m")
    assert listed.returncode == 0, listed.stderr
    assert "[red]notes" in listed.stdout


def test_cli_rollback_without_reason_records_a_default(tmp_path: Path) -> None:
    """The seed's `rollback NAME --to V` works; history says no reason was given."""
    with ModelRegistry(home=tmp_path / "home") as reg:
        for _ in range(2):
            reg.register_model("m", None)
        to_production(reg, "v1.0.0")
        to_production(reg, "v1.0.1")
    assert cli(tmp_path, "rollback", "m", "--to", "v1.0.0").returncode == 0
    with ModelRegistry(home=tmp_path / "home") as reg:
        assert reg.history("m")[-1].reason == "manual rollback from the CLI (no reason given)"
