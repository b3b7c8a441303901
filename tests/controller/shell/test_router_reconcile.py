"""The watcher's router reconciliation: settled models cost no write, drift and
production changes made outside the daemon are repaired."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from controller.adapters.leases import Fenced
from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.file import FileRouter
from controller.shell.controller import Controller
from monitors import IngestSource, IngestStore
from registry import ModelRegistry
from serving.route import Backend, read_table
from tests.clock import Clock

from ..support import config, register

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _routed(routes: Path) -> list[tuple[str, int]]:
    return [(b.version, b.weight) for b in read_table(routes)["fraud"].backends]


def test_settled_drifted_and_changed_models(tmp_path: Path) -> None:
    """A pass over settled models rewrites nothing; a hand-edited route is put back;
    a promotion made outside the daemon reaches the router with a newer revision."""
    clock = Clock(T0)
    registry = ModelRegistry(home=tmp_path / "home", actor="tester", clock=clock)
    ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
    store = RolloutStore.open(registry.url)
    routes = tmp_path / "routes.json"
    try:
        register(registry, tmp_path, "fraud", "1.0.0", "production")
        router = FileRouter(path=routes)
        controller = Controller(
            config=config(tmp_path, routes, f"sqlite:///{tmp_path}/ingest.db"),
            registry=registry, store=store, sources={"events": IngestSource(ingest)},
            routers={"table": router}, clock=clock,
        )  # fmt: skip
        assert controller.reconcile_routers() == {}
        assert _routed(routes) == [("v1.0.0", 100)]

        written = routes.stat().st_mtime_ns, routes.read_bytes()
        controller.reconcile_routers()
        assert (routes.stat().st_mtime_ns, routes.read_bytes()) == written  # settled

        held = read_table(routes)["fraud"]
        router.set(replace(held, backends=(Backend("v9.9.9", 100),)))  # drift, by hand
        controller.reconcile_routers()
        assert _routed(routes) == [("v1.0.0", 100)]

        before = read_table(routes)["fraud"].revision
        register(registry, tmp_path, "fraud", "1.1.0", "production")  # outside the daemon
        controller.reconcile_routers()
        assert _routed(routes) == [("v1.1.0", 100)]
        assert read_table(routes)["fraud"].revision > before
    finally:
        store.close()
        ingest.close()
        registry.close()


def test_a_model_whose_shard_was_lost_meanwhile_is_left_to_its_owner(tmp_path: Path) -> None:
    """Several daemons: a push the fence refuses (the model's shard was taken over since
    this member's lease round, e.g. while a start-up reconciliation of many models ran
    longer than the lease TTL, before any renewal) leaves the model to its new owner. The
    pass does not raise: at start-up that ended the daemon."""
    clock = Clock(T0)
    registry = ModelRegistry(home=tmp_path / "home", actor="tester", clock=clock)
    ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
    store = RolloutStore.open(registry.url)
    routes = tmp_path / "routes.json"

    def taken_over(_conn: object, model: str) -> None:
        raise Fenced(f"member a no longer holds the shard of {model!r}")

    try:
        register(registry, tmp_path, "fraud", "1.0.0", "production")
        controller = Controller(
            config=config(tmp_path, routes, f"sqlite:///{tmp_path}/ingest.db"),
            registry=registry, store=store, sources={"events": IngestSource(ingest)},
            routers={"table": FileRouter(path=routes)}, clock=clock,
        )  # fmt: skip
        store.fencing.fence = taken_over
        assert controller.reconcile_routers() == {}
        assert not routes.exists()  # nothing pushed: the new owner does it
    finally:
        store.close()
        ingest.close()
        registry.close()
