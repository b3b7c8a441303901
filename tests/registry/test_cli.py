"""The modelreg command as a user runs it: a real subprocess, exit codes, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``modelreg ARGS`` as a real process with its home under ``tmp_path``."""
    env = {**os.environ, "MODELREG_HOME": str(tmp_path / "home"), "MODELREG_ACTOR": "cli"}
    return subprocess.run(
        [sys.executable, "-m", "registry", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    return lambda *args: cli(tmp_path, *args)


def test_register_promote_rollback_history(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The core verbs work end to end and --json output parses."""
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    r = run("register", "fraud", str(model), "--metadata", '{"accuracy": 0.8}', "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"] == "v1.0.0"
    assert run("register", "fraud", str(model), "--metadata", '{"accuracy": 0.9}').returncode == 0
    for version in ("v1.0.0", "v1.0.1"):
        assert run("promote", "fraud", version, "--to", "staging").returncode == 0
        assert run("promote", "fraud", version, "--to", "production").returncode == 0
    r = run("rollback", "fraud", "--reason", "false positives", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"] == "v1.0.0"
    history = json.loads(run("history", "fraud", "--json").stdout)
    assert [h["kind"] for h in history][-2:] == ["rollback", "rollback"]
    listed = json.loads(run("list", "--json").stdout)
    assert listed == [
        {
            "name": "fraud",
            "versions": 2,
            "latest": "v1.0.1",
            "production": "v1.0.0",
            "created_at": listed[0]["created_at"],
        }
    ]
    info = json.loads(run("info", "fraud", "--json").stdout)
    assert info["stage"] == "production"
    assert {f["name"] for f in info["files"]} >= {"model.bin", "metadata.json"}
    table = run("list", "fraud").stdout
    assert "v1.0.1" in table
    assert "archived" in table
    r = run("compare", "fraud", "v1.0.0", "v1.0.1")
    assert "Accuracy: 0.8 → 0.9 (+12.5%) ✅" in r.stdout
    assert (
        run("deprecate", "fraud", "v1.0.1", "--reason", "bad", "--eol", "2030-01-01").returncode
        == 0
    )
    assert "v1.0.1" in run("list", "--deprecated").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("info", "nope"), "error: no registry database at "),
        (("register", "../x"), "error: invalid model name '../x'"),
        (("register", "m", "/does/not/exist"), "error: artifact path '/does/not/exist' does not"),
        (("register", "m", "--version", "three"), "error: invalid version 'three'"),
    ],
)
def test_errors_are_one_line_without_traceback(run, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    """Failures exit 1 with a single line naming what was wrong."""
    r = run(*args)
    assert r.returncode == 1
    assert r.stderr.startswith(message), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_debug_shows_traceback(run) -> None:  # type: ignore[no-untyped-def]
    """--debug is for developers: the traceback is shown."""
    r = run("--debug", "info", "nope")
    assert r.returncode != 0
    assert "Traceback" in r.stderr


def test_illegal_transition_exit_code(run) -> None:  # type: ignore[no-untyped-def]
    """dev -> production is refused with both stages named."""
    assert run("register", "m").returncode == 0
    r = run("promote", "m", "v1", "--to", "production")
    assert r.returncode == 1
    assert "dev -> production" in r.stderr


def test_auto_rollback_show_set_clear(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`modelreg auto-rollback` sets, shows and clears the triggers the daemon's guard
    judges: registry-wide without a name, a model's own replacing them."""
    assert "no auto-rollback triggers" in run("auto-rollback").stdout
    r = run("auto-rollback", "--error-rate", "0.05", "--latency", "200", "--window", "30m")
    assert r.returncode == 0, r.stderr
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    assert run("register", "fraud", str(model)).returncode == 0
    inherited = json.loads(run("auto-rollback", "fraud", "--json").stdout)
    assert [(t["metric"], t["threshold"], t["window_s"]) for t in inherited] == [
        ("error_rate", 0.05, 1800.0),
        ("latency_p95", 200.0, 1800.0),
    ]
    r = run("auto-rollback", "fraud", "--accuracy-drop", "0.1", "--consecutive", "3", "--json")
    assert r.returncode == 0, r.stderr
    (own,) = json.loads(r.stdout)
    assert (own["compare"], own["threshold"], own["consecutive"]) == ("drop", 0.1, 3)
    assert "drop of accuracy above 0.1" in run("auto-rollback", "fraud").stdout
    assert run("auto-rollback", "fraud", "--clear").returncode == 0
    assert len(json.loads(run("auto-rollback", "fraud", "--json").stdout)) == 2  # inherited again

    bad = run("auto-rollback", "fraud", "--error-rate", "2")
    assert bad.returncode == 1
    assert "between 0 and 1" in bad.stderr
    assert run("auto-rollback", "fraud", "--clear", "--latency", "3").returncode == 2
    assert "no registered model named 'ghost'" in run("auto-rollback", "ghost").stderr


@pytest.mark.s3
def test_artifacts_on_s3(run, tmp_path: Path, s3_uri: str) -> None:  # type: ignore[no-untyped-def]
    """`--artifacts s3://...` (or MODELREG_ARTIFACTS) stores and verifies through S3;
    credentials and endpoint come from the AWS_* environment."""
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights" * 1000)
    r = run("--artifacts", s3_uri, "register", "fraud", str(model), "--json")
    assert r.returncode == 0, r.stderr
    digest = json.loads(r.stdout)["artifact"]["digest"]
    import s3fs

    key = f"{s3_uri.removeprefix('s3://')}/blobs/sha256/{digest[:2]}/{digest}"
    assert s3fs.S3FileSystem(skip_instance_cache=True).cat_file(key) == model.read_bytes()
    r = run("--artifacts", s3_uri, "gc", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["location"] == s3_uri


def test_bad_artifacts_uri_is_one_line(run) -> None:  # type: ignore[no-untyped-def]
    """A refused URI exits 1 with one line naming it."""
    r = run("--artifacts", "s3://models/a/../b", "list")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "error: artifact store URI 's3://models/a/../b': "
        "a '..' segment is not allowed in the prefix"
    ]


def test_gc_removes_old_orphans(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`modelreg gc` removes an unreferenced blob and a dead temp file once they are
    older than --older-than, and keeps the blobs versions use."""
    from registry.artifacts import ArtifactStore

    model = tmp_path / "model.bin"
    model.write_bytes(b"used")
    assert run("register", "fraud", str(model)).returncode == 0
    store = ArtifactStore(tmp_path / "home" / "artifacts")
    orphan = store.put_bytes(b"orphan")
    dead = store.root / "tmp" / "put-dead"
    dead.write_bytes(b"half")
    week_ago = time.time() - 7 * 86400
    for path in (store.path_for(orphan.digest), dead):
        os.utime(path, (week_ago, week_ago))
    dry = json.loads(run("gc", "--dry-run", "--json").stdout)
    assert dry["removed"] == [orphan.digest]
    assert store.exists(orphan.digest)
    r = run("gc", "--older-than", "1d")
    assert r.returncode == 0, r.stderr
    assert "removed 1 unreferenced blob(s)" in r.stdout
    assert "removed 1 abandoned write(s)" in r.stdout
    assert not store.exists(orphan.digest)
    assert not dead.exists()
    assert len(list(store.digests())) == 1
    assert json.loads(run("gc", "--json").stdout)["removed"] == []
