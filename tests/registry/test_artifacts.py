"""The content-addressed artifact store."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import pytest

from registry.artifacts import CHUNK, ArtifactStore
from registry.errors import CorruptArtifact, InvalidInput, NotFound


class _Stream(io.RawIOBase):
    """A readable stream of ``size`` pseudo-random bytes that never exists in memory whole."""

    def __init__(self, size: int, fail_at: int | None = None) -> None:
        self.left = size
        self.fail_at = fail_at
        self.sent = 0
        self.block = os.urandom(1 << 16)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        if self.fail_at is not None and self.sent >= self.fail_at:
            raise OSError("source disappeared")
        n = min(len(buf), self.left, len(self.block))
        buf[:n] = self.block[:n]
        self.left -= n
        self.sent += n
        return n


def test_put_and_verify(tmp_path: Path) -> None:
    """Stored bytes hash to their key and read back verified; identical content dedupes."""
    store = ArtifactStore(tmp_path)
    blob = store.put_bytes(b"hello")
    assert blob.digest == hashlib.sha256(b"hello").hexdigest()
    assert blob.created
    assert store.read_bytes(blob.digest) == b"hello"
    assert not store.put_bytes(b"hello").created
    assert oct(store.path_for(blob.digest).stat().st_mode & 0o777) == "0o444"


def test_streaming_uses_constant_memory(tmp_path: Path) -> None:
    """A 64 MiB stream is stored with peak Python allocations near one chunk."""
    store = ArtifactStore(tmp_path)
    tracemalloc.start()
    blob = store.put_stream(_Stream(64 << 20))  # type: ignore[arg-type]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert blob.size == 64 << 20
    assert peak < 3 * CHUNK


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    """A source that fails midway leaves neither a blob nor a temp file."""
    store = ArtifactStore(tmp_path)
    with pytest.raises(OSError, match="disappeared"):
        store.put_stream(_Stream(32 << 20, fail_at=8 << 20))  # type: ignore[arg-type]
    assert list(store.digests()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_corruption_is_detected(tmp_path: Path) -> None:
    """A blob whose bytes changed is refused with its digest named."""
    store = ArtifactStore(tmp_path)
    blob = store.put_bytes(b"x" * 100)
    path = store.path_for(blob.digest)
    path.chmod(0o644)
    path.write_bytes(b"y" * 100)
    with pytest.raises(CorruptArtifact, match=blob.digest[:12]):
        store.verify(blob.digest)
    with pytest.raises(CorruptArtifact):
        store.read_bytes(blob.digest)


def test_only_hex_digests_make_paths(tmp_path: Path) -> None:
    """No caller-supplied key can point outside the store."""
    store = ArtifactStore(tmp_path)
    for bad in ("../../etc/passwd", "a" * 63, "G" * 64, "/" + "a" * 63):
        with pytest.raises(InvalidInput):
            store.path_for(bad)
    with pytest.raises(NotFound):
        store.verify("a" * 64)
    with pytest.raises(InvalidInput, match="does not exist"):
        store.put_file(tmp_path / "missing")


def test_progress_sees_every_byte(tmp_path: Path) -> None:
    """The progress callback (the CLI's bar) is told about every byte as it is written."""
    from registry import ModelRegistry

    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(CHUNK * 2 + 123))
    seen: list[int] = []
    with ModelRegistry(home=tmp_path / "home") as reg:
        mv = reg.register_model("m", src, progress=seen.append)
    assert sum(seen) == src.stat().st_size == mv.artifact_size
    assert len(seen) == 3
