"""Shared helpers for controller tests: a registry with a production model, events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from controller.adapters.metrics import ControllerMetrics
from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.file import FileRouter
from controller.config import Config, PolicyConfig, parse_config
from controller.core.decide import Observations, RolloutState, decide
from controller.shell.controller import Controller
from monitors import IngestSource, IngestStore
from registry import ModelRegistry
from tests.clock import Clock


def register(registry: ModelRegistry, tmp: Path, name: str, version: str, stage: str) -> None:
    """Register a version with a small artifact file; production goes through staging."""
    artifact = tmp / f"{name}-{version}.bin"
    artifact.write_bytes(f"{name} {version}".encode())
    registry.register_model(name, str(artifact), version=version, stage="staging" if stage !=
                            "dev" else "dev")  # fmt: skip
    if stage == "production":
        registry.promote_model(name, version, to_stage="production", reason="baseline")


def check_decision(
    pol: PolicyConfig,
    st: RolloutState,
    ob: Observations,
    now: datetime,
    kind: type,
    expect: Mapping[str, Any],
) -> None:
    """One row of a ``decide`` table: the decision's variant, the next state's fields,
    and a reason for every decision."""
    decision = decide(pol, st, ob, now=now)
    assert isinstance(decision, kind), decision.reasons
    for key, value in expect.items():
        assert getattr(decision.state, key) == value, (key, decision.reasons)
    assert decision.reasons
    assert all(decision.reasons)


def file_controller(
    cfg: Config,
    registry: ModelRegistry,
    store: RolloutStore,
    ingest: IngestStore,
    routes: Path,
    clock: Clock,
    metrics: CollectorRegistry | None = None,
) -> Controller:
    """The controller most tests build (as a started daemon would, for ``config``'s
    policy): ingest source ``events``, file router ``table`` at ``routes``."""
    return Controller(
        config=cfg,
        registry=registry,
        store=store,
        sources={"events": IngestSource(ingest)},
        routers={"table": FileRouter(path=routes)},
        clock=clock,
        metrics=ControllerMetrics(metrics) if metrics is not None else None,
    )


def config(tmp: Path, routes: Path, ingest_url: str, **policy: Any) -> Config:
    base: dict[str, Any] = {
        "router": "table",
        "strategy": {"kind": "canary", "steps": [50, 100], "step_duration": 5},
        "interval": 1,
        "settle": 0,
        "min_samples": 100,
        "max_duration": 12,  # the efficacy horizon: promotions come within seconds
        "analysis": {
            "metrics": [
                {"name": "accuracy", "source": "events", "query": "accuracy",
                 "kind": "proportion", "direction": "higher"},
                {"name": "error_rate", "source": "events", "query": "error_rate",
                 "kind": "proportion", "role": "guardrail", "direction": "lower",
                 "margin": 0.02},
            ]
        },
        "triggers": [{"name": "errors", "metric": "error_rate", "threshold": 0.2,
                      "min_samples": 50}],
    }  # fmt: skip
    base.update(policy)
    return parse_config(
        {
            "registry": {"home": str(tmp / "home")},
            "sources": {"events": {"kind": "ingest", "options": {"url": ingest_url}}},
            "routers": {"table": {"kind": "file", "options": {"path": str(routes)}}},
            "models": {"fraud": base},
        },
        where="test",
    )


def traffic(
    store: IngestStore,
    model: str,
    at: datetime,
    per_version: Mapping[str, tuple[int, float, float]],
    seed: int = 0,
) -> None:
    """Store events and labels: version -> (count, accuracy, error rate)."""
    rng = np.random.default_rng(seed)
    events, labels = [], []
    for arm, (version, (count, accuracy, error_rate)) in zip(
        ("control", "treatment"), per_version.items(), strict=False
    ):
        correct = rng.random(count) < accuracy
        errors = rng.random(count) < error_rate
        for i in range(count):
            pid = uuid.uuid4().hex
            events.append(
                {"prediction_id": pid, "model": model, "version": version, "arm": arm,
                 "unit_id": pid, "timestamp": at.timestamp() - 0.5 + i * 1e-5,
                 "latency_ms": 10.0, "error": bool(errors[i]), "outcome": 1.0}
            )  # fmt: skip
            labels.append(
                {"prediction_id": pid, "label": 1.0 if correct[i] else 0.0,
                 "timestamp": at.timestamp()}
            )  # fmt: skip
    store.add_events(events)
    store.add_labels(labels)
