"""The registry contract: every case runs on SQLite and on PostgreSQL, each with
artifacts in the registry's home and on S3 (moto's server, over HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from registry import (
    Conflict,
    CorruptArtifact,
    IllegalTransition,
    IncompatibleVersion,
    InvalidInput,
    InvalidName,
    InvalidVersion,
    MLflowRegistry,
    ModelNotFound,
    ModelRegistry,
    SemVer,
    VersionNotFound,
)
from registry.artifacts import ArtifactStore
from registry.object_store import ObjectArtifactStore
from registry.schema import audit_t, files_t, versions_t
from tests.clock import Clock

SIG = {"inputs": {"amount": "float", "merchant_id": "int"}, "outputs": {"p": "float"}}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def artifact_uri(request: pytest.FixtureRequest) -> str | None:
    """Artifacts in the registry's home, or in a new S3 bucket."""
    return str(request.getfixturevalue("s3_uri")) if request.param == "s3" else None


def tamper(reg: ModelRegistry, digest: str, data: bytes) -> None:
    """Overwrite a stored blob behind the registry's back."""
    store = reg.artifacts
    if isinstance(store, ArtifactStore):
        path = store.path_for(digest)
        path.chmod(0o644)
        path.write_bytes(data)
    else:
        assert isinstance(store, ObjectArtifactStore)
        import s3fs

        s3fs.S3FileSystem(skip_instance_cache=True).pipe_file(store.key_path(digest), data)


def leftovers(reg: ModelRegistry) -> list[str]:
    """Temp files and unfinished uploads a failed write could leave."""
    store = reg.artifacts
    if isinstance(store, ArtifactStore):
        return [str(p) for p in (store.root / "tmp").glob("*")]  # none made yet: none left
    assert isinstance(store, ObjectArtifactStore)
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    uploads = fs.call_s3("list_multipart_uploads", Bucket=store.uri.bucket).get("Uploads", [])
    return [u["Key"] for u in uploads] + [str(p) for p in (store.cache.root / "tmp").glob("*")]


def count(reg: ModelRegistry, table: sa.Table) -> int:
    with reg.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def promote_to_production(reg: ModelRegistry, name: str, version: str) -> None:
    reg.promote_model(name, version, to_stage="staging")
    reg.promote_model(name, version, to_stage="production")


@pytest.fixture(
    params=["modelreg", pytest.param("mlflow", marks=[pytest.mark.mlflow, pytest.mark.integration])]
)
def reg(
    request: pytest.FixtureRequest, reg: ModelRegistry, db_url: str, tmp_path: Path, clock: Clock
) -> Iterator[ModelRegistry]:
    """The registry under test: ours (conftest's ``reg``), or ``MLflowRegistry`` on a real
    ``mlflow server`` with its governance database on the same URL (SQLite, PostgreSQL),
    where the operation exists in both; the other cases skip with their reason."""
    if request.param == "modelreg":
        yield reg
        return
    if request.node.callspec.params.get("artifact_uri") not in (None, "local"):
        pytest.skip("MLflowRegistry keeps its artifacts in MLflow, not in an artifact store")
    registry = MLflowRegistry(
        request.getfixturevalue("mlflow_uri"),
        governance=db_url,
        home=tmp_path / "mlflow-home",
        actor="alice",
        clock=clock,
    )
    yield registry
    registry.close()


def not_on_mlflow(reg: ModelRegistry, why: str) -> None:
    if isinstance(reg, MLflowRegistry):
        pytest.skip(f"not an MLflowRegistry operation: {why}")


