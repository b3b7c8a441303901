"""The dashboard's server time: the models page with 1,000 models (each with a
production version and an active rollout) and a rollout's page with 360 looks (two
metrics each), against the ``/v1/rollouts`` JSON endpoint listing those 1,000
rollouts in the same run. Requests go through the whole ASGI app in-process (the
access check, the routes, the rendering), so the time is the server's alone; medians
of ``--runs``. Prints one JSON document.

Usage: python bench/ui_bench.py [--models 1000] [--looks 360] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from figures import figure, load_average
from prometheus_client import CollectorRegistry

from controller.adapters.rollout_store import DECISION, RolloutStore
from controller.adapters.routers.file import FileRouter
from controller.config import parse_config
from controller.http.app import ApiDeps, create_app
from controller.shell.controller import Controller
from registry import ModelRegistry

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _numbers(k: int) -> str:
    metrics = {
        name: {"status": "inconclusive", "effect": 0.001 * (k % 7) - base,
               "ci": [-0.02 - 1 / (k + 1), 0.02 + 1 / (k + 1)], "p_value": 0.5,
               "margin": 0.01, "n_control": 100 * k, "n_treatment": 20 * k}
        for name, base in (("accuracy", 0.0), ("error_rate", 0.002))
    }  # fmt: skip
    return json.dumps({"cause": "analysis", "srm_p": 0.4, "units": [100 * k, 20 * k],
                       "metrics": metrics})  # fmt: skip


def setup(home: Path, models: int, looks: int) -> tuple[Controller, int]:
    registry = ModelRegistry(home=home, actor="bench")
    artifact = home / "model.bin"
    artifact.write_bytes(b"model")
    names = [f"m{i:04d}" for i in range(models)]
    for name in names:
        registry.register_model(name, str(artifact), version="1.0.0", stage="staging")
        registry.promote_model(name, "1.0.0", to_stage="production", reason="bench")
        registry.register_model(name, str(artifact), version="1.1.0", stage="staging")
    store = RolloutStore.open(registry.url)
    records = [
        store.create(model=name, control="v1.0.0", treatment="v1.1.0", control_digest=None,
                     treatment_digest="d" * 64, now=T0, reason="bench")
        for name in names
    ]  # fmt: skip
    watched = records[0].id
    rows = [
        {"rollout_id": watched, "at": (T0 + timedelta(seconds=10 * k)).timestamp(),
         "action": "hold", "event": "hold", "phase_from": "progressing",
         "phase_to": "progressing", "step": min(k // 90, 3), "weight": [10, 25, 50, 80][k // 90],
         "reasons": json.dumps([f"look {k}: not yet"]), "numbers": _numbers(k + 1),
         "applied": True, "member": None}
        for k in range(looks)
    ]  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(DECISION.insert(), rows)
    config = parse_config(
        {"routers": {"table": {"kind": "file", "options": {"path": str(home / "r.json")}}}},
        where="bench",
    )
    controller = Controller(
        config=config,
        registry=registry,
        store=store,
        sources={},
        routers={"table": FileRouter(path=home / "r.json")},
        clock=lambda: T0 + timedelta(hours=1),
    )
    return controller, watched


def timed(client: TestClient, path: str, runs: int) -> dict[str, Any]:
    client.get(path)  # compiled statements, imports
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        reply = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        if reply.status_code != 200:
            raise RuntimeError(f"{path}: {reply.status_code} {reply.text[:200]}")
    return {"p50_ms": round(statistics.median(times), 2),
            "p90_ms": round(sorted(times)[int(0.9 * (len(times) - 1))], 2),
            "bytes": len(reply.content)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--looks", type=int, default=360)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    out: dict[str, Any] = {"load_average_before": load_average(), "models": args.models,
                           "looks": args.looks}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ui-bench-") as tmp:
        controller, watched = setup(Path(tmp), args.models, args.looks)
        app = create_app(ApiDeps(controller=controller, metrics=CollectorRegistry()))
        with TestClient(app) as client:
            out["rollouts_json"] = timed(client, f"/v1/rollouts?limit={args.models}", args.runs)
            out["models_page"] = timed(client, "/ui/", args.runs)
            out["rollout_page"] = timed(client, f"/ui/rollouts/{watched}", args.runs)
            out["rollout_live"] = timed(client, f"/ui/rollouts/{watched}/live", args.runs)
        controller.store.close()
        controller.registry.close()
    out["load_average_after"] = load_average()
    base = out["rollouts_json"]["p50_ms"]
    what = f"GET /v1/rollouts?limit={args.models} (JSON), p50"
    out["figures"] = [
        figure("ui_models_page", f"Models page, {args.models:,} models with active rollouts, "
               "server time p50", out["models_page"]["p50_ms"], "ms", baseline=base,
               baseline_what=what, target="<= 100", target_on="value"),
        figure("ui_rollout_page", f"Rollout page, {args.looks} looks of 2 metrics, server time p50",
               out["rollout_page"]["p50_ms"], "ms", baseline=base, baseline_what=what,
               target="<= 100", target_on="value"),
    ]  # fmt: skip
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
