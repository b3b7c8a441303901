"""``modelreg import mlflow``: copy models from an MLflow tracking server into a registry.

Each MLflow model version becomes one version of the same model here, in MLflow's
order, with its files, and the ``staging``/``production`` aliases become stages:

- A version ``MLflowRegistry`` registered (it carries ``modelreg.version``) keeps
  its semantic version, metadata, signature, features, tags, requirements and
  artifact, and the artifact must hash to the ``modelreg.digest`` it was tagged
  with.
- Another client's version ``N`` becomes ``vN.0.0`` (MLflow's numbers say nothing
  about compatibility; keeping the number keeps it recognisable). Its files are
  kept as they are: one file as the artifact, several (an MLflow model directory)
  as one deterministic tar, ``mlflow-model.tar``. Its origin (server, version,
  run, source, aliases, tags) goes into the metadata under ``mlflow``.

Every copied artifact is verified: the digest computed while downloading must be
the digest the registry stored. A re-run is idempotent: a version already here
with the same origin (or, for ours, the same digest) is left as it is; the same
number with something else is a ``Conflict``. A version whose artifacts are
missing on the server stops the import with an error naming it (what was copied
before it stays; re-run once it is fixed).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry import names
from registry.api import ModelRegistry
from registry.errors import Conflict, CorruptArtifact, ModelNotFound, NotFound, VersionNotFound
from registry.mlflow_registry import SEMVER_TAG, tags_of
from registry.mlflow_rest import MLflowClient, MLflowNotFound
from registry.ops.preparation import ARTIFACT_FILE, NamedArtifact
from registry.records import ModelVersion
from registry.versions import SemVer

TAR_NAME = "mlflow-model.tar"
_OURS_FILES = {"metadata.json", "requirements.txt", "signature.json", "features.yaml"}
Advance = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ImportedVersion:
    """What happened to one MLflow version: ``imported`` or ``unchanged``."""

    name: str
    mlflow_version: int
    version: SemVer
    action: str
    digest: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mlflow_version": self.mlflow_version,
            "version": str(self.version),
            "action": self.action,
            "digest": self.digest,
        }


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """The versions to copy, per model, in MLflow's order (known before any write)."""

    models: dict[str, list[dict[str, Any]]]

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.models.values())


def plan_import(client: MLflowClient, model: str | None = None) -> ImportPlan:
    """Read what to copy; every model name is checked before anything is written."""
    if model is not None:
        if client.get_registered_model(model) is None:
            raise ModelNotFound(f"no registered model {model!r} in MLflow {client.uri}")
        wanted = [model]
    else:
        wanted = sorted(str(m["name"]) for m in client.search_registered_models())
    for name in wanted:
        names.model_name(name)
    return ImportPlan(
        {
            name: sorted(client.search_model_versions(name), key=lambda mv: int(mv["version"]))
            for name in wanted
        }
    )


def import_from_mlflow(
    target: ModelRegistry,
    client: MLflowClient,
    plan: ImportPlan,
    *,
    advance: Advance | None = None,
) -> list[ImportedVersion]:
    """Copy ``plan`` into ``target``; ``advance(label)`` is called after each version."""
    done: list[ImportedVersion] = []
    with tempfile.TemporaryDirectory(prefix="modelreg-import-") as tmp:
        for name, versions in plan.models.items():
            numbers: dict[int, SemVer] = {}
            # Search results do not carry aliases: the registered model lists them all.
            model = client.get_registered_model(name) or {}
            held = {str(a["alias"]): int(a["version"]) for a in model.get("aliases", [])}
            for found in versions:
                result = copy_version(target, client, name, found, held, Path(tmp))
                numbers[result.mlflow_version] = result.version
                done.append(result)
                if advance is not None:
                    advance(f"{name} {result.version}")
            copy_stages(target, client, name, held, numbers)
    return done


def copy_version(
    target: ModelRegistry,
    client: MLflowClient,
    name: str,
    found: dict[str, Any],
    held: dict[str, int],
    tmp: Path,
    *,
    actor: str | None = None,
) -> ImportedVersion:
    number = int(found["version"])
    tags = tags_of(found)
    ours = SEMVER_TAG in tags
    version = SemVer.parse(tags[SEMVER_TAG]) if ours else SemVer(number, 0, 0)
    origin = {
        "tracking_uri": client.uri,
        "version": number,
        "run_id": found.get("run_id") or None,
        "source": found.get("source"),
    }
    existing = _existing(target, name, version)
    if existing is not None:
        same = (
            existing.artifact_digest == tags.get("modelreg.digest")
            if ours
            else origin_of(existing) == {k: origin[k] for k in ("tracking_uri", "version")}
        )
        if not same:
            raise Conflict(
                f"{name} {version} already exists here with another artifact or origin; "
                f"MLflow {client.uri} version {number} was not imported"
            )
        return ImportedVersion(name, number, version, "unchanged", existing.artifact_digest)

    source = client.download_uri(name, number)
    files = client.list_files(source)
    if not files:
        raise NotFound(
            f"{name} version {number}: MLflow {client.uri} has no artifacts at {source} "
            "(missing or deleted); nothing was imported for it"
        )
    where = tmp / name / str(number)
    where.mkdir(parents=True, exist_ok=True)
    for rel in files:
        dest = where / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            client.download(source, rel, dest)
        except MLflowNotFound:
            raise NotFound(
                f"{name} version {number}: artifact {source}/{rel} is missing on MLflow "
                f"{client.uri}; nothing was imported for it"
            ) from None
    if ours:
        mv = _register_ours(target, name, version, tags, where, files, actor)
    else:
        aliases = sorted(a for a, n in held.items() if n == number)
        about = {**origin, "aliases": aliases, "tags": tags}
        mv = _register_foreign(target, name, version, about, where, files, actor)
    return ImportedVersion(name, number, version, "imported", mv.artifact_digest)