class TestRegistration:
    def test_first_version_is_v1_and_files_are_kept(self, reg: ModelRegistry) -> None:
        """A first registration becomes v1.0.0 and keeps the seed's per-version files."""
        mv = reg.register_model(
            "fraud",
            {"weights": [1, 2, 3]},
            metadata={"accuracy": 0.87, "features": ["a", "b"]},
            signature=SIG,
            tags=["fraud"],
            requirements="xgboost==1.7.0\n",
        )
        assert str(mv.version) == "v1.0.0"
        assert mv.stage == "dev"
        assert mv.features == ("a", "b")
        assert {f.name for f in mv.files} == {
            "model.pkl",
            "metadata.json",
            "signature.json",
            "requirements.txt",
            "features.yaml",
        }
        assert reg.get_file("fraud", "v1", "requirements.txt") == b"xgboost==1.7.0\n"
        assert json.loads(reg.get_file("fraud", "v1", "metadata.json"))["accuracy"] == 0.87
        assert b"num_features: 2" in reg.get_file("fraud", "v1", "features.yaml")
        assert reg.get_model("fraud", version="v1.0.0") == {"weights": [1, 2, 3]}

    def test_requirements_are_captured_when_not_given(self, reg: ModelRegistry) -> None:
        """Without requirements the running environment is pinned into requirements.txt."""
        reg.register_model("m", None)
        text = reg.get_file("m", "v1", "requirements.txt").decode()
        assert "SQLAlchemy==" in text or "sqlalchemy==" in text.lower()

    def test_file_artifact_keeps_its_name(self, reg: ModelRegistry, tmp_path: Path) -> None:
        """A path is stored under its own file name and loads as a verified path."""
        src = tmp_path / "model.onnx"
        src.write_bytes(b"onnx-bytes" * 1000)
        mv = reg.register_model("m", src)
        assert mv.artifact_name == "model.onnx"
        assert mv.artifact_size == 10_000
        loaded = reg.get_model("m", version="v1")
        assert Path(loaded).read_bytes() == src.read_bytes()

    @pytest.mark.parametrize(
        ("parent_feats", "new_feats", "new_sig", "expected"),
        [
            (["a", "b"], ["a", "b"], SIG, "v1.0.1"),
            (["a", "b"], ["a", "b", "c"], SIG, "v1.1.0"),
            (["a", "b"], ["a"], SIG, "v2.0.0"),
            (["a", "b"], ["a", "c"], SIG, "v2.0.0"),
            (
                ["a", "b"],
                ["a", "b"],
                {"inputs": {**SIG["inputs"], "extra": "str"}, "outputs": {}},
                "v1.1.0",
            ),
            (["a", "b"], ["a", "b"], {"inputs": {"amount": "float"}, "outputs": {}}, "v2.0.0"),
            (
                ["a", "b"],
                ["a", "b"],
                {"inputs": {"amount": "str", "merchant_id": "int"}, "outputs": {}},
                "v2.0.0",
            ),
        ],
    )
    def test_automatic_bump_follows_the_changes(
        self,
        reg: ModelRegistry,
        parent_feats: list[str],
        new_feats: list[str],
        new_sig: dict[str, dict[str, str]],
        expected: str,
    ) -> None:
        """Removed/renamed features or inputs -> major, added -> minor, else patch."""
        reg.register_model("m", None, features=parent_feats, signature=SIG)
        mv = reg.register_model("m", None, features=new_feats, signature=new_sig)
        assert str(mv.version) == expected
        assert mv.parent == SemVer(1, 0, 0)

    def test_explicit_breaking_version_without_major_bump_is_refused(
        self, reg: ModelRegistry
    ) -> None:
        """The error lists the breaking differences, and nothing is stored."""
        reg.register_model("m", None, version="v3", features=["a", "b"], signature=SIG)
        with pytest.raises(IncompatibleVersion) as err:
            reg.register_model(
                "m", None, version="v3.1", features=["a"], signature={"inputs": {}, "outputs": {}}
            )
        assert "feature removed: b" in str(err.value)
        assert "signature input removed: amount" in err.value.differences
        assert [str(v.version) for v in reg.list_versions("m")] == ["v3.0.0"]
        assert str(reg.register_model("m", None, version="v4", features=["a"]).version) == "v4.0.0"

    def test_explicit_version_forms_and_conflict(self, reg: ModelRegistry) -> None:
        """'v3', '3.1' and 'v3.1.0' are accepted; an existing version is a conflict."""
        assert str(reg.register_model("m", None, version="v3").version) == "v3.0.0"
        assert str(reg.register_model("m", None, version="3.1").version) == "v3.1.0"
        with pytest.raises(Conflict, match=r"v3\.1\.0 already exists"):
            reg.register_model("m", None, version="v3.1.0")

    def test_parent_from_metadata(self, reg: ModelRegistry) -> None:
        """metadata['parent_model'] in the seed's NAME-vX form names the parent."""
        reg.register_model("m", None, features=["a"])
        reg.register_model("m", None, features=["a", "b"])
        mv = reg.register_model("m", None, features=["a"], metadata={"parent_model": "m-v1.0.0"})
        assert mv.parent == SemVer(1, 0, 0)
        assert str(mv.version) == "v1.1.1"

    def test_version_model_bumps_from_latest(self, reg: ModelRegistry) -> None:
        """version_model copies the latest version under the next number of the kind."""
        reg.register_model("m", {"x": 1}, version="v3.0.0", metadata={"accuracy": 0.8})
        mv = reg.version_model("m", version_type="minor", metadata={"accuracy": 0.9})
        assert str(mv.version) == "v3.1.0"
        assert mv.parent == SemVer(3, 0, 0)
        assert mv.metadata["accuracy"] == 0.9
        assert reg.get_model("m", version="v3.1.0") == {"x": 1}
        assert json.loads(reg.get_file("m", "v3.1.0", "metadata.json"))["accuracy"] == 0.9
        assert str(reg.version_model("m", "patch").version) == "v3.1.1"
        assert str(reg.version_model("m", "major").version) == "v4.0.0"
        with pytest.raises(InvalidInput, match="version_type"):
            reg.version_model("m", "huge")


