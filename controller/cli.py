"""The ``modelreg`` command: the registry's Typer app plus the controller's commands.

The registry's CLI (``registry.cli.app``) knows nothing of the controller; this
module adds ``daemon``, ``config check`` and ``rollout ...`` to it and runs it.
``python -m registry`` stays the registry-only command.

Rollout commands talk to a running daemon with ``--api URL`` (default: the
``server.listen`` address of ``--config``), or directly to the database with
``--direct`` (reads, start, pause, resume, abort, approve, reject without a daemon).
Usage errors, including an invalid config, exit with code 2. With a daemon that
requires tokens, put yours in ``MODELREG_TOKEN``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from controller.core.phases import Event
from controller.errors import ConfigError, ControllerError
from controller.policy_cli import policy_app
from registry.cli import app, current_actor, run_app
from registry.errors import RegistryError

if TYPE_CHECKING:
    from controller.config import Config

# Modules that need the config's models, the database, HTTP or the statistics are
# imported inside the commands that use them: ``modelreg --help`` and ``modelreg
# list`` start in a fraction of the time (``tests/test_cli_start.py``).

__all__ = ["app", "main"]

out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

config_app = typer.Typer(help="Check daemon config files.", no_args_is_help=True)
rollout_app = typer.Typer(help="List, inspect and steer rollouts.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(rollout_app, name="rollout")
app.add_typer(policy_app, name="policy")
cluster_app = typer.Typer(help="Several daemons on one database.", no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Daemon config file (YAML).", exists=False)
]
ApiOpt = Annotated[
    str | None, typer.Option("--api", help="Daemon URL (default: server.listen of --config).")
]
DirectOpt = Annotated[
    bool, typer.Option("--direct", help="Use the database directly instead of the daemon.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _load(path: Path) -> Config:
    from controller.config import load_config  # noqa: PLC0415

    try:
        return load_config(path)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None


@app.command()
def daemon(config: ConfigOpt = Path("config/daemon.yaml")) -> None:
    """Run the controller daemon: scheduler, routers and HTTP API."""
    from controller.http.auth import TokenFileError  # noqa: PLC0415 -- ditto
    from controller.runtime.daemon import run  # noqa: PLC0415 -- keep other commands quick to start
    from controller.runtime.listen import ListenError  # noqa: PLC0415 -- ditto
    from controller.runtime.logging import configure  # noqa: PLC0415 -- ditto

    loaded = _load(config)
    configure()
    try:
        code = run(loaded)
    except (TokenFileError, ConfigError, ListenError) as exc:  # what this host lacks
        raise _fail(str(exc), 2) from None
    except RegistryError as exc:  # an unusable or unreachable registry: one line, not READY
        raise _fail(str(exc)) from None
    raise typer.Exit(code)


@app.command("ui")
def ui(
    listen: Annotated[str, typer.Option(help="Where to serve, host:port.")] = "127.0.0.1:8080",
    home: Annotated[
        Path | None, typer.Option(help="The registry's state directory (as modelreg --home).")
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="The registry's database URL (as modelreg --db).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve the dashboard read-only over a registry, without a daemon: its models,
    versions, audit trail and any rollouts a daemon left; no actions."""
    import uvicorn  # noqa: PLC0415 -- only this command serves

    from controller.http.ui.standalone import read_only_app  # noqa: PLC0415
    from controller.runtime.listen import ListenError, bind  # noqa: PLC0415
    from registry import ModelRegistry  # noqa: PLC0415
    from registry.cli import state  # noqa: PLC0415
    from registry.db import default_home, default_url, safe_url, schema_behind  # noqa: PLC0415

    url = db or state.url or default_url(home or state.home or default_home())
    try:
        behind = schema_behind(url)
        if behind:  # opening it would upgrade it: a read-only viewer must not
            raise _fail(behind)
        registry = ModelRegistry(url, create=False, actor=current_actor())
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    try:
        sock = bind(listen)
    except ListenError as exc:
        registry.close()
        raise _fail(str(exc), 2) from None
    host, port = sock.getsockname()[:2]
    where, url = safe_url(registry.url), f"http://{host}:{port}/ui/"
    if as_json:  # the address, for a script that starts it
        typer.echo(json.dumps({"dashboard": url, "registry": where, "read_only": True}))
    else:
        out.print(f"dashboard (read-only) of {where}: {url}", markup=False)
    try:
        server = uvicorn.Server(uvicorn.Config(read_only_app(registry), log_level="warning"))
        server.run(sockets=[sock])
    finally:
        registry.close()


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="Config file to validate.")],
    as_json: JsonOpt = False,
) -> None:
    """Validate a config file; exit 2 listing every error with file, key path, expectation.

    Every router's, source's and notification's options are checked with the model
    the daemon builds from. Valid but unwise settings (a metric without a direction, an
    absolute margin larger than half of the metric's typical value) and what this
    environment lacks for the daemon (an unset variable, an unreadable secret file: the
    daemon would refuse to start here) are printed as warnings; exit code 0. With
    ``--json``: one object, ``{"file", "ok", "errors", "warnings", "models"}``."""
    from controller.config import environment_problems, load_config  # noqa: PLC0415
    from controller.config_advice import (  # noqa: PLC0415
        direction_warnings,
        margin_warnings,
        typical_values,
    )
    from controller.config_paths import path_problems, registry_file_problems  # noqa: PLC0415
    from controller.http.auth import TokenFileError, TokenStore  # noqa: PLC0415

    try:
        loaded = load_config(file)
        if loaded.server.tokens_file:  # what the daemon loads, checked as it would be
            try:
                TokenStore.load(loaded.server.tokens_file)
            except TokenFileError as exc:
                raise ConfigError(f"{file}: server.tokens_file: {exc}") from None
        paths = path_problems(loaded)
        wrong = [p.line for p in paths if not p.here] + registry_file_problems(loaded)
        if wrong:
            raise ConfigError(wrong[0], wrong)
    except ConfigError as exc:
        if as_json:
            typer.echo(json.dumps({"file": str(file), "ok": False, "errors": exc.problems,
                                   "warnings": [], "models": []}, indent=2))  # fmt: skip
        else:
            for problem in exc.problems:
                err.print(f"error: {problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    now = datetime.now(UTC)
    warnings = [
        f"{problem} (here; the daemon refuses to start without it)"
        for problem in [*environment_problems(loaded), *(p.line for p in paths if p.here)]
    ]
    warnings += direction_warnings(loaded)
    warnings += margin_warnings(loaded, typical_values(loaded, now=now))
    if as_json:
        typer.echo(json.dumps({"file": str(file), "ok": True, "errors": [],
                               "warnings": warnings, "models": sorted(loaded.models)},
                              indent=2))  # fmt: skip
        return
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    models = ", ".join(sorted(loaded.models)) or "none"
    out.print(f"{file}: ok ({len(loaded.models)} model policies: {models})", highlight=False)


@config_app.command("schema")
def config_schema(as_json: JsonOpt = False) -> None:
    """Print the config file's JSON Schema (config/schema.json is this output); it is
    JSON with or without ``--json``, which every command takes."""
    from controller.config import Config  # noqa: PLC0415

    typer.echo(json.dumps(Config.model_json_schema(), indent=2, sort_keys=True))


@app.command("abtest")
def abtest_command(
    file: Annotated[Path, typer.Argument(help="Outcomes: .csv, .jsonl or .json.")],
    control: Annotated[str, typer.Option(help="The control version, e.g. v3.0.0.")],
    treatment: Annotated[str, typer.Option(help="The treatment version, e.g. v3.1.0.")],
    metric: Annotated[str, typer.Option(help="The outcome's column (or metric name).")] = "value",
    split: Annotated[float, typer.Option(help="The treatment's planned share of traffic.")] = 0.5,
    days: Annotated[float | None, typer.Option(help="The planned duration in days.")] = None,
    direction: Annotated[str, typer.Option(help="higher or lower is better.")] = "higher",
    as_json: JsonOpt = False,
) -> None:
    """Judge two versions on recorded per-request outcomes (version, timestamp, value):
    the daemon's statistics, after the fact. Exit 0 whatever the verdict."""
    from controller.offline_ab import run_ab_test  # noqa: PLC0415 -- pandas and scipy, only here

    try:
        result = run_ab_test(control, treatment, split, days, data=file, metric=metric,
                             direction=direction)  # fmt: skip
    except ValueError as exc:
        raise _fail(str(exc)) from None
    body = result.to_dict()
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    ci = body["ci"]
    interval = f"[{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "-"
    lines = [
        f"{metric}: {treatment} vs {control} ({result.kind}, {direction} is better)",
        f"  control    {body['control_value']:.4g} over {result.n_control} units",
        f"  treatment  {body['treatment_value']:.4g} over {result.n_treatment} units",
        f"  effect     {body['effect']:.4g}  interval {interval}  p={result.p_value:.3g}"
        if body["effect"] is not None else "  effect     -",
        f"  split      {result.observed_split:.3f} to treatment, planned {split:g}"
        + ("  SAMPLE RATIO MISMATCH" if result.srm_mismatch else ""),
        f"  decision   {result.decision}: {result.reason}",
        f"  treatment_is_better: {str(result.treatment_is_better).lower()}"
        + ("" if result.complete else " (data stop before the planned duration)"),
    ]  # fmt: skip
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


# -- rollouts -------------------------------------------------------------------------


def _api_url(config: Path, api: str | None) -> str:
    if api:
        return api.rstrip("/")
    return f"http://{_load(config).server.listen}"


def _request(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    token = os.environ.get("MODELREG_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    import httpx  # noqa: PLC0415

    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the daemon at {url}: {exc} (use --direct without one)") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise _fail(f"{response.status_code}: {detail}")
    return response.json()


def _direct(config: Path, fn: Callable[[Any], Any]) -> Any:
    """Run ``fn(controller)`` against the database without a daemon."""
    from controller.runtime.daemon import Daemon  # noqa: PLC0415 -- keep other commands quick to start
    from controller.runtime.logging import configure  # noqa: PLC0415 -- ditto

    loaded = _load(config)
    # Warnings and errors only, as JSON lines on stderr: stdout stays the command's
    # output, and the controller's info lines (decisions, starts) are the daemon's.
    configure(level="warning")
    try:
        built = Daemon.build(loaded)
    except ConfigError as exc:  # what the environment lacks, e.g. an unset variable
        raise _fail(str(exc), 2) from None
    built.controller.on_started = None  # no scheduler here: a running daemon picks it up
    try:
        return fn(built.controller)
    except (ControllerError, RegistryError, ValueError) as exc:
        raise _fail(str(exc)) from None
    finally:
        built.stop()


def _perform(controller: Any, kind: str, model: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Start or operate without a daemon: at once with one daemon's config; with
    several (``ha.enabled``) as a durable request that the member owning the model
    applies (``controller.shell.requests``), waiting ``ha.request_wait`` for it."""
    from controller.adapters.request_store import RequestKind  # noqa: PLC0415 -- ditto
    from controller.shell import requests  # noqa: PLC0415 -- keep other commands quick to start

    wait = controller.config.ha.request_wait
    outcome, request = requests.perform(
        controller, RequestKind(kind), model, payload, key=requests.new_key(), wait=wait
    )
    if outcome is None:
        assert request is not None
        raise _fail(f"recorded as request {request.id}, not applied within {wait:g} s: is a "
                    "daemon owning its shard running? (modelreg cluster status)")  # fmt: skip
    if outcome.status_code >= 400:
        raise _fail(str(outcome.body.get("detail", outcome.body)))
    if request is not None:
        out.print(f"applied by member {request.claimed_by} (request {request.id})",
                  highlight=False)  # fmt: skip
    return outcome.body


def _show(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Rollouts")
    for col in ("ID", "Model", "Control", "Treatment", "Phase", "Weight"):
        table.add_column(col, no_wrap=True)
    table.add_column("Reason", overflow="fold", ratio=1)  # wrapped whole, never cut
    for r in rows:
        table.add_row(
            str(r["id"]), r["model"], r["control"], r["treatment"], r["phase"],
            f"{r['weight']:g}%", r.get("reason") or "",
        )  # fmt: skip
    out.print(table)


@rollout_app.command("list")
def rollout_list(
    config: ConfigOpt = Path("config/daemon.yaml"),
    api: ApiOpt = None,
    direct: DirectOpt = False,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rollouts, newest first."""
    if direct:
        rows = _direct(config, lambda c: [r.to_dict() for r in c.store.list_rollouts(model=model)])
    else:
        query = f"?model={model}" if model else ""
        rows = _request("GET", f"{_api_url(config, api)}/v1/rollouts{query}")
    _show(rows, as_json)


@rollout_app.command("status")
def rollout_status(
    rollout_id: int,
    config: ConfigOpt = Path("config/daemon.yaml"),
    api: ApiOpt = None,
    direct: DirectOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """One rollout's state: versions, phase, weight, step, since when and why."""
    if direct:
        body = _direct(config, lambda c: c.store.get(rollout_id).to_dict())
    else:
        body = _request("GET", f"{_api_url(config, api)}/v1/rollouts/{rollout_id}")
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    _status(body)


def _status(body: dict[str, Any]) -> None:
    """A rollout as a few labelled lines (what ``--json`` holds, for people)."""
    rows = [
        ("phase", body["phase"]),
        ("weight", f"{body['weight']:g}% to {body['treatment']}"),
        ("step", body.get("step")),
        ("started", body.get("started_at")),
        ("this step", body.get("step_started_at")),
        ("next look", None if body.get("finished_at") else body.get("next_eval_at")),
        ("finished", body.get("finished_at")),
        ("pending", body.get("pending_intent")),
        ("reason", body.get("reason")),
    ]
    lines = [f"rollout {body['id']}: {body['model']} {body['treatment']} vs {body['control']}"]
    lines += [f"  {label:<10} {value}" for label, value in rows if value not in (None, "")]
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


@rollout_app.command("explain")
def rollout_explain(
    rollout_id: int,
    config: ConfigOpt = Path("config/daemon.yaml"),
    api: ApiOpt = None,
    direct: DirectOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Every decision of a rollout with its reasons and numbers."""
    if direct:
        decisions = _direct(config, lambda c: [d.to_dict() for d in c.store.decisions(rollout_id)])
    else:
        body = _request("GET", f"{_api_url(config, api)}/v1/rollouts/{rollout_id}/explain")
        decisions = body["decisions"]
    if as_json:
        typer.echo(json.dumps(decisions, indent=2))
        return
    table = Table(title=f"Rollout {rollout_id}: decisions")
    for col in ("At", "Action", "Phase", "Weight", "Reasons"):
        table.add_column(col)
    for d in decisions:
        at = datetime.fromisoformat(d["at"]).astimezone(UTC).strftime("%H:%M:%S")
        table.add_row(at, d["action"], f"{d['phase_from']} -> {d['phase_to']}",
                      f"{d['weight']:g}%", "; ".join(d["reasons"]))  # fmt: skip
    out.print(table)


@rollout_app.command("start")
def rollout_start(
    model: str,
    version: str,
    config: ConfigOpt = Path("config/daemon.yaml"),
    api: ApiOpt = None,
    direct: DirectOpt = False,
    reason: Annotated[str, typer.Option(help="Why.")] = "started from the command line",
    as_json: JsonOpt = False,
) -> None:
    """Start a rollout of VERSION against the production version of MODEL."""
    if direct:
        payload = {"model": model, "version": version, "reason": reason}
        body = _direct(config, lambda c: _perform(c, "start", model, payload))
    else:
        body = _request(
            "POST",
            f"{_api_url(config, api)}/v1/rollouts",
            {"model": model, "version": version, "reason": reason},
        )
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    out.print(f"rollout {body['id']}: {body['model']} {body['treatment']} vs {body['control']}")


def _operate(action: str) -> Callable[..., None]:
    event = Event(action)

    def command(
        rollout_id: int,
        config: ConfigOpt = Path("config/daemon.yaml"),
        api: ApiOpt = None,
        direct: DirectOpt = False,
        reason: Annotated[str, typer.Option(help="Why (recorded).")] = "",
        actor: Annotated[
            str | None, typer.Option(help="Who (default: the global --actor, else $USER).")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        if event is Event.REJECT and not reason.strip():
            raise _fail("rollout reject needs --reason (it is recorded with the rejection)", 2)
        why = reason or f"{action} from the command line"
        # Always someone: an approval is the registry's four-eyes check on this name.
        # With tokens, the daemon takes the token's identity instead.
        actor = actor or current_actor()
        if direct:
            payload = {"rollout_id": rollout_id, "event": event.value, "reason": why,
                       "actor": actor}  # fmt: skip
            body = _direct(
                config,
                lambda c: _perform(c, "operate", c.store.get(rollout_id).model, payload),
            )
        else:
            body = _request(
                "POST",
                f"{_api_url(config, api)}/v1/rollouts/{rollout_id}/{action}",
                {"reason": why, "actor": actor},
            )
        if as_json:
            typer.echo(json.dumps(body, indent=2))
            return
        out.print(f"rollout {body['id']}: {body['phase']}", highlight=False)

    command.__doc__ = f"{action.capitalize()} a rollout."
    return command


for _action in ("pause", "resume", "abort", "approve", "reject"):
    rollout_app.command(_action)(_operate(_action))


def main() -> None:
    """Console-script entry point (``modelreg``)."""
    run_app(app)


if __name__ == "__main__":
    main()


@cluster_app.command("status")
def cluster_status(
    config: ConfigOpt = Path("config/daemon.yaml"),
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Members, the shards each holds and when their leases expire (from any member)."""
    body = _request("GET", f"{_api_url(config, api)}/v1/cluster")
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    now = float(body["now"])
    table = Table(title=f"Cluster ({body['shards']} shards; asked {body['this_member']})")
    for col in ("Member", "Address", "Live", "Shards", "Lease expires in", "Renewed ago"):
        table.add_column(col)
    for m in body["members"]:
        expires = m["lease_expires_at"]
        table.add_row(
            m["member"], m["address"], "yes" if m["live"] else "no", str(len(m["shards"])),
            "-" if expires is None else f"{expires - now:.1f}s",
            f"{now - m['renewed_at']:.1f}s",
        )  # fmt: skip
    out.print(table)
    if body["unowned"]:
        out.print(f"unowned shards: {', '.join(map(str, body['unowned']))}", highlight=False)
