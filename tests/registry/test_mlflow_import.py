"""``modelreg import mlflow`` and the ``--mlflow`` CLI option against a real mlflow server.

The CLI runs as a real process (as in test_cli.py); MLflow's side is set up with
MLflowRegistry and with raw REST calls as another client would make them.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitors.testing import free_port
from registry import MLflowRegistry, ModelRegistry
from registry.schema import audit_t
from tests.clock import Clock
from tests.registry.test_mlflow import Raw

pytestmark = [pytest.mark.mlflow, pytest.mark.integration]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELREG_HOME": str(tmp_path / "target"), "MODELREG_ACTOR": "importer"}
    return subprocess.run(
        [sys.executable, "-m", "registry", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


@pytest.fixture
def raw(mlflow_uri: str) -> Iterator[Raw]:
    client = Raw(mlflow_uri)
    yield client
    client.http.close()


@pytest.fixture
def source(mlflow_uri: str, tmp_path: Path, clock: Clock, raw: Raw) -> MLflowRegistry:
    """On MLflow: 'fraud' v1.0.0 (production) and v1.1.0 (staging) made by modelreg, one
    version of 'fraud' and one of 'vision' (a model directory) made by another client."""
    reg = MLflowRegistry(
        mlflow_uri,
        governance=f"sqlite:///{tmp_path / 'source.db'}",
        home=tmp_path / "source",
        actor="alice",
        clock=clock,
    )
    reg.register_model(
        "fraud",
        {"weights": [1, 2, 3]},
        metadata={"accuracy": 0.85},
        features=["amount", "merchant"],
        signature={"inputs": {"amount": "float"}, "outputs": {"p": "float"}},
        tags=["fraud"],
        requirements="xgboost==1.7.0\n",
    )
    reg.promote_model("fraud", "v1.0.0", to_stage="staging")
    reg.promote_model("fraud", "v1.0.0", to_stage="production")
    model_file = tmp_path / "model.onnx"
    model_file.write_bytes(b"onnx" * 100)
    reg.register_model(
        "fraud",
        model_file,
        features=["amount", "merchant", "hour"],
        signature={"inputs": {"amount": "float"}, "outputs": {"p": "float"}},
        requirements="onnxruntime==1.17\n",
    )
    reg.promote_model("fraud", "v1.1.0", to_stage="staging")
    raw.foreign_version("fraud", {"model.bin": b"\x00" * 10})
    raw.foreign_version(
        "vision",
        {
            "MLmodel": b"flavors: {}\n",
            "data/weights.bin": b"\x01\x02",
            "requirements.txt": b"torch\n",
        },
    )
    raw.post("registered-models/alias", {"name": "vision", "alias": "production", "version": "1"})
    reg.close()
    return reg


def test_import_copies_versions_files_and_stages(
    source: MLflowRegistry, mlflow_uri: str, tmp_path: Path
) -> None:
    """Ours keep their semver and digest; others' N becomes vN.0.0 with their origin."""
    r = cli(tmp_path, "import", "mlflow", "--tracking-uri", mlflow_uri, "--json")
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    assert (done["imported"], done["unchanged"]) == (4, 0)
    assert [(v["name"], v["mlflow_version"], v["version"]) for v in done["versions"]] == [
        ("fraud", 1, "v1.0.0"),
        ("fraud", 2, "v1.1.0"),
        ("fraud", 3, "v3.0.0"),
        ("vision", 1, "v1.0.0"),
    ]
    with ModelRegistry(home=tmp_path / "target") as target:
        v1 = target.get_model_version("fraud", "v1.0.0")
        assert v1.stage == "production"
        assert v1.metadata["accuracy"] == 0.85
        assert v1.features == ("amount", "merchant")
        assert v1.tags == ("fraud",)
        assert target.get_model("fraud", version="v1.0.0") == {"weights": [1, 2, 3]}
        assert target.get_file("fraud", "v1.0.0", "requirements.txt") == b"xgboost==1.7.0\n"
        assert target.get_model_version("fraud", "v1.1.0").stage == "staging"
        assert Path(target.get_model("fraud", version="v1.1.0")).read_bytes() == b"onnx" * 100
        v3 = target.get_model_version("fraud", "v3.0.0")
        assert v3.metadata["mlflow"]["version"] == 3
        assert v3.metadata["mlflow"]["tracking_uri"] == mlflow_uri
        assert Path(target.get_model("fraud", version="v3.0.0")).read_bytes() == b"\x00" * 10
        vision = target.get_model_version("vision", "v1")
        assert vision.stage == "production"
        assert vision.artifact_name == "mlflow-model.tar"
        with tarfile.open(target.get_model("vision", version="v1")) as tar:
            assert sorted(tar.getnames()) == ["MLmodel", "data/weights.bin", "requirements.txt"]
        assert target.get_file("vision", "v1", "requirements.txt") == b"torch\n"
        assert target.verify_audit_chain() is None


