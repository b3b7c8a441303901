"""The ``modelreg`` command: tables for people, ``--json`` for scripts.

Errors print one line (``error: ...``) and exit 1; usage errors exit 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from registry.api import ModelRegistry
from registry.errors import RegistryError
from registry.records import ModelVersion, Transition
from registry.versions import SemVer

app = typer.Typer(
    name="modelreg",
    help="Model registry and deployment controller.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output keeps whole rows readable instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)
T = TypeVar("T")
LARGE_ARTIFACT = 64 << 20


class _State:
    home: Path | None = None
    url: str | None = None
    actor: str | None = None
    debug: bool = False


state = _State()

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


@app.callback()
def _main(
    home: Annotated[
        Path | None, typer.Option(help="State directory (default $MODELREG_HOME or ./.modelreg).")
    ] = None,
    db: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who is acting (default: $USER).")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks on errors.")] = False,
) -> None:
    state.home, state.url, state.actor, state.debug = home, db, actor, debug


def _registry() -> ModelRegistry:
    return ModelRegistry(state.url, home=state.home, actor=state.actor)


def _run(fn: Callable[[ModelRegistry], T]) -> T:
    """Run ``fn`` with a registry; turn expected errors into one line and exit 1."""
    try:
        with _registry() as registry:
            return fn(registry)
    except (RegistryError, ValueError, OSError) as exc:
        if state.debug:
            raise
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _load_mapping(value: str | None, what: str) -> dict[str, Any] | None:
    """Inline JSON, or a path to a JSON/YAML file."""
    if value is None:
        return None
    text = value
    if not value.lstrip().startswith("{"):
        path = Path(value)
        if not path.is_file():
            raise typer.BadParameter(f"{what}: {value!r} is neither JSON nor an existing file")
        text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{what}: not valid JSON/YAML: {exc}") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{what}: expected a mapping")
    return data


def _version_table(versions: list[ModelVersion], title: str) -> Table:
    table = Table(title=title)
    for col in ("Version", "Stage", "Created", "Owner", "Artifact", "Tags", "Notes"):
        table.add_column(col)
    for mv in versions:
        art = f"{mv.artifact_name} {mv.artifact_digest[:12]}" if mv.artifact_digest else "-"
        note = f"deprecated: {mv.deprecation.reason}" if mv.deprecation else ""
        table.add_row(
            str(mv.version),
            mv.stage,
            mv.created_at.strftime("%Y-%m-%d %H:%M"),
            mv.owner or "-",
            art,
            ", ".join(mv.tags),
            note,
        )
    return table


@app.command()
def register(
    name: Annotated[str, typer.Argument(help="Model name.")],
    artifact: Annotated[
        Path | None, typer.Argument(help="Model file to store (omit for metadata only).")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Explicit version (default: auto).")] = None,
    metadata: Annotated[str | None, typer.Option(help="JSON, or a JSON/YAML file.")] = None,
    signature: Annotated[
        str | None, typer.Option(help="JSON/YAML with inputs and outputs.")
    ] = None,
    features: Annotated[str | None, typer.Option(help="Comma-separated feature names.")] = None,
    requirements: Annotated[
        Path | None, typer.Option(help="requirements.txt (default: captured).")
    ] = None,
    stage: Annotated[str, typer.Option(help="dev or staging.")] = "dev",
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    parent: Annotated[str | None, typer.Option(help="Parent version.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a new version of a model."""
    meta = _load_mapping(metadata, "--metadata")
    sig = _load_mapping(signature, "--signature")
    feats = [f.strip() for f in features.split(",") if f.strip()] if features else None
    reqs = requirements.read_text() if requirements is not None else None

    def go(registry: ModelRegistry) -> ModelVersion:
        size = artifact.stat().st_size if artifact is not None and artifact.is_file() else 0
        kwargs: dict[str, Any] = {
            "version": version,
            "metadata": meta,
            "stage": stage,
            "tags": tag,
            "signature": sig,
            "features": feats,
            "requirements": reqs,
            "parent": parent,
        }
        if size >= LARGE_ARTIFACT and not as_json:
            columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
            with Progress(*columns, console=err, transient=True) as bar:
                task = bar.add_task("storing", total=size)
                return registry.register_model(
                    name,
                    artifact,
                    progress=lambda n: bar.advance(task, n),
                    **kwargs,
                )
        return registry.register_model(name, artifact, **kwargs)

    mv = _run(go)
    if as_json:
        _emit_json(mv.to_dict())
    else:
        digest = f" ({mv.artifact_digest[:12]})" if mv.artifact_digest else ""
        out.print(f"registered {mv.name} {mv.version} in {mv.stage}{digest}")