class TestStages:
    def test_promotion_to_production_archives_the_previous_one(self, reg: ModelRegistry) -> None:
        """Both transitions are recorded; exactly one production version remains."""
        reg.register_model("m", None)
        reg.register_model("m", None)
        promote_to_production(reg, "m", "v1.0.0")
        promote_to_production(reg, "m", "v1.0.1")
        assert reg.get_model_version("m", "v1.0.0").stage == "archived"
        assert str(reg.resolve("m").version) == "v1.0.1"
        moves = [(str(t.version), t.from_stage, t.to_stage) for t in reg.history("m")]
        assert moves[-2:] == [
            ("v1.0.0", "production", "archived"),
            ("v1.0.1", "staging", "production"),
        ]

    def test_illegal_move_names_both_stages(self, reg: ModelRegistry) -> None:
        """dev -> production without staging is refused unless forced with a reason."""
        reg.register_model("m", None)
        with pytest.raises(IllegalTransition, match="dev -> production") as err:
            reg.promote_model("m", "v1", to_stage="production")
        assert (err.value.from_stage, err.value.to_stage) == ("dev", "production")
        with pytest.raises(IllegalTransition, match="requires a reason"):
            reg.promote_model("m", "v1", to_stage="production", force=True)
        mv = reg.promote_model("m", "v1", to_stage="production", force=True, reason="hotfix")
        assert mv.stage == "production"
        assert reg.history("m")[-1].kind == "force"

    def test_from_stage_must_match(self, reg: ModelRegistry) -> None:
        """from_stage is a guard: a version elsewhere is not moved."""
        reg.register_model("m", None)
        with pytest.raises(IllegalTransition, match="is in 'dev', not 'staging'"):
            reg.promote_model("m", "v1", from_stage="staging", to_stage="production")

    def test_registration_cannot_enter_production(self, reg: ModelRegistry) -> None:
        """New versions start in dev or staging."""
        with pytest.raises(IllegalTransition):
            reg.register_model("m", None, stage="production")
        with pytest.raises(ModelNotFound):
            reg.list_versions("m")

    def test_database_enforces_one_production_version(self, reg: ModelRegistry) -> None:
        """Even a direct UPDATE cannot create a second production version."""
        reg.register_model("m", None)
        reg.register_model("m", None)
        promote_to_production(reg, "m", "v1.0.0")
        with pytest.raises(sa.exc.IntegrityError), reg.store.engine.begin() as conn:
            conn.execute(versions_t.update().values(stage="production"))

    def test_unknown_stage_and_version(self, reg: ModelRegistry) -> None:
        """Bad stage names and missing versions are clear errors."""
        reg.register_model("m", None)
        with pytest.raises(InvalidInput, match="unknown stage 'qa'"):
            reg.promote_model("m", "v1", to_stage="qa")
        with pytest.raises(VersionNotFound, match=r"no version v9\.0\.0"):
            reg.promote_model("m", "v9", to_stage="staging")
        with pytest.raises(ModelNotFound):
            reg.promote_model("nope", "v1", to_stage="staging")


class TestRollback:
    def test_rollback_goes_to_previous_production(self, reg: ModelRegistry) -> None:
        """Without to_version the previous production version returns."""
        for _ in range(3):
            reg.register_model("m", None)
        for v in ("v1.0.0", "v1.0.1", "v1.0.2"):
            promote_to_production(reg, "m", v)
        mv = reg.rollback("m", reason="v1.0.2 raises false positives")
        assert str(mv.version) == "v1.0.1"
        assert reg.get_model_version("m", "v1.0.2").stage == "archived"
        last = reg.history("m")[-2:]
        assert [t.kind for t in last] == ["rollback", "rollback"]
        assert last[0].reason == "v1.0.2 raises false positives"

    def test_rollback_to_explicit_version(self, reg: ModelRegistry) -> None:
        """to_version may name any earlier version."""
        for _ in range(3):
            reg.register_model("m", None)
        for v in ("v1.0.0", "v1.0.1", "v1.0.2"):
            promote_to_production(reg, "m", v)
        assert str(reg.rollback("m", "v1.0.0", reason="back to basics").version) == "v1.0.0"
        assert str(reg.resolve("m").version) == "v1.0.0"

    def test_rollback_without_production_or_history(self, reg: ModelRegistry) -> None:
        """Nothing to roll back from, or nothing to roll back to, is a clear error."""
        reg.register_model("m", None)
        with pytest.raises(IllegalTransition, match="no production version"):
            reg.rollback("m", reason="x")
        promote_to_production(reg, "m", "v1")
        with pytest.raises(VersionNotFound, match="no earlier production version"):
            reg.rollback("m", reason="x")
        with pytest.raises(InvalidInput, match="needs a reason"):
            reg.rollback("m", reason=" ")