def test_rerun_is_idempotent(source: MLflowRegistry, mlflow_uri: str, tmp_path: Path) -> None:
    """A second run copies nothing and writes no audit event."""
    assert cli(tmp_path, "import", "mlflow", "--tracking-uri", mlflow_uri).returncode == 0
    with ModelRegistry(home=tmp_path / "target") as target, target.store.read() as conn:
        events = conn.execute(sa.select(sa.func.count()).select_from(audit_t)).scalar_one()
    r = cli(tmp_path, "import", "mlflow", "--tracking-uri", mlflow_uri, "--json")
    assert r.returncode == 0, r.stderr
    assert (json.loads(r.stdout)["imported"], json.loads(r.stdout)["unchanged"]) == (0, 4)
    with ModelRegistry(home=tmp_path / "target") as target, target.store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_t)).scalar_one() == events


def test_one_model_and_the_progress_bar(
    source: MLflowRegistry, mlflow_uri: str, tmp_path: Path
) -> None:
    """--model limits the copy; the human output ends with a one-line summary."""
    r = cli(tmp_path, "import", "mlflow", "--tracking-uri", mlflow_uri, "--model", "vision")
    assert r.returncode == 0, r.stderr
    assert "imported 1 versions, 0 already here" in r.stdout
    with ModelRegistry(home=tmp_path / "target") as target:
        assert [m.name for m in target.list_models()] == ["vision"]
    r = cli(tmp_path, "import", "mlflow", "--tracking-uri", mlflow_uri, "--model", "nope")
    assert r.returncode == 1
    assert r.stderr.strip() == f"error: no registered model 'nope' in MLflow {mlflow_uri}"


def test_missing_artifact_stops_with_its_name(mlflow_uri: str, raw: Raw, tmp_path: Path) -> None:
    """A version without artifacts: one line naming it; the versions before it are kept."""
    raw.foreign_version("m", {"model.bin": b"ok"})
    raw.foreign_version("m", {})
    r = cli(tmp_path, "import", "mlflow", "--tracking-uri", mlflow_uri)
    assert r.returncode == 1
    assert "error: m version 2: MLflow" in r.stderr
    assert "has no artifacts at mlflow-artifacts:" in r.stderr
    with ModelRegistry(home=tmp_path / "target") as target:
        assert [str(v.version) for v in target.list_versions("m")] == ["v1.0.0"]


def test_unreachable_server_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """The error names the URI; the target registry gets no model."""
    uri = f"http://127.0.0.1:{free_port()}"
    r = cli(tmp_path, "import", "mlflow", "--tracking-uri", uri)
    assert r.returncode == 1
    assert r.stderr.startswith(f"error: MLflow tracking server {uri} is unreachable")
    assert len(r.stderr.strip().splitlines()) == 1
    with ModelRegistry(home=tmp_path / "target") as target:
        assert target.list_models() == []


def test_conflicting_version_is_refused(
    source: MLflowRegistry, mlflow_uri: str, tmp_path: Path
) -> None:
    """A v1.0.0 already here with other bytes is not overwritten."""
    with ModelRegistry(home=tmp_path / "target") as target:
        target.register_model("fraud", {"other": True}, requirements="")
    r = cli(tmp_path, "import", "mlflow", "--tracking-uri", mlflow_uri, "--model", "fraud")
    assert r.returncode == 1
    assert "fraud v1.0.0 already exists here with another artifact" in r.stderr


def test_cli_on_mlflow_and_audit_verify(mlflow_uri: str, tmp_path: Path, raw: Raw) -> None:
    """--mlflow makes the CLI an MLflowRegistry; --db is its governance database."""
    gov = f"sqlite:///{tmp_path / 'gov.db'}"
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps({"x": 1}))
    base = ("--mlflow", mlflow_uri, "--db", gov)
    r = cli(tmp_path, *base, "register", "fraud", str(model), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["mlflow"]["version"] == 1
    assert cli(tmp_path, *base, "promote", "fraud", "v1", "--to", "staging").returncode == 0
    assert raw.aliases("fraud") == {"v1_0_0": 1, "staging": 1}
    r = cli(tmp_path, *base, "audit", "verify", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["intact"] is True
    assert cli(tmp_path, "--db", gov, "audit", "verify").returncode == 0
