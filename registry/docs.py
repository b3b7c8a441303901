"""Living docs and catalog export (``modelreg docs sync``), as the seed lays them out::

    <out>/<model>.md                        current production, history, rollback plan
    <out>/models/<model>-<version>/         model file, metadata.json, requirements.txt,
                                            features.yaml, signature.json
    <out>/registry/model_catalog.yaml
    <out>/registry/lineage_graph.json
    <out>/registry/deployment_history.md

Output is a pure function of the registry's state: stable ordering, no generation
timestamps, and a file is rewritten only when its bytes would change, so a re-run
with no change touches nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from registry import lineage
from registry.records import ModelVersion, Transition
from registry.stages import last_stable
from registry.versions import SemVer

if TYPE_CHECKING:
    from registry.api import ModelRegistry

_STAGE_LABEL = {"dev": "Dev", "staging": "Staging", "production": "Prod", "archived": "Archived"}


@dataclass
class SyncResult:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)


def _write(path: Path, data: bytes, result: SyncResult) -> None:
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        result.unchanged.append(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    result.written.append(path)


def _copy_blob(reg: ModelRegistry, digest: str, dest: Path, result: SyncResult) -> None:
    if dest.is_file() and dest.stat().st_size > 0:
        h = hashlib.sha256()
        with open(dest, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() == digest:
            result.unchanged.append(dest)
            return
    source = reg.artifacts.verify(digest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    with open(source, "rb") as src, open(tmp, "wb") as out:
        while chunk := src.read(1 << 22):
            out.write(chunk)
    os.replace(tmp, dest)
    result.written.append(dest)


def _title(name: str) -> str:
    return " ".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def _deployed(history: list[Transition]) -> dict[str, str]:
    """Version -> date it last entered production."""
    out: dict[str, str] = {}
    for t in history:
        if t.to_stage == "production":
            out[str(t.version)] = t.at.date().isoformat()
    return out


def _notes(mv: ModelVersion, history: list[Transition], current: str | None) -> str:
    version = str(mv.version)
    if version == current:
        return "Current ✅"
    if mv.deprecation is not None:
        return f"Deprecated: {mv.deprecation.reason}"
    left = [t for t in history if str(t.version) == version and t.from_stage == "production"]
    if left:
        last = left[-1]
        if last.kind == "rollback":
            return f"Rolled back: {last.reason or 'no reason given'}"
        if last.reason and last.reason.startswith("replaced by "):
            return "Replaced by " + last.reason.removeprefix("replaced by ")
        return "Retired"
    if mv.stage == "archived":
        return "Retired"
    return ""


def _fmt_metric(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def living_doc(name: str, versions: list[ModelVersion], history: list[Transition]) -> str:
    """The seed's markdown: current production, version history, rollback plan."""
    prod = next((mv for mv in versions if mv.stage == "production"), None)
    deployed = _deployed(history)
    lines = [f"## {_title(name)} - Production", "", "### Current Production Model"]
    if prod is None:
        lines.append("- No version is in production.")
    else:
        lines.append(f"- Version: {prod.version}")
        lines.append(f"- Deployed: {deployed.get(str(prod.version), '-')}")
        acc = prod.metadata.get("accuracy")
        if isinstance(acc, int | float):
            lines.append(f"- Accuracy: {acc * 100:g}%" if acc <= 1 else f"- Accuracy: {acc:g}")
        latency = prod.metadata.get("inference_latency_p50")
        if latency is not None:
            lines.append(f"- Latency: {latency} (p50)")
    lines += [
        "",
        "### Version History",
        "| Version | Stage | Accuracy | Deployed | Notes |",
        "|---------|-------|----------|----------|-------|",
    ]
    current = str(prod.version) if prod else None
    for mv in versions:
        acc = mv.metadata.get("accuracy")
        lines.append(
            f"| {mv.version} | {_STAGE_LABEL[mv.stage]} | "
            f"{_fmt_metric(acc) if acc is not None else '-'} | "
            f"{deployed.get(str(mv.version), '-')} | {_notes(mv, history, current)} |"
        )
    lines += ["", "### Rollback Plan"]
    stable = last_stable(history, prod.version if prod else None)
    if prod is None:
        lines.append("Nothing is in production; there is nothing to roll back.")
    elif stable is None:
        lines.append(_no_stable(prod.version, history))
    else:
        lines += [
            f"If {prod.version} issues detected:",
            f"1. Rollback to {stable} (tested, stable)",
            "2. Investigate issue in staging",
            f"3. Deploy fix as {prod.version.bump('patch')}",
        ]
    return "\n".join(lines) + "\n"