class TestReads:
    def test_get_model_by_date_uses_history(self, reg: ModelRegistry, clock: Clock) -> None:
        """The version in production at an instant comes from the transition history."""
        reg.register_model("m", None)
        reg.register_model("m", None)
        clock.set(clock().replace(day=10))
        promote_to_production(reg, "m", "v1.0.0")
        clock.set(clock().replace(day=20))
        promote_to_production(reg, "m", "v1.0.1")
        assert str(reg.get_model_by_date("m", "2024-01-15").version) == "v1.0.0"
        assert str(reg.get_model_by_date("m", "2024-01-20T10:00:00+00:00").version) == "v1.0.1"
        with pytest.raises(VersionNotFound, match="was in production"):
            reg.get_model_by_date("m", "2024-01-01")
        with pytest.raises(InvalidInput, match="invalid date"):
            reg.get_model_by_date("m", "next tuesday")

    def test_list_and_search(self, reg: ModelRegistry) -> None:
        """Versions filter by model, stage and tag, newest first."""
        reg.register_model("a", None, tags=["fraud"])
        reg.register_model("a", None, tags=["fraud", "candidate"])
        reg.register_model("b", None)
        assert [str(v.version) for v in reg.list_versions("a")] == ["v1.0.1", "v1.0.0"]
        assert [v.ref for v in reg.list_versions(tag="candidate")] == ["a-v1.0.1"]
        assert len(reg.list_versions(tag="fraud")) == 2
        models = {m.name: m for m in reg.list_models()}
        assert models["a"].versions == 2
        assert str(models["a"].latest) == "v1.0.1"
        assert models["b"].production is None

    def test_corrupted_artifact_is_refused(self, reg: ModelRegistry) -> None:
        """A model file whose bytes changed is never unpickled."""
        mv = reg.register_model("m", {"x": 1})
        assert mv.artifact_digest is not None
        assert reg.get_model("m", version="v1") == {"x": 1}  # cached, where the store caches
        tamper(reg, mv.artifact_digest, b"tampered")
        with pytest.raises(CorruptArtifact, match=f"{mv.artifact_digest[:12]} .*corrupted"):
            reg.get_model("m", version="v1")

    def test_metadata_only_version_has_no_model_to_load(self, reg: ModelRegistry) -> None:
        """Loading a version registered without an artifact says so."""
        reg.register_model("m", None)
        with pytest.raises(LookupError, match="no model artifact"):
            reg.get_model("m", version="v1")

    def test_resolve_sees_other_writers_at_once(
        self, reg: ModelRegistry, db_url: str, tmp_path: Path
    ) -> None:
        """The resolve cache is coherent: another registry's change shows on the next call."""
        not_on_mlflow(
            reg,
            "MLflow has no change feed, so its resolve cache is coherent within its TTL "
            "(tests/registry/test_mlflow.py covers that)",
        )
        reg.register_model("m", None)
        reg.register_model("m", None)
        promote_to_production(reg, "m", "v1.0.0")
        assert str(reg.resolve("m").version) == "v1.0.0"
        with ModelRegistry(db_url, home=tmp_path / "home", actor="bob") as other:
            promote_to_production(other, "m", "v1.0.1")
        assert str(reg.resolve("m").version) == "v1.0.1"


