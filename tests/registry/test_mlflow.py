"""MLflowRegistry against a real ``mlflow server``: what MLflow holds, other clients'
versions, the resolve cache, bad input. The contract suite (test_contract.py) covers
the operations both registries share; this file covers what only MLflow has.

Every check of MLflow's side goes through raw REST calls (``Raw``), not through
modelreg's client, so a bug in one cannot hide in the other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitors.testing import free_port
from registry import ApprovalRequired, MLflowRegistry, ModelGovernance, ModelRegistry, NotFound
from registry.docs import sync_docs
from registry.errors import CorruptArtifact, InvalidInput
from registry.mlflow_registry import ExternalVersion, MLflowVersion
from registry.mlflow_rest import MLflowRequestFailed, MLflowUnavailable
from registry.schema import audit_t, models_t, versions_t
from tests.clock import Clock
from tests.mlflow_server import Raw

pytestmark = [pytest.mark.mlflow, pytest.mark.integration]


@pytest.fixture
def mreg(mlflow_uri: str, tmp_path: Path, clock: Clock) -> Iterator[MLflowRegistry]:
    registry = MLflowRegistry(
        mlflow_uri,
        governance=f"sqlite:///{tmp_path / 'governance.db'}",
        home=tmp_path / "home",
        actor="alice",
        clock=clock,
    )
    yield registry
    registry.close()


def rows(reg: ModelRegistry, table: sa.Table) -> int:
    with reg.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


class TestWhatMLflowHolds:
    def test_registration_lands_in_mlflow(self, mreg: MLflowRegistry, raw: Raw) -> None:
        """Files in a run, semver/metadata/tags as version tags, and the semver alias."""
        mv = mreg.register_model(
            "fraud",
            {"w": [1, 2]},
            version="v3.1.0",
            metadata={"accuracy": 0.87, "framework": "xgboost==1.7.0"},
            tags=["fraud", "candidate"],
            features=["amount", "merchant"],
            requirements="xgboost==1.7.0\n",
        )
        assert isinstance(mv, MLflowVersion)
        assert mv.mlflow_version == 1
        assert raw.aliases("fraud") == {"v3_1_0": 1}
        tags = raw.tags("fraud", 1)
        assert tags["modelreg.version"] == "v3.1.0"
        assert tags["modelreg.digest"] == mv.artifact_digest
        assert tags["modelreg.stage"] == "dev"
        assert json.loads(tags["metadata.accuracy"]) == 0.87
        assert tags["tag.candidate"] == "true"
        assert json.loads(tags["modelreg.features"]) == ["amount", "merchant"]
        source = raw.version("fraud", 1)["source"]
        assert raw.artifact(source, "requirements.txt").content == b"xgboost==1.7.0\n"
        assert json.loads(raw.artifact(source, "metadata.json").content)["accuracy"] == 0.87
        assert raw.artifact(source, "model.pkl").status_code == 200
        assert b"num_features: 2" in raw.artifact(source, "features.yaml").content

    def test_stages_are_aliases_and_one_production_is_kept(
        self, mreg: MLflowRegistry, raw: Raw
    ) -> None:
        """staging/production aliases follow promotions and rollback; archived is a tag."""
        for _ in range(2):
            mreg.register_model("m", None)
        mreg.promote_model("m", "v1.0.0", to_stage="staging")
        assert raw.aliases("m")["staging"] == 1
        mreg.promote_model("m", "v1.0.0", to_stage="production")
        aliases = raw.aliases("m")
        assert aliases["production"] == 1
        assert "staging" not in aliases
        mreg.promote_model("m", "v1.0.1", to_stage="staging")
        mreg.promote_model("m", "v1.0.1", to_stage="production")
        assert raw.aliases("m")["production"] == 2
        assert raw.tags("m", 1)["modelreg.stage"] == "archived"
        assert raw.tags("m", 2)["modelreg.stage"] == "production"
        mreg.rollback("m", reason="v1.0.1 raises false positives")
        assert raw.aliases("m")["production"] == 1
        assert raw.tags("m", 2)["modelreg.stage"] == "archived"
        assert str(mreg.resolve("m").version) == "v1.0.0"
        assert [t.kind for t in mreg.history("m")[-2:]] == ["rollback", "rollback"]
        assert mreg.verify_audit_chain() is None

    def test_deprecation_and_signature_are_tagged(self, mreg: MLflowRegistry, raw: Raw) -> None:
        """Governance changes that MLflow can show are mirrored as tags."""
        mreg.register_model("m", None, signature={"inputs": {"a": "float"}, "outputs": {}})
        mreg.deprecate_model("m", "v1", "superseded", "2030-01-01")
        mreg.set_model_signature("m-v1.0.0", inputs={"a": "float", "b": "int"})
        tags = raw.tags("m", 1)
        assert tags["modelreg.deprecated"] == "superseded"
        assert tags["modelreg.end_of_life"].startswith("2030-01-01")
        assert json.loads(tags["modelreg.signature"])["inputs"] == {"a": "float", "b": "int"}

    def test_version_model_makes_a_new_mlflow_version(self, mreg: MLflowRegistry, raw: Raw) -> None:
        """A bump is a new MLflow version with its own run and the parent's model bytes."""
        mreg.register_model("m", {"x": 1}, version="v3.0.0")
        mv = mreg.version_model("m", "minor", metadata={"accuracy": 0.9})
        assert (str(mv.version), mv.mlflow_version) == ("v3.1.0", 2)
        assert raw.aliases("m")["v3_1_0"] == 2
        assert json.loads(raw.tags("m", 2)["metadata.accuracy"]) == 0.9
        source = raw.version("m", 2)["source"]
        assert raw.artifact(source, "model.pkl").status_code == 200
        assert mreg.get_model("m", version="v3.1.0") == {"x": 1}

    def test_another_machine_loads_from_mlflow_and_verifies(
        self, mreg: MLflowRegistry, mlflow_uri: str, tmp_path: Path
    ) -> None:
        """A registry with an empty local cache downloads the artifact and checks its digest."""
        mreg.register_model("m", {"x": 41})
        other = MLflowRegistry(
            mlflow_uri,
            governance=f"sqlite:///{tmp_path / 'governance.db'}",
            home=tmp_path / "elsewhere",
        )
        with other:
            assert list(other.artifacts.digests()) == []
            assert other.get_model("m", version="v1") == {"x": 41}
            assert len(list(other.artifacts.digests())) == 1