def _no_stable(current: SemVer, history: list[Transition]) -> str:
    """Why there is nowhere to roll back to, from the real history: ``current`` is the
    first production version, or every earlier one was rolled back from production."""
    earlier: list[str] = []
    for t in history:
        if t.to_stage == "production" and t.version != current and str(t.version) not in earlier:
            earlier.append(str(t.version))
    if not earlier:
        return f"{current} is the first production version: no earlier one to return to."
    verb = "was" if len(earlier) == 1 else "were"
    return (
        f"No stable version to return to: {', '.join(earlier)} {verb} rolled back from production."
    )


def catalog(models: dict[str, list[ModelVersion]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sorted(models):
        out[name] = {
            "production": next(
                (str(mv.version) for mv in models[name] if mv.stage == "production"), None
            ),
            "versions": {
                str(mv.version): {
                    "stage": mv.stage,
                    "created_at": mv.created_at.isoformat(),
                    "owner": mv.owner,
                    "artifact": {
                        "name": mv.artifact_name,
                        "sha256": mv.artifact_digest,
                        "size": mv.artifact_size,
                    },
                    "metrics": {
                        k: v
                        for k, v in sorted(mv.metadata.items())
                        if isinstance(v, int | float) and not isinstance(v, bool)
                    },
                    "features": len(mv.features) if mv.features is not None else None,
                    "tags": list(mv.tags),
                    "increment": mv.increment,
                    "deprecated": mv.deprecation.reason if mv.deprecation else None,
                }
                for mv in models[name]
            },
        }
    return {"models": out}


def deployment_history(histories: dict[str, list[Transition]]) -> str:
    lines = ["# Deployment history", ""]
    for name in sorted(histories):
        lines += [
            f"## {name}",
            "",
            "| When | Version | From | To | Kind | Who | Reason |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in histories[name]:
            lines.append(
                f"| {t.at.strftime('%Y-%m-%d %H:%M:%S')} | {t.version} | {t.from_stage or '-'} | "
                f"{t.to_stage} | {t.kind} | {t.actor} | {t.reason or ''} |"
            )
        lines.append("")
    return "\n".join(lines)


def sync_docs(reg: ModelRegistry, out: Path) -> SyncResult:
    """Write (or leave untouched) every file of the living docs and the catalog."""
    result = SyncResult()
    out = Path(out)
    models: dict[str, list[ModelVersion]] = {}
    histories: dict[str, list[Transition]] = {}
    for summary in reg.list_models():
        models[summary.name] = reg.list_versions(summary.name)
        histories[summary.name] = reg.history(summary.name)
    for name, versions in models.items():
        _write(out / f"{name}.md", living_doc(name, versions, histories[name]).encode(), result)
        for listed in versions:
            mv = reg.get_model_version(name, listed.version)
            folder = out / "models" / mv.ref
            for f in mv.files:
                if f.role == "model":
                    _copy_blob(reg, f.digest, folder / f.name, result)
                else:
                    _write(folder / f.name, reg.get_file(name, mv.version, f.name), result)
    registry_dir = out / "registry"
    cat = yaml.safe_dump(catalog(models), sort_keys=True, allow_unicode=True).encode()
    _write(registry_dir / "model_catalog.yaml", cat, result)
    with reg.store.read() as conn:
        graph = lineage.full_graph(conn)
    graph_bytes = (json.dumps(graph, indent=2, sort_keys=True) + "\n").encode()
    _write(registry_dir / "lineage_graph.json", graph_bytes, result)
    _write(registry_dir / "deployment_history.md", deployment_history(histories).encode(), result)
    return result
