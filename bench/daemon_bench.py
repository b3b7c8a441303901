"""Benchmarks of the controller daemon; prints one JSON object.

- evaluation: one tick of every rollout, at each size of ``--rollouts`` (default 100
  and 1,000; ``--quick``: those two; README: also 10,000) concurrent rollouts (one per
  model) on the ingest source with two metrics and the unit counts, each arm holding
  ``--events`` events in the window. A tick is what the scheduler runs in one interval:
  every rollout's job (``Controller.reconcile_once``) once, all of them due, so the
  first runs a batched round over all (``controller.shell.rounds``: the state read,
  the registry's facts, one ingest scan, abtest, the decision writes, the JSON log
  lines) and the others find their look done. The ticks measured (``--ticks``, default
  3, more below 1,000 rollouts: about 3,000 looks; the median is reported, each one
  beside it) follow a first judged one that compiles statements and loads scipy. Per
  size: CPU seconds (process time) per tick and per rollout, wall seconds, and the SQL
  statements per tick (a SQLAlchemy ``before_cursor_execute`` listener on every engine:
  registry, rollouts, ingest). Targets: <= 1 ms of CPU per rollout at the largest size,
  and per-rollout CPU at the largest size within 1.2 times that at the smallest (linear
  or better); both in ``figures``.
- guarding: CPU seconds of one guard pass (``Guard.run_once``) over ``--guarding``
  production models guarded by the seed's registry-wide
  ``set_auto_rollback_triggers`` (error rate, p95 latency, accuracy drop), each with
  ``--events`` events in its window; against the same run's baseline, one rollout
  tick of the same models (a guard pass per interval vs a tick per interval).

The daemon as a server (start, memory, resolve, routes, alerts) is ``serve_bench.py``'s.

Usage: python bench/daemon_bench.py [--rollouts 100,1000] [--quick] [--ticks 3]
       [--guarding 1000] [--only-guarding] [--only-evaluation]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from figures import figure, load_average
from prometheus_client import CollectorRegistry

from controller.adapters.metrics import ControllerMetrics
from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.file import FileRouter
from controller.config import GuardSection, parse_config
from controller.runtime import heap
from controller.runtime.logging import configure
from controller.shell.controller import Controller
from monitors import IngestSource, IngestStore
from registry import ModelRegistry

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def rollout_policy() -> dict[str, Any]:
    """The canary policy every benchmark rollout runs (two ingest metrics, 10 s interval)."""
    return {
        "router": "table",
        "strategy": {"kind": "canary", "steps": [50, 80], "step_duration": 3600},
        "interval": 10,
        "settle": 0,
        "min_samples": 50,
        "max_duration": 86_400,
        "analysis": {
            "metrics": [
                {"name": "accuracy", "source": "events", "query": "accuracy",
                 "kind": "proportion", "direction": "higher"},
                {"name": "error_rate", "source": "events", "query": "error_rate",
                 "kind": "proportion", "role": "guardrail", "direction": "lower",
                 "margin": 0.02},
            ]
        },
    }  # fmt: skip


def seed_events(
    ingest: IngestStore,
    names: list[str],
    versions: tuple[str, ...],
    events: int,
    *,
    accuracy: float,
) -> None:
    """``events`` labelled, error-free predictions per model and version in the window."""
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for name in names:
        for version in versions:
            correct = rng.random(events) < accuracy
            for i in range(events):
                pid = f"{name}-{version}-{i}"
                ts = T0.timestamp() + 1 + i / events
                rows.append({"prediction_id": pid, "model": name, "version": version,
                             "arm": "", "unit_id": pid, "timestamp": ts,
                             "latency_ms": 5.0, "error": False, "outcome": 1.0})  # fmt: skip
                labels.append({"prediction_id": pid, "label": float(correct[i]),
                               "timestamp": T0.timestamp()})  # fmt: skip
        if len(rows) >= 50_000:
            ingest.add_events(rows)
            ingest.add_labels(labels)
            rows, labels = [], []
    if rows:
        ingest.add_events(rows)
        ingest.add_labels(labels)


def evaluation(n: int, events: int, work: Path, ticks: int = 3) -> dict[str, Any]:
    """Set up ``n`` rollouts, then time ``ticks`` ticks of all of them as the
    scheduler's jobs run them (see the module docstring); the median one is reported."""
    home = work / f"eval-{n}"
    clock = {"now": T0}
    registry = ModelRegistry(home=home, actor="bench", clock=lambda: clock["now"])
    artifact = work / "model.bin"
    artifact.write_bytes(b"model")
    names = [f"m{i:04d}" for i in range(n)]
    setup = time.perf_counter()
    for name in names:
        registry.register_model(name, str(artifact), version="1.0.0", stage="staging")
        registry.promote_model(name, "1.0.0", to_stage="production", reason="bench")
        registry.register_model(name, str(artifact), version="1.1.0", stage="staging")
    ingest = IngestStore.open(f"sqlite:///{home}/ingest.db")
    seed_events(ingest, names, ("v1.0.0", "v1.1.0"), events, accuracy=0.8)
    config = parse_config(
        {
            "sources": {"events": {"kind": "ingest"}},
            "routers": {"table": {"kind": "file", "options": {"path": str(home / "r.json")}}},
            "models": {name: rollout_policy() for name in names},
        },
        where="bench",
    )
    metrics = CollectorRegistry()
    controller = Controller(
        config=config,
        registry=registry,
        store=RolloutStore.open(registry.url),
        sources={"events": IngestSource(ingest)},
        routers={"table": FileRouter(path=home / "r.json")},
        clock=lambda: clock["now"],
        metrics=ControllerMetrics(metrics),
    )
    heap.settle()  # as the daemon does at the end of its start
    started = controller.watch_once()
    for record in started:  # first tick: pending -> 50 %
        controller.reconcile_once(record.id)
    interval = timedelta(seconds=rollout_policy()["interval"])

    def tick(k: int) -> None:
        """The jobs of interval ``k``: each rollout's once, every one due."""
        clock["now"] = T0 + k * interval
        for record in started:
            controller.reconcile_once(record.id)

    tick(1)  # the first judged look: statements compiled, scipy loaded
    setup_s = time.perf_counter() - setup
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    before = _decisions(metrics)
    load = load_average()
    measured: list[tuple[float, float, int]] = []  # CPU s, wall s, statements per tick
    # A small tick lasts a few tens of milliseconds, and one garbage collection of the
    # process's heap doubles it: small sizes measure more ticks (about 3,000 looks).
    ticks = max(ticks, math.ceil(ticks * 1000 / max(1, n)))
    sa.event.listen(sa.Engine, "before_cursor_execute", count)
    for k in range(2, 2 + ticks):
        statements[0] = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        tick(k)
        measured.append((time.process_time() - cpu0, time.perf_counter() - wall0, statements[0]))
    sa.event.remove(sa.Engine, "before_cursor_execute", count)
    after = _decisions(metrics)
    ingest.close()
    controller.store.close()
    registry.close()
    rollouts = len(started)
    cpu, wall, sql = (statistics.median(m[i] for m in measured) for i in range(3))
    return {
        "rollouts": rollouts,
        "events_per_arm": events,
        "ticks": ticks,
        "cpu_seconds_per_tick": round(cpu, 3),  # the median of the ticks measured
        "wall_seconds_per_tick": round(wall, 3),
        "cpu_ms_per_rollout": round(1000 * cpu / max(1, rollouts), 3),
        "cpu_ms_per_rollout_each_tick": [
            round(1000 * m[0] / max(1, rollouts), 3) for m in measured
        ],
        "statements_per_tick": int(sql),
        "statements_per_rollout": round(sql / max(1, rollouts), 4),
        "actions": {a: int(v - before.get(a, 0)) for a, v in after.items() if v - before.get(a, 0)},
        "load_average": load,
        "load_average_after": load_average(),
        "setup_seconds": round(setup_s, 1),
    }


