"""controller.shell.rounds: the scheduler's jobs tick every due rollout in one batched
round, with as many SQL statements for a dozen rollouts as for three, deciding and
storing what single ticks would (SQLite and the real PostgreSQL)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.rollout_store import RolloutStore
from controller.core.phases import Event, Phase
from controller.shell import rounds as rounds_module
from controller.shell.controller import Controller
from monitors import IngestStore
from registry import ModelRegistry
from serving.route import read_table
from tests.clock import Clock
from tests.sql_statements import Statements

from ..support import config, file_controller, register, traffic
from .conftest import Pair

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
GOOD = {"v1.0.0": (300, 0.7, 0.01), "v1.1.0": (300, 0.7, 0.01)}  # a hold: dwelling
BAD = {"v1.0.0": (300, 0.7, 0.01), "v1.1.0": (300, 0.7, 0.4)}  # a rollback: the trigger


@dataclass
class World:
    registry: ModelRegistry
    ingest: IngestStore
    store: RolloutStore
    clock: Clock
    controller: Controller
    routes: Path
    ids: dict[str, int]

    def close(self) -> None:
        self.ingest.close()
        self.store.close()
        self.registry.close()


def world(tmp: Path, url: str, models: list[str], bad: frozenset[str] = frozenset()) -> World:
    """``models`` each with v1.0.0 in production and a rollout of v1.1.0 at its first
    step (50 %), then traffic for its next look (``bad``: a regression)."""
    clock = Clock(T0)
    registry = ModelRegistry(url=url, home=tmp / "home", actor="tester", clock=clock)
    for model in models:
        register(registry, tmp, model, "v1.0.0", "production")
        register(registry, tmp, model, "v1.1.0", "staging")
    routes = tmp / "routes.json"
    cfg = config(tmp, routes, url)
    cfg = cfg.model_copy(update={"models": dict.fromkeys(models, cfg.models["fraud"])})
    ingest = IngestStore.open(url)
    store = RolloutStore.open(url)
    controller = file_controller(cfg, registry, store, ingest, routes, clock, CollectorRegistry())
    ids = {record.model: record.id for record in controller.watch_once()}
    for rid in ids.values():  # pending -> 50 %: the first job's round does them all
        controller.reconcile_once(rid)
    assert {store.get(rid).weight for rid in ids.values()} == {50.0}
    clock.advance(2)
    for k, model in enumerate(models):
        traffic(ingest, model, clock(), BAD if model in bad else GOOD, seed=k)
    return World(registry, ingest, store, clock, controller, routes, ids)


@pytest.fixture
def other_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A second database on the backend of ``db_url`` (a second world beside the first)."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.db'}"
        return
    import psycopg

    base, _, _ = db_url.partition("?")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def jobs(w: World) -> dict[int, Any]:
    """Every rollout's scheduler job once (``reconcile_once``), in id order."""
    return {rid: w.controller.reconcile_once(rid) for rid in sorted(w.ids.values())}


def looks(w: World) -> dict[str, list[tuple[Any, ...]]]:
    """Per model, its decisions as stored (what, why, the numbers) and its state."""
    out = {}
    for model, rid in w.ids.items():
        record = w.store.get(rid)
        decisions = [(d.action, d.phase_from, d.phase_to, d.reasons, d.numbers, d.applied)
                     for d in w.store.decisions(rid)]  # fmt: skip
        state = (record.phase, record.step, record.weight, record.failures,
                 dict(record.streaks), record.evidence, record.next_eval_at)  # fmt: skip
        out[model] = [*decisions, state]
    return out


class TestOneRound:
    def test_statements_per_tick_do_not_grow_with_rollouts(
        self, tmp_path: Path, db_url: str, other_url: str
    ) -> None:
        """A tick of 12 rollouts sends as many SQL statements as one of 3, none of them an
        executemany, and stores every rollout's look; the jobs after the first send none."""
        counted = []
        for models, url, folder in ((3, db_url, "few"), (12, other_url, "many")):
            (tmp_path / folder).mkdir()
            w = world(tmp_path / folder, url, [f"m{i:02d}" for i in range(models)])
            first, *others = sorted(w.ids.values())
            with Statements() as all_jobs:
                w.controller.reconcile_once(first)
                with Statements() as later:
                    assert [w.controller.reconcile_once(rid) for rid in others] == [None] * (
                        models - 1
                    )
            assert later.seen == []
            assert all(len(w.store.decisions(rid)) == 2 for rid in w.ids.values())
            # No executemany: psycopg pipelines it, and a member stopped mid-pipeline
            # would keep its fenced lease rows locked (see rollout_store._run_rows).
            assert all_jobs.executemany == 0
            counted.append(len(all_jobs.seen))
            w.close()
        assert counted[0] == counted[1], counted
        assert counted[0] <= 30, counted

    def test_decides_and_stores_what_single_ticks_do(
        self, tmp_path: Path, db_url: str, other_url: str
    ) -> None:
        """Two worlds with the same rollouts and traffic (one regressing): one ticked by
        the scheduler's jobs (a round), the other rollout by rollout with single ticks.
        Same decisions, reasons, numbers, states and routes."""
        models = [f"m{i:02d}" for i in range(6)]
        (tmp_path / "batched").mkdir()
        (tmp_path / "single").mkdir()
        batched = world(tmp_path / "batched", db_url, models, bad=frozenset({"m03"}))
        single = world(tmp_path / "single", other_url, models, bad=frozenset({"m03"}))
        jobs(batched)
        for rid in sorted(single.ids.values()):
            single.controller.reconcile_once(rid, force=True)
        assert looks(batched) == looks(single)
        assert read_table(batched.routes) == read_table(single.routes)
        assert batched.store.get(batched.ids["m03"]).phase is Phase.ROLLED_BACK
        assert batched.store.get(batched.ids["m00"]).phase is Phase.PROGRESSING
        batched.close()
        single.close()


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    built = world(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}", ["a", "b", "c", "d"])
    yield built
    built.close()


