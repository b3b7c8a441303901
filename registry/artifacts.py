"""Content-addressed artifact stores keyed by SHA-256: what the registry needs of one
(``BlobStore``), the local store (``ArtifactStore``) and ``open_artifact_store``, which
picks the local store for a path and the object store (``registry.object_store``) for
an ``s3://``, ``gs://`` or ``az://`` URI.

Layout under the local store's root::

    blobs/sha256/<first two hex>/<64 hex>   immutable, read-only blobs
    tmp/                                    in-flight writes (same file system)

Writes stream in fixed-size chunks (constant memory for multi-GB files), hash
while writing, start each chunk's writeback at once, fsync the file, rename it into
place and fsync the directory, so a blob is either absent or complete. Reads re-hash
and refuse a mismatch. Paths are built only from validated hex digests: nothing a
caller passes reaches the file system as a path component except a source file it
asks us to read.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from registry import faults
from registry.errors import CorruptArtifact, InvalidInput, NotFound, StorageError
from registry.storage_uri import StorageUri

CHUNK = 4 << 20
_DIGEST = re.compile(r"[0-9a-f]{64}")

Progress = Callable[[int], None]
"""Called with the number of bytes just written."""


# Errors of the disk the store writes to, named as the store's (``StorageError``).
_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


@dataclass(frozen=True, slots=True)
class StoredBlob:
    digest: str
    size: int
    created: bool
    """False when identical content was already stored (deduplicated)."""


class BlobStore(Protocol):
    """What the registry calls on an artifact store (local directory or object storage).

    Writes are durable and verified before they return, so a registration's
    transaction only ever references complete blobs; reads re-hash and raise
    ``CorruptArtifact`` on a mismatch. ``verify`` hands out a local, verified file
    (an object store downloads it into a cache under the registry's home).
    """

    @property
    def location(self) -> str:
        """Where the blobs live, for messages: a directory or a URI."""
        ...

    def exists(self, digest: str) -> bool: ...

    def put_stream(self, source: BinaryIO, progress: Progress | None = None) -> StoredBlob: ...

    def put_file(self, path: Path, progress: Progress | None = None) -> StoredBlob: ...

    def put_bytes(self, data: bytes) -> StoredBlob: ...

    def verify(self, digest: str) -> Path:
        """A local file holding the blob, re-hashed; ``CorruptArtifact``/``NotFound``."""
        ...

    def read_bytes(self, digest: str) -> bytes: ...

    def delete(self, digest: str) -> None:
        """Remove a blob; the caller has checked (under the write lock) that no version
        references it."""
        ...

    def digests(self) -> Iterator[str]: ...

    def blobs(self) -> Iterator[tuple[str, datetime]]:
        """Every stored blob's digest with when it was written (UTC), for garbage collection."""
        ...

    def sweep_incomplete(self, before: datetime) -> list[str]:
        """Remove writes abandoned before ``before`` (temp files, unfinished uploads);
        return what was removed."""
        ...


def open_artifact_store(location: Path | StorageUri, *, cache: Path) -> BlobStore:
    """The local store for a directory; the object store for a URI, with its local
    download cache at ``cache``. Nothing is contacted yet: the first use of a remote
    store raises ``StorageError`` naming the URI if it cannot be reached."""
    if isinstance(location, StorageUri):
        # Imported here: fsspec loads only when a registry uses object storage.
        from registry.object_store import ObjectArtifactStore  # noqa: PLC0415

        return ObjectArtifactStore(location, cache=cache)
    return ArtifactStore(location)


def check_digest(digest: str) -> str:
    """``digest`` if it is 64 lowercase hex characters (the only thing keys are built from)."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidInput(f"invalid SHA-256 digest {digest!r}")
    return digest


def copy_hashing(source: BinaryIO, fd: int, progress: Progress | None) -> tuple[str, int]:
    """Copy ``source`` to the open file ``fd`` in ``CHUNK`` blocks, hashing as it goes;
    fsync; return (SHA-256 hex, size).

    One pass through one reused buffer: each block is hashed and written from the
    same bytes, so the digest is that of what was written even if the source changes
    meanwhile (an in-kernel ``copy_file_range`` would need a second read to hash).
    Each block's writeback starts as soon as it is written, so the disk works while
    the next blocks are hashed and the final fsync waits only for the last ones.
    """
    h = hashlib.sha256()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    readinto = getattr(source, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(buf)
            chunk = view[:n] if n else b""
        else:
            chunk = source.read(CHUNK)
            n = len(chunk)
        if not n:
            break
        h.update(chunk)
        _write_all(fd, chunk)
        _start_writeback(fd, size, n)
        size += n
        if progress is not None:
            progress(n)
    os.fsync(fd)
    return h.hexdigest(), size


def _write_all(fd: int, chunk: bytes | memoryview) -> None:
    written = 0
    while written < len(chunk):
        written += os.write(fd, chunk[written:])


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a just-written range of ``fd`` to disk, without waiting; a hint.

    Left alone, dirty pages wait in memory (up to a tenth of RAM) until the fsync,
    which then writes the whole file while nothing else happens. On Linux
    ``POSIX_FADV_DONTNEED`` starts writeback of the range's dirty pages at once (and
    drops only pages already clean, normally none of them). A failing disk is
    reported by the fsync that follows, so errors of the hint itself are ignored.
    """
    if _FADVISE is not None:
        with contextlib.suppress(OSError):
            _FADVISE(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _advise_sequential(fd: int) -> None:
    """Tell the kernel ``fd`` is read front to back (a larger read-ahead); a hint."""
    if _FADVISE is not None:
        with contextlib.suppress(OSError):
            _FADVISE(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)


_FADVISE = getattr(os, "posix_fadvise", None)  # absent on macOS: the hints do nothing


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArtifactStore:
    """Local-filesystem blob store; the registry keeps which version uses which digest."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Made by the first write, not here: opening a registry to read creates nothing.
        self._blobs = self.root / "blobs" / "sha256"
        self._tmp = self.root / "tmp"

    @property
    def location(self) -> str:
        return str(self.root)

    def path_for(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives (whether or not it exists)."""
        check_digest(digest)
        return self._blobs / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def put_stream(self, source: BinaryIO, progress: Progress | None = None) -> StoredBlob:
        """Store everything ``source`` yields; return its digest and size. A failing
        disk (full, read-only, an I/O error) is ``StorageError`` naming this store; the
        partial temp file is removed."""
        try:
            return self._put_stream(source, progress)
        except OSError as exc:
            if exc.errno not in _DISK_ERRORS:  # e.g. the source failing: not the store's
                raise
            raise StorageError(
                f"cannot store the artifact in {self.root}: {exc.strerror or exc} (nothing "
                "was registered)"
            ) from exc

    def _put_stream(self, source: BinaryIO, progress: Progress | None) -> StoredBlob:
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._blobs.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        tmp = Path(tmp_name)
        try:
            faults.point("blob_write")  # tests: a disk error (EIO) as the bytes go down
            digest, size = copy_hashing(source, fd, progress)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        final = self.path_for(digest)
        if final.is_file():
            try:
                self.verify(digest)
            except CorruptArtifact:
                final.unlink()  # repair: our temp file holds the right bytes
            else:
                tmp.unlink()
                return StoredBlob(digest, size, created=False)
        final.parent.mkdir(exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        faults.point("blob_stored")  # tests: a crash with the blob stored, no version yet
        return StoredBlob(digest, size, created=True)

    def put_file(self, path: Path, progress: Progress | None = None) -> StoredBlob:
        """Store a copy of the file at ``path``."""
        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"artifact path {str(path)!r} does not exist or is not a file")
        with open(path, "rb", buffering=0) as f:
            _advise_sequential(f.fileno())
            return self.put_stream(f, progress)

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self.put_stream(io.BytesIO(data))

    def verify(self, digest: str) -> Path:
        """Re-hash the blob; return its path, or raise ``CorruptArtifact``/``NotFound``."""
        path = self.path_for(digest)
        h = hashlib.sha256()
        try:
            with open(path, "rb", buffering=0) as f:
                _advise_sequential(f.fileno())
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                while n := f.readinto(buf):
                    h.update(view[:n])
        except FileNotFoundError:
            raise NotFound(f"artifact {digest[:12]} is missing from {self._blobs}") from None
        if h.hexdigest() != digest:
            raise CorruptArtifact(
                f"artifact {digest[:12]} at {path} is corrupted: its content hashes to "
                f"{h.hexdigest()[:12]}"
            )
        return path

    def read_bytes(self, digest: str) -> bytes:
        """Read a whole blob, verified; meant for small files such as metadata.json."""
        data = self.path_for(digest).read_bytes() if self.exists(digest) else None
        if data is None:
            raise NotFound(f"artifact {digest[:12]} is missing from {self._blobs}")
        if hashlib.sha256(data).hexdigest() != digest:
            raise CorruptArtifact(f"artifact {digest[:12]} is corrupted")
        return data

    def delete(self, digest: str) -> None:
        """Remove a blob; the caller has checked no version references it."""
        with contextlib.suppress(FileNotFoundError):
            self.path_for(digest).unlink()

    def digests(self) -> Iterator[str]:
        if not self._blobs.is_dir():
            return
        for sub in self._blobs.iterdir():
            if sub.is_dir():
                yield from (p.name for p in sub.iterdir() if _DIGEST.fullmatch(p.name))

    def blobs(self) -> Iterator[tuple[str, datetime]]:
        for digest in self.digests():
            with contextlib.suppress(FileNotFoundError):
                mtime = self.path_for(digest).stat().st_mtime
                yield digest, datetime.fromtimestamp(mtime, UTC)

    def sweep_incomplete(self, before: datetime) -> list[str]:
        """Remove temp files of writes that died (a killed process) before ``before``."""
        removed: list[str] = []
        cutoff = before.timestamp()
        if not self._tmp.is_dir():
            return removed
        for path in self._tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(str(path))
        return removed