def _decisions(metrics: CollectorRegistry) -> dict[str, float]:
    """``modelreg_controller_decisions_total`` by action."""
    return {
        sample.labels["action"]: sample.value
        for family in metrics.collect()
        for sample in family.samples
        if sample.name == "modelreg_controller_decisions_total"
    }


def evaluation_figures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CPU per rollout of a tick at the largest size (target <= 1 ms), and its ratio to
    the smallest size's (linear or better: <= 1.2)."""
    if not rows:
        return []
    largest = max(rows, key=lambda r: r["rollouts"])
    smallest = min(rows, key=lambda r: r["rollouts"])
    size = f"{largest['rollouts']:,} rollouts"
    out = [
        figure("daemon_tick_cpu_per_rollout",
               f"One evaluation tick, ingest source: CPU per rollout at {size}",
               largest["cpu_ms_per_rollout"], "ms", target="<= 1.0", target_on="value",
               note=f"{largest['statements_per_tick']:,} SQL statements per tick; "
                    f"load average {largest['load_average']}"),
    ]  # fmt: skip
    if largest is not smallest:
        out.append(
            figure("daemon_tick_scaling",
                   f"Tick CPU per rollout at {size} against {smallest['rollouts']:,}",
                   largest["cpu_ms_per_rollout"], "ms", baseline=smallest["cpu_ms_per_rollout"],
                   baseline_what=f"CPU per rollout at {smallest['rollouts']:,} rollouts, "
                                 "same run",
                   target="<= 1.2",
                   note=f"statements per tick {smallest['statements_per_tick']:,} -> "
                        f"{largest['statements_per_tick']:,}"),
        )  # fmt: skip
    return out


