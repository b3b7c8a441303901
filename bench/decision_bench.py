"""How the decision rule judges candidates, through the real ``decide()``; prints JSON.

Each cell plays seeded rollouts (2,000 by default) of a single-primary-metric policy
as users write it first (one metric with a direction, nothing else set but the
split): a fixed split for 50 looks of 4,000 requests, at 50/50 (2,000 + 2,000) and
at a 10% canary (400 + 3,600), on an error rate of 1% (proportion, lower is better)
or a latency (mean, lower is better; lognormal, median 100 ms, sigma 0.5). Each
rollout runs through ``controller.simulation`` (the daemon's loop: measure, decide,
apply, the verdict carried to the next look) and ends rolled back, promoted, or
undecided at the horizon. The same streams are also judged by the baseline that
needs no sequential correction because it looks once: a two-sided test at look 50
on all the data (the pooled z test for proportions, Welch's test for means;
``fixed_horizon_z_test_promote``).

Targets (issue 11): identical versions: false decisions (any rollback, or a
promotion on evidence) <= 5% at both splits, for both metrics; 2x error rate:
rolled back in >= 95%, by look 3 (p90 over all rollouts) at 50/50 and by look 10
at 10%; +25% error rate: promoted in <= 5%, rolled back in >= 80% within 50 looks
at 50/50; +15% mean latency: rolled back in >= 95% at both splits; -20% error
rate: promoted in >= 90% of the rate the fixed-horizon z test achieves, at both
splits.

Run: ``.venv/bin/python bench/decision_bench.py [--runs 2000] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from typing import Any

from figures import figure, slug

from controller.config import PolicyConfig, parse_config
from controller.simulation import SCENARIOS, Scenario, ScenarioResult, Workload, simulate_all

LOOKS, INTERVAL = 50, 10.0
WORKLOAD = Workload(rps=4000 / INTERVAL, error_rate=0.01, latency_median=100.0, latency_sigma=0.5)
ERROR = {"name": "error_rate", "source": "events", "query": "error_rate",
         "kind": "proportion", "direction": "lower"}  # fmt: skip
LATENCY = {"name": "latency", "source": "events", "query": "latency_mean",
           "kind": "mean", "direction": "lower"}  # fmt: skip


def policy(weight: int, metric: dict[str, Any]) -> PolicyConfig:
    """A fixed split for LOOKS intervals, judged on one primary metric, no settle time."""
    config = parse_config(
        {
            "sources": {"events": {"kind": "ingest"}},
            "routers": {"r": {"kind": "http"}},
            "models": {
                "m": {
                    "router": "r",
                    "strategy": {"kind": "fixed", "weight": weight, "duration": LOOKS * INTERVAL},
                    "interval": INTERVAL,
                    "settle": 0,
                    "max_duration": LOOKS * INTERVAL,
                    "analysis": {"metrics": [metric]},
                }
            },
        }
    )
    return config.models["m"]


def _p90_all(result: ScenarioResult) -> float:
    """The look by which 90% of all rollouts were rolled back (inf if fewer were)."""
    looks = sorted(o.look if o.outcome == "rollback" else math.inf for o in result.outcomes)
    return looks[math.ceil(0.9 * len(looks)) - 1]


def judge(scenario: Scenario, split: int, result: ScenarioResult) -> dict[str, Any]:
    """The cell's figures and whether each target is met."""
    rollback, promote = result.share("rollback"), result.share("promote")
    cell: dict[str, Any] = {"split": f"{split}%", **result.to_dict()}
    checks: dict[str, bool] = {}
    if scenario.key == "identical":
        cell["false_decisions"] = round(rollback + promote, 4)
        checks["false_decisions <= 5%"] = rollback + promote <= 0.05
    elif scenario.key == "errors_2x":
        p90 = _p90_all(result)
        cell["rollback_look_p90_all"] = p90
        limit = 3 if split == 50 else 10
        checks["rolled back >= 95%"] = rollback >= 0.95
        checks[f"p90 look <= {limit}"] = p90 <= limit
    elif scenario.key == "errors_+25%":
        checks["promoted <= 5%"] = promote <= 0.05
        if split == 50:
            checks["rolled back >= 80%"] = rollback >= 0.80
    elif scenario.key == "latency_+15%":
        checks["rolled back >= 95%"] = rollback >= 0.95
    elif scenario.key == "errors_-20%":
        base = result.baseline_share or 0.0
        cell["promote_vs_fixed_horizon"] = round(promote / base, 4) if base else None
        checks[">= 90% of the fixed-horizon z test"] = base > 0 and promote >= 0.9 * base
    cell["targets"] = checks
    cell["within_target"] = all(checks.values())
    return cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="rollouts per cell")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()
    cells = []
    by_key = {s.key: s for s in SCENARIOS}
    for split in (50, 10):
        for metric, keys in (
            (ERROR, ("identical", "errors_2x", "errors_+25%", "errors_-20%")),
            (LATENCY, ("identical", "latency_+15%")),
        ):
            scenarios = [by_key[k] for k in keys]
            results = simulate_all(
                policy(split, metric), scenarios, WORKLOAD, runs=args.runs, seed=args.seed,
                baseline=True, workers=args.workers,
            )  # fmt: skip
            for scenario, result in zip(scenarios, results, strict=True):
                cell = judge(scenario, split, result)
                cell["metric"] = metric["name"]
                cells.append(cell)
    result = {
        "benchmark": "decision_bench",
        "runs_per_cell": args.runs,
        "looks": LOOKS,
        "requests_per_look": 4000,
        "workers": args.workers,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "all_within_target": all(c["within_target"] for c in cells),
        "cells": cells,
    }
    result["figures"] = figures(cells)
    print(json.dumps(result, indent=2))


def figures(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One figure per cell: the share the issue's target is about, the fixed-horizon z
    test on the same streams beside it, and whether every check of the cell holds."""
    out = []
    for cell in cells:
        key, split = cell["scenario"], cell["split"]
        z = cell.get("fixed_horizon_z_test_promote")
        if key == "identical":
            value, what = cell["false_decisions"], "any decision (false)"
        elif key == "errors_-20%":
            value, what = cell["promote"], "promoted"
        elif key == "errors_+25%" and split == "10%":
            value, what = cell["promote"], "promoted (false)"
        else:
            value, what = cell["rollback"], "rolled back"
        checks = "; ".join(cell["targets"])
        note = (
            f"looks p50/p90 to rollback: {cell.get('rollback_look_p50')}/"
            f"{cell.get('rollback_look_p90')}"
        )
        scenario = slug(key.replace("+", "up").replace("-", "down"))
        out.append(figure(
            f"decision_{scenario}_{slug(cell['metric'])}_{slug(split)}",
            f"{cell['label']}, {cell['metric']}, {split} canary: {what}",
            100 * value, "%",
            baseline=None if z is None else 100 * z,
            baseline_what="fixed-horizon z test at the last look, promoted",
            ratio=None, target=checks, met=cell["within_target"], note=note,
        ))  # fmt: skip
    return out


if __name__ == "__main__":
    main()
