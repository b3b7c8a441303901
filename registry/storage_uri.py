"""Where artifacts live: a local directory, or an object-storage URI checked strictly.

``artifact_location(text)`` turns what a user wrote (``ModelRegistry(artifact_uri=...)``,
``--artifacts``, the daemon's ``registry.artifacts``) into a ``Path`` (no scheme, or
``file:///abs/path``) or a ``StorageUri``. Object-storage URIs are refused, with one
``InvalidInput`` line naming the URI, unless:

- the scheme is one of ``s3://``, ``gs://``, ``az://`` (or ``memory://``, fsspec's
  in-process store, for tests and experiments);
- the bucket (an Azure container) follows its provider's naming rules;
- the prefix has no empty, ``.`` or ``..`` segment and only ``A-Z a-z 0-9 . _ = -``
  characters (no percent-escapes that could decode to ``..``);
- nothing could carry a credential or an endpoint: no ``user@``, ``:port``, query
  string or fragment. Credentials and endpoints come from each library's own
  environment and config files (``AWS_*``, ``~/.aws``, ``GOOGLE_APPLICATION_CREDENTIALS``,
  ``AZURE_STORAGE_*``), never from a URI or a request.

An error message never repeats a credential: a refused ``user:secret@`` is shown as
``***@``, a query string as ``?***``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from registry.errors import InvalidInput

SCHEMES: dict[str, str | None] = {"s3": "s3", "gs": "gcs", "az": "azure", "memory": None}
"""Object-storage schemes and the pip extra that installs each one's fsspec backend."""
_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs", "abfs": "az", "abfss": "az", "adl": "az"}
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_SEGMENT = re.compile(r"[A-Za-z0-9._=-]+")
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_GS_PART = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?")
_AZ_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
MAX_URI = 1024
MAX_PREFIX = 512


@dataclass(frozen=True, slots=True)
class StorageUri:
    """A validated object-storage location: ``scheme://bucket[/prefix]``."""

    scheme: str
    bucket: str
    prefix: str  # "" or segments joined by "/", each checked

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path()}"

    def path(self, *parts: str) -> str:
        """The fsspec path (``bucket/prefix/parts...``, no scheme) of a key under the prefix."""
        return "/".join(p for p in (self.bucket, self.prefix, *parts) if p)

    def key(self, *parts: str) -> str:
        """The object key within the bucket (``prefix/parts...``)."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    def url(self, *parts: str) -> str:
        """The full URI of a key, for messages."""
        return f"{self.scheme}://{self.path(*parts)}"

    def child(self, *segments: str) -> StorageUri:
        """The same bucket with more (checked) prefix segments, e.g. per environment."""
        for segment in segments:
            _check_segment(str(self), segment)
        prefix = "/".join(p for p in (self.prefix, *segments) if p)
        return StorageUri(self.scheme, self.bucket, prefix)

    @property
    def extra(self) -> str | None:
        """The pip extra (``modelreg[s3]``) that installs this scheme's backend."""
        return SCHEMES[self.scheme]


def redact(text: str) -> str:
    """``text`` with anything that may be a credential masked (user info, query)."""
    head, sep, rest = text.partition("://")
    if not sep:
        return text
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    out = f"{head}://{netloc}{slash}{path}"
    for mark in ("?", "#"):
        if mark in out:
            out = out.partition(mark)[0] + mark + "***"
    return out


def _refuse(text: str, why: str) -> InvalidInput:
    return InvalidInput(f"artifact store URI {redact(text)!r}: {why}")


def _check_segment(text: str, segment: str) -> None:
    if segment in (".", ".."):
        raise _refuse(text, f"a {segment!r} segment is not allowed in the prefix")
    if not _SEGMENT.fullmatch(segment):
        raise _refuse(
            text,
            f"prefix segment {segment!r} may only use letters, digits and . _ = -",
        )