def guarding(n: int, events: int, work: Path) -> dict[str, Any]:
    """Time one guard pass over ``n`` production models, then one rollout tick of each."""
    from controller.adapters.guard_store import GuardStore  # noqa: PLC0415 -- only this section
    from controller.shell.guard_pass import Guard  # noqa: PLC0415 -- only this section

    home = work / f"guard-{n}"
    clock = {"now": T0}
    registry = ModelRegistry(home=home, actor="bench", clock=lambda: clock["now"])
    artifact = work / "model.bin"
    artifact.write_bytes(b"model")
    names = [f"g{i:04d}" for i in range(n)]
    setup = time.perf_counter()
    for name in names:
        for version in ("1.0.0", "1.1.0"):
            registry.register_model(name, str(artifact), version=version, stage="staging",
                                    metadata={"accuracy": 0.85})  # fmt: skip
            registry.promote_model(name, version, to_stage="production", reason="bench")
        registry.register_model(name, str(artifact), version="1.2.0", stage="staging")
    registry.set_auto_rollback_triggers(
        error_rate_threshold=0.05, latency_threshold=200, accuracy_drop_threshold=0.10,
        min_samples=50,
    )  # fmt: skip
    ingest = IngestStore.open(f"sqlite:///{home}/ingest.db")
    seed_events(ingest, names, ("v1.1.0", "v1.2.0"), events, accuracy=0.85)
    config = parse_config(
        {
            "sources": {"events": {"kind": "ingest"}},
            "routers": {"table": {"kind": "file", "options": {"path": str(home / "r.json")}}},
            "models": {name: rollout_policy() for name in names},
        },
        where="bench",
    )
    store = RolloutStore.open(registry.url)
    controller = Controller(
        config=config, registry=registry, store=store,
        sources={"events": IngestSource(ingest)},
        routers={"table": FileRouter(path=home / "r.json")},
        clock=lambda: clock["now"], metrics=ControllerMetrics(CollectorRegistry()),
    )  # fmt: skip
    guard = Guard(controller, GuardStore(store.engine), metrics=CollectorRegistry())
    heap.settle()  # as the daemon does at the end of its start
    clock["now"] = T0 + timedelta(seconds=3)
    guard.run_once()  # the first pass writes every trigger's memory; time the next one
    setup_s = time.perf_counter() - setup
    cpu0, wall0 = time.process_time(), time.perf_counter()
    verdicts = guard.run_once()
    guard_cpu, guard_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    actions: dict[str, int] = {}
    for verdict in verdicts:
        actions[verdict.action] = actions.get(verdict.action, 0) + 1
    # The watcher's router reconciliation of the same settled models, against the
    # per-model reads it would need without its one-snapshot fast path.
    controller.reconcile_routers()
    cpu0 = time.process_time()
    controller.reconcile_routers()
    watcher_cpu = time.process_time() - cpu0
    cpu0 = time.process_time()
    for name in names:
        controller.desired_route(name)
    per_model_cpu = time.process_time() - cpu0
    # Baseline, same models and data: one tick of a rollout of v1.2.0 against v1.1.0.
    clock["now"] = T0
    started = controller.watch_once()
    for record in started:
        controller.reconcile_once(record.id)
    clock["now"] = T0 + timedelta(seconds=3)
    cpu0 = time.process_time()
    for record in started:
        controller.reconcile_once(record.id, force=True)
    tick_cpu = time.process_time() - cpu0
    ingest.close()
    store.close()
    registry.close()
    return {
        "models": n,
        "triggers_per_model": 3,
        "events_in_window": events,
        "cpu_seconds_per_pass": round(guard_cpu, 3),
        "wall_seconds_per_pass": round(guard_wall, 3),
        "cpu_ms_per_model": round(1000 * guard_cpu / max(1, n), 2),
        "verdicts": actions,
        "baseline_rollout_tick_cpu_seconds": round(tick_cpu, 3),
        "pass_vs_rollout_tick": round(guard_cpu / tick_cpu, 2) if tick_cpu else None,
        "cpu_share_at_default_interval": round(guard_cpu / GuardSection().interval, 4),
        "watcher_router_pass_cpu_seconds": round(watcher_cpu, 3),
        "baseline_per_model_reads_cpu_seconds": round(per_model_cpu, 3),
        "watcher_pass_vs_per_model_reads": round(watcher_cpu / per_model_cpu, 3)
        if per_model_cpu
        else None,
        "setup_seconds": round(setup_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollouts", default="100,1000")
    parser.add_argument("--events", type=int, default=100, help="events per arm per rollout")
    parser.add_argument("--guarding", type=int, default=1000, help="models (0: skip)")
    parser.add_argument("--only-guarding", action="store_true", help="skip the other sections")
    parser.add_argument("--only-evaluation", action="store_true", help="skip the other sections")
    parser.add_argument("--quick", action="store_true", help="evaluation at 100 and 1,000 only")
    parser.add_argument("--ticks", type=int, default=3, help="evaluation ticks measured")
    args = parser.parse_args()
    sink = open(os.devnull, "w")  # noqa: SIM115 -- lives as long as the process
    configure(stream=sink)  # decision logs are JSON lines, as in the daemon, to nowhere
    with tempfile.TemporaryDirectory(prefix="daemon-bench-") as tmp:
        work = Path(tmp)
        result: dict[str, Any] = {}
        figures: list[dict[str, Any]] = []
        sizes = "100,1000" if args.quick else args.rollouts
        if not args.only_guarding:
            result["evaluation"] = [
                evaluation(int(n), args.events, work, args.ticks) for n in sizes.split(",") if n
            ]
            figures += evaluation_figures(result["evaluation"])
        if args.guarding and not args.only_evaluation:
            result["guarding"] = guarding(args.guarding, args.events, work)
        result["figures"] = figures
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
