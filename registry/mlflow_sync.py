"""Take in what other MLflow clients did to a model's ``staging`` alias.

The daemon starts a rollout for a version that enters staging. On MLflow, any client
can set the ``staging`` alias, so each watcher pass calls ``sync_staging``:

- The alias names a version of ours (it carries ``modelreg.version``) that is in dev
  in the governance database: it is promoted to staging.
- It names another client's version (an integer version, no tag of ours): the
  version is adopted, named as ``modelreg import mlflow`` names it (``vN.0.0``, its
  files as they are, its origin in the metadata under ``mlflow``), with the
  ``staging`` stage. A rollout needs a production version to judge against: when
  the governance database has none and MLflow's ``production`` alias names another
  client's version, that one is adopted next, forced straight into production (an
  audited, forced move with its reason), so the staging alias never moves.

Adopting writes nothing on the MLflow version itself: the governance database
records it, and our ``vN_0_0`` alias is added in MLflow so that the semantic version
finds MLflow's number again. ``vN.0.0`` already taken here by something else is a
``Conflict`` (the daemon logs it, and starts nothing).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from registry import names
from registry.api import ModelRegistry
from registry.errors import ModelNotFound, NotFound
from registry.mlflow_import import copy_stages, copy_version, origin_of
from registry.mlflow_registry import SEMVER_TAG, MLflowRegistry, tags_of
from registry.records import ModelVersion
from registry.versions import SemVer

__all__ = ["adopt", "sync_staging"]


def sync_staging(registry: MLflowRegistry, name: str, *, actor: str) -> list[ModelVersion]:
    """The version MLflow's ``staging`` alias names, in staging here; the versions moved
    or adopted (production first when it had to be), none when nothing changed."""
    names.model_name(name)
    model = registry.client.get_registered_model(name)
    held = {str(a["alias"]): int(a["version"]) for a in (model or {}).get("aliases", [])}
    number = held.get("staging")
    found = registry.client.get_model_version(name, number) if number is not None else None
    if found is None or number is None:
        return []
    semver = tags_of(found).get(SEMVER_TAG)
    if not semver:
        adopted = _adopted(registry, name, number)
        if adopted is None:
            # The candidate first, into staging (its alias already says so), then the
            # baseline: forced straight into production, so that no step moves the
            # other client's staging alias, even for a moment or on a failure.
            moved = [adopt(registry, name, number, held, actor=actor)]
            production = held.get("production")
            if (
                production is not None
                and production != number
                and _needs_production(registry, name, production)
            ):
                moved.append(adopt(registry, name, production, held, actor=actor))
            return moved
        version = adopted.version
    else:
        version = SemVer.parse(semver)
    try:
        current = _governance_record(registry, name, version)
    except NotFound:
        return []  # not in this governance database
    if current.stage != "dev":
        return []
    reason = f"staging alias set in MLflow {registry.tracking_uri}"
    return [registry.promote_model(name, version, to_stage="staging", reason=reason, actor=actor)]


def adopt(
    registry: MLflowRegistry, name: str, number: int, held: dict[str, int], *, actor: str
) -> ModelVersion:
    """Record another client's MLflow version ``number`` in the governance database
    as ``vN.0.0`` with the stage its alias (in ``held``) says; the adopted version."""
    found = registry.client.get_model_version(name, number)
    if found is None:
        raise NotFound(f"MLflow {registry.tracking_uri} has no version {number} of {name!r}")
    reason = f"{'staging' if held.get('staging') == number else 'production'} alias set in MLflow"
    with tempfile.TemporaryDirectory(prefix="modelreg-adopt-") as tmp, registry.adopting(number):
        result = copy_version(registry, registry.client, name, found, held, Path(tmp), actor=actor)
    why = f"{reason} {registry.tracking_uri}"
    if held.get("staging") == number:
        copy_stages(registry, registry.client, name, {"staging": number},
                    {number: result.version}, reason=why, actor=actor)  # fmt: skip
    elif held.get("production") == number:
        # A baseline that production already serves: no staging hop (``sync_staging``).
        registry.promote_model(name, result.version, to_stage="production", force=True,
                               reason=f"{why}: adopted as the baseline", actor=actor)  # fmt: skip
    return _governance_record(registry, name, result.version)


def _adopted(registry: MLflowRegistry, name: str, number: int) -> ModelVersion | None:
    """The governance record of MLflow version ``number`` adopted before, if any."""
    try:
        mv = _governance_record(registry, name, SemVer(number, 0, 0))
    except NotFound:
        return None
    origin = origin_of(mv)
    if origin == {"tracking_uri": registry.tracking_uri, "version": number}:
        return mv
    return None


def _needs_production(registry: MLflowRegistry, name: str, number: int) -> bool:
    """MLflow's production version ``number`` is another client's, not adopted, and
    the governance database has no production version to judge against."""
    found = registry.client.get_model_version(name, number)
    if found is None or tags_of(found).get(SEMVER_TAG) or _adopted(registry, name, number):
        return False
    try:
        return not registry.list_versions(name, stage="production")
    except ModelNotFound:
        return True


def _governance_record(registry: MLflowRegistry, name: str, version: SemVer) -> ModelVersion:
    """The governance database's record (``ModelRegistry.get_model_version``), without
    asking MLflow for its number."""
    return ModelRegistry.get_model_version(registry, name, version)