class TestGovernance:
    def test_approvals_guard_the_production_alias(
        self, mreg: MLflowRegistry, raw: Raw, tmp_path: Path
    ) -> None:
        """A refused promotion moves no alias; once approved it does; the audit report and
        the living docs read the governance database as for any registry."""
        mreg.register_model("m", None)
        mreg.promote_model("m", "v1", to_stage="staging")
        mreg.set_approval_required("production", ["bob", "carol"], model="m")
        with pytest.raises(ApprovalRequired, match="needs 1 more approval"):
            mreg.promote_model("m", "v1", to_stage="production")
        assert "production" not in raw.aliases("m")
        mreg.approve_model("m", "v1", "bob", "tested in staging")
        mreg.promote_model("m", "v1", to_stage="production")
        assert raw.aliases("m")["production"] == 1
        report = ModelGovernance(registry=mreg).generate_audit_report(
            "m", "2024-01-01", "2024-12-31"
        )
        assert [d.approved_by for d in report.deployments] == [["bob"]]
        assert sync_docs(mreg, tmp_path / "docs").written
        assert mreg.verify_audit_chain() is None


class TestOtherClients:
    def test_foreign_versions_are_seen_never_rewritten(
        self, mreg: MLflowRegistry, raw: Raw
    ) -> None:
        """A version made by another client keeps its integer version and gets no semver."""
        mreg.register_model("m", None)
        number = raw.foreign_version("m", {"MLmodel": b"flavors: {}\n", "model.bin": b"\x00\x01"})
        mreg.register_model("m", None)
        raw.post(
            "registered-models/alias", {"name": "m", "alias": "staging", "version": str(number)}
        )
        found = {v.mlflow_version: v for v in mreg.mlflow_versions("m")}
        assert found[1].aliases == ("v1_0_0",)
        assert sorted(found) == [1, 2, 3]
        foreign = found[number]
        assert isinstance(foreign, ExternalVersion)
        assert foreign.version is None
        assert foreign.ref == f"m/{number}"
        assert (foreign.stage, foreign.aliases) == ("staging", ("staging",))
        assert [str(v.version) for v in mreg.list_versions("m")] == ["v1.0.1", "v1.0.0"]
        assert raw.tags("m", number) == {}
        assert isinstance(mreg.get_model_version("m", number), ExternalVersion)
        path = Path(mreg.get_model("m", version=number))
        assert (path / "model.bin").read_bytes() == b"\x00\x01"

    def test_another_governance_database_sees_external_versions(
        self, mreg: MLflowRegistry, mlflow_uri: str, tmp_path: Path
    ) -> None:
        """A version made through another governance database is shown, not invented."""
        mreg.register_model("m", None)
        mreg.promote_model("m", "v1", to_stage="staging")
        with MLflowRegistry(
            mlflow_uri, governance=f"sqlite:///{tmp_path / 'other.db'}", home=tmp_path / "o"
        ) as other:
            seen = other.resolve("m", "staging")
            assert isinstance(seen, ExternalVersion)
            assert (seen.mlflow_version, seen.tags["modelreg.version"]) == (1, "v1.0.0")

    def test_resolve_follows_other_clients_alias_moves_within_the_ttl(
        self, mlflow_uri: str, raw: Raw, tmp_path: Path
    ) -> None:
        """Another client's alias move shows once the cache entry expires."""
        with MLflowRegistry(
            mlflow_uri,
            governance=f"sqlite:///{tmp_path / 'g.db'}",
            home=tmp_path / "home",
            cache_ttl=1.0,
        ) as reg:
            reg.register_model("m", None)
            number = raw.foreign_version("m", {"MLmodel": b"x"})
            reg.promote_model("m", "v1", to_stage="staging")
            reg.promote_model("m", "v1", to_stage="production")
            assert str(reg.resolve("m").version) == "v1.0.0"
            raw.post(
                "registered-models/alias",
                {"name": "m", "alias": "production", "version": str(number)},
            )
            assert str(reg.resolve("m").version) == "v1.0.0"  # cached
            time.sleep(1.05)
            seen = reg.resolve("m")
            assert isinstance(seen, ExternalVersion)
            assert seen.mlflow_version == number

    def test_own_writes_drop_the_cache_at_once(self, mreg: MLflowRegistry) -> None:
        """A promotion through this registry is resolved on the very next call."""
        mreg.register_model("m", None)
        mreg.register_model("m", None)
        for v in ("v1.0.0", "v1.0.1"):
            mreg.promote_model("m", v, to_stage="staging")
            mreg.promote_model("m", v, to_stage="production")
            assert str(mreg.resolve("m").version) == v


