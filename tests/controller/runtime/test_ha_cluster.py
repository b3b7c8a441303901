"""Three real daemons on the real PostgreSQL with 30 models mid-rollout (issue #13, item 5).

One cluster (``ha_cluster.Cluster``: members ``a``, ``b``, ``c``; lease TTL 3 s over 16
shards; one shared file router table; the serving workload writing prediction events
for both arms of every model) is shared by the scenarios, in this order:

1. ``kill -9`` of one member: its shards are taken over and its rollouts evaluated again
   within the takeover bound; no rollout skips a step or repeats a decision.
2. ``SIGSTOP`` of one member past its TTL, at the worst moment (inside a write that
   passed its fence check, its shard's lease row locked), the others take over all its
   shards, losing none of theirs, and act, then ``SIGCONT``: it tries to write (its fence
   refuses: ``modelreg_ha_refused_writes_total`` > 0), commits nothing, steps down and
   rejoins.
3. A rolling restart of all three (SIGTERM, start, wait until the shards are spread
   again): no rollout goes longer than the gap bound without an evaluation.
4. The same Alertmanager notification posted to all three at once: one rollback (a
   mid-rollout candidate), one production rollback (a promoted model), all answers
   naming the same member; a repeat acts on nothing.
5. Every member's database connections killed (``pg_terminate_backend``, what members
   see of a PostgreSQL restart; the shared server itself is not restarted): members
   reconnect, are ready again, hold every shard and every rollout is evaluated again;
   no action is repeated.

After each, ``tests.invariants`` checks the database and the router, and every rollout's
decisions follow its policy's steps (``decisions_follow_policy``). Each scenario starts
from a cluster with three ready members holding every shard.

Liveness bounds (wall clock, from the test; the lease times are the database's):
``TAKEOVER_BOUND`` = TTL + one renewal round (TTL / 3) + one evaluation interval +
``SLACK`` for scheduling on two noisy cores = 3 + 1 + 1 + 3 = 8 s, for a takeover and for
the first evaluation on the new owner after it; ``GAP_BOUND`` = TTL + interval + ``SLACK``
= 7 s between two evaluations of a rollout during a rolling restart.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from controller.core.shards import shard_of
from monitors.testing import wait_until
from serving.route import read_table
from tests.conftest import PG_DSN, require_postgres
from tests.controller.runtime.ha_cluster import (
    CANDIDATE,
    CONTROL,
    INTERVAL,
    QUICK,
    SHARDS,
    SLOW,
    TTL,
    Cluster,
    Member,
    steps_of,
    webhook,
)
from tests.invariants import assert_invariants, decisions_follow_policy

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]

SLACK = 3.0
TAKEOVER_BOUND = TTL + TTL / 3 + INTERVAL + SLACK
GAP_BOUND = TTL + INTERVAL + SLACK
NAMES = ("a", "b", "c")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """The module's cluster, started with every rollout under way; its schema and its
    directory are removed afterwards. The directory is its own, not pytest's tmp_path:
    pytest sessions of the same user running at once prune each other's numbered tmp
    directories, and this cluster lives for minutes."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = PG_DSN.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    home = Path(tempfile.mkdtemp(prefix="modelreg-ha-"))
    built = Cluster.create(home, PG_DSN, schema, NAMES)
    try:
        with built.diagnosed():
            built.start()
            built.wait(built.balanced, 30, "the shards spread over a, b and c")
            built.wait(lambda: _started(built), 30, "a started rollout for every model")
        yield built
    finally:
        built.stop()
        shutil.rmtree(home, ignore_errors=True)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _started(cluster: Cluster) -> bool:
    rollouts = cluster.rollouts()
    return {r["model"] for r in rollouts if r["step"] >= 0} == set(SLOW + QUICK)


