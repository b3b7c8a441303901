"""modelreg backup / restore: consistent under write load, verified before anything is
replaced, refusing to lose newer changes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from registry import IntegrityError, InvalidInput, ModelRegistry, restore_registry
from registry.ops.backup import MANIFEST


def _register(registry: ModelRegistry, tmp: Path, name: str, n: int) -> None:
    artifact = tmp / f"{name}-{n}.bin"
    artifact.write_bytes(f"{name} weights {n} ".encode() * (n + 1))
    registry.register_model(name, str(artifact), metadata={"n": n})


def _versions(registry: ModelRegistry) -> dict[tuple[str, str], str | None]:
    return {
        (m.name, str(v.version)): v.artifact_digest
        for m in registry.list_models()
        for v in registry.list_versions(m.name)
    }


def _check_restored(
    home: Path, source: dict[tuple[str, str], str | None], url: str | None = None
) -> int:
    """The restored registry: audit chain intact, every artifact verifies, and every
    version is one the source has, with the same artifact."""
    with ModelRegistry(url, home=home, create=False) as restored:
        assert restored.verify_audit_chain() is None
        versions = _versions(restored)
        for (name, version), digest in versions.items():
            assert source[(name, version)] == digest
            if digest is not None:
                restored.artifacts.verify(digest)
        return len(versions)


def test_a_backup_under_write_load_restores_whole(tmp_path: Path) -> None:
    """Writers go on while the backup runs; what it holds is a consistent snapshot
    (chain intact, every artifact there), restored into an empty home."""
    home = tmp_path / "home"
    with ModelRegistry(home=home, actor="writer") as registry:
        for n in range(20):
            _register(registry, tmp_path, "fraud", n)
        stop = threading.Event()
        written: list[int] = []

        def write() -> None:
            n = 100
            while not stop.is_set():
                _register(registry, tmp_path, "churn", n)
                written.append(n)
                n += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            while len(written) < 3:
                stop.wait(0.01)
            report = registry.backup(tmp_path / "backup")
        finally:
            stop.set()
            writer.join()
        source = _versions(registry)
    assert report.artifacts >= 20
    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    assert manifest["audit_events"] == report.audit_events
    restored = restore_registry(tmp_path / "backup", home=tmp_path / "restored")
    assert restored.artifacts_restored == report.artifacts
    count = _check_restored(tmp_path / "restored", source)
    assert 20 + 3 <= count <= len(source)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def _backed_up(tmp_path: Path) -> tuple[Path, Path, dict[tuple[str, str], str | None]]:
    home = tmp_path / "home"
    with ModelRegistry(home=home, actor="writer") as registry:
        for n in range(3):
            _register(registry, tmp_path, "fraud", n)
        registry.backup(tmp_path / "backup")
        return home, tmp_path / "backup", _versions(registry)


@pytest.mark.parametrize("damaged", ["artifact", "database", "manifest"])
def test_a_damaged_backup_is_refused_before_anything_is_replaced(
    tmp_path: Path, damaged: str
) -> None:
    home, backup, _ = _backed_up(tmp_path)
    if damaged == "artifact":
        blob = next((backup / "artifacts").iterdir())
        data = bytearray(blob.read_bytes())
        data[0] ^= 0x01  # one bit
        blob.write_bytes(bytes(data))
    elif damaged == "database":
        with (backup / "registry.db").open("r+b") as file:
            file.seek(200)
            file.write(b"\xff")
    else:
        (backup / MANIFEST).write_text("{")
    (home / "registry.db").write_bytes(b"")  # the registry is lost: restore is the way back
    with pytest.raises(IntegrityError):
        restore_registry(backup, home=home)
    assert (home / "registry.db").read_bytes() == b""  # nothing replaced


def test_a_registry_with_newer_changes_needs_force(tmp_path: Path) -> None:
    home, backup, source = _backed_up(tmp_path)
    with ModelRegistry(home=home, actor="writer") as registry:
        _register(registry, tmp_path, "fraud", 9)
    with pytest.raises(InvalidInput, match="audit events more than backup"):
        restore_registry(backup, home=home)
    with ModelRegistry(home=home, create=False) as registry:
        assert len(_versions(registry)) == 4  # untouched
    report = restore_registry(backup, home=home, force=True)
    assert report.replaced_newer > 0
    assert _check_restored(home, source) == 3


def test_a_registry_in_use_is_not_replaced(tmp_path: Path) -> None:
    home, backup, _ = _backed_up(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
         "c.execute('select 1').fetchall(); print('open', flush=True); time.sleep(60)",
         str(home / "registry.db")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(InvalidInput, match=f"is open in process {holder.pid}"):
            restore_registry(backup, home=home, force=True)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]


def test_a_backup_from_a_newer_modelreg_is_refused(tmp_path: Path) -> None:
    _, backup, _ = _backed_up(tmp_path)
    manifest = json.loads((backup / MANIFEST).read_text())
    manifest["schema_revision"] = "f00dfeedbeef"
    (backup / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(Exception, match="made by a newer modelreg"):
        restore_registry(backup, home=tmp_path / "elsewhere")


def test_the_cli_round_trip_and_its_one_line_errors(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}

    def modelreg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "registry", "--home", str(tmp_path / "h"),
                               *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=120, check=False)  # fmt: skip

    (tmp_path / "m.bin").write_bytes(b"weights")
    assert modelreg("register", "fraud", "m.bin").returncode == 0
    done = modelreg("backup", "bk", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["artifacts"] == 1
    again = modelreg("backup", "bk")
    assert again.returncode == 1
    assert (
        again.stderr.strip().splitlines()
        == ["error: backup destination bk exists and is not an empty directory"]
        or "exists and is not an empty directory" in again.stderr
    )
    (tmp_path / "h" / "registry.db").write_bytes(b"junk")
    assert modelreg("list").returncode == 1
    restored = modelreg("restore", "bk")
    assert restored.returncode == 0, restored.stderr
    assert "restored" in restored.stdout
    assert "fraud" in modelreg("list").stdout
    missing = modelreg("restore", "nowhere")
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr


@pytest.mark.postgres
def test_postgresql_round_trip(pg_url: str, tmp_path: Path) -> None:
    """pg_dump of the registry's schema, then psql back in one transaction."""
    with ModelRegistry(pg_url, home=tmp_path / "home", actor="writer") as registry:
        for n in range(3):
            _register(registry, tmp_path, "fraud", n)
        report = registry.backup(tmp_path / "backup")
        source = _versions(registry)
        _register(registry, tmp_path, "fraud", 7)  # after the backup
    assert report.dialect == "postgresql"
    assert (tmp_path / "backup" / "registry.sql").is_file()
    with pytest.raises(InvalidInput, match="audit events more than backup"):
        restore_registry(tmp_path / "backup", url=pg_url, home=tmp_path / "home")
    restore_registry(tmp_path / "backup", url=pg_url, home=tmp_path / "home", force=True)
    assert _check_restored(tmp_path / "home", source, url=pg_url) == 3


def test_sqlite_backup_is_one_self_contained_file(tmp_path: Path) -> None:
    _, backup, _ = _backed_up(tmp_path)
    assert sorted(p.name for p in backup.iterdir()) == ["artifacts", MANIFEST, "registry.db"]
    with sqlite3.connect(backup / "registry.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
