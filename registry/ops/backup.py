"""Backup and restore: ``modelreg backup DEST`` and ``modelreg restore SRC``.

A backup is a directory: the database (SQLite: one file copied with SQLite's online
backup API, a consistent snapshot while writers go on; PostgreSQL: ``pg_dump`` of the
registry's schema), every artifact a version references (verified against its digest
as it is copied), and ``manifest.json`` with the SHA-256 of each file, the schema
revision and the audit trail's length. It is written under a temporary name and
renamed when complete, so a directory named DEST is always a whole backup.

Artifacts are content-addressed and never change, and versions are never deleted, so
the blobs the snapshot references (for PostgreSQL: those referenced after the dump,
a superset) are all there to copy after it.

A restore verifies everything before it replaces anything: the manifest, the
database file's digest, every artifact's bytes against its digest, the schema
revision (one this modelreg knows). It refuses to replace a registry with a longer
audit trail than the backup's (changes made after the backup would be lost) unless
``force``; a registry that cannot be read at all (the reason to restore) is replaced.
SQLite is replaced atomically (the backup copied beside it, then renamed over it)
after checking that no process holds it; PostgreSQL is reloaded with ``psql`` in one
transaction. Missing artifacts are put back into the artifact store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from registry import db
from registry.artifacts import BlobStore, copy_hashing, fsync_dir
from registry.errors import IntegrityError, InvalidInput, RegistryError, UnusableDatabase
from registry.store import Store

__all__ = ["BackupReport", "RestoreReport", "backup", "restore"]

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "registry.db"
POSTGRES_FILE = "registry.sql"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class BackupReport:
    path: str
    database: str  # the source, password hidden
    dialect: str
    schema_revision: str | None
    audit_events: int
    artifacts: int
    artifact_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RestoreReport:
    path: str
    database: str
    schema_revision: str | None
    audit_events: int
    artifacts_restored: int
    artifacts_present: int
    replaced_newer: int  # audit events of the replaced registry past the backup's (force)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- backup ---------------------------------------------------------------------------


def backup(store: Store, artifacts: BlobStore, dest: Path) -> BackupReport:
    """Write a whole backup of ``store``'s database and ``artifacts``' referenced blobs
    to the new directory ``dest``."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInput(f"backup destination {dest} exists and is not an empty directory")
    if not dest.parent.is_dir():
        raise InvalidInput(f"backup destination {dest}: directory {dest.parent} does not exist")
    work = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.partial"
    work.mkdir()
    try:
        if store.dialect == "sqlite":
            name = SQLITE_FILE
            _sqlite_snapshot(store.url, work / name)
            engine = sa.create_engine(f"sqlite:///{work / name}")  # plain: it stays one file
            try:
                digests, revision, events = _contents(engine)
            finally:
                engine.dispose()
        else:
            name = POSTGRES_FILE
            _pg_dump(store, work / name)
            digests, revision, events = _contents(store.engine)
        sizes = _copy_artifacts(artifacts, digests, work / "artifacts")
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            "dialect": store.dialect,
            "source": db.safe_url(store.url),
            "database": {"file": name, "sha256": _sha256(work / name)},
            "schema_revision": revision,
            "audit_events": events,
            "artifacts": sizes,
        }
        _write_synced(work / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        fsync_dir(work)
        if dest.exists():
            dest.rmdir()
        work.rename(dest)
        fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return BackupReport(str(dest), db.safe_url(store.url), store.dialect, revision, events,
                        len(sizes), sum(sizes.values()))  # fmt: skip


def _sqlite_snapshot(url: str, target: Path) -> None:
    """SQLite's online backup: a consistent copy while other connections write."""
    source_path = db.sqlite_path(url)
    assert source_path is not None
    uri = f"{source_path.resolve().as_uri()}?mode=ro"
    with (
        contextlib.closing(sqlite3.connect(uri, uri=True, timeout=60)) as source,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    _fsync(target)


def _libpq(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _schema(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.text("SELECT current_schema()")).scalar_one())


def _pg_dump(store: Store, target: Path) -> None:
    schema = _schema(store.engine)
    command = ["pg_dump", "--clean", "--if-exists", "--no-owner", "--no-privileges",
               f"--schema={schema}", f"--file={target}", _libpq(store.url)]  # fmt: skip
    _run_tool(command, "pg_dump", store.url)
    _fsync(target)


def _run_tool(command: list[str], tool: str, url: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    except FileNotFoundError:
        raise RegistryError(
            f"{tool} is not installed: PostgreSQL backups need the PostgreSQL client tools"
        ) from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RegistryError(f"{tool} failed for {db.safe_url(url)}: {db.without_password(reason)}")


def _contents(engine: sa.Engine) -> tuple[list[str], str | None, int]:
    """Referenced artifact digests, schema revision and audit trail length."""
    with engine.connect() as conn:
        found = conn.execute(  # inline files (content set) live in the database itself
            sa.text("SELECT DISTINCT digest FROM version_file WHERE content IS NULL")
        ).scalars()
        digests = sorted(str(d) for d in found)
        events = int(conn.execute(sa.text("SELECT count(*) FROM audit_event")).scalar_one())
    return digests, db.current_revision(engine), events


def _copy_artifacts(artifacts: BlobStore, digests: list[str], into: Path) -> dict[str, int]:
    into.mkdir()
    sizes: dict[str, int] = {}
    for digest in digests:
        source = artifacts.verify(digest)  # re-hashed: a damaged blob is not backed up
        target = into / digest
        if _copy_hashing(source, target) != digest:
            raise IntegrityError(f"artifact {digest} changed while it was copied from {source}")
        sizes[digest] = target.stat().st_size
    fsync_dir(into)
    return sizes


# -- restore --------------------------------------------------------------------------


def restore(src: Path, *, url: str, artifacts: BlobStore, force: bool = False) -> RestoreReport:
    """Replace the registry at ``url`` (and fill ``artifacts``) from the backup ``src``;
    everything is verified first (see the module docstring)."""
    manifest = _manifest(src)
    database = src / manifest["database"]["file"]
    if _sha256(database) != manifest["database"]["sha256"]:
        raise IntegrityError(f"backup {src}: {database.name} does not match its manifest digest")
    for digest in manifest["artifacts"]:
        blob = src / "artifacts" / digest
        if not blob.is_file() or _sha256(blob) != digest:
            raise IntegrityError(f"backup {src}: artifact {digest} is missing or damaged")
    revision = manifest["schema_revision"]
    if revision is not None and not db.known_revision(revision):
        raise UnusableDatabase(
            f"backup {src} was made by a newer modelreg (schema revision {revision} is unknown "
            "to this one): restore it with that version or later"
        )
    target_path = db.sqlite_path(url)
    dialect = "sqlite" if target_path is not None else "postgresql"
    if dialect != manifest["dialect"]:
        raise InvalidInput(
            f"backup {src} holds a {manifest['dialect']} registry; {db.safe_url(url)} is {dialect}"
        )
    newer = _events_past(url, manifest["audit_events"])
    if newer > 0 and not force:
        raise InvalidInput(
            f"{db.safe_url(url)} has {newer} audit events more than backup {src}: restoring "
            "would lose them (pass --force to replace it anyway)"
        )
    if target_path is not None:
        _replace_sqlite(database, target_path)
    else:
        psql = ["psql", "--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1",
                "--single-transaction", f"--file={database}", _libpq(url)]  # fmt: skip
        _run_tool(psql, "psql", url)
    restored = present = 0
    for digest in manifest["artifacts"]:
        if artifacts.exists(digest):
            present += 1
            continue
        stored = artifacts.put_file(src / "artifacts" / digest)
        if stored.digest != digest:
            raise IntegrityError(f"artifact {digest} was stored as {stored.digest}")
        restored += 1
    return RestoreReport(str(src), db.safe_url(url), revision, manifest["audit_events"],
                         restored, present, max(newer, 0))  # fmt: skip


def _manifest(src: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{src} is not a modelreg backup: it has no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"backup {src}: {MANIFEST} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IntegrityError(f"backup {src}: {MANIFEST} is not a format-{FORMAT} manifest")
    for key in ("dialect", "database", "schema_revision", "audit_events", "artifacts"):
        if key not in manifest:
            raise IntegrityError(f"backup {src}: {MANIFEST} lacks {key!r}")
    return manifest


def _events_past(url: str, events: int) -> int:
    """How many audit events the current registry at ``url`` has beyond ``events``; 0
    when there is none, or it cannot be read (what a restore is for)."""
    path = db.sqlite_path(url)
    if path is not None and not path.exists():
        return 0
    try:
        if path is not None:
            db.check_sqlite_file(path)
            db.check_ours(path)
        engine = db.make_engine(url, create=False)
        try:
            with engine.connect() as conn:
                count = int(conn.execute(sa.text("SELECT count(*) FROM audit_event")).scalar_one())
        finally:
            engine.dispose()
    except (RegistryError, sa.exc.SQLAlchemyError):
        return 0
    return count - events


def _replace_sqlite(backup_file: Path, target: Path) -> None:
    """Copy beside ``target``, then rename over it, once no process holds it."""
    if not target.parent.is_dir():
        raise InvalidInput(f"cannot restore to {target}: directory {target.parent} does not exist")
    if target.exists():
        _require_unused(target)
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.restore")
    try:
        shutil.copyfile(backup_file, staged)
        _fsync(staged)
        for stale in ("-wal", "-shm"):  # the old file's journal must not meet the new one
            Path(f"{target}{stale}").unlink(missing_ok=True)
        os.replace(staged, target)
        fsync_dir(target.parent)
    finally:
        staged.unlink(missing_ok=True)


def _require_unused(target: Path) -> None:
    """No other process may have ``target`` open while it is replaced (it would go on
    writing to the old file): refuse when one has (Linux: its open files under /proc;
    elsewhere the lock alone), then take the exclusive lock and fold the journal in."""
    holders = _holders(target)
    if holders:
        raise InvalidInput(
            f"{target} is open in process {', '.join(map(str, holders))} (a daemon or another "
            "modelreg?): stop it, then restore"
        )
    try:
        with contextlib.closing(sqlite3.connect(target, timeout=2, isolation_level=None)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise InvalidInput(
                f"{target} is in use (a daemon or another modelreg?): stop it, then restore"
            ) from None
    except sqlite3.DatabaseError:
        pass  # damaged: nothing can be using it usefully; it is what is being replaced


def _holders(target: Path) -> list[int]:
    """Other processes with the database (or its journal) open, from /proc."""
    names = {str(target.resolve()) + suffix for suffix in ("", "-wal", "-shm")}
    found: set[int] = set()
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in names:
                        found.add(int(entry.name))
                        break
    return sorted(found)


# -- files ----------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_hashing(source: Path, target: Path) -> str:
    """Copy ``source`` to ``target`` (fsynced), hashing as it goes: the store's copy."""
    with source.open("rb", buffering=0) as reader:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            digest, _ = copy_hashing(reader, fd, None)
        finally:
            os.close(fd)
    return digest


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _fsync(path: Path) -> None:
    with path.open("rb") as file:
        os.fsync(file.fileno())