@pytest.fixture
def ha(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster with every member running and ready and every shard held; the
    invariants and every rollout's decisions checked after the test."""
    with cluster.diagnosed():
        for member in cluster.members.values():
            if not member.running:
                member.stop()  # close its log
                member.start()
            else:
                member.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        cluster.wait(lambda: all(m.ready() for m in cluster.members.values()), 60,
                     "every member ready")  # fmt: skip
        cluster.wait(cluster.balanced, 30, "the shards spread over a, b and c")
        yield cluster
        _check_rollouts(cluster)
        assert_invariants(cluster.url(), home=cluster.home,
                          read_route=lambda m: read_table(cluster.routes).get(m))  # fmt: skip


def _check_rollouts(cluster: Cluster) -> None:
    """Every rollout's applied decisions (from the explain API, asked of the three
    members in turn) follow its policy's steps, none repeated."""
    rollouts = cluster.rollouts()
    members = [m for m in cluster.members.values() if m.ready()]  # a failed test may leave one down

    def check(index: int) -> list[str]:
        rollout = rollouts[index]
        decisions = cluster.decisions(rollout["id"], via=members[index % len(members)])
        return decisions_follow_policy(rollout["id"], decisions, steps_of(rollout["model"]))

    with ThreadPoolExecutor(len(members)) as pool:
        found = [line for lines in pool.map(check, range(len(rollouts))) for line in lines]
    assert not found, "\n".join(found)


def _owned_models(shards: list[int]) -> set[str]:
    return {m for m in SLOW + QUICK if shard_of(m, SHARDS) in shards}


def _active(cluster: Cluster, models: set[str]) -> dict[int, str]:
    """The active rollouts of ``models``: id -> model."""
    return {r["id"]: r["model"] for r in cluster.rollouts()
            if r["model"] in models and r["finished_at"] is None}  # fmt: skip


def _first_after(
    cluster: Cluster, rollouts: Iterable[int], since: float, *, not_by: str = ""
) -> dict[int, float | None]:
    """When each rollout was first evaluated after ``since`` by a member other than
    ``not_by`` (epoch seconds), None if it was not (see ``Cluster.evaluations``)."""
    found = cluster.evaluations(list(rollouts), since)
    return {r: min((at for at, member in times if member != not_by), default=None)
            for r, times in found.items()}  # fmt: skip


def _wait_evaluated(
    cluster: Cluster, rollouts: Iterable[int], since: float, timeout: float, not_by: str = ""
) -> None:
    """Wait until every rollout was evaluated after ``since`` (not by ``not_by``), or
    finished (a promotion whose intent the new owner applied records no new decision);
    on a timeout, fail naming each one that was not, with its shard's owner and state."""
    wanted = list(rollouts)

    def missing() -> list[int]:
        found = _first_after(cluster, wanted, since, not_by=not_by)
        waiting = [r for r, t in found.items() if t is None]
        return sorted(set(waiting) - cluster.finished(waiting))

    if wait_until(lambda: not missing(), timeout=timeout, interval=0.2):
        return
    up = next(m for m in cluster.members.values() if m.running)
    owners = {s: m for m, shards in cluster.shards(via=up).items() for s in shards}
    details = []
    for rollout in missing():
        record = up.get(f"/v1/rollouts/{rollout}")
        shard = shard_of(record["model"], SHARDS)
        last = record["last_decision"] or {}
        details.append(
            f"rollout {rollout} ({record['model']}, shard {shard} held by {owners.get(shard)}): "
            f"{record['phase']} step {record['step']}, intent {record['pending_intent']}, "
            f"next_eval_at {record['next_eval_at']}, last decision {last.get('action')} at "
            f"{last.get('at')} by {last.get('member')}"
        )
    raise AssertionError(
        f"not evaluated within {timeout:g} s (not counting {not_by or 'nobody'}):\n  "
        + "\n  ".join(details)
    )


def _delays(
    cluster: Cluster, rollouts: Iterable[int], since: float, not_by: str = ""
) -> dict[int, float]:
    """Seconds from ``since`` to each rollout's first evaluation after it (not by ``not_by``)."""
    found = _first_after(cluster, rollouts, since, not_by=not_by)
    return {r: (t or float("inf")) - since for r, t in found.items()}


def _others(cluster: Cluster, name: str) -> list[Member]:
    return [m for n, m in cluster.members.items() if n != name]


def test_kill_9_of_a_member_its_shards_are_taken_over(ha: Cluster) -> None:
    """kill -9 of ``a``: ``b`` and ``c`` hold all its shards within TAKEOVER_BOUND of the
    kill and evaluate each of its rollouts within TAKEOVER_BOUND; then ``a`` rejoins."""
    with ha.diagnosed():
        victim = ha.members["a"]
        survivor = ha.members["b"]
        held = ha.shards()["a"]
        rollouts = _active(ha, _owned_models(held) & set(SLOW))  # the quick ones may end now
        assert rollouts, f"a holds shards {held} but no active rollout: nothing to take over"
        killed = time.time()
        victim.kill()

        ha.wait(lambda: _held_by(ha, survivor, ("b", "c")), 6 * TTL, "b and c holding every shard")
        took = time.time() - killed
        _wait_evaluated(ha, rollouts, killed, 6 * TTL, not_by="a")
        resumed = _delays(ha, rollouts, killed, "a")
        print(f"takeover {took:.2f} s; first evaluation by the new owner after "
              f"{max(resumed.values()):.2f} s at most (bound {TAKEOVER_BOUND:g} s)")  # fmt: skip
        assert took <= TAKEOVER_BOUND, f"shards taken over {took:.2f} s after the kill"
        slow = {r: s for r, s in resumed.items() if s > TAKEOVER_BOUND}
        assert not slow, f"rollouts evaluated again only after (s): {slow}"
        victim.stop()
        victim.start()
        ha.wait(victim.ready, 60, "a ready again")
        ha.wait(ha.balanced, 30, "a holding shards again")


def test_sigstop_past_the_ttl_the_member_writes_nothing_steps_down_and_rejoins(
    ha: Cluster,
) -> None:
    """SIGSTOP of ``b`` inside a fenced write, until ``a`` and ``c`` hold its shards and
    evaluated each of its rollouts, then SIGCONT: ``b``'s fence refuses the writes it
    tries (> 0 refused), no decision or request outcome of ``b`` is committed between the
    stop and its rejoin, and it rejoins (holds shards again).

    The stop lands at the worst moment: inside a write that passed its fence check, so
    ``b``'s open transaction holds its shard's lease row locked while it is stopped. The
    test locks the row of one of ``b``'s rollouts, waits until ``b``'s write for it waits
    on that lock (after its fence), stops ``b`` and lets the row go. ``a`` and ``c`` must
    still take every shard over within TAKEOVER_BOUND of the stop, losing none of their
    own meanwhile.

    Resumed, ``b`` runs its overdue jobs at once: its lease round (which learns the
    shards are gone) and its rollout ticks, which still see the shards as held. Which
    comes first is a race; for the fence to be shown at work, the test holds ``b``'s
    member row locked from before SIGCONT until ``b`` has counted a refused write, so
    that its lease round (whose heartbeat updates that row) waits and its ticks surely
    act on the stale view. Then the lock goes and ``b`` steps down and rejoins.
    """
    with ha.diagnosed():
        victim = ha.members["b"]
        others = _others(ha, "b")
        held = ha.shards()["b"]
        rollouts = _active(ha, _owned_models(held) & set(SLOW))
        assert rollouts, f"b holds shards {held} but no active rollout: it would try nothing"
        target = min(rollouts)
        refused_before = victim.metric("modelreg_ha_refused_writes_total")
        with ha.psql() as row:
            row.execute(f"SET search_path = {ha.schema}")
            row.execute("BEGIN")
            (locker,) = row.execute("SELECT pg_backend_pid()").fetchone() or (None,)
            row.execute("SELECT 1 FROM controller_rollout WHERE id = %s FOR UPDATE", (target,))
            # b's write for the target waits on the row lock after its fence (b's other
            # writes on that shard, and its renewal, may then wait on the lease row). A
            # round's holds are one statement over a VALUES table ("WITH held ..."), whose
            # INSERT or UPDATE lies past the 1,024 bytes pg_stat_activity shows.
            writes = ("INSERT INTO controller_decision", "UPDATE controller_rollout", "WITH held")
            ha.wait(lambda: any(q.startswith(writes) for q in ha.lock_waits("b", locker)), 15,
                    f"b's write for rollout {target} waiting after its fence check")  # fmt: skip
            stopped = time.time()
            victim.signal(signal.SIGSTOP)
            row.execute("ROLLBACK")  # b's write goes on in the server, then stalls, open
        time.sleep(0.5)
        with ha.psql() as conn:
            conn.execute(f"SET search_path = {ha.schema}")
            before = {i for (i,) in conn.execute(
                "SELECT id FROM controller_decision WHERE member = 'b'").fetchall()}  # fmt: skip
        with ha.psql() as lock:
            try:
                ha.wait(lambda: _held_by(ha, others[0], ("a", "c")), 6 * TTL,
                        "a and c holding every shard")  # fmt: skip
                took = time.time() - stopped
                _wait_evaluated(ha, rollouts, stopped, 6 * TTL, not_by="b")
                lock.execute(f"SET search_path = {ha.schema}")
                lock.execute("BEGIN")
                lock.execute("SELECT 1 FROM controller_member WHERE member_id = 'b' FOR UPDATE")
            finally:
                resumed = time.time()
                victim.signal(signal.SIGCONT)
            try:
                ha.wait(lambda: victim.metric("modelreg_ha_refused_writes_total") > refused_before,
                        30, "b trying a write on its stale view of the shards")  # fmt: skip
            finally:
                lock.execute("ROLLBACK")  # b's lease round goes on
        ha.wait(lambda: bool(ha.shards(via=others[0]).get("b")), 10 * TTL, "b holding shards again")
        ha.wait(victim.ready, 30, "b ready")
        rejoined = min(
            _epoch(e["timestamp"])
            for e in victim.log_lines()
            if e.get("event") == "shard_acquired" and _epoch(e["timestamp"]) > resumed
        )
        refused = victim.metric("modelreg_ha_refused_writes_total") - refused_before
        print(f"b stopped {resumed - stopped:.1f} s inside a write; a and c took over in "
              f"{took:.2f} s (bound {TAKEOVER_BOUND:g} s); b rejoined {rejoined - resumed:.2f} s "
              f"after SIGCONT; {refused:g} writes refused")  # fmt: skip
        assert took <= TAKEOVER_BOUND, f"b's shards taken over {took:.2f} s after the stop"
        lost = [(m.name, e["shard"], e["timestamp"]) for m in others for e in m.log_lines()
                if e.get("event") == "shard_lost" and _epoch(e["timestamp"]) > stopped]  # fmt: skip
        assert not lost, f"a or c lost shards while b was stopped: {lost}"
        with ha.psql() as conn:
            conn.execute(f"SET search_path = {ha.schema}")
            stale = [row for row in conn.execute(
                "SELECT id, rollout_id, action, at FROM controller_decision "
                "WHERE member = 'b' AND at < %s", (rejoined,),
            ).fetchall() if row[0] not in before]  # fmt: skip
            requests = conn.execute(
                "SELECT id, model, status FROM controller_request WHERE claimed_by = 'b' "
                "AND applied_at >= %s AND applied_at < %s", (stopped, rejoined),
            ).fetchall()  # fmt: skip
            actions = conn.execute(
                "SELECT id, model FROM controller_production_action WHERE at >= %s AND at < %s",
                (stopped, rejoined),
            ).fetchall()  # fmt: skip
        assert not stale, f"decisions b committed after it was stopped, before it rejoined: {stale}"
        assert not requests, f"requests b applied between its stop and its rejoin: {requests}"
        assert not actions, f"production actions between b's stop and its rejoin: {actions}"


def _held_by(cluster: Cluster, via: Member, names: tuple[str, ...]) -> bool:
    """Every shard held, by ``names`` alone (as ``via`` sees the cluster)."""
    shards = cluster.shards(via=via)
    owned = sorted(s for held in shards.values() for s in held)
    return set(shards) == set(names) and owned == list(range(SHARDS))


def test_rolling_restart_leaves_no_evaluation_gap_longer_than_the_bound(ha: Cluster) -> None:
    """Each member in turn: SIGTERM (it hands its shards over), start again, wait until
    the shards are spread over all three. Every active rollout's evaluations then never
    lie more than GAP_BOUND apart.

    What records an evaluation: every tick that evaluates a rollout stores a decision row,
    a hold included (``Actuator.carry_out`` -> ``RolloutStore.record_hold`` stores the
    decision), with the evaluation's time (``at``) and the member that made it; so the
    gaps are those between consecutive decisions of a rollout (``Cluster.evaluations``).
    """
    with ha.diagnosed():
        rollouts = _active(ha, set(SLOW + QUICK))
        assert rollouts
        began = time.time()
        for name, member in ha.members.items():
            member.stop()
            rest = tuple(n for n in ha.members if n != name)
            ha.wait(lambda rest=rest: ha.balanced(rest), 10 * TTL, f"{rest} holding every shard")
            member.start()
            ha.wait(member.ready, 60, f"{name} ready again")
            ha.wait(ha.balanced, 10 * TTL, "the shards spread over a, b and c")
        ended = time.time()
        time.sleep(2 * INTERVAL)
        gaps: dict[int, tuple[float, str]] = {}
        evaluations = ha.evaluations(list(rollouts), began - GAP_BOUND, ended + GAP_BOUND)
        for rollout, times in evaluations.items():
            assert times, f"rollout {rollout} was not evaluated during the restart"
            widest = max(((b[0] - a[0], f"{a[1]} -> {b[1]}") for a, b in itertools.pairwise(times)),
                         default=(0.0, ""))  # fmt: skip
            gaps[rollout] = widest
        print(f"rolling restart took {ended - began:.1f} s; widest evaluation gap "
              f"{max(g for g, _ in gaps.values()):.2f} s (bound {GAP_BOUND:g} s)")  # fmt: skip
        wide = {r: g for r, g in gaps.items() if g[0] > GAP_BOUND}
        assert not wide, f"evaluation gaps over {GAP_BOUND:g} s (rollout: (s, members)): {wide}"


def _post_everywhere(cluster: Cluster, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """``payload`` posted to every member at once; the answers, in member order."""

    def post(member: Member) -> dict[str, Any]:
        response = httpx.post(f"{member.url}/v1/alerts", json=payload, timeout=30)
        assert response.status_code == 200, f"{member.name}: {response.text}"
        return dict(response.json())

    with ThreadPoolExecutor(len(cluster.members)) as pool:
        return list(pool.map(post, cluster.members.values()))


def test_the_same_alert_posted_to_every_member_rolls_back_once(ha: Cluster) -> None:
    """One alert instance sent to a, b and c at once (as an Alertmanager cluster does):
    a candidate mid-rollout is rolled back once, a promoted model's production is rolled
    back once; every answer names the same member as the one that acted; the same
    notification again acts on nothing."""
    with ha.diagnosed():
        rollouts = {r["model"]: r for r in ha.rollouts()}
        slow = next(m for m in SLOW if rollouts[m]["finished_at"] is None)
        quick = next(m for m in QUICK if rollouts[m]["phase"] == "promoted")
        rollout = rollouts[slow]["id"]
        for model, version in ((slow, CANDIDATE), (quick, CANDIDATE)):
            payload = webhook(model, version, fingerprint=f"fp-{model}")
            answers = _post_everywhere(ha, payload)
            actions = [a["actions"] for a in answers]
            assert all(len(a) == 1 for a in actions), answers
            members = {a[0].get("member") for a in actions}
            requests = {a[0].get("request") for a in actions}
            assert len(members) == 1, f"answers disagree on the member: {answers}"
            assert None not in members, f"an answer names no member: {answers}"
            assert len(requests) == 1, f"one request expected: {answers}"
            assert all(a[0]["acted"] for a in actions), answers
            again = _post_everywhere(ha, payload)  # Alertmanager's repeat
            assert all(not a["actions"] and a["duplicates"] == 1 for a in again), again
        rolled_back = [d for d in ha.decisions(rollout) if d["action"] == "rollback"]
        assert len(rolled_back) == 1, rolled_back
        assert rolled_back[0]["numbers"]["cause"] == "alert"
        assert ha.any_member().get(f"/v1/rollouts/{rollout}")["phase"] == "rolled_back"
        assert ha.any_member().get(f"/v1/models/{slow}/resolve")["version"] == CONTROL
        history = ha.any_member().get(f"/v1/models/{quick}/history")
        back = [t for t in history if t["to_stage"] == "production" and t["kind"] == "rollback"]
        assert len(back) == 1, history
        assert ha.any_member().get(f"/v1/models/{quick}/resolve")["version"] == CONTROL
        with ha.psql() as conn:
            conn.execute(f"SET search_path = {ha.schema}")
            ledger = conn.execute(
                "SELECT outcome, from_version, to_version FROM controller_production_action "
                "WHERE model = %s", (quick,),
            ).fetchall()  # fmt: skip
            alerts = conn.execute(
                "SELECT model, status, claimed_by FROM controller_request WHERE kind = 'alert'"
            ).fetchall()
        assert ledger == [("rolled_back", CANDIDATE, CONTROL)], ledger
        assert sorted(a[:2] for a in alerts) == [(quick, "done"), (slow, "done")], alerts


def test_database_connections_killed_members_reconnect_and_resume(ha: Cluster) -> None:
    """Every member's PostgreSQL connections are terminated, twice, 0.5 s apart: each
    member is ready again with every shard held, every active rollout is evaluated again
    within TAKEOVER_BOUND, and no action is taken twice (the production ledger and the
    requests do not change; the decisions check after the test finds no repeat)."""
    with ha.diagnosed():
        rollouts = _active(ha, set(SLOW + QUICK))
        assert rollouts
        with ha.psql() as conn:
            conn.execute(f"SET search_path = {ha.schema}")
            ledger = conn.execute("SELECT count(*) FROM controller_production_action").fetchone()
            requests = conn.execute("SELECT count(*) FROM controller_request").fetchone()
        killed = time.time()
        ended = ha.terminate_backends()
        time.sleep(0.5)
        ended += ha.terminate_backends()
        assert ended > 0, "no member connection was found to terminate"
        ha.wait(lambda: all(m.ready() for m in ha.members.values()), 10 * TTL,
                "every member ready again")  # fmt: skip
        ha.wait(ha.balanced, 10 * TTL, "every shard held again")
        _wait_evaluated(ha, rollouts, killed + 1, 10 * TTL)
        resumed = {r: d + 1 for r, d in _delays(ha, rollouts, killed + 1).items()}
        print(f"{ended} connections terminated; every rollout evaluated again within "
              f"{max(resumed.values()):.2f} s (bound {TAKEOVER_BOUND:g} s)")  # fmt: skip
        slow = {r: s for r, s in resumed.items() if s > TAKEOVER_BOUND}
        assert not slow, f"rollouts evaluated again only after (s): {slow}"
        with ha.psql() as conn:
            conn.execute(f"SET search_path = {ha.schema}")
            assert conn.execute("SELECT count(*) FROM controller_production_action").fetchone() \
                == ledger  # fmt: skip
            assert conn.execute("SELECT count(*) FROM controller_request").fetchone() == requests