class TestWhatARoundLeavesAlone:
    def test_only_due_rollouts(self, w: World) -> None:
        """A rollout looked at since (its next look is later) stays out of a round."""
        w.controller.reconcile_once(w.ids["b"], force=True)  # b's next look: in 1 s
        w.clock.advance(0.6)
        before = len(w.store.decisions(w.ids["b"]))
        assert w.controller.reconcile_once(w.ids["a"]) is not None
        assert len(w.store.decisions(w.ids["b"])) == before
        assert len(w.store.decisions(w.ids["c"])) == 2  # c was due: looked at with a

    def test_a_rollout_changed_after_the_round_read_it_keeps_the_change(
        self, w: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An operator pauses b between the round's read and its write: b's stale hold
        is not stored over the pause; its single tick looks at it afresh."""
        store = w.controller.store
        read = store.get_many

        def then_pause(ids: Any) -> Any:
            found = read(ids)
            w.controller.operate(w.ids["b"], Event.PAUSE, reason="by hand")
            return found

        monkeypatch.setattr(store, "get_many", then_pause)
        jobs(w)
        assert w.store.get(w.ids["b"]).phase is Phase.PAUSED
        assert [d.action for d in w.store.decisions(w.ids["b"])][:2] == ["set_weight", "pause"]
        assert all(len(w.store.decisions(w.ids[m])) == 2 for m in "acd")

    def test_a_busy_model_is_left_to_its_single_tick(
        self, w: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A model whose lock another actor holds is not waited for: its rollout goes to
        its single tick, which takes the lock once it is free."""
        held, release = threading.Event(), threading.Event()

        def hold_b() -> None:
            with w.controller.actuator.lock("b"):
                held.set()
                release.wait(10)

        singles: list[int] = []
        single = rounds_module.tick.single_tick

        def recorded(controller: Controller, rollout_id: int, **kw: Any) -> Any:
            release.set()  # the other actor finishes: the single tick may take the lock
            decided = single(controller, rollout_id, **kw)
            if decided is not None:
                singles.append(rollout_id)
            return decided

        monkeypatch.setattr(rounds_module.tick, "single_tick", recorded)
        thread = threading.Thread(target=hold_b)
        thread.start()
        assert held.wait(5)
        jobs(w)
        thread.join(5)
        assert singles == [w.ids["b"]]
        assert all(len(w.store.decisions(rid)) == 2 for rid in w.ids.values())

    def test_a_job_during_a_round_does_not_wait_for_it(
        self, w: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """c's job comes while a's round runs (c was not due when it started): it
        returns at once, and the job running the round looks at c after it."""
        w.controller.reconcile_once(w.ids["c"], force=True)  # c's next look: in 1 s
        w.clock.advance(0.6)  # c: due by its own job's rule, not yet for a's round
        before = len(w.store.decisions(w.ids["c"]))
        measurer = w.controller.measurer
        observe = measurer.observe_many
        answered: list[Any] = []

        def with_a_job_meanwhile(looks: Any) -> Any:
            if not answered:
                job = threading.Thread(
                    target=lambda: answered.append(w.controller.reconcile_once(w.ids["c"]))
                )
                job.start()
                job.join(10)
                assert not job.is_alive()  # it did not wait for the round
            return observe(looks)

        monkeypatch.setattr(measurer, "observe_many", with_a_job_meanwhile)
        w.controller.reconcile_once(w.ids["a"])
        assert answered == [None]
        assert len(w.store.decisions(w.ids["c"])) == before + 1  # looked at after a's round
        assert len(w.store.decisions(w.ids["a"])) == 2

    def test_an_operator_action_makes_the_next_job_look_again(self, w: World) -> None:
        """The round's memory of a look is dropped when the rollout changes elsewhere."""
        jobs(w)
        assert set(w.controller.rounds.looked()) == set(w.ids.values())
        w.controller.operate(w.ids["c"], Event.PAUSE, reason="by hand")
        assert w.ids["c"] not in w.controller.rounds.looked()
        w.controller.operate(w.ids["c"], Event.RESUME, reason="by hand")
        decision = w.controller.reconcile_once(w.ids["c"])  # resumed: due now, looked at
        assert decision is not None
        assert w.store.get(w.ids["c"]).phase is Phase.PROGRESSING


def test_a_member_rounds_its_own_rollouts_with_one_fence_per_shard(pair: Pair) -> None:
    """Several daemons: a member's round looks only at the rollouts of its shards, and
    its batched write checks each shard's fence once, not each model's."""
    for member in (pair.a, pair.b):
        for record in member.watch_once():
            member.reconcile_once(record.id, force=True)
    for member in (pair.a, pair.b):
        member.clock.advance(2)  # type: ignore[attr-defined]
    mine = [r for r in pair.a.store.active() if pair.a.owns(r.model)]
    theirs = [r for r in pair.a.store.active() if not pair.a.owns(r.model)]
    assert mine
    assert theirs
    with Statements() as seen:
        for record in mine + theirs:
            pair.a.reconcile_once(record.id)
    assert all(len(pair.a.store.decisions(r.id)) == 2 for r in mine)
    assert all(len(pair.a.store.decisions(r.id)) == 1 for r in theirs)
    fences = [s for s in seen.seen if "controller_shard_lease" in s]
    shards = {pair.a.membership.token_for(r.model) for r in mine}  # type: ignore[union-attr]
    assert len(fences) <= len(shards)
