"""A staging version the watcher cannot roll out (metadata only: nothing to serve) is
said once, as one log line and one ``not_started`` notification, not at every pass;
a new reason is said again. Real SQLite, the file router."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from controller.adapters.notify import DecisionEvent, EventKind, slack_payload
from controller.adapters.rollout_store import RolloutStore
from monitors import IngestStore
from registry import ModelRegistry
from tests.clock import Clock

from ..support import config, file_controller, register


def test_a_version_with_nothing_to_serve_is_refused_once(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    registry = ModelRegistry(home=tmp_path / "home", actor="tester", clock=clock)
    register(registry, tmp_path, "fraud", "1.0.0", "production")
    registry.register_model("fraud", None, version="1.1.0", stage="staging")  # metadata only
    ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
    store = RolloutStore.open(registry.url)
    routes = tmp_path / "routes.json"
    cfg = config(tmp_path, routes, f"sqlite:///{tmp_path}/ingest.db")
    controller = file_controller(cfg, registry, store, ingest, routes, clock, CollectorRegistry())
    told: list[DecisionEvent] = []
    controller.actuator.on_decision = told.append
    try:
        with structlog.testing.capture_logs() as logs:
            for _ in range(5):  # five watcher passes
                assert controller.watch_once() == []
        refused = [e for e in logs if e["event"] == "rollout_not_started"]
        assert len(refused) == 1, logs
        assert refused[0]["version"] == "v1.1.0"
        assert "has no model artifact" in refused[0]["error"]
        (event,) = told
        assert (event.kind, event.model, event.version) == (
            EventKind.NOT_STARTED, "fraud", "v1.1.0",
        )  # fmt: skip
        assert "not rolled out" in slack_payload(event)["text"]
        # Another reason for the same version is news; the same one again is not.
        assert controller.refuse_start("fraud", "v1.1.0", "another reason")
        assert not controller.refuse_start("fraud", "v1.1.0", "another reason")
        assert len(told) == 2
        controller.started("fraud", "v1.1.0")  # it did start after all: news again later
        assert controller.refuse_start("fraud", "v1.1.0", "another reason")
    finally:
        ingest.close()
        store.close()
        registry.close()