@app.command("list")
def list_(
    name: Annotated[str | None, typer.Argument(help="List this model's versions.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only versions in this stage.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only versions with this tag.")] = None,
    deprecated: Annotated[bool, typer.Option(help="Only deprecated versions.")] = False,
    limit: Annotated[int | None, typer.Option(help="At most this many versions.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List models, or the versions of one model."""
    if name is None and stage is None and tag is None and not deprecated:
        models = _run(lambda r: r.list_models())
        if as_json:
            _emit_json([m.to_dict() for m in models])
            return
        table = Table(title="Models")
        for col in ("Model", "Versions", "Latest", "Production"):
            table.add_column(col)
        for m in models:
            table.add_row(m.name, str(m.versions), str(m.latest or "-"), str(m.production or "-"))
        out.print(table)
        return
    versions = _run(
        lambda r: r.list_versions(
            name, stage=stage, tag=tag, deprecated=True if deprecated else None, limit=limit
        )
    )
    if as_json:
        _emit_json([mv.to_dict() for mv in versions])
    else:
        out.print(_version_table(versions, f"Versions of {name}" if name else "Versions"))


@app.command()
def info(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        str | None, typer.Argument(help="Version (default: production, else latest).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one version: stage, artifact, files, metadata, signature, features."""

    def go(registry: ModelRegistry) -> ModelVersion:
        if version is not None:
            return registry.get_model_version(name, version)
        try:
            return registry.get_model_version(name, stage="production")
        except RegistryError:
            latest = registry.list_versions(name, limit=1)
            if not latest:
                raise
            return registry.get_model_version(name, latest[0].version)

    mv = _run(go)
    if as_json:
        _emit_json(mv.to_dict())
        return
    out.print(f"[bold]{mv.name} {mv.version}[/bold]  stage: {mv.stage}")
    out.print(f"created: {mv.created_at.isoformat()}  owner: {mv.owner or '-'}", highlight=False)
    out.print(f"parent: {mv.parent or '-'}  tags: {', '.join(mv.tags) or '-'}")
    if mv.deprecation:
        eol = mv.deprecation.end_of_life
        out.print(f"deprecated: {mv.deprecation.reason} (end of life {eol or '-'})")
    table = Table(title="Files")
    for col in ("File", "Role", "Size", "SHA-256"):
        table.add_column(col)
    for f in mv.files:
        table.add_row(f.name, f.role, str(f.size), f.digest)
    out.print(table)
    if mv.metadata:
        out.print_json(json.dumps(mv.metadata, default=str))
    if mv.signature:
        out.print(f"signature: {json.dumps(mv.signature)}", highlight=False)
    if mv.features is not None:
        out.print(f"features ({len(mv.features)}): {', '.join(mv.features)}")


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version to move.")],
    to: Annotated[str, typer.Option("--to", help="Target stage.")] = "production",
    from_stage: Annotated[
        str | None, typer.Option("--from", help="Expected current stage.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (required with --force).")] = None,
    force: Annotated[bool, typer.Option(help="Allow a move the lifecycle forbids.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Move a version to another stage (production archives the previous one)."""
    mv = _run(
        lambda r: r.promote_model(
            name, version, from_stage=from_stage, to_stage=to, reason=reason, force=force
        )
    )
    if as_json:
        _emit_json(mv.to_dict())
    else:
        out.print(f"{mv.name} {mv.version} is now in {mv.stage}")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option(help="Why you roll back.")],
    to: Annotated[
        str | None, typer.Option("--to", help="Version (default: previous production).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Put the previous (or a given) version back in production."""
    mv = _run(lambda r: r.rollback(name, to, reason=reason))
    if as_json:
        _emit_json(mv.to_dict())
    else:
        out.print(f"rolled back {mv.name} to {mv.version}")


@app.command()
def compare(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version_a: Annotated[str, typer.Argument(help="Baseline version.")],
    version_b: Annotated[str, typer.Argument(help="Candidate version.")],
    as_json: JsonOpt = False,
) -> None:
    """Compare two versions: metrics, performance, features, recommendation."""
    a, b = SemVer.parse(version_a), SemVer.parse(version_b)
    result = _run(lambda r: r.compare_models(f"{name}-{a}", f"{name}-{b}"))
    if as_json:
        _emit_json(result.to_dict())
    else:
        sys.stdout.write(str(result) + "\n")


@app.command()
def deprecate(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version.")],
    reason: Annotated[str, typer.Option(help="Why it is deprecated.")],
    eol: Annotated[str | None, typer.Option(help="End of life (ISO date).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Mark a version deprecated."""
    mv = _run(lambda r: r.deprecate_model(name, version, reason, eol))
    if as_json:
        _emit_json(mv.to_dict())
    else:
        out.print(f"deprecated {mv.name} {mv.version}")


@app.command()
def history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    as_json: JsonOpt = False,
) -> None:
    """Every stage transition of a model: who, when, why."""
    transitions = _run(lambda r: r.history(name))
    if as_json:
        _emit_json([t.to_dict() for t in transitions])
        return
    out.print(history_table(name, transitions))


def history_table(name: str, transitions: list[Transition]) -> Table:
    """The deployment history as a table: when, what, from where to where, who, why."""
    table = Table(title=f"History of {name}")
    for col in ("When", "Version", "From", "To", "Kind", "Who"):
        table.add_column(col, no_wrap=True)
    table.add_column("Reason")
    for t in transitions:
        table.add_row(
            t.at.strftime("%Y-%m-%d %H:%M:%S"),
            str(t.version),
            t.from_stage or "-",
            t.to_stage,
            t.kind,
            t.actor,
            t.reason or "",
        )
    return table


def main() -> None:
    """Console-script entry point."""
    app()
