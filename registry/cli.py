"""The ``modelreg`` command: tables for people, ``--json`` for scripts.

Errors print one line (``error: ...``) and exit 1; usage errors exit 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from registry import names
from registry.errors import InvalidInput, RegistryError
from registry.limits import DEFAULT_LIMITS
from registry.records import ModelVersion, Transition
from registry.versions import SemVer

if TYPE_CHECKING:
    # Imported where used: --help and quick reads need neither MLflow's client nor the
    # report and docs writers (see ``test_cli_start``).
    from registry.api import ModelRegistry
    from registry.mlflow_registry import MLflowRegistry

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
    artifacts: str | None = None
    actor: str | None = None
    debug: bool = False
    mlflow: str | None = None


state = _State()

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


@app.callback()
def _main(
    home: Annotated[
        Path | None, typer.Option(help="State directory (default $MODELREG_HOME or ./.modelreg).")
    ] = None,
    db: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
    artifacts: Annotated[
        str | None,
        typer.Option(
            envvar="MODELREG_ARTIFACTS",
            help="Where artifacts live: a directory or s3://, gs://, az://BUCKET/PREFIX "
            "(default <home>/artifacts; credentials from the provider's environment).",
        ),
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who is acting (default: $USER).")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks on errors.")] = False,
    mlflow: Annotated[
        str | None,
        typer.Option(
            "--mlflow",
            metavar="URI",
            help="Use the MLflow tracking server at URI as the registry (MLflowRegistry); "
            "--db is then its governance database.",
        ),
    ] = None,
) -> None:
    state.mlflow = mlflow
    state.home, state.url, state.actor, state.debug = home, db, actor, debug
    state.artifacts = artifacts


def _registry(*, create: bool = True) -> ModelRegistry:
    from registry.api import ModelRegistry  # noqa: PLC0415

    return ModelRegistry(
        state.url, home=state.home, actor=state.actor, artifact_uri=state.artifacts, create=create
    )


def _run(fn: Callable[[ModelRegistry], T], *, read: bool = False) -> T:
    """Run ``fn`` with a registry; turn expected errors into one line and exit 1.

    ``read``: the command only reads, so a registry that is not there is an error
    naming where it looked, and nothing is created. A registry other than the
    default one (``--db``, ``--home``, ``--mlflow``) is named on stderr first, so
    output is never mistaken for another registry's."""
    import sqlalchemy as sa  # noqa: PLC0415 -- loaded by the registry anyway; not for --help

    from registry.db import database_failed, safe_url, without_password  # noqa: PLC0415

    try:
        opened = _mlflow_registry(create=not read) if state.mlflow else _registry(create=not read)
        with opened as registry:
            if not _default_registry():
                where = getattr(registry, "tracking_uri", None) if state.mlflow else None
                shown = f"MLflow {without_password(where)}, governance " if where else ""
                err.print(f"registry: {shown}{safe_url(registry.url)}", markup=False,
                          highlight=False, soft_wrap=True)  # fmt: skip
            try:
                return fn(registry)
            except (sa.exc.DBAPIError, sqlite3.Error) as exc:  # a disk error, a lock held too long
                if state.debug:
                    raise
                raise _fail_line(database_failed(registry.url, exc)) from None
    except (RegistryError, ValueError, OSError) as exc:
        if state.debug:
            raise
        raise _fail_line(str(exc)) from None


def _fail_line(message: str) -> typer.Exit:
    """``error: <message>`` on stderr; the ``typer.Exit(1)`` to raise."""
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _default_registry() -> bool:
    """No ``--db``, ``--home`` or ``--mlflow``: the registry of ``$MODELREG_HOME`` or
    ``./.modelreg``, the one the help names."""
    return not (state.url or state.home or state.mlflow)


def _mlflow_registry(*, create: bool = True) -> MLflowRegistry:
    """``--mlflow URI``: the tracking server is the registry, ``--db`` its governance."""
    assert state.mlflow is not None
    from registry.mlflow_registry import MLflowRegistry  # noqa: PLC0415

    return MLflowRegistry(
        state.mlflow, governance=state.url, home=state.home, actor=state.actor, create=create
    )