class TestBadInput:
    def test_unreachable_server_names_the_uri_and_writes_nothing(
        self, tmp_path: Path, clock: Clock
    ) -> None:
        """Nothing in the governance database, nothing in the artifact cache."""
        uri = f"http://127.0.0.1:{free_port()}"
        with MLflowRegistry(
            uri, governance=f"sqlite:///{tmp_path / 'g.db'}", home=tmp_path / "h", clock=clock
        ) as reg:
            with pytest.raises(
                MLflowUnavailable, match=f"MLflow tracking server {uri} is unreachable"
            ):
                reg.register_model("m", {"x": 1})
            assert (rows(reg, models_t), rows(reg, versions_t), rows(reg, audit_t)) == (0, 0, 0)
            assert list(reg.artifacts.digests()) == []
            with pytest.raises(MLflowUnavailable, match=uri):
                reg.resolve("m")

    def test_bad_tracking_uri_is_refused(self, tmp_path: Path) -> None:
        """A URI that is not http(s)://host is an InvalidInput before anything opens."""
        with pytest.raises(InvalidInput, match="tracking URI"):
            MLflowRegistry("file:///tmp/mlruns", home=tmp_path)

    def test_refusal_midway_is_taken_back(
        self, mreg: MLflowRegistry, raw: Raw, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """MLflow refusing the alias: no governance row, no MLflow version left behind."""
        mreg.register_model("m", None)

        def refuse(*args: object) -> None:
            raise MLflowRequestFailed("refused", "INTERNAL_ERROR", 500)

        monkeypatch.setattr(mreg.client, "set_alias", refuse)
        with pytest.raises(MLflowRequestFailed):
            mreg.register_model("m", None)
        monkeypatch.undo()
        assert [int(v["version"]) for v in raw.versions("m")] == [1]
        assert [str(v.version) for v in mreg.list_versions("m")] == ["v1.0.0"]
        assert str(mreg.register_model("m", None).version) == "v1.0.1"
        assert mreg.verify_audit_chain() is None

    def test_missing_artifact_is_a_clear_error(
        self, mreg: MLflowRegistry, raw: Raw, mlflow_uri: str, tmp_path: Path
    ) -> None:
        """An artifact deleted on the server: NotFound naming the artifact and the server."""
        mreg.register_model("m", {"x": 1})
        source = raw.version("m", 1)["source"]
        path = source.removeprefix("mlflow-artifacts:/")
        raw.http.delete(f"/api/2.0/mlflow-artifacts/artifacts/{path}/model.pkl").raise_for_status()
        with (
            MLflowRegistry(
                mlflow_uri,
                governance=f"sqlite:///{tmp_path / 'governance.db'}",
                home=tmp_path / "b",
            ) as other,
            pytest.raises(NotFound, match=f"model.pkl is missing on MLflow {mlflow_uri}"),
        ):
            other.get_model("m", version="v1")

    def test_replaced_artifact_is_refused(
        self, mreg: MLflowRegistry, raw: Raw, mlflow_uri: str, tmp_path: Path
    ) -> None:
        """Bytes changed on the server do not match the registered digest: never unpickled."""
        mreg.register_model("m", {"x": 1})
        source = raw.version("m", 1)["source"]
        path = source.removeprefix("mlflow-artifacts:/")
        raw.http.put(
            f"/api/2.0/mlflow-artifacts/artifacts/{path}/model.pkl", content=b"evil"
        ).raise_for_status()
        with MLflowRegistry(
            mlflow_uri, governance=f"sqlite:///{tmp_path / 'governance.db'}", home=tmp_path / "b"
        ) as other:
            with pytest.raises(CorruptArtifact, match="corrupted"):
                other.get_model("m", version="v1")
            assert list(other.artifacts.digests()) == []

    def test_foreign_version_without_artifacts(self, mreg: MLflowRegistry, raw: Raw) -> None:
        """Another client's version whose files are gone: NotFound naming the source."""
        number = raw.foreign_version("m", {})
        with pytest.raises(NotFound, match="has no artifacts at mlflow-artifacts:"):
            mreg.get_model("m", version=number)


class TestReadme:
    def test_the_readme_mlflow_example_runs(
        self, mlflow_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The README's "Providers: MLflow" block runs as written, against the real server."""
        text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
        section = text.split("### Providers: MLflow", 1)[1]
        block = section.split("```python\n", 1)[1].split("```", 1)[0]
        assert 'tracking_uri="http://127.0.0.1:5000"' in block
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("MODELREG_HOME", str(tmp_path / "home"))
        code = compile(block.replace("http://127.0.0.1:5000", mlflow_uri), "README.md", "exec")
        exec(code, {"__name__": "readme"})
        assert (tmp_path / "governance.db").is_file()