def _check_bucket(text: str, scheme: str, bucket: str) -> None:
    what = "container" if scheme == "az" else "bucket"
    if not bucket:
        raise _refuse(text, f"no {what} name")
    if scheme == "az":
        if not _AZ_CONTAINER.fullmatch(bucket):
            raise _refuse(
                text,
                f"container {bucket!r} must be 3-63 lowercase letters, digits and single "
                "hyphens, starting and ending with a letter or digit",
            )
        return
    if scheme == "gs":
        parts = bucket.split(".")
        ok = (
            3 <= len(bucket) <= (222 if len(parts) > 1 else 63)
            and all(_GS_PART.fullmatch(p) for p in parts)
            and not bucket.startswith("goog")
            and "google" not in bucket
        )
        if not ok:
            raise _refuse(
                text,
                f"bucket {bucket!r} is not a valid Cloud Storage name (3-63 lowercase "
                "letters, digits, - and _, dot-separated parts, no 'goog' prefix)",
            )
        return
    ok = (
        _S3_BUCKET.fullmatch(bucket) is not None
        and ".." not in bucket
        and ".-" not in bucket
        and "-." not in bucket
        and not bucket.startswith(("xn--", "sthree-"))
        and not bucket.endswith(("-s3alias", "--ol-s3"))
    )
    if ok:
        try:
            ipaddress.IPv4Address(bucket)
            ok = False
        except ValueError:
            pass
    if not ok:
        raise _refuse(
            text,
            f"bucket {bucket!r} is not a valid S3 bucket name (3-63 lowercase letters, "
            "digits, . and -, starting and ending with a letter or digit, not an IP address)",
        )


def parse_storage_uri(text: str) -> StorageUri:
    """Validate an object-storage URI; ``InvalidInput`` names the URI and the rule."""
    if not isinstance(text, str) or not text:
        raise InvalidInput("artifact store URI must be a non-empty string")
    if len(text) > MAX_URI:
        raise _refuse(text[:60] + "...", f"longer than {MAX_URI} characters")
    if any(c.isspace() or not c.isprintable() or c == "\\" for c in text):
        raise _refuse(text, "whitespace, control characters and backslashes are not allowed")
    head, sep, rest = text.partition("://")
    if not sep or not _SCHEME.fullmatch(head):
        raise _refuse(text, "expected SCHEME://BUCKET[/PREFIX]")
    scheme = head.lower()
    if scheme not in SCHEMES:
        hint = f"; write {_ALIASES[scheme]}://" if scheme in _ALIASES else ""
        raise _refuse(
            text,
            f"unsupported scheme {head!r}{hint}; use s3://, gs:// or az:// (or a local path)",
        )
    if "?" in rest or "#" in rest:
        raise _refuse(
            text,
            "query strings and fragments are not allowed (credentials and options come "
            "from the environment, never from the URI)",
        )
    netloc, _, path = rest.partition("/")
    if "@" in netloc:
        raise _refuse(
            text,
            "credentials in the URI are refused; they come from the environment "
            "(AWS_*, ~/.aws, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*)",
        )
    if ":" in netloc:
        raise _refuse(
            text,
            "a port or host is not allowed here; point the client at an endpoint through "
            "its environment (e.g. AWS_ENDPOINT_URL)",
        )
    _check_bucket(text, scheme, netloc)
    if path.endswith("/"):
        path = path[:-1]  # "s3://bucket/prefix/" means the same as without the slash
    segments = path.split("/") if path else []
    if any(not s for s in segments):
        raise _refuse(text, "empty segments ('//') are not allowed in the prefix")
    for segment in segments:
        _check_segment(text, segment)
    prefix = "/".join(segments)
    if len(prefix) > MAX_PREFIX:
        raise _refuse(text, f"prefix longer than {MAX_PREFIX} characters")
    return StorageUri(scheme, netloc, prefix)


def artifact_location(text: str | Path) -> Path | StorageUri:
    """A local directory (a path, or ``file:///abs/path``) or a validated ``StorageUri``."""
    if isinstance(text, Path):
        return text
    if not isinstance(text, str) or not text:
        raise InvalidInput("artifact location must be a non-empty path or URI")
    head, sep, rest = text.partition("://")
    if not sep:
        if ":" in text.split("/", 1)[0] and _SCHEME.fullmatch(text.split(":", 1)[0]):
            raise _refuse(text, "expected SCHEME://BUCKET[/PREFIX] or a local path")
        return Path(text)
    if head.lower() == "file":
        if not rest.startswith("/") or "?" in rest or "#" in rest or "%" in rest:
            raise _refuse(text, "a file URI must be file:///absolute/path")
        return Path(rest)
    return parse_storage_uri(text)