def _row(table: Table, *cells: object) -> None:
    """Add a row whose cells are literal text: user strings are never Rich markup."""
    table.add_row(*(Text(str(cell)) for cell in cells))


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
    if len(text) > DEFAULT_LIMITS.metadata_bytes * 4:  # parsing it would be the cost
        raise _fail_line(f"{what} is {len(text)} bytes, over what any limit allows")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{what}: not valid JSON/YAML: {exc}") from None
    except RecursionError:
        raise _fail_line(
            f"{what} is nested deeper than {DEFAULT_LIMITS.depth} levels (the limit)"
        ) from None
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
        _row(
            table,
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
    input_example: Annotated[
        str | None,
        typer.Option(
            help="A sample input record (JSON, or a JSON/YAML file): the signature's "
            "inputs, when --signature is not given."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a new version of a model."""
    meta = _load_mapping(metadata, "--metadata")
    sig = _load_mapping(signature, "--signature")
    example = _load_mapping(input_example, "--input-example")
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
            "input_example": example,
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
        models = _run(lambda r: r.list_models(), read=True)
        if as_json:
            _emit_json([m.to_dict() for m in models])
            return
        table = Table(title="Models")
        for col in ("Model", "Versions", "Latest", "Production"):
            table.add_column(col)
        for m in models:
            _row(table, m.name, str(m.versions), str(m.latest or "-"), str(m.production or "-"))
        out.print(table)
        return
    versions = _run(
        lambda r: r.list_versions(
            name, stage=stage, tag=tag, deprecated=True if deprecated else None, limit=limit
        ),
        read=True,
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

    mv = _run(go, read=True)
    if as_json:
        _emit_json(mv.to_dict())
        return
    out.print(f"[bold]{mv.name} {mv.version}[/bold]  stage: {mv.stage}")
    out.print(
        f"created: {mv.created_at.isoformat()}  owner: {escape(mv.owner or '-')}",
        highlight=False,
    )
    out.print(f"parent: {mv.parent or '-'}  tags: {escape(', '.join(mv.tags)) or '-'}")
    if mv.deprecation:
        eol = mv.deprecation.end_of_life
        out.print(f"deprecated: {escape(mv.deprecation.reason)} (end of life {eol or '-'})")
    table = Table(title="Files")
    for col in ("File", "Role", "Size", "SHA-256"):
        table.add_column(col)
    for f in mv.files:
        _row(table, f.name, f.role, str(f.size), f.digest)
    out.print(table)
    if mv.metadata:
        out.print_json(json.dumps(mv.metadata, default=str))
    if mv.signature:
        out.print(f"signature: {json.dumps(mv.signature)}", highlight=False, markup=False)
    else:
        out.print("signature: none recorded (register with --signature or --input-example)",
                  highlight=False, markup=False)  # fmt: skip
    if mv.features is not None:
        out.print(f"features ({len(mv.features)}): {', '.join(mv.features)}", markup=False)


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
    reason: Annotated[
        str, typer.Option(help="Why you roll back (recorded in history and audit).")
    ] = "manual rollback from the CLI (no reason given)",
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
    result = _run(lambda r: r.compare_models(f"{name}-{a}", f"{name}-{b}"), read=True)
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
    transitions = _run(lambda r: r.history(name), read=True)
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
        _row(
            table,
            t.at.strftime("%Y-%m-%d %H:%M:%S"),
            str(t.version),
            t.from_stage or "-",
            t.to_stage,
            t.kind,
            t.actor,
            t.reason or "",
        )
    return table


@app.command()
def approve(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version.")],
    comments: Annotated[str | None, typer.Option(help="Why you approve.")] = None,
    stage: Annotated[str, typer.Option(help="Stage the approval is for.")] = "production",
    approver: Annotated[str | None, typer.Option(help="Who approves (default --actor).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a version for a guarded stage."""
    d = _run(lambda r: r.approve_model(name, version, approver or r.actor, comments, stage=stage))
    if as_json:
        _emit_json(d.to_dict())
    else:
        out.print(f"{d.approver} approved {name} {d.version} for {d.stage}", markup=False)


@app.command()
def reject(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version.")],
    comments: Annotated[str | None, typer.Option(help="Why you reject.")] = None,
    stage: Annotated[str, typer.Option(help="Stage the rejection is for.")] = "production",
    approver: Annotated[str | None, typer.Option(help="Who rejects (default --actor).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a version for a guarded stage."""
    d = _run(lambda r: r.reject_model(name, version, approver or r.actor, comments, stage=stage))
    if as_json:
        _emit_json(d.to_dict())
    else:
        out.print(f"{d.approver} rejected {name} {d.version} for {d.stage}", markup=False)


approval_policy_app = typer.Typer(
    help="Who must approve a version before it enters a stage.", no_args_is_help=True
)
app.add_typer(approval_policy_app, name="approval-policy")
ModelArg = Annotated[
    str | None, typer.Argument(help="Model name (omit for the registry-wide policy).")
]
StageOpt = Annotated[str, typer.Option(help="The guarded stage.")]


def _print_policy(policy: Any, stage: str, name: str | None, as_json: bool) -> None:
    if as_json:
        _emit_json({"stage": stage, "model": name,
                    "policy": policy.to_dict() if policy else None})  # fmt: skip
        return
    level = f"{name} {stage}" if name else f"{stage} (registry-wide)"
    if policy is None:
        out.print(f"{level}: no approvals needed", markup=False, highlight=False)
        return
    source = "its own policy" if policy.model else "the registry-wide policy"
    shown = f" ({source})" if name else ""
    out.print(f"{level}: {policy.min_approvals} of {', '.join(policy.approvers)}{shown}",
              markup=False, highlight=False)  # fmt: skip


@approval_policy_app.command("set")
def approval_policy_set(
    name: ModelArg = None,
    stage: StageOpt = "production",
    approvers: Annotated[
        str, typer.Option(help="Who may approve: comma-separated identities.")
    ] = "",
    min_approvals: Annotated[int, typer.Option("--min", help="Approvals needed.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Require --min of --approvers before a version of NAME (or any model) enters STAGE."""
    people = [a.strip() for a in approvers.split(",") if a.strip()]
    if not people:
        raise typer.BadParameter("--approvers needs at least one identity, e.g. --approvers a,b")
    from registry.approvals import validate_policy  # noqa: PLC0415

    try:  # refused before a registry is opened (or made)
        validate_policy(people, min_approvals)
    except InvalidInput as exc:
        raise _fail_line(str(exc)) from None
    policy = _run(lambda r: r.set_approval_required(stage, people, min_approvals, model=name))
    _print_policy(policy, stage, name, as_json)


@approval_policy_app.command("show")
def approval_policy_show(
    name: ModelArg = None, stage: StageOpt = "production", as_json: JsonOpt = False
) -> None:
    """The policy in force for NAME's STAGE (its own, else the registry-wide one)."""
    policy = _run(lambda r: r.approval_policy(name, stage), read=True)
    _print_policy(policy, stage, name, as_json)


@approval_policy_app.command("clear")
def approval_policy_clear(
    name: ModelArg = None, stage: StageOpt = "production", as_json: JsonOpt = False
) -> None:
    """Remove NAME's own policy (the registry-wide one applies again), or the
    registry-wide one; prints the policy in force afterwards."""
    policy = _run(lambda r: r.clear_approval_policy(stage, model=name))
    _print_policy(policy, stage, name, as_json)


def current_actor() -> str:
    """Who is acting: ``--actor``, else ``$MODELREG_ACTOR``, else the login name (the
    registry's own default), for commands that act through the daemon; a name the
    registry would refuse is one error line, exit 1."""
    try:
        return names.actor(state.actor or names.default_actor())
    except InvalidInput as exc:
        raise _fail_line(str(exc)) from None


@app.command()
def approvals(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version.")],
    as_json: JsonOpt = False,
) -> None:
    """Approvals and rejections recorded for a version, and the policy in force."""

    def go(r: ModelRegistry) -> tuple[list[Any], Any]:
        return r.approvals(name, version), r.approval_policy(name, "production")

    decisions, policy = _run(go, read=True)
    if as_json:
        _emit_json(
            {
                "decisions": [d.to_dict() for d in decisions],
                "policy": policy.to_dict() if policy else None,
            }
        )
        return
    if policy is not None:
        out.print(
            f"production needs {policy.min_approvals} of: {', '.join(policy.approvers)}",
            highlight=False,
            markup=False,
        )
    table = Table(title=f"Approvals of {name} {version}")
    for col in ("When", "Stage", "Approver", "Decision", "Comments"):
        table.add_column(col)
    for d in decisions:
        _row(
            table,
            d.at.strftime("%Y-%m-%d %H:%M"),
            d.stage,
            d.approver,
            d.decision,
            d.comments or "",
        )
    out.print(table)


@app.command("auto-rollback")
def auto_rollback(
    name: Annotated[
        str | None, typer.Argument(help="Model name (omit for the registry-wide triggers).")
    ] = None,
    error_rate: Annotated[
        float | None, typer.Option("--error-rate", help="Roll back above this error rate.")
    ] = None,
    latency: Annotated[
        float | None, typer.Option("--latency", help="Roll back above this p95 latency (ms).")
    ] = None,
    accuracy_drop: Annotated[
        float | None,
        typer.Option("--accuracy-drop", help="Roll back when accuracy drops more than this."),
    ] = None,
    window: Annotated[str, typer.Option(help="Window judged, e.g. 30m, 1h.")] = "1h",
    min_samples: Annotated[int, typer.Option(help="Observations needed to judge.")] = 100,
    consecutive: Annotated[int, typer.Option(help="Breaches in a row that fire.")] = 1,
    cooldown: Annotated[str, typer.Option(help="No second rollback within this.")] = "1h",
    clear: Annotated[bool, typer.Option("--clear", help="Remove this level's triggers.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show, set or clear the triggers the daemon guards production with.

    Without thresholds it shows the triggers in force; with any threshold it
    replaces the level's triggers (the seed's set_auto_rollback_triggers).
    """
    setting = any(t is not None for t in (error_rate, latency, accuracy_drop))
    if clear and setting:
        raise typer.BadParameter("--clear takes no thresholds", param_hint="--clear")

    def go(r: ModelRegistry) -> tuple[Any, ...]:
        if clear:
            r.clear_auto_rollback_triggers(name)
        elif setting:
            r.set_auto_rollback_triggers(
                name,
                error_rate_threshold=error_rate,
                latency_threshold=latency,
                accuracy_drop_threshold=accuracy_drop,
                window=window,
                min_samples=min_samples,
                consecutive=consecutive,
                cooldown=cooldown,
            )
        if name is not None:
            return r.auto_rollback_triggers(name)
        default = r.auto_rollback_settings().get(None)
        return (default.triggers if default else None) or ()

    triggers = _run(go)
    if as_json:
        _emit_json([t.to_dict() for t in triggers])
        return
    level = name or "every model (registry-wide)"
    if not triggers:
        out.print(f"no auto-rollback triggers guard {level}", markup=False)
        return
    table = Table(title=f"Auto-rollback triggers: {level}")
    for col in ("Trigger", "Rolls back when", "Window", "Min samples", "In a row", "Cooldown"):
        table.add_column(col)
    for t in triggers:
        what = "drop of " if t.compare == "drop" else ""
        _row(table, t.name, f"{what}{t.metric} {t.direction} {t.threshold:g}",
             f"{t.window_s:g}s", t.min_samples, t.consecutive, f"{t.cooldown_s:g}s")  # fmt: skip
    out.print(table)


audit_app = typer.Typer(help="The audit trail: verify, log, report.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(as_json: JsonOpt = False) -> None:
    """Walk the hash chain; exit 1 naming the first broken link."""

    def go(r: ModelRegistry) -> tuple[Any, int]:
        return r.verify_audit_chain(), len(r.audit_log())

    broken, count = _run(go, read=True)
    if as_json:
        _emit_json(
            {
                "intact": broken is None,
                "events": count,
                "broken_at": broken.event_id if broken else None,
                "problem": broken.problem if broken else None,
            }
        )
    elif broken is None:
        out.print(f"audit chain intact: {count} events")
    else:
        err.print(f"audit chain broken at event {broken.event_id}: {broken.problem}", markup=False)
    if broken is not None:
        raise typer.Exit(1)


@audit_app.command("log")
def audit_log(
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    since: Annotated[str | None, typer.Option(help="From this date/time.")] = None,
    until: Annotated[str | None, typer.Option(help="Up to this date/time.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the last N events.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Audit events, oldest first."""
    events = _run(lambda r: r.audit_log(model, since=since, until=until, limit=limit), read=True)
    if as_json:
        _emit_json([e.to_dict() for e in events])
        return
    table = Table(title="Audit log")
    for col in ("#", "When", "Actor", "Action", "Target"):
        table.add_column(col, no_wrap=True)
    table.add_column("Reason")
    for e in events:
        _row(
            table,
            str(e.id),
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action,
            e.target,
            e.reason or "",
        )
    out.print(table)


@audit_app.command("report")
def audit_report(
    model: Annotated[str, typer.Argument(help="Model name.")],
    start: Annotated[str, typer.Option("--from", help="Start date.")],
    end: Annotated[str, typer.Option("--to", help="End date.")],
    fmt: Annotated[str, typer.Option("--format", help="md, json or html.")] = "md",
    output: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A governance report: deployments, approvals, metrics, data sources, compliance."""
    fmt = "json" if as_json else fmt
    if fmt not in ("md", "json", "html"):
        raise typer.BadParameter(f"--format must be md, json or html, not {fmt!r}")
    from registry.report import ModelGovernance  # noqa: PLC0415

    report = _run(lambda r: ModelGovernance(r).generate_audit_report(model, start, end), read=True)
    text = {"md": report.to_markdown, "json": report.to_json, "html": report.to_html}[fmt]()
    if output is not None:
        output.write_text(text)
        out.print(f"wrote {output}", markup=False)
    else:
        sys.stdout.write(text)


import_app = typer.Typer(
    help="Copy models from another registry into this one.", no_args_is_help=True
)
app.add_typer(import_app, name="import")


@import_app.command("mlflow")
def import_mlflow(
    tracking_uri: Annotated[
        str, typer.Option("--tracking-uri", metavar="URI", help="The MLflow tracking server.")
    ],
    model: Annotated[str | None, typer.Option(help="Only this registered model.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy MLflow's models, versions, artifacts (digest-verified) and staging/production
    aliases into this registry (--db/--home); a re-run copies only what is new."""
    from registry.mlflow_import import import_from_mlflow, plan_import, summary  # noqa: PLC0415
    from registry.mlflow_rest import MLflowClient  # noqa: PLC0415

    def go(registry: ModelRegistry) -> dict[str, Any]:
        client = MLflowClient(tracking_uri)
        try:
            plan = plan_import(client, model)
            if as_json or plan.total == 0:
                return summary(import_from_mlflow(registry, client, plan))
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
            ) as bar:
                task = bar.add_task("importing", total=plan.total)
                results = import_from_mlflow(
                    registry,
                    client,
                    plan,
                    advance=lambda label: bar.update(task, advance=1, description=label),
                )
            return summary(results)
        finally:
            client.close()

    done = _run(go)
    if as_json:
        _emit_json(done)
    else:
        out.print(
            f"imported {done['imported']} versions, {done['unchanged']} already here "
            f"(from {tracking_uri})"
        )


@app.command()
def lineage(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version.")],
    fmt: Annotated[str, typer.Option("--format", help="tree, json, dot or mermaid.")] = "tree",
    as_json: JsonOpt = False,
) -> None:
    """What produced a version (data, features, experiment) and where it is deployed."""
    fmt = "json" if as_json else fmt
    renderers = {"tree", "json", "dot", "mermaid"}
    if fmt not in renderers:
        raise typer.BadParameter(f"--format must be one of {', '.join(sorted(renderers))}")
    graph = _run(lambda r: r.get_lineage(name, version), read=True)
    if fmt == "json":
        _emit_json(graph.to_dict())
    else:
        text = {"tree": graph.tree, "dot": graph.to_dot, "mermaid": graph.to_mermaid}[fmt]()
        sys.stdout.write(text + "\n")


@app.command()
def impact(
    data: Annotated[str | None, typer.Option(help="Data version, e.g. v2024-01.")] = None,
    feature_set: Annotated[str | None, typer.Option(help="Feature-engineering version.")] = None,
    feature: Annotated[str | None, typer.Option(help="A feature name.")] = None,
    deployed: Annotated[
        bool,
        typer.Option(
            help="Only what is deployed: the deployments downstream of --data, "
            "the production versions for --feature-set and --feature."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Which model versions (or deployments) depend on a data version, feature set or feature."""
    chosen = [x for x in (data, feature_set, feature) if x is not None]
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --data, --feature-set, --feature")

    def go(r: ModelRegistry) -> list[Any]:
        if data is not None:
            return (
                r.deployed_downstream_of(f"data:{data}") if deployed else r.models_using_data(data)
            )
        if feature_set is not None:
            found = r.models_using_feature_set(feature_set)
        else:
            assert feature is not None
            found = r.models_using_feature(feature)
        return [mv for mv in found if mv.stage == "production"] if deployed else found

    found = _run(go, read=True)
    if as_json:
        _emit_json([x.to_dict() for x in found])
        return
    for x in found:
        out.print(x.ref if isinstance(x, ModelVersion) else x.label + f" ({x.key})")
    if not found:
        out.print("nothing depends on it")


docs_app = typer.Typer(help="Living docs and catalog export.", no_args_is_help=True)
app.add_typer(docs_app, name="docs")


@app.command()
def gc(
    older_than: Annotated[
        str, typer.Option(help="Only what is older than this (e.g. 1h, 24h, 7d).")
    ] = "24h",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, remove nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove artifacts no version references and writes abandoned mid-way.

    Both only when older than --older-than: younger ones may belong to a registration
    still in flight. Local stores and object storage alike; removals are audited.
    """
    from registry.auto_rollback import parse_duration  # noqa: PLC0415

    age = timedelta(seconds=parse_duration(older_than, "--older-than", allow_zero=True))
    report = _run(lambda r: r.collect_garbage(older_than=age, dry_run=dry_run))
    if as_json:
        _emit_json(report.to_dict())
        return
    verb = "would remove" if dry_run else "removed"
    out.print(
        f"{report.location}: {verb} {len(report.removed)} unreferenced blob(s), "
        f"kept {report.kept_recent} younger than {older_than}, "
        f"removed {len(report.abandoned)} abandoned write(s)",
        markup=False,
        highlight=False,
    )


@app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="A new directory for the backup.")],
    as_json: JsonOpt = False,
) -> None:
    """Back up the registry while it runs: the database (a consistent snapshot), every
    artifact a version references (verified) and a manifest of their digests."""
    report = _run(lambda r: r.backup(dest), read=True)
    if as_json:
        _emit_json(report.to_dict())
        return
    size = report.artifact_bytes / 1e6
    out.print(f"backed up {report.database} to {report.path}: {report.audit_events} audit "
              f"events, {report.artifacts} artifacts ({size:.1f} MB)", markup=False,
              highlight=False)  # fmt: skip


@app.command()
def restore(
    src: Annotated[Path, typer.Argument(help="A directory written by modelreg backup.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a registry with changes the backup lacks.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Replace the registry with a backup, after verifying every file in it; refuses a
    registry with a longer audit trail than the backup's without --force. Stop the
    daemon first: a registry in use is refused."""
    if state.mlflow:
        raise _fail_line("restore replaces a modelreg database; with --mlflow, restore MLflow's")
    from registry.api import restore_registry  # noqa: PLC0415

    try:
        report = restore_registry(src, home=state.home, url=state.url,
                                  artifact_uri=state.artifacts, force=force)  # fmt: skip
    except (RegistryError, ValueError, OSError) as exc:
        if state.debug:
            raise
        raise _fail_line(str(exc)) from None
    if as_json:
        _emit_json(report.to_dict())
        return
    out.print(f"restored {report.database} from {report.path}: {report.audit_events} audit "
              f"events, {report.artifacts_restored} artifacts put back, "
              f"{report.artifacts_present} already there", markup=False,
              highlight=False)  # fmt: skip


@docs_app.command("sync")
def docs_sync(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Target directory.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the living docs and catalog; unchanged files are left untouched."""
    from registry.docs import sync_docs  # noqa: PLC0415

    def go(r: ModelRegistry) -> tuple[Path, Any]:
        target = out_dir or (r.home / "docs")
        return target, sync_docs(r, target)

    target, result = _run(go, read=True)
    if as_json:
        _emit_json({"out": str(target), "written": [str(p) for p in result.written],
                    "unchanged": [str(p) for p in result.unchanged]})  # fmt: skip
        return
    out.print(f"{len(result.written)} files written to {target}/, {len(result.unchanged)} "
              "unchanged", markup=False, highlight=False)  # fmt: skip


@app.command()
def experiments(
    increment: Annotated[str | None, typer.Option(help="Only this increment.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Tracked experiments with their params, metrics and duration."""
    from registry.experiments import list_experiments  # noqa: PLC0415

    found = _run(lambda r: list_experiments(r, increment=increment), read=True)
    if as_json:
        _emit_json([e.to_dict() for e in found])
        return
    table = Table(title="Experiments")
    for col in ("Name", "Increment", "Status", "Started", "Duration", "Metrics"):
        table.add_column(col)
    for e in found:
        dur = f"{e.duration_s:.1f}s" if e.duration_s is not None else "-"
        metrics = ", ".join(f"{k}={v}" for k, v in sorted(e.metrics.items()))
        _row(
            table,
            e.name,
            e.increment or "-",
            e.status,
            e.started_at.strftime("%Y-%m-%d %H:%M"),
            dur,
            metrics,
        )
    out.print(table)


def run_app(typer_app: typer.Typer) -> None:
    """Run ``typer_app`` as the ``modelreg`` command, every failure one line on stderr.

    Usage errors (an unknown flag, a missing argument, a bad value) print ``error:
    <what> (see 'modelreg ... --help')`` and exit 2, instead of click's boxed usage
    block; a bare group with no subcommand still prints its help. Click's exceptions
    are recognised by their protocol (``exit_code``, ``format_message``, ``show``):
    Typer vendors its own copy of click in recent releases, plain click in older
    ones."""
    command = typer.main.get_command(typer_app)
    try:
        result = command.main(prog_name="modelreg", standalone_mode=False)
    except typer.Abort:  # Ctrl-C, or a prompt's EOF
        err.print("aborted", markup=False, highlight=False)
        sys.exit(1)
    except Exception as exc:
        show, message = getattr(exc, "show", None), getattr(exc, "format_message", None)
        code = getattr(exc, "exit_code", None)
        if not (callable(show) and callable(message) and isinstance(code, int)):
            raise
        text = str(message())
        if "\n" in text:  # a group's help (no_args_is_help), not an error line
            show()
            sys.exit(code)
        ctx = getattr(exc, "ctx", None)
        path = getattr(ctx, "command_path", None)
        hint = f" (see '{path} --help')" if code == 2 and path else ""
        err.print(f"error: {text}{hint}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(code)
    sys.exit(result if isinstance(result, int) else 0)


def main() -> None:
    """Console-script entry point."""
    run_app(app)