class TestOtherMutations:
    def test_deprecate(self, reg: ModelRegistry) -> None:
        """Deprecation keeps reason and end of life; twice is a conflict."""
        reg.register_model("m", None)
        mv = reg.deprecate_model("m", "v1", "Superseded by v3.x series", "2024-06-01")
        assert mv.deprecation is not None
        assert mv.deprecation.reason == "Superseded by v3.x series"
        assert mv.deprecation.end_of_life is not None
        assert mv.deprecation.end_of_life.date().isoformat() == "2024-06-01"
        assert [v.ref for v in reg.list_versions(deprecated=True)] == ["m-v1.0.0"]
        with pytest.raises(Conflict):
            reg.deprecate_model("m", "v1", "again")

    def test_set_signature_by_reference(self, reg: ModelRegistry) -> None:
        """The seed's set_model_signature(model='name-vX', ...) form works and is checked."""
        reg.register_model("fraud-detection-model", None, signature=SIG)
        reg.register_model("fraud-detection-model", None, version="v1.1", signature=SIG)
        mv = reg.set_model_signature(
            model="fraud-detection-model-v1.1.0",
            inputs={**SIG["inputs"], "location": "str"},
            outputs={"fraud_probability": "float"},
        )
        assert mv.signature is not None
        assert mv.signature["inputs"]["location"] == "str"
        with pytest.raises(IncompatibleVersion, match="major"):
            reg.set_model_signature(
                model="fraud-detection-model-v1.1.0", inputs={"amount": "str"}, outputs={}
            )


class TestAuditAndAtomicity:
    def test_every_mutation_writes_a_chained_event(self, reg: ModelRegistry) -> None:
        """Registrations, promotions and rollbacks each append audit events; the chain verifies."""
        reg.register_model("m", None)
        reg.register_model("m", None)
        promote_to_production(reg, "m", "v1.0.0")
        promote_to_production(reg, "m", "v1.0.1")
        reg.rollback("m", reason="r")
        with reg.store.read() as conn:
            actions = conn.execute(sa.select(audit_t.c.action).order_by(audit_t.c.id)).scalars()
            assert list(actions) == [
                "create_model",
                "register",
                "register",
                "promote",
                "promote",
                "promote",
                "promote",
                "promote",
                "rollback",
                "rollback",
            ]
        assert reg.verify_audit_chain() is None

    def test_tampering_is_detected(self, reg: ModelRegistry) -> None:
        """Editing a stored event breaks the chain at that event."""
        reg.register_model("m", None)
        reg.register_model("m", None)
        with reg.store.engine.begin() as conn:
            conn.execute(audit_t.update().where(audit_t.c.id == 2).values(actor="mallory"))
        broken = reg.verify_audit_chain()
        assert broken is not None
        assert broken.event_id == 2

    def test_crash_inside_registration_leaves_nothing(
        self, reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An exception mid-transaction leaves no version row, no files and no orphan blob."""
        reg.register_model("m", None)
        before = (count(reg, versions_t), count(reg, files_t), count(reg, audit_t))
        from registry.store import Tx

        real_audit = Tx.audit

        def exploding_audit(self: Tx, **kwargs: object) -> None:
            if kwargs.get("action") == "register":
                raise RuntimeError("power cut")
            real_audit(self, **kwargs)  # type: ignore[arg-type]

        with monkeypatch.context() as patch:  # undoes only this patch, not the S3 variables
            patch.setattr(Tx, "audit", exploding_audit)
            with pytest.raises(RuntimeError, match="power cut"):
                reg.register_model("m", {"big": list(range(1000))})
        assert (count(reg, versions_t), count(reg, files_t), count(reg, audit_t)) == before
        assert list(reg.artifacts.digests()) == []
        assert leftovers(reg) == []
        assert str(reg.register_model("m", None).version) == "v1.0.1"
        assert reg.verify_audit_chain() is None

    def test_bad_input_changes_nothing(self, reg: ModelRegistry, tmp_path: Path) -> None:
        """Invalid names, versions, paths and metadata are refused before any write."""
        reg.register_model("m", None)
        before = (count(reg, versions_t), count(reg, audit_t))
        with pytest.raises(InvalidName):
            reg.register_model("../etc", None)
        with pytest.raises(InvalidName):
            reg.register_model("a/b", None)
        with pytest.raises(InvalidVersion):
            reg.register_model("m", None, version="three")
        with pytest.raises(InvalidInput, match="does not exist"):
            reg.register_model("m", tmp_path / "missing.pkl")
        with pytest.raises(InvalidInput, match="JSON"):
            reg.register_model("m", None, metadata={"x": object()})
        with pytest.raises(InvalidInput, match="JSON"):
            reg.register_model("m", None, metadata={"x": float("nan")})
        with pytest.raises(InvalidInput, match="duplicates"):
            reg.register_model("m", None, features=["a", "a"])
        with pytest.raises(InvalidName):
            reg.register_model("m", None, tags=["bad tag"])
        with pytest.raises(InvalidInput, match="cannot be pickled"):
            reg.register_model("m", lambda x: x)
        assert (count(reg, versions_t), count(reg, audit_t)) == before
        assert list(reg.artifacts.digests()) == []
