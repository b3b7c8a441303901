"""``modelreg policy simulate``: how often a policy rolls back a good model, and how fast it
catches a bad one, answered by the policy's own ``decide()`` on simulated traffic.

The policy comes from a daemon config (``--model`` picks one of its ``models``) or
from a file holding a single policy (the mapping under one model name). Runs are
seeded and spread over processes without changing the result.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from controller.errors import ConfigError
from controller.scenarios import SCENARIOS, Workload

if TYPE_CHECKING:
    from controller.config import PolicyConfig
    from controller.simulation import ScenarioResult

__all__ = ["policy_app"]

policy_app = typer.Typer(help="Try rollout policies before they judge real candidates.",
                         no_args_is_help=True)  # fmt: skip
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_policy(path: Path, model: str | None) -> tuple[str, PolicyConfig]:
    """The policy to simulate: ``models[model]`` of a daemon config, or a file that is
    one policy. ``ConfigError`` names the file and what is wrong."""
    from controller.config import load_config, parse_config  # noqa: PLC0415 -- see controller.cli

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping (a daemon config or one policy)")
    if "models" in data:
        config = load_config(path)
        if not config.models:
            raise ConfigError(f"{path}: models: no policy to simulate")
        if model is None:
            if len(config.models) > 1:
                names = ", ".join(sorted(config.models))
                raise ConfigError(f"{path}: several policies ({names}): pick one with --model")
            model = next(iter(config.models))
        if model not in config.models:
            names = ", ".join(sorted(config.models))
            raise ConfigError(f"{path}: no policy for model {model!r} (policies: {names})")
        return model, config.models[model]
    name = model or "model"
    named = [m.get("source") for m in _metrics(data)]
    sources = {s: {"kind": "ingest"} for s in named if isinstance(s, str) and s}
    router = data.get("router", "router")
    wrapped = {
        "sources": sources or {"events": {"kind": "ingest"}},
        "routers": {str(router): {"kind": "http"}},
        "models": {name: {"router": "router", **data}},
    }
    config = parse_config(wrapped, where=str(path), base=path.resolve().parent)
    return name, config.models[name]


def _metrics(data: dict[str, Any]) -> list[dict[str, Any]]:
    analysis = data.get("analysis")
    metrics = analysis.get("metrics") if isinstance(analysis, dict) else None
    return [m for m in metrics if isinstance(m, dict)] if isinstance(metrics, list) else []


def describe(policy: PolicyConfig) -> str:
    """One line: the split plan, the interval and the horizon."""
    from controller.config import CanaryStrategy  # noqa: PLC0415 -- see controller.cli
    from controller.core import horizon  # noqa: PLC0415 -- ditto

    strategy = policy.strategy
    if isinstance(strategy, CanaryStrategy):
        steps = " -> ".join(f"{s}%" for s in strategy.steps)
        plan = f"canary {steps}, {strategy.step_duration:g} s a step"
    else:
        plan = f"fixed {strategy.weight}% for {strategy.duration:g} s"
    return (
        f"{plan}, a look every {policy.interval:g} s, max {policy.max_duration:g} s "
        f"({horizon.planned_looks(policy)} looks to the efficacy horizon)"
    )


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _looks(result: ScenarioResult, outcome: str, interval: float) -> str:
    d = result.to_dict()
    p50, p90 = d.get(f"{outcome}_look_p50"), d.get(f"{outcome}_look_p90")
    if p50 is None or p90 is None:
        return "-"
    return f"{p50} / {p90} ({p50 * interval:g} / {p90 * interval:g} s)"


def _causes(result: ScenarioResult, outcome: str) -> str:
    counts: dict[str, int] = {}
    for o in result.outcomes:
        if o.outcome == outcome:
            counts[o.cause.value] = counts.get(o.cause.value, 0) + 1
    total = sum(counts.values())
    return ", ".join(f"{k} {_pct(v / total)}" for k, v in sorted(counts.items())) or "-"


@policy_app.command("simulate")
def simulate_command(
    policy_file: Annotated[
        Path, typer.Argument(help="A daemon config, or a file with one policy.")
    ],
    model: Annotated[str | None, typer.Option(help="Which model's policy to simulate.")] = None,
    runs: Annotated[int, typer.Option(min=1, help="Rollouts per scenario.")] = 200,
    rps: Annotated[float, typer.Option(help="Requests per second over both arms.")] = 100.0,
    baseline_error_rate: Annotated[
        float, typer.Option(help="The control's error rate (lower-is-better proportions).")
    ] = 0.01,
    latency_median: Annotated[
        float, typer.Option(help="The control's median latency, lognormal, in the metric's unit.")
    ] = 100.0,
    latency_sigma: Annotated[float, typer.Option(help="The latency's lognormal sigma.")] = 0.5,
    scenario: Annotated[
        list[str] | None,
        typer.Option(help=f"Only these scenarios ({', '.join(s.key for s in SCENARIOS)})."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same answer.")] = 0,
    workers: Annotated[int, typer.Option(min=0, help="Processes (0: all cores).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
) -> None:
    """How often POLICY_FILE's policy rolls back, promotes or stays undecided, and at
    which look, for identical versions, error regressions, an improvement and slower
    latency, through its real decide() on simulated traffic."""
    from controller.simulation import simulate_all  # noqa: PLC0415 -- see controller.cli

    try:
        name, policy = load_policy(policy_file, model)
        workload = Workload(rps, baseline_error_rate, latency_median, latency_sigma)
    except (ConfigError, ValueError) as exc:
        raise _fail(str(exc)) from None
    chosen = list(SCENARIOS)
    if scenario:
        known = {s.key: s for s in SCENARIOS}
        unknown = [s for s in scenario if s not in known]
        if unknown:
            raise _fail(f"unknown scenario {unknown[0]!r}; known: {', '.join(known)}")
        chosen = [known[s] for s in scenario]
    workers = workers or os.cpu_count() or 1
    # A scenario that changes none of the policy's metrics is the identical scenario in
    # law: when that one runs, it stands for them instead of being run again.
    untouched = {s.key for s in chosen if s.key != "identical" and not any(
        s.touches(m) for m in policy.analysis.metrics)}  # fmt: skip
    same = {"identical"} & {s.key for s in chosen} and untouched
    run = [s for s in chosen if not (same and s.key in untouched)]
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("runs", total=runs * len(run))
        ran = simulate_all(
            policy, run, workload, runs=runs, seed=seed, workers=workers,
            on_progress=lambda n: progress.advance(task, n),
        )  # fmt: skip
    by_key = {r.scenario.key: r for r in ran}
    results = [
        by_key.get(s.key) or replace(by_key["identical"], scenario=s, touched=()) for s in chosen
    ]
    if as_json:
        rows = [r.to_dict() for r in results]
        for row in rows:
            if same and row["scenario"] in untouched:
                row["same_as"] = "identical"
        workload_json = {
            "rps": rps,
            "error_rate": baseline_error_rate,
            "latency_median": latency_median,
            "latency_sigma": latency_sigma,
        }
        body = {
            "policy": name,
            "file": str(policy_file),
            "plan": describe(policy),
            "workload": workload_json,
            "runs": runs,
            "seed": seed,
            "scenarios": rows,
        }
        typer.echo(json.dumps(body, indent=2))
        return
    out.print(f"policy {name} ({policy_file}): {describe(policy)}", highlight=False)
    out.print(
        f"traffic: {rps:g} requests/s, error rate {_pct(baseline_error_rate)}, latency median "
        f"{latency_median:g} (sigma {latency_sigma:g}); {runs} rollouts per scenario, seed {seed}",
        highlight=False,
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("Scenario", "Rolled back", "Promoted", "Undecided",
                "Rolled back at look p50 / p90", "Promoted at look p50 / p90", "By"):  # fmt: skip
        table.add_column(col)
    for r in results:
        untouched_row = r.scenario.key != "identical" and not r.touched
        table.add_row(
            f"{r.scenario.label} (no metric changes: as identical)"
            if untouched_row
            else r.scenario.label,
            _pct(r.share("rollback")),
            _pct(r.share("promote")),
            _pct(r.share("undecided")),
            _looks(r, "rollback", policy.interval),
            _looks(r, "promote", policy.interval),
            _causes(r, "rollback"),
        )
    out.print(table)
    out.print(
        "Undecided: still without evidence at the horizon; the daemon rolls these back "
        "(max_duration, or a fixed split's end) without calling the candidate worse.",
        highlight=False,
    )
