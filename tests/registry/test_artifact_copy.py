"""How the local store copies a source: the bytes, the digest, the writeback hints and
the failpoints on the way."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from registry import artifacts, faults
from registry.artifacts import CHUNK, ArtifactStore
from registry.errors import StorageError


def _stored(store: ArtifactStore, digest: str) -> bytes:
    return store.path_for(digest).read_bytes()


class _ReadOnly:
    """A stream with ``read`` only (no ``readinto``), as some file-like wrappers are."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._data.read(min(n, 1000))  # short reads: the loop must keep going


class _Advice:
    """Records ``posix_fadvise`` calls instead of making them."""

    def __init__(self, error: OSError | None = None) -> None:
        self.calls: list[tuple[int, int, int, int]] = []
        self.error = error

    def __call__(self, fd: int, offset: int, length: int, advice: int) -> None:
        self.calls.append((fd, offset, length, advice))
        if self.error is not None:
            raise self.error


class TestBytes:
    def test_a_file_bigger_than_the_buffer_is_copied_exactly(self, tmp_path: Path) -> None:
        """A file of two buffers and a bit comes back byte for byte under its SHA-256."""
        data = os.urandom(CHUNK * 2 + 123)
        src = tmp_path / "model.bin"
        src.write_bytes(data)
        store = ArtifactStore(tmp_path / "store")
        blob = store.put_file(src)
        assert blob.digest == hashlib.sha256(data).hexdigest()
        assert blob.size == len(data)
        assert _stored(store, blob.digest) == data
        assert store.verify(blob.digest) == store.path_for(blob.digest)

    def test_an_empty_file_is_an_empty_blob(self, tmp_path: Path) -> None:
        """Zero bytes are stored as the empty blob, with the empty string's digest."""
        src = tmp_path / "empty.bin"
        src.write_bytes(b"")
        store = ArtifactStore(tmp_path / "store")
        blob = store.put_file(src)
        assert (blob.digest, blob.size) == (hashlib.sha256(b"").hexdigest(), 0)
        assert _stored(store, blob.digest) == b""

    def test_a_pipe_is_copied_exactly(self, tmp_path: Path) -> None:
        """A source that is not a regular file (a pipe fed by another thread) is copied
        whole: the hints that need a file are skipped, not failed."""
        data = os.urandom(CHUNK + 4567)
        read_fd, write_fd = os.pipe()

        def feed() -> None:
            with os.fdopen(write_fd, "wb") as w:
                w.write(data)

        feeder = threading.Thread(target=feed)
        feeder.start()
        store = ArtifactStore(tmp_path / "store")
        with os.fdopen(read_fd, "rb", buffering=0) as r:
            blob = store.put_stream(r)
        feeder.join()
        assert blob.digest == hashlib.sha256(data).hexdigest()
        assert _stored(store, blob.digest) == data

    @pytest.mark.parametrize("wrap", [io.BytesIO, _ReadOnly], ids=["bytesio", "read-only"])
    def test_in_memory_streams_are_copied_exactly(self, tmp_path: Path, wrap: Any) -> None:
        """A BytesIO and a stream with only ``read`` (short reads) store the same bytes."""
        data = os.urandom(3 * 1000 + 7)
        store = ArtifactStore(tmp_path / "store")
        blob = store.put_stream(wrap(data))
        assert blob.digest == hashlib.sha256(data).hexdigest()
        assert _stored(store, blob.digest) == data


class TestWriteback:
    def test_every_written_range_is_handed_to_writeback(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each chunk's range is sent to writeback as soon as it is written, the ranges
        tiling the file, and the source is read with sequential read-ahead."""
        advice = _Advice()
        monkeypatch.setattr(artifacts, "_FADVISE", advice)
        size = CHUNK * 2 + 123
        src = tmp_path / "model.bin"
        src.write_bytes(os.urandom(size))
        ArtifactStore(tmp_path / "store").put_file(src)
        ranges = [(off, n) for _, off, n, a in advice.calls if a == os.POSIX_FADV_DONTNEED]
        assert ranges == [(0, CHUNK), (CHUNK, CHUNK), (2 * CHUNK, 123)]
        assert any(a == os.POSIX_FADV_SEQUENTIAL for *_, a in advice.calls)

    def test_a_failing_hint_changes_nothing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The hints are advice: one that fails (EIO) is ignored, since the fsync that
        follows reports a failing disk; the blob is stored whole."""
        monkeypatch.setattr(artifacts, "_FADVISE", _Advice(OSError(errno.EIO, "hint")))
        data = os.urandom(CHUNK + 1)
        src = tmp_path / "model.bin"
        src.write_bytes(data)
        store = ArtifactStore(tmp_path / "store")
        blob = store.put_file(src)
        assert _stored(store, blob.digest) == data

    def test_without_fadvise_the_copy_still_works(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Where the platform has no ``posix_fadvise`` (macOS) the hints do nothing."""
        monkeypatch.setattr(artifacts, "_FADVISE", None)
        data = os.urandom(1000)
        store = ArtifactStore(tmp_path / "store")
        assert _stored(store, store.put_bytes(data).digest) == data


class TestFailures:
    def test_a_full_disk_is_a_storage_error_and_leaves_nothing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """ENOSPC from a write is StorageError naming the store; no temp file remains."""
        real_write = os.write
        calls = {"n": 0}

        def write(fd: int, data: Any) -> int:
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(artifacts.os, "write", write)
        src = tmp_path / "model.bin"
        src.write_bytes(os.urandom(CHUNK * 2))
        store = ArtifactStore(tmp_path / "store")
        with pytest.raises(StorageError, match="No space left"):
            store.put_file(src)
        assert list(store.digests()) == []
        assert list((tmp_path / "store" / "tmp").iterdir()) == []

    def test_the_blob_write_failpoint_is_reached_before_any_byte(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``blob_write=error:EIO`` fails the write as a disk would: nothing stored."""
        monkeypatch.setenv(faults.ENV, "blob_write=error:EIO")
        store = ArtifactStore(tmp_path / "store")
        with pytest.raises(StorageError, match="cannot store the artifact"):
            store.put_bytes(b"model")
        assert list(store.digests()) == []
        assert list((tmp_path / "store" / "tmp").iterdir()) == []

    def test_the_blob_stored_failpoint_is_reached_once_the_blob_is_durable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``blob_stored`` fires after the rename: the blob is there, complete."""
        monkeypatch.setenv(faults.ENV, "blob_stored=error:EIO")
        store = ArtifactStore(tmp_path / "store")
        with pytest.raises(StorageError):
            store.put_bytes(b"model")
        digest = hashlib.sha256(b"model").hexdigest()
        assert list(store.digests()) == [digest]
        assert store.read_bytes(digest) == b"model"
