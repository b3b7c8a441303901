"""Artifacts on object storage: S3 through moto's server over HTTP, and the generic
fsspec path on ``memory://`` (verified by reading back)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from registry import CorruptArtifact, ModelRegistry, StorageError
from registry.api import CustomRegistry
from registry.object_fs import MIN_PART, UPLOAD_THREADS, Payload, S3ObjectFs
from registry.object_store import ObjectArtifactStore
from registry.schema import audit_t, versions_t
from registry.storage_uri import parse_storage_uri
from tests import s3server
from tests.registry.test_artifacts import _Stream


def versions(reg: ModelRegistry) -> int:
    with reg.store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(versions_t)).scalar_one())


def s3() -> Any:
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True)


def uploads(bucket: str) -> list[str]:
    return [
        u["Key"] for u in s3().call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
    ]


def objects(uri: str) -> list[str]:
    fs = s3()
    root = uri.removeprefix("s3://")
    return sorted(fs.find(root)) if fs.exists(root) else []


@pytest.fixture
def reg(s3_uri: str, tmp_path: Path) -> Iterator[ModelRegistry]:
    registry = ModelRegistry(home=tmp_path / "home", actor="alice", artifact_uri=s3_uri)
    yield registry
    registry.close()


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    """40 MiB of random bytes: three upload parts."""
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(40 << 20))
    return path


def store_of(reg: ModelRegistry) -> ObjectArtifactStore:
    assert isinstance(reg.artifacts, ObjectArtifactStore)
    return reg.artifacts


@pytest.mark.s3
class TestS3Writes:
    def test_large_file_goes_up_in_acknowledged_parts(
        self, reg: ModelRegistry, model_file: Path
    ) -> None:
        """A 40 MiB file is stored under its digest in three parts whose MD5s S3 confirmed."""
        mv = reg.register_model("m", model_file)
        digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
        assert mv.artifact_digest == digest
        key = store_of(reg).key_path(digest)
        assert key.endswith(f"/registry/blobs/sha256/{digest[:2]}/{digest}")
        info = s3().info(key)
        assert info["size"] == 40 << 20
        assert info["ETag"].strip('"').endswith("-3")
        assert Path(reg.get_model("m", version="v1")).read_bytes() == model_file.read_bytes()
        assert uploads(store_of(reg).uri.bucket) == []

    def test_small_object_and_dedup(
        self, reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A pickled model goes up in one request; the same bytes again upload nothing."""
        reg.register_model("m", {"w": [1, 2]})
        sent: list[int] = []
        real = S3ObjectFs.upload

        def counting(self: S3ObjectFs, payload: Payload, path: str, progress: Any) -> bool:
            sent.append(payload.size)
            return real(self, payload, path, progress)

        monkeypatch.setattr(S3ObjectFs, "upload", counting)
        mv = reg.register_model("other", {"w": [1, 2]})
        assert sent == []
        assert reg.get_model("other", version=str(mv.version)) == {"w": [1, 2]}

    def test_empty_file(self, reg: ModelRegistry, tmp_path: Path) -> None:
        """An empty artifact is one empty object, verified like any other."""
        empty = tmp_path / "empty.bin"
        empty.write_bytes(b"")
        mv = reg.register_model("m", empty)
        assert mv.artifact_size == 0
        assert Path(reg.get_model("m", version="v1")).read_bytes() == b""

    def test_bytes_changed_after_hashing_are_refused(
        self, reg: ModelRegistry, model_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Bytes that differ from the ones hashed (a file rewritten during the upload)
        are caught by S3's part MD5s: no object, no upload left, no version."""
        real_read = Payload.read

        def rewritten(self: Payload, offset: int, length: int) -> bytes:
            data = bytearray(real_read(self, offset, length))
            if offset == MIN_PART:  # the second part changes under us
                data[100] ^= 0x01
            return bytes(data)

        monkeypatch.setattr(Payload, "read", rewritten)
        with pytest.raises(StorageError, match=r"did not store what was sent .*part 2: ETag"):
            reg.register_model("m", model_file)
        assert versions(reg) == 0
        assert objects(str(store_of(reg).uri)) == []
        assert uploads(store_of(reg).uri.bucket) == []

    def test_upload_failing_midway_leaves_nothing(
        self, reg: ModelRegistry, model_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A connection lost at part 2 aborts the upload: no object, no version row."""
        real_call = S3ObjectFs._call

        def flaky(self: S3ObjectFs, method: str, **kwargs: Any) -> dict[str, Any]:
            if method == "upload_part" and kwargs["PartNumber"] == 2:
                raise ConnectionResetError("connection reset by peer")
            return real_call(self, method, **kwargs)

        monkeypatch.setattr(S3ObjectFs, "_call", flaky)
        with pytest.raises(StorageError, match=r"cannot write s3://.*ConnectionResetError"):
            reg.register_model("m", model_file)
        assert versions(reg) == 0
        assert objects(str(store_of(reg).uri)) == []
        assert uploads(store_of(reg).uri.bucket) == []

    def test_interrupted_stream_sends_nothing(self, reg: ModelRegistry) -> None:
        """A source that fails midway leaves no object and no spool file."""
        store = store_of(reg)
        with pytest.raises(OSError, match="source disappeared"):
            store.put_stream(_Stream(24 << 20, fail_at=10 << 20))  # type: ignore[arg-type]
        assert objects(str(store.uri)) == []
        assert list((store.cache.root / "tmp").iterdir()) == []

    def test_streams_use_constant_memory(self, reg: ModelRegistry) -> None:
        """A 192 MiB stream (twelve parts) is stored with peak Python allocations bounded
        by the parts in flight (each may be held twice: body and socket buffer), below
        the stream's own size."""
        store = store_of(reg)
        tracemalloc.start()
        blob = store.put_stream(_Stream(192 << 20))  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert blob.size == 192 << 20
        assert peak < 2.5 * UPLOAD_THREADS * MIN_PART < blob.size

    def test_custom_registry_and_environments(self, s3_uri: str, tmp_path: Path) -> None:
        """The seed's CustomRegistry keeps artifacts at storage_uri; each environment
        under its own prefix; promote_to copies verified bytes between them."""
        with CustomRegistry(storage_uri=s3_uri, home=tmp_path / "h", increment="0042") as reg:
            mv = reg.register_model("fraud", {"w": 1})
            assert mv.increment == "0042"
            staging = reg.promote_to("fraud-v1.0.0", "staging")
            assert staging.artifact_digest == mv.artifact_digest
        found = objects(s3_uri)
        assert any("/registry/blobs/sha256/" in k and "environments" not in k for k in found)
        assert any("/registry/environments/staging/blobs/sha256/" in k for k in found)


@pytest.mark.s3
class TestS3Reads:
    def test_bit_flip_in_the_bucket_is_refused(self, reg: ModelRegistry, model_file: Path) -> None:
        """One flipped bit in the stored object: loading raises CorruptArtifact naming
        the key, although a good copy was loaded (and cached) before."""
        mv = reg.register_model("m", model_file)
        assert mv.artifact_digest is not None
        reg.get_model("m", version="v1")
        assert list(store_of(reg).digests()) == [mv.artifact_digest]  # a listing, not cached
        key = store_of(reg).key_path(mv.artifact_digest)
        fs = s3()
        data = bytearray(fs.cat_file(key))
        data[12345] ^= 0x04
        fs.pipe_file(key, bytes(data))
        with pytest.raises(CorruptArtifact, match=f"at s3://{key} is corrupted"):
            reg.get_model("m", version="v1")
        # The corrupted download was not kept in the cache.
        assert list(store_of(reg).cache.digests()) == []

    def test_pickle_bit_flip_is_never_unpickled(self, reg: ModelRegistry) -> None:
        """A pickled model whose object changed is refused before unpickling."""
        mv = reg.register_model("m", {"w": list(range(100))})
        assert mv.artifact_digest is not None
        key = store_of(reg).key_path(mv.artifact_digest)
        fs = s3()
        data = bytearray(fs.cat_file(key))
        data[-3] ^= 0x01
        fs.pipe_file(key, bytes(data))
        with pytest.raises(CorruptArtifact, match="corrupted"):
            reg.get_model("m", version="v1")

    def test_cache_is_rehashed_and_refetched(self, reg: ModelRegistry, model_file: Path) -> None:
        """A damaged cached copy is dropped and downloaded again from the bucket."""
        mv = reg.register_model("m", model_file)
        assert mv.artifact_digest is not None
        path = Path(reg.get_model("m", version="v1"))
        path.chmod(0o644)
        path.write_bytes(b"local damage")
        assert Path(reg.get_model("m", version="v1")).read_bytes() == model_file.read_bytes()

    def test_missing_object_is_not_found(self, reg: ModelRegistry) -> None:
        """An object deleted from the bucket is reported missing with its key."""
        mv = reg.register_model("m", {"w": 1})
        assert mv.artifact_digest is not None
        s3().rm_file(store_of(reg).key_path(mv.artifact_digest))
        with pytest.raises(LookupError, match=r"missing from s3://.*\(no object s3://"):
            reg.get_model("m", version="v1")


@pytest.mark.s3
class TestS3Failures:
    def test_unreachable_endpoint(
        self, s3_uri: str, tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Nothing listening at the endpoint: one line naming the URI, no version row."""
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{s3server.free_port()}")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        with ModelRegistry(home=tmp_path / "h", artifact_uri=s3_uri) as reg:
            with pytest.raises(StorageError) as caught:
                reg.register_model("m", model_file)
            assert versions(reg) == 0
        message = str(caught.value)
        assert message.startswith(f"artifact store {s3_uri}: cannot read s3://")
        assert "could not be reached" in message
        assert "\n" not in message

    def test_missing_bucket(self, s3_env: s3server.S3Server, tmp_path: Path) -> None:
        """A bucket that does not exist is named; nothing is committed."""
        uri = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/registry"
        with ModelRegistry(home=tmp_path / "h", artifact_uri=uri) as reg:
            with pytest.raises(StorageError, match=r"bucket 'no-such-bucket-.*' does not exist"):
                reg.register_model("m", {"w": 1})
            assert versions(reg) == 0


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3server.S3Server]:
    """A second moto server whose IAM checks get switched on by the test."""
    from tests.conftest import require_s3_server

    require_s3_server()
    server = s3server.start(tmp_path_factory.mktemp("moto-auth") / "moto.log")
    yield server
    server.stop()


@pytest.mark.s3
def test_bucket_without_write_permission(
    auth_server: s3server.S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With credentials whose IAM policy only reads the bucket (moto enforcing IAM, as
    S3 does), loading works and registering is refused naming the URI; no row."""
    bucket = auth_server.new_bucket()
    uri = f"s3://{bucket}/registry"
    iam = auth_server.client(service="iam")
    iam.create_user(UserName="reader")
    iam.put_user_policy(
        UserName="reader",
        PolicyName="read-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        # Read-only; moto >= 5.2.6 authorises HEAD as s3:HeadObject.
                        "Action": ["s3:Get*", "s3:List*", "s3:HeadObject"],
                        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                    }
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    for name, value in auth_server.environ().items():
        monkeypatch.setenv(name, value)
    with ModelRegistry(home=tmp_path / "h", artifact_uri=uri) as reg:
        reg.register_model("m", {"w": 1})  # before IAM is enforced
    httpx.post(f"{auth_server.endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        with ModelRegistry(home=tmp_path / "h", artifact_uri=uri) as reg:
            assert reg.get_model("m", version="v1") == {"w": 1}
            with pytest.raises(StorageError) as caught:
                reg.register_model("m", {"w": 2})
            assert versions(reg) == 1
    finally:
        httpx.post(f"{auth_server.endpoint}/moto-api/reset-auth", content=b"inf")
    message = str(caught.value)
    assert message.startswith(f"artifact store {uri}: cannot write s3://{bucket}/registry/")
    assert "access denied" in message
    assert key["SecretAccessKey"] not in message


@pytest.mark.s3
class TestS3GarbageCollection:
    def test_gc_removes_orphans_and_abandoned_uploads(
        self, reg: ModelRegistry, model_file: Path
    ) -> None:
        """Blobs no version references and unfinished uploads older than the cutoff
        go; referenced and recent ones stay; the removal is audited."""
        store = store_of(reg)
        kept = reg.register_model("m", {"w": 1})
        orphan = store.put_file(model_file)  # a process killed before its version committed
        bucket = store.uri.bucket
        s3().call_s3(
            "create_multipart_upload",
            Bucket=bucket,
            Key=store.uri.key("blobs", "sha256", "ab", "x"),
        )
        assert len(uploads(bucket)) == 1

        dry = reg.collect_garbage(older_than=timedelta(hours=1), dry_run=True)
        assert dry.removed == ()  # too recent to be an orphan
        assert dry.kept_recent == 1

        later = datetime.now(UTC) + timedelta(hours=2)
        report = reg.collect_garbage(older_than=timedelta(hours=1), now=later)
        assert report.removed == (orphan.digest,)
        assert len(report.abandoned) == 1
        assert uploads(bucket) == []
        assert set(store.digests()) == {kept.artifact_digest}
        assert reg.get_model("m", version="v1") == {"w": 1}
        with reg.store.read() as conn:
            last = conn.execute(sa.select(audit_t).order_by(audit_t.c.id.desc())).first()
        assert last is not None
        assert last.action == "collect_garbage"
        assert reg.verify_audit_chain() is None


class TestGenericFsspecPath:
    """``memory://`` stands for the fsspec backends without an S3 server here (gs, az):
    uploads are verified by reading the object back."""

    @pytest.fixture
    def mem(self, tmp_path: Path) -> Iterator[ModelRegistry]:
        uri = f"memory://m-{uuid.uuid4().hex[:12]}/registry"
        with ModelRegistry(home=tmp_path / "h", artifact_uri=uri) as reg:
            yield reg
        import fsspec

        fsspec.filesystem("memory").rm(uri.removeprefix("memory://").split("/")[0], recursive=True)

    def test_round_trip_and_read_back(
        self, mem: ModelRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Registration re-reads the uploaded object; loads verify it."""
        store = store_of(mem)
        rehashed: list[str] = []
        real = ObjectArtifactStore._rehash_remote

        def spy(self: ObjectArtifactStore, digest: str) -> None:
            rehashed.append(digest)
            real(self, digest)

        monkeypatch.setattr(ObjectArtifactStore, "_rehash_remote", spy)
        mv = mem.register_model("m", {"w": 1})
        assert rehashed == [mv.artifact_digest]
        assert mem.get_model("m", version="v1") == {"w": 1}
        assert store.location.startswith("memory://m-")

    def test_corruption_is_refused(self, mem: ModelRegistry) -> None:
        """A rewritten object is downloaded again, and refused."""
        import fsspec

        mv = mem.register_model("m", {"w": 1})
        assert mv.artifact_digest is not None
        assert mem.get_model("m", version="v1") == {"w": 1}
        fsspec.filesystem("memory").pipe_file(
            store_of(mem).key_path(mv.artifact_digest), b"not a pickle"
        )
        with pytest.raises(CorruptArtifact, match=r"memory://.* is corrupted"):
            mem.get_model("m", version="v1")

    def test_stream_round_trip(self, mem: ModelRegistry) -> None:
        """A stream is spooled, hashed and stored; the spool is gone afterwards."""
        store = store_of(mem)
        blob = store.put_stream(io.BytesIO(b"x" * 1000))
        assert store.read_bytes(blob.digest) == b"x" * 1000
        assert list((store.cache.root / "tmp").iterdir()) == []


def test_uri_parts_match_keys() -> None:
    """The store's keys are the URI's path plus the content-addressed layout."""
    uri = parse_storage_uri("memory://b-1/p/q")
    assert uri.path("blobs", "sha256", "ab", "ab" * 32) == f"b-1/p/q/blobs/sha256/ab/{'ab' * 32}"
