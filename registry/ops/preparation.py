"""A new version's bytes, made ready before its registration transaction.

The model artifact is written to the content-addressed store (durably) and the
small per-version files are built in memory first, so the transaction itself only
inserts rows. If that transaction fails, ``discard_unreferenced`` removes a blob it
alone would have referenced. Only objects handed over are pickled, and only such
artifacts (format ``pickle``) are ever unpickled on load.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry import files as vfiles
from registry import names, queries
from registry.artifacts import BlobStore, Progress, StoredBlob
from registry.errors import InvalidInput, InvalidName
from registry.store import Store, Tx

PICKLE_NAME = "model.pkl"
ARTIFACT_PICKLE = "pickle"  # an object the registry serialised: may be unpickled
ARTIFACT_FILE = "file"  # bytes a caller handed over: loaded as a verified path


@dataclass(frozen=True, slots=True)
class PreparedFile:
    name: str
    role: str
    digest: str
    size: int
    content: bytes | None  # None: stored in the artifact store


@dataclass(frozen=True, slots=True)
class NamedArtifact:
    """A verified file to copy under its original artifact name."""

    path: Path
    name: str | None
    format: str

    def __fspath__(self) -> str:
        return str(self.path)


def inline_file(name: str, role: str, content: bytes) -> PreparedFile:
    return PreparedFile(name, role, hashlib.sha256(content).hexdigest(), len(content), content)


def small_files(
    meta: dict[str, Any],
    feats: list[str] | None,
    sig: dict[str, Any] | None,
    reqs: str | Sequence[str],
) -> list[PreparedFile]:
    """The per-version files kept inline with the version row."""
    files = [
        inline_file("metadata.json", "metadata", vfiles.metadata_json(meta)),
        inline_file("requirements.txt", "requirements", vfiles.requirements_txt(reqs)),
    ]
    if sig is not None:
        files.append(inline_file("signature.json", "signature", vfiles.signature_json(sig)))
    if feats is not None:
        scaling = meta.get("feature_scaling")
        yaml_bytes = vfiles.features_yaml(feats, scaling if isinstance(scaling, dict) else None)
        files.append(inline_file("features.yaml", "features", yaml_bytes))
    return files


def store_model(
    artifacts: BlobStore, model: Any, progress: Progress | None
) -> tuple[StoredBlob | None, str | None, str | None]:
    """Store the model artifact; returns (blob, file name, format).

    Only an object handed to us is pickled, and only such artifacts (format
    ``pickle``) are ever unpickled on load; a file is kept as a file.
    """
    if model is None:
        return None, None, None
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        if not path.is_file():
            raise InvalidInput(f"artifact path {str(path)!r} does not exist or is not a file")
        if isinstance(model, NamedArtifact):
            file_name, kind = names.file_name(model.name or path.name), model.format
        else:
            file_name, kind = names.file_name(path.name), ARTIFACT_FILE
        if file_name in vfiles.RESERVED_NAMES:
            raise InvalidName(
                f"artifact file name {file_name!r} is reserved for the version's own "
                "metadata files; rename the model file"
            )
        return artifacts.put_file(path, progress), file_name, kind
    try:
        data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"model object cannot be pickled: {exc}") from None
    return artifacts.put_bytes(data), PICKLE_NAME, ARTIFACT_PICKLE


def discard_unreferenced(store: Store, artifacts: BlobStore, digests: list[str]) -> None:
    """Delete blobs no version references, under the write lock (no race with users)."""

    def op(tx: Tx) -> None:
        used = queries.referenced_digests(tx.conn, digests)
        for digest in digests:
            if digest not in used:
                artifacts.delete(digest)

    store.write(op)
