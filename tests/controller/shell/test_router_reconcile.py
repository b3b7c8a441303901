"""The watcher's router reconciliation: settled models cost no write, drift and
production changes made outside the daemon are repaired."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.leases import Fenced
from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.file import FileRouter
from controller.config import parse_config
from controller.core.routes import split_of
from controller.shell import watch
from controller.shell.controller import Controller
from monitors import IngestSource, IngestStore
from registry import ModelRegistry
from serving.route import Backend, read_table
from tests.clock import Clock
from tests.sql_statements import Statements

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


def _many(tmp_path: Path, folder: str, models: int) -> tuple[Controller, Path, list[Any]]:
    """A controller over ``models`` models, each with an active rollout, whose router
    lost the routes pushed to it (the ``http`` router after a restart, a file removed):
    nothing is settled, every model needs a push, none a new stored route."""
    work = tmp_path / folder
    work.mkdir()
    clock = Clock(T0)
    registry = ModelRegistry(home=work / "home", actor="tester", clock=clock)
    ingest = IngestStore.open(f"sqlite:///{work}/ingest.db")
    store = RolloutStore.open(registry.url)
    routes = work / "routes.json"
    names = [f"m{i:03d}" for i in range(models)]
    for name in names:
        register(registry, work, name, "1.0.0", "production")
        register(registry, work, name, "1.1.0", "staging")
    base = config(work, routes, f"sqlite:///{work}/ingest.db").model_dump(mode="json")
    policy = base["models"]["fraud"]
    raw = {key: base[key] for key in ("registry", "sources", "routers")}
    cfg = parse_config({**raw, "models": dict.fromkeys(names, policy)}, where="test")
    controller = Controller(config=cfg, registry=registry, store=store,
                            sources={"events": IngestSource(ingest)},
                            routers={"table": FileRouter(path=routes)}, clock=clock)  # fmt: skip
    for name in names:
        controller.start_rollout(name, "1.1.0", reason="test")
    assert controller.reconcile_routers() == {}  # the routes pushed once (and stored)
    routes.unlink()
    return controller, routes, [store, ingest, registry]


def test_a_pass_over_unsettled_models_reads_them_in_a_few_queries(tmp_path: Path) -> None:
    """A router that lost its routes gets every model's route back, each as the one-model
    path (``desired_route``) has it, and the pass's SQL does not grow with the models:
    40 cost what 5 do. A second pass finds them settled."""
    counted = []
    for models in (5, 40):
        controller, routes, closing = _many(tmp_path, f"n{models}", models)
        try:
            with Statements() as statements:
                assert controller.reconcile_routers() == {}
            table = read_table(routes)
            assert sorted(table) == [f"m{i:03d}" for i in range(models)]
            assert all(split_of(table[m]) == split_of(controller.desired_route(m)) for m in table)
            counted.append(len(statements.seen))
            before = routes.read_bytes()
            with Statements() as again:
                controller.reconcile_routers()
            assert routes.read_bytes() == before
            assert len(again.seen) <= len(statements.seen)
        finally:
            for thing in closing:
                thing.close()
    assert counted[0] == counted[1], counted


def test_a_busy_model_is_reconciled_once_its_lock_is_free(tmp_path: Path) -> None:
    """A model whose lock another actor holds (a tick, an alert) is left out of the
    batch and routed on its own once the lock is free; the others do not wait for it."""
    controller, routes, closing = _many(tmp_path, "busy", 4)
    try:
        took = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with controller.actuator.lock("m002"):
                took.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        took.wait(10)
        seen: list[set[str]] = []

        def progress() -> None:
            seen.append(set(read_table(routes)) if routes.exists() else set())
            if len(seen) == 3:  # m000, m001 and m003 reported: the busy m002's turn is next
                release.set()

        controller.reconcile_routers(progress)
        holder.join()
        assert seen[2] == {"m000", "m001", "m003"}, seen  # the free ones first, then m002
        assert len(seen) == 4
        assert sorted(read_table(routes)) == ["m000", "m001", "m002", "m003"]
    finally:
        for thing in closing:
            thing.close()


@pytest.mark.parametrize("seconds", [60.0, -1.0])
def test_a_chunk_lets_each_lock_go_after_its_push_and_stops_when_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: float
) -> None:
    """While a chunk pushes one model, the models pushed before it are free again (an
    alert for one need not wait for the rest); past its time (here: at once) the chunk
    stops and the models left are routed one by one, all of them all the same."""
    controller, routes, closing = _many(tmp_path, "slow", 6)
    router = controller.routers["table"]
    busy_while_pushing: dict[str, list[str]] = {}
    real_set = router.set

    def watching_set(route: Any) -> None:
        earlier = [m for m in busy_while_pushing if m != route.model]
        with controller.actuator.locked(earlier) as free:
            busy_while_pushing[route.model] = sorted(set(earlier) - free)
        real_set(route)

    alone: list[str] = []
    one_by_one = watch._reconcile_router

    def counted(controller: Controller, model: str) -> None:
        alone.append(model)
        one_by_one(controller, model)

    monkeypatch.setattr(router, "set", watching_set)
    monkeypatch.setattr(watch, "_CHUNK_SECONDS", seconds)
    monkeypatch.setattr(watch, "_reconcile_router", counted)
    try:
        assert controller.reconcile_routers() == {}
        names = [f"m{i:03d}" for i in range(6)]
        assert sorted(read_table(routes)) == names
        assert all(not busy for busy in busy_while_pushing.values()), busy_while_pushing
        assert sorted(busy_while_pushing) == names
        assert alone == ([] if seconds > 0 else names)
    finally:
        for thing in closing:
            thing.close()
