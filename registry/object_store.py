"""Artifacts on object storage (``s3://``, ``gs://``, ``az://``) through fsspec.

Keys are content-addressed as in the local store::

    <bucket>/<prefix>/blobs/sha256/<first two hex>/<64 hex>

A write hashes first and uploads second, so that an object only ever appears
under the key of its own content:

1. **Hash.** A file is read once for its SHA-256 (and, for S3, the MD5 of each
   upload part); a stream is copied into a spool file under the local cache while
   it is hashed; bytes in memory are hashed in place. Memory stays constant: a
   4 MiB buffer, and at most ``UPLOAD_THREADS`` parts in flight.
2. **Deduplicate.** An object already under the key with the right size is read
   back and re-hashed; if it verifies, nothing is uploaded (if not, it is replaced).
3. **Upload and verify.** S3 acknowledges each part's MD5 and the object's
   (``registry.object_fs``), then ``HEAD`` checks the size; other backends, and S3
   under KMS or SSE-C encryption, are read back and re-hashed instead. A mismatch
   removes the object and raises; only then does the registration's transaction
   run, so a version row never points at an unverified object.

An upload interrupted by an exception is aborted (nothing appears); one cut short
by a killed process leaves an unfinished multipart upload, which
``sweep_incomplete`` (``modelreg gc``) aborts, and a blob whose version never
committed is removed by the same collection once no version references it.

Reads hand out local files: ``verify`` downloads the object into a cache under the
registry's home (``<home>/artifact-cache``), in ranges fetched a few at a time and
hashed in order as they are written, and refuses a mismatch with ``CorruptArtifact``
naming the key. A cached copy is re-hashed on every
load, as the local store's files are, and used only while the bucket still holds
the object it was downloaded from (its size and ETag, checked with one ``HEAD``);
a rewritten object is downloaded and verified again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from registry.artifacts import (
    CHUNK,
    ArtifactStore,
    Progress,
    StoredBlob,
    check_digest,
    copy_hashing,
)
from registry.errors import CorruptArtifact, InvalidInput, NotFound, StorageError
from registry.object_fs import ObjectFs, Payload, part_size_for
from registry.storage_uri import StorageUri


class ObjectArtifactStore:
    """A ``BlobStore`` on an fsspec URI, with a verified local cache for reads."""

    def __init__(self, uri: StorageUri, *, cache: Path, fs: ObjectFs | None = None) -> None:
        self.uri = uri
        self._fs = fs if fs is not None else ObjectFs.open(uri)
        self._cache = ArtifactStore(cache)  # verified downloads; its tmp/ holds spools
        self._sources = Path(cache) / "sources"  # which object each cached copy came from

    @property
    def location(self) -> str:
        return str(self.uri)

    @property
    def cache(self) -> ArtifactStore:
        """The local cache of verified downloads."""
        return self._cache

    def key_path(self, digest: str) -> str:
        """The fsspec path (``bucket/prefix/blobs/sha256/xx/digest``) of a blob."""
        check_digest(digest)
        return self.uri.path("blobs", "sha256", digest[:2], digest)

    def url(self, digest: str) -> str:
        return f"{self.uri.scheme}://{self.key_path(digest)}"

    # -- writes ---------------------------------------------------------------------

    def put_file(self, path: Path, progress: Progress | None = None) -> StoredBlob:
        """Hash the file (SHA-256, and MD5 per upload part), then upload it verified.

        S3 must acknowledge the MD5s taken here, so a file changed between hashing and
        upload is refused rather than stored under the wrong digest.
        """
        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"artifact path {str(path)!r} does not exist or is not a file")
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            step = part_size_for(size)
            sha = hashlib.sha256()
            md5s: list[str] = []
            part = hashlib.md5()  # noqa: S324 -- S3's ETag is an MD5; integrity comes from SHA-256
            in_part = read = 0
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while n := f.readinto(buf):
                chunk = view[:n]
                sha.update(chunk)
                while chunk:
                    take = min(len(chunk), step - in_part)
                    part.update(chunk[:take])
                    in_part += take
                    chunk = chunk[take:]
                    if in_part == step:
                        md5s.append(part.hexdigest())
                        part, in_part = hashlib.md5(), 0  # noqa: S324 -- as above
                read += n
        if in_part or not md5s:  # the last part (an empty file is one empty part)
            md5s.append(part.hexdigest())
        if read != size:
            raise InvalidInput(f"artifact path {str(path)!r} changed size while it was read")
        payload = Payload(size=size, part_size=step, file=path, part_md5=tuple(md5s))
        return self._store(sha.hexdigest(), payload, progress)

    def put_bytes(self, data: bytes) -> StoredBlob:
        payload = Payload(size=len(data), part_size=part_size_for(len(data)), data=data)
        return self._store(hashlib.sha256(data).hexdigest(), payload, None)

    def put_stream(self, source: BinaryIO, progress: Progress | None = None) -> StoredBlob:
        """Spool ``source`` to a local file while hashing it, then upload that file.

        A source that fails midway leaves nothing: the spool file is removed and
        nothing was sent.
        """
        spools = self._cache.root / "tmp"
        spools.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=spools, prefix="spool-")
        spool = Path(name)
        try:
            try:
                digest, size = copy_hashing(source, fd, None)
            finally:
                os.close(fd)
            payload = Payload(size=size, part_size=part_size_for(size), file=spool)
            return self._store(digest, payload, progress)
        finally:
            spool.unlink(missing_ok=True)

    def _store(self, digest: str, payload: Payload, progress: Progress | None) -> StoredBlob:
        path = self.key_path(digest)
        existing = self._fs.info(path)
        if existing is not None and existing.size == payload.size:
            try:
                self._rehash_remote(digest)
            except CorruptArtifact:
                pass  # repair: what we are about to upload is the right content
            else:
                if progress is not None:
                    progress(payload.size)
                return StoredBlob(digest, payload.size, created=False)
        trusted = self._fs.upload(payload, path, progress)
        stored = self._fs.info(path)
        if stored is None or stored.size != payload.size:
            with contextlib.suppress(StorageError):
                self._fs.remove(path)
            got = "no object" if stored is None else f"{stored.size} bytes"
            raise StorageError(
                f"artifact store {self.uri}: after uploading {payload.size} bytes to "
                f"{self.url(digest)} the store reports {got}; nothing was kept"
            )
        if not trusted:
            try:
                self._rehash_remote(digest)
            except (CorruptArtifact, NotFound):
                with contextlib.suppress(StorageError):
                    self._fs.remove(path)
                raise
        return StoredBlob(digest, payload.size, created=True)

    # -- reads ----------------------------------------------------------------------

    def _rehash_remote(self, digest: str) -> None:
        """Stream the object and hash it; ``CorruptArtifact`` names the key."""
        path = self.key_path(digest)
        info = self._fs.info(path)
        if info is None:
            raise self._missing(digest)
        h = hashlib.sha256()
        try:
            with self._fs.reader(path, info.size) as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except FileNotFoundError:
            raise self._missing(digest) from None
        if h.hexdigest() != digest:
            raise self._corrupt(digest, h.hexdigest())

    def _missing(self, digest: str) -> NotFound:
        return NotFound(
            f"artifact {digest[:12]} is missing from {self.uri} (no object {self.url(digest)})"
        )

    def _corrupt(self, digest: str, got: str) -> CorruptArtifact:
        return CorruptArtifact(
            f"artifact {digest[:12]} at {self.url(digest)} is corrupted: its content hashes "
            f"to {got[:12]}"
        )

    def exists(self, digest: str) -> bool:
        return self._fs.info(self.key_path(digest)) is not None

    def _local(self, digest: str) -> tuple[Path, bool]:
        """The cached copy's path, downloading it unless the cache holds a copy of the
        object the bucket has now; True when it was just downloaded (and verified)."""
        path = self.key_path(digest)
        info = self._fs.info(path)
        if info is None:
            raise self._missing(digest)
        source = self._sources / digest
        with contextlib.suppress(FileNotFoundError):
            if self._cache.exists(digest) and source.read_text() == info.identity:
                return self._cache.path_for(digest), False
        self._drop_cached(digest)
        try:
            with self._fs.reader(path, info.size) as f:
                blob = self._cache.put_stream(f)  # type: ignore[arg-type]
        except FileNotFoundError:
            raise self._missing(digest) from None
        if blob.digest != digest:
            if blob.created:
                self._cache.delete(blob.digest)
            raise self._corrupt(digest, blob.digest)
        self._sources.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._sources, prefix=f".{digest[:12]}-")
        with os.fdopen(fd, "w") as f:
            f.write(info.identity)
        os.replace(tmp, source)  # concurrent loads of one blob each write a whole record
        return self._cache.path_for(digest), True

    def _drop_cached(self, digest: str) -> None:
        (self._sources / digest).unlink(missing_ok=True)
        self._cache.delete(digest)

    def verify(self, digest: str) -> Path:
        """A verified local copy (downloaded, or cached and re-hashed now)."""
        path, fresh = self._local(digest)
        if fresh:
            return path
        try:
            return self._cache.verify(digest)
        except (CorruptArtifact, NotFound):
            self._drop_cached(digest)  # the local copy went bad: fetch it again
            return self._local(digest)[0]

    def read_bytes(self, digest: str) -> bytes:
        """A whole blob, re-hashed as it is read from the cache (after any download)."""
        self._local(digest)
        try:
            return self._cache.read_bytes(digest)
        except (CorruptArtifact, NotFound):
            self._drop_cached(digest)
            self._local(digest)
            return self._cache.read_bytes(digest)

    # -- deletion and garbage collection ------------------------------------------------

    def delete(self, digest: str) -> None:
        self._fs.remove(self.key_path(digest))
        self._drop_cached(digest)

    def _listed(self) -> Iterator[tuple[str, datetime | None]]:
        root = self.uri.path("blobs", "sha256")
        for info in self._fs.find(root):
            parent, _, name = info.path.rpartition("/")
            with contextlib.suppress(InvalidInput):
                if parent.endswith("/" + check_digest(name)[:2]):
                    yield name, info.modified

    def digests(self) -> Iterator[str]:
        for digest, _ in self._listed():
            yield digest

    def blobs(self) -> Iterator[tuple[str, datetime]]:
        for digest, modified in self._listed():
            if modified is not None:  # unknown age: never old enough to collect
                yield digest, modified

    def sweep_incomplete(self, before: datetime) -> list[str]:
        """Abort uploads abandoned before ``before``; remove stale local spool files."""
        aborted = self._fs.abandoned_uploads(self.uri.path("blobs"), before)
        return aborted + self._cache.sweep_incomplete(before)
