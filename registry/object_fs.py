"""Narrow, typed wrappers around the fsspec calls the object store makes.

fsspec and its backends (s3fs, gcsfs, adlfs) are untyped: everything they return is
read here into typed values, and every failure becomes a ``StorageError`` naming the
URI (a missing object is ``None``, not an error). ``ObjectFs`` is the generic backend
(any fsspec file system: ``gs``, ``az``, ``memory``); ``S3ObjectFs`` adds the upload
S3 can verify without reading the object back.

Filesystem objects are created with ``skip_instance_cache=True``, without a listings
cache and with no other options:
credentials, region and endpoint come from the library's usual environment and
config files (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``~/.aws/config``,
``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``), read
when a registry opens its store.

How an S3 upload is verified (``S3ObjectFs.upload``): the registry sends the bytes
itself, in parts it has hashed (an MD5 per part, besides the SHA-256 of the whole),
and compares the ETag S3 returns for each part (the MD5 S3 computed of the bytes it
received) with its own, then the object's ETag after completion (the MD5 of the part
MD5s, ``-N``) and its size (``HEAD``). An object is only complete once every part
was acknowledged with the right MD5; a mismatch aborts the upload, so nothing
appears under the key. Where S3's ETag is not an MD5 (SSE-KMS or SSE-C encryption)
``upload`` says so and the store re-reads the object instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

from registry.errors import InvalidInput, StorageError
from registry.storage_uri import StorageUri

MiB = 1 << 20
MIN_PART = 16 * MiB
MAX_PARTS = 10_000
UPLOAD_THREADS = 4  # parts in flight: memory is at most UPLOAD_THREADS x part size
READ_BLOCK = 32 * MiB
READ_AHEAD = 4  # ranges in flight while downloading

Progress = Callable[[int], None]

_PACKAGES = {"s3": "s3fs", "gs": "gcsfs", "az": "adlfs"}


def part_size_for(size: int) -> int:
    """The multipart part size for ``size`` bytes: 16 MiB, larger (whole MiB) when
    more than S3's 10,000 parts would be needed."""
    need = -(-size // MAX_PARTS)
    return max(MIN_PART, -(-need // MiB) * MiB)


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    path: str  # bucket/key, as fsspec names it
    size: int
    etag: str | None
    modified: datetime | None

    @property
    def identity(self) -> str:
        """Changes whenever the object is rewritten (size plus ETag or modification time)."""
        stamp = self.etag or (self.modified.isoformat() if self.modified else "")
        return f"{self.size}:{stamp}"


@dataclass(frozen=True, slots=True)
class Payload:
    """Bytes to upload, already hashed: a local file or bytes in memory.

    ``part_md5`` (for ``part_size`` parts) is set when the bytes were hashed from a
    file someone else may change: the server must then acknowledge exactly those
    bytes. Without it the parts' MD5s are computed from what is sent.
    """

    size: int
    part_size: int
    file: Path | None = None
    data: bytes | None = None
    part_md5: tuple[str, ...] | None = None

    def read(self, offset: int, length: int) -> bytes:
        if self.data is not None:
            return self.data[offset : offset + length]
        assert self.file is not None
        with open(self.file, "rb", buffering=0) as f:
            f.seek(offset)
            return f.read(length)


def _datetime(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            return _datetime(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _info(raw: Mapping[str, Any]) -> ObjectInfo:
    etag = raw.get("ETag", raw.get("etag"))
    modified = next(
        (
            _datetime(raw[k])
            for k in ("LastModified", "last_modified", "updated", "mtime", "created")
            if k in raw
        ),
        None,
    )
    return ObjectInfo(
        path=str(raw.get("name", "")),
        size=int(raw.get("size") or 0),
        etag=str(etag).strip('"') if etag else None,
        modified=modified,
    )


class ObjectFs:
    """One fsspec file system bound to one validated URI; failures name the URI."""

    def __init__(self, uri: StorageUri, fs: object) -> None:
        self.uri = uri
        self._fs: Any = fs  # untyped third-party object: used only in this class's methods

    @staticmethod
    def open(uri: StorageUri) -> ObjectFs:
        """The backend for ``uri``'s scheme; ``InvalidInput`` when it is not installed."""
        package = _PACKAGES.get(uri.scheme)
        try:
            fsspec = importlib.import_module("fsspec")
            if package is not None:
                importlib.import_module(package)
        except ImportError:
            raise InvalidInput(
                f"artifact store {uri}: {uri.scheme}:// needs {package or 'fsspec'}: "
                f"pip install 'modelreg[{uri.extra or 's3'}]'"
            ) from None
        # No listings cache: another host may rewrite or delete an object at any time,
        # and a stale listing would answer info() for it.
        fs = fsspec.filesystem(uri.scheme, skip_instance_cache=True, use_listings_cache=False)
        return S3ObjectFs(uri, fs) if uri.scheme == "s3" else ObjectFs(uri, fs)

    def url(self, path: str) -> str:
        return f"{self.uri.scheme}://{path}"

    def error(self, exc: BaseException, doing: str, path: str) -> StorageError:
        """One line: what failed, on which URI, and why (never a credential)."""
        where = self.url(path)
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        if isinstance(exc, PermissionError):
            why = "access denied: the credentials in use may not do this"
        elif isinstance(exc, FileNotFoundError):
            why = f"the bucket {self.uri.bucket!r} does not exist or is not visible"
        else:
            why = "the store could not be reached or refused the request"
        return StorageError(
            f"artifact store {self.uri}: cannot {doing} {where}: {why} "
            f"({type(exc).__name__}: {detail})"
        )

    def info(self, path: str) -> ObjectInfo | None:
        """The object's size, ETag and time, or None when there is no such object."""
        try:
            raw = self._fs.info(path)
        except FileNotFoundError:
            return None
        except Exception as exc:  # any backend failure is a StorageError naming the URI
            raise self.error(exc, "read", path) from exc
        return _info(raw) if raw.get("type", "file") == "file" else None

    def find(self, path: str) -> list[ObjectInfo]:
        """Every object under ``path`` (recursively); empty when there is none."""
        try:
            found = self._fs.find(path, detail=True)
        except FileNotFoundError:
            return []
        except Exception as exc:  # as above
            raise self.error(exc, "list", path) from exc
        return [_info(raw) for raw in found.values() if raw.get("type", "file") == "file"]

    @contextmanager
    def reader(self, path: str, size: int) -> Iterator[IO[bytes]]:
        """A reader of the object's first ``size`` bytes: ``READ_BLOCK`` ranges, up to
        ``READ_AHEAD`` of them fetched at once (memory: that many blocks). A missing
        object raises ``FileNotFoundError`` from ``read``."""
        pool = ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="object-read")
        try:
            yield cast(IO[bytes], _RangeReader(self, path, size, pool))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def read_range(self, path: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of an object, in one request."""
        try:
            return bytes(self._fs.cat_file(path, start=start, end=end))
        except FileNotFoundError:
            raise
        except Exception as exc:  # as above
            raise self.error(exc, "read", path) from exc

    def remove(self, path: str) -> None:
        """Delete an object; a missing one is fine."""
        try:
            self._fs.rm_file(path)
        except FileNotFoundError:
            pass
        except Exception as exc:  # as above
            raise self.error(exc, "delete", path) from exc
        self._fs.invalidate_cache(path)

    def upload(self, payload: Payload, path: str, progress: Progress | None) -> bool:
        """Write ``payload`` to ``path``; True when the write itself proved the stored
        bytes equal the payload's, False when the caller must read them back."""
        try:
            if payload.file is not None:
                self._fs.put_file(str(payload.file), path)
            else:
                assert payload.data is not None
                self._fs.pipe_file(path, payload.data)
        except Exception as exc:  # as above
            raise self.error(exc, "write", path) from exc
        self._fs.invalidate_cache(path)
        if progress is not None:
            progress(payload.size)
        return False

    def abandoned_uploads(self, path: str, before: datetime) -> list[str]:
        """Unfinished uploads under ``path`` started before ``before``, aborted; the
        generic backends have none that outlive their process."""
        return []


class _RangeReader:
    """``read(n)`` over an object fetched in ranges, a few ahead of the reader."""

    def __init__(self, fs: ObjectFs, path: str, size: int, pool: ThreadPoolExecutor) -> None:
        self._fs, self._path, self._size, self._pool = fs, path, size, pool
        self._next = 0  # offset of the next range to request
        self._pending: deque[Future[bytes]] = deque()
        self._block = memoryview(b"")
        self._fill()

    def _fill(self) -> None:
        while len(self._pending) < READ_AHEAD and self._next < self._size:
            end = min(self._next + READ_BLOCK, self._size)
            self._pending.append(
                self._pool.submit(self._fs.read_range, self._path, self._next, end)
            )
            self._next = end

    def read(self, n: int = -1) -> bytes:
        if not self._block:
            if not self._pending:
                return b""
            self._block = memoryview(self._pending.popleft().result())
            self._fill()
            if not self._block:
                return b""  # the object is shorter than it was: the hash will say so
        take = len(self._block) if n is None or n < 0 else min(n, len(self._block))
        out, self._block = bytes(self._block[:take]), self._block[take:]
        return out


class _Mismatch(Exception):
    """S3 acknowledged bytes other than the ones sent."""


class S3ObjectFs(ObjectFs):
    """S3: uploads in parts whose MD5s S3 acknowledges (see the module docstring)."""

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        return cast(dict[str, Any], self._fs.call_s3(method, **kwargs))

    def _split(self, path: str) -> tuple[str, str]:
        bucket, _, key = path.partition("/")
        return bucket, key

    def upload(self, payload: Payload, path: str, progress: Progress | None) -> bool:
        bucket, key = self._split(path)
        try:
            if payload.size <= payload.part_size:
                trusted = self._put_one(payload, bucket, key)
            else:
                trusted = self._put_parts(payload, bucket, key, progress)
        except _Mismatch as exc:
            raise StorageError(
                f"artifact store {self.uri}: S3 did not store what was sent to "
                f"{self.url(path)} ({exc}); nothing was kept"
            ) from None
        except StorageError:
            raise
        except Exception as exc:  # as above
            raise self.error(exc, "write", path) from exc
        finally:
            self._fs.invalidate_cache(path)
        if payload.size <= payload.part_size and progress is not None:
            progress(payload.size)
        return trusted

    @staticmethod
    def _md5_etag(response: Mapping[str, Any]) -> str | None:
        """The response's ETag if it is an MD5 of the bytes (not under KMS or SSE-C)."""
        if str(response.get("ServerSideEncryption", "")).startswith("aws:kms"):
            return None
        if response.get("SSECustomerAlgorithm"):
            return None
        return str(response.get("ETag", "")).strip('"') or None

    def _put_one(self, payload: Payload, bucket: str, key: str) -> bool:
        body = payload.read(0, payload.size)
        want = payload.part_md5[0] if payload.part_md5 else hashlib.md5(body).hexdigest()  # noqa: S324 -- S3's ETag is an MD5; not used for security
        response = self._call("put_object", Bucket=bucket, Key=key, Body=body)
        etag = self._md5_etag(response)
        if etag is not None and etag != want:
            self._delete_quietly(bucket, key)
            raise _Mismatch(f"ETag {etag}, sent MD5 {want}")
        return etag is not None

    def _put_parts(
        self, payload: Payload, bucket: str, key: str, progress: Progress | None
    ) -> bool:
        size, step = payload.size, payload.part_size
        count = -(-size // step)
        if count > MAX_PARTS:
            raise _Mismatch(f"{count} parts of {step} bytes exceed S3's {MAX_PARTS}")
        upload_id = str(self._call("create_multipart_upload", Bucket=bucket, Key=key)["UploadId"])
        lock = threading.Lock()
        trusted = [True]

        def send(number: int) -> tuple[int, str, str]:
            body = payload.read((number - 1) * step, step)
            if payload.part_md5 is not None:
                want = payload.part_md5[number - 1]
            else:
                want = hashlib.md5(body).hexdigest()  # noqa: S324 -- as above
            response = self._call(
                "upload_part",
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
            )
            etag = self._md5_etag(response)
            if etag is None:
                trusted[0] = False
            elif etag != want:
                raise _Mismatch(f"part {number}: ETag {etag}, sent MD5 {want}")
            if progress is not None:
                with lock:
                    progress(len(body))
            return number, str(response["ETag"]), want

        pool = ThreadPoolExecutor(max_workers=UPLOAD_THREADS, thread_name_prefix="s3-part")
        try:
            parts = list(pool.map(send, range(1, count + 1)))
            done = self._call(
                "complete_multipart_upload",
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e, _ in parts]},
            )
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            self._abort_quietly(bucket, key, upload_id)
            raise
        pool.shutdown()
        joined = b"".join(bytes.fromhex(md5) for _, _, md5 in parts)
        want = f"{hashlib.md5(joined).hexdigest()}-{count}"  # noqa: S324 -- as above
        etag = str(done.get("ETag", "")).strip('"')
        if trusted[0] and etag != want:
            self._delete_quietly(bucket, key)
            raise _Mismatch(f"object ETag {etag}, expected {want}")
        return trusted[0]

    def _abort_quietly(self, bucket: str, key: str, upload_id: str) -> None:
        # Best effort: the caller's error matters more; gc aborts what is left.
        with contextlib.suppress(Exception):
            self._call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)

    def _delete_quietly(self, bucket: str, key: str) -> None:
        # Best effort: the caller's error matters more; gc removes unreferenced blobs.
        with contextlib.suppress(Exception):
            self._call("delete_object", Bucket=bucket, Key=key)

    def abandoned_uploads(self, path: str, before: datetime) -> list[str]:
        """Abort multipart uploads under ``path`` initiated before ``before`` (a process
        killed mid-upload leaves one: invisible, but billed until aborted)."""
        bucket, prefix = self._split(path)
        aborted: list[str] = []
        marker: dict[str, str] = {}
        try:
            while True:
                page = self._call("list_multipart_uploads", Bucket=bucket, Prefix=prefix, **marker)
                for upload in page.get("Uploads", []):
                    started = _datetime(upload.get("Initiated"))
                    if started is not None and started < before:
                        key, upload_id = str(upload["Key"]), str(upload["UploadId"])
                        self._call(
                            "abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id
                        )
                        aborted.append(f"{self.url(bucket + '/' + key)} (upload {upload_id})")
                if not page.get("IsTruncated"):
                    return aborted
                marker = {
                    "KeyMarker": str(page.get("NextKeyMarker", "")),
                    "UploadIdMarker": str(page.get("NextUploadIdMarker", "")),
                }
        except Exception as exc:  # as above
            raise self.error(exc, "list uploads under", path) from exc