def _register_ours(
    target: ModelRegistry,
    name: str,
    version: SemVer,
    tags: dict[str, str],
    where: Path,
    files: list[str],
    actor: str | None,
) -> ModelVersion:
    """A version MLflowRegistry made: everything it was registered with, digest checked."""

    def text(file_name: str) -> str | None:
        path = where / file_name
        return path.read_text() if file_name in files else None

    artifact_name = tags.get("modelreg.artifact")
    artifact: NamedArtifact | None = None
    sha: str | None = None
    if artifact_name:
        path = where / artifact_name
        if artifact_name not in files:
            raise NotFound(f"{name} {version}: its artifact {artifact_name} is missing in MLflow")
        sha = _sha256(path)
        if sha != tags.get("modelreg.digest"):
            raise CorruptArtifact(
                f"{name} {version}: {artifact_name} in MLflow is corrupted (sha256 {sha}, "
                f"registered {tags.get('modelreg.digest')})"
            )
        artifact = NamedArtifact(path, artifact_name, tags.get("modelreg.format") or ARTIFACT_FILE)
    meta_text = text("metadata.json")
    sig_text = text("signature.json")
    feats = tags.get("modelreg.features")
    mv = target.register_model(
        name,
        artifact,
        version=version,
        metadata=json.loads(meta_text) if meta_text else None,
        tags=[k.removeprefix("tag.") for k in sorted(tags) if k.startswith("tag.")],
        signature=json.loads(sig_text) if sig_text else None,
        features=json.loads(feats) if feats else None,
        requirements=text("requirements.txt") or "",
        owner=tags.get("modelreg.owner"),
        actor=actor,
    )
    _check_stored(target, mv, sha)
    return mv


def _register_foreign(
    target: ModelRegistry,
    name: str,
    version: SemVer,
    origin: dict[str, Any],
    where: Path,
    files: list[str],
    actor: str | None,
) -> ModelVersion:
    """Another client's version: its files as they are, its origin in the metadata."""
    if len(files) == 1:
        path, artifact_name = where / files[0], files[0].rsplit("/", 1)[-1]
    else:
        path, artifact_name = where.with_suffix(".tar"), TAR_NAME
        _deterministic_tar(where, files, path)
    sha = _sha256(path)
    requirements = (where / "requirements.txt").read_text() if "requirements.txt" in files else ""
    mv = target.register_model(
        name,
        NamedArtifact(path, artifact_name, ARTIFACT_FILE),
        version=version,
        metadata={"mlflow": origin},
        requirements=requirements,
        actor=actor,
    )
    _check_stored(target, mv, sha)
    return mv


def copy_stages(
    target: ModelRegistry,
    client: MLflowClient,
    name: str,
    held: dict[str, int],
    numbers: dict[int, SemVer],
    *,
    reason: str | None = None,
    actor: str | None = None,
) -> None:
    """MLflow's ``staging``/``production`` aliases become stages (no-op when already so)."""
    why = reason or f"imported from MLflow {client.uri}"
    for alias in ("staging", "production"):
        number = held.get(alias)
        if number is None or number not in numbers:
            continue
        version = numbers[number]
        stage = target.get_model_version(name, version).stage
        if stage == alias:
            continue
        if alias == "production" and stage != "staging":
            target.promote_model(name, version, to_stage="staging", reason=why, actor=actor)
        target.promote_model(name, version, to_stage=alias, reason=why, actor=actor)


def _existing(target: ModelRegistry, name: str, version: SemVer) -> ModelVersion | None:
    try:
        return target.get_model_version(name, version)
    except (ModelNotFound, VersionNotFound):
        return None


def origin_of(mv: ModelVersion) -> dict[str, Any]:
    origin = mv.metadata.get("mlflow")
    if not isinstance(origin, dict):
        return {}
    return {k: origin.get(k) for k in ("tracking_uri", "version")}


def _check_stored(target: ModelRegistry, mv: ModelVersion, sha: str | None) -> None:
    """The registry stored exactly the bytes we downloaded (and they verify there)."""
    if sha is None:
        return
    if mv.artifact_digest != sha:
        raise CorruptArtifact(f"{mv.ref}: stored digest {mv.artifact_digest} is not {sha}")
    target.artifacts.verify(sha)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _deterministic_tar(root: Path, files: list[str], dest: Path) -> None:
    """The same files always make the same bytes: sorted, no times, owners or modes."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(files):
            data = (root / rel).read_bytes()
            info = tarfile.TarInfo(rel)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))


def summary(results: list[ImportedVersion]) -> dict[str, Any]:
    imported = sum(r.action == "imported" for r in results)
    return {
        "imported": imported,
        "unchanged": len(results) - imported,
        "versions": [r.to_dict() for r in results],
    }


__all__ = [
    "ImportPlan",
    "ImportedVersion",
    "import_from_mlflow",
    "plan_import",
    "summary",
]
