"""Approvals in the loop: whole ticks on real SQLite, the ingest store and the file router.

A winning candidate waits in ``awaiting_approval`` (holding its split or sending
traffic to the control, as the policy says) until the registry records enough
approvals from its approvers; a rejection rolls it back; a long wait is reported
once. The clock is injected; approvals go through the real registry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.adapters.notify import EventKind
from controller.core.decide import AwaitApproval, HoldUntil, Promote, RollBack, SetWeight
from controller.core.phases import Event, Phase
from registry import ApprovalRefused

from ..approval_support import Loop, guard, make_loop
from ..support import register, traffic


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    yield from make_loop(tmp_path)


def _rename_table(path: str, old: str, new: str) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
    finally:
        conn.close()


@contextmanager
def approvals_unreadable(loop: Loop) -> Iterator[None]:
    """The registry database's approval table renamed away (as a broken or half-migrated
    database looks to the controller), and restored after."""
    path = sa.make_url(loop.registry.url).database
    assert path is not None
    _rename_table(path, "approval", "approval_away")
    try:
        yield
    finally:
        _rename_table(path, "approval_away", "approval")


class TestWhileWaiting:
    def test_hold_keeps_the_split(self, loop: Loop) -> None:
        """Default ``hold``: the wait keeps 50/50 and tells the notifiers once."""
        guard(loop)
        rid = loop.to_approval()
        assert loop.route() == {"v1.0.0": 50, "v1.1.0": 50}
        assert loop.store.get(rid).weight == 50.0
        assert isinstance(loop.tick(rid), HoldUntil)
        assert loop.route() == {"v1.0.0": 50, "v1.1.0": 50}
        kinds = [e.kind for e in loop.told]
        assert kinds == [EventKind.AWAITING_APPROVAL]
        assert str(loop.registry.resolve("fraud").version) == "v1.0.0"

    def test_control_sends_traffic_back(self, loop: Loop) -> None:
        """``while_waiting: control``: all traffic to the control until approved, then
        all of it to the candidate."""
        loop.build(approval={"while_waiting": "control"})
        guard(loop, 1)
        rid = loop.to_approval()
        assert loop.route() == {"v1.0.0": 100}
        assert loop.store.get(rid).weight == 0.0
        assert "all traffic to the control while waiting" in loop.store.get(rid).reason
        loop.tick(rid)
        assert loop.route() == {"v1.0.0": 100}
        done = loop.ctl.operate(rid, Event.APPROVE, reason="lgtm", actor="alice")
        assert done.phase is Phase.PROMOTED
        assert loop.route() == {"v1.1.0": 100}
        assert str(loop.registry.resolve("fraud").version) == "v1.1.0"

    def test_reload_changes_the_wait(self, loop: Loop) -> None:
        """A reloaded policy's ``while_waiting`` applies to a rollout already waiting."""
        guard(loop)
        rid = loop.to_approval()
        assert loop.route() == {"v1.0.0": 50, "v1.1.0": 50}
        loop.build(approval={"while_waiting": "control"})
        loop.tick(rid)
        assert loop.route() == {"v1.0.0": 100}
        loop.build()
        loop.tick(rid)
        assert loop.route() == {"v1.0.0": 50, "v1.1.0": 50}
        assert loop.store.get(rid).phase is Phase.AWAITING_APPROVAL
        assert [e.kind for e in loop.told] == [EventKind.AWAITING_APPROVAL]

    def test_pause_and_resume_from_a_wait_on_the_control(self, loop: Loop) -> None:
        """Paused while waiting on the control and resumed, the rollout gets its step's
        split back and is judged again, instead of judging a treatment with no traffic."""
        loop.build(approval={"while_waiting": "control"})
        guard(loop, 1)
        rid = loop.to_approval()
        loop.tick(rid, 3)
        assert loop.metric("modelreg_controller_awaiting_approval_seconds", model="fraud") == 3
        loop.ctl.operate(rid, Event.PAUSE, reason="investigating", actor="ops")
        assert loop.metric("modelreg_controller_awaiting_approval_seconds", model="fraud") == 0
        loop.ctl.operate(rid, Event.RESUME, reason="done", actor="ops")
        assert loop.store.get(rid).phase is Phase.PROGRESSING
        assert loop.route() == {"v1.0.0": 100}
        decision = loop.tick(rid)
        assert isinstance(decision, SetWeight), decision
        assert loop.route() == {"v1.0.0": 50, "v1.1.0": 50}


class TestUnreadableApprovals:
    def test_wait_ends_once_the_approvals_are_readable(self, loop: Loop) -> None:
        """Approvals unreadable when promotion is due: the rollout waits, saying why,
        and never promotes while they stay unreadable; readable again and required by
        nobody, the next tick promotes it as the analysis said."""
        register(loop.registry, loop.tmp, "fraud", "v1.1.0", "staging")
        (rollout,) = loop.ctl.watch_once()
        loop.ctl.reconcile_once(rollout.id)  # 50% to the candidate
        loop.clock.advance(6)
        traffic(loop.ingest, "fraud", loop.clock(),
                {"v1.0.0": (1500, 0.7, 0.01), "v1.1.0": (1500, 0.85, 0.01)})  # fmt: skip
        with approvals_unreadable(loop):
            entered = loop.ctl.reconcile_once(rollout.id)
            assert isinstance(entered, AwaitApproval), entered
            assert "cannot read the registry's approvals (" in entered.reason
            assert "no such table: approval" in entered.reason
            still = loop.tick(rollout.id, 60)
            assert isinstance(still, HoldUntil), still
            assert "cannot read the registry's approvals: " in still.reason
            assert "approval needed" not in still.reason
            assert loop.store.get(rollout.id).phase is Phase.AWAITING_APPROVAL
            assert loop.route() == {"v1.0.0": 50, "v1.1.0": 50}
        done = loop.tick(rollout.id, 60)
        assert isinstance(done, Promote), done
        assert "neither the policy nor the registry requires approval" in done.reason
        assert loop.store.get(rollout.id).phase is Phase.PROMOTED
        assert loop.route() == {"v1.1.0": 100}
        assert str(loop.registry.resolve("fraud").version) == "v1.1.0"
        assert [e.kind for e in loop.told] == [EventKind.AWAITING_APPROVAL, EventKind.PROMOTED]


class TestApprovals:
    def test_two_of_four_needed(self, loop: Loop) -> None:
        """One approval of two keeps it waiting and says who else may approve; the
        second promotes it."""
        guard(loop, 2)
        rid = loop.to_approval()
        first = loop.ctl.operate(rid, Event.APPROVE, reason="looks fine", actor="alice")
        assert first.phase is Phase.AWAITING_APPROVAL
        assert "1 more approval needed from: bob, carol (approved by alice)" in first.reason
        last = loop.store.decisions(rid, limit=1)[0]
        assert last.numbers["approval"]["needed"] == 1
        assert last.numbers["approval"]["approved_by"] == ["alice"]
        assert loop.route() == {"v1.0.0": 50, "v1.1.0": 50}
        assert isinstance(loop.tick(rid), HoldUntil)  # still one short
        done = loop.ctl.operate(rid, Event.APPROVE, reason="agreed", actor="bob")
        assert done.phase is Phase.PROMOTED
        assert "approved by alice, bob" in done.reason
        assert loop.route() == {"v1.1.0": 100}
        assert [e.kind for e in loop.told] == [EventKind.AWAITING_APPROVAL, EventKind.PROMOTED]
        assert {d.approver for d in loop.registry.approvals("fraud", "v1.1.0")} == {"alice", "bob"}

    def test_approvals_recorded_in_the_registry_count(self, loop: Loop) -> None:
        """Approvals given with the registry's own verbs promote at the next tick."""
        guard(loop, 2)
        rid = loop.to_approval()
        loop.registry.approve_model("fraud", "v1.1.0", "carol", "ok")
        assert isinstance(loop.tick(rid), HoldUntil)
        loop.registry.approve_model("fraud", "v1.1.0", "bob", "ok")
        assert isinstance(loop.tick(rid), Promote)
        assert loop.store.get(rid).phase is Phase.PROMOTED
        assert str(loop.registry.resolve("fraud").version) == "v1.1.0"

    def test_registrant_and_strangers_are_refused(self, loop: Loop) -> None:
        """The version's registrant and anyone off the approvers list cannot approve;
        nothing changes."""
        guard(loop, 1)
        rid = loop.to_approval()
        with pytest.raises(ApprovalRefused, match=r"tester owns or registered fraud-v1\.1\.0"):
            loop.ctl.operate(rid, Event.APPROVE, reason="mine", actor="tester")
        with pytest.raises(ApprovalRefused, match=r"mallory is not an approver .* alice, bob"):
            loop.ctl.operate(rid, Event.APPROVE, reason="sure", actor="mallory")
        assert loop.store.get(rid).phase is Phase.AWAITING_APPROVAL
        assert loop.registry.approvals("fraud", "v1.1.0") == []

    def test_policy_only_counts_a_registry_approval(self, loop: Loop) -> None:
        """With only ``require_approval``, one approval given with the registry's own
        verb promotes at the next tick."""
        loop.build(require_approval=True)
        rid = loop.to_approval()
        assert isinstance(loop.tick(rid), HoldUntil)
        loop.registry.approve_model("fraud", "v1.1.0", "dave", "ok")
        assert isinstance(loop.tick(rid), Promote)
        assert loop.route() == {"v1.1.0": 100}

    def test_policy_only_approval_is_four_eyes_too(self, loop: Loop) -> None:
        """With only the controller's ``require_approval``, the registrant still cannot
        approve; someone else's approval promotes."""
        loop.build(require_approval=True)
        rid = loop.to_approval()
        with pytest.raises(ApprovalRefused, match="owns or registered"):
            loop.ctl.operate(rid, Event.APPROVE, reason="mine", actor="tester")
        done = loop.ctl.operate(rid, Event.APPROVE, reason="ok", actor="dave")
        assert done.phase is Phase.PROMOTED


class TestRejection:
    def test_reject_rolls_back(self, loop: Loop) -> None:
        """An approver's rejection: recorded in the registry, traffic to the control,
        candidate archived, ``rolled_back`` told with who and why."""
        guard(loop)
        rid = loop.to_approval()
        done = loop.ctl.operate(rid, Event.REJECT, reason="too risky", actor="alice")
        assert done.phase is Phase.ROLLED_BACK
        assert loop.route() == {"v1.0.0": 100}
        assert loop.registry.get_model_version("fraud", "v1.1.0").stage == "archived"
        (rejection,) = loop.registry.approvals("fraud", "v1.1.0")
        assert (rejection.approver, rejection.decision) == ("alice", "reject")
        event = loop.told[-1]
        assert event.kind is EventKind.ROLLED_BACK
        assert "rejected by alice: too risky" in event.reasons
        assert loop.store.decisions(rid)[-1].event == "reject"
        assert loop.metric("modelreg_controller_rollbacks_total", reason="rejected") == 1

    def test_reject_refuses_the_registrant(self, loop: Loop) -> None:
        """The registrant cannot veto their own version either; the rollout goes on."""
        guard(loop)
        rid = loop.to_approval()
        with pytest.raises(ApprovalRefused):
            loop.ctl.operate(rid, Event.REJECT, reason="oops", actor="tester")
        assert loop.store.get(rid).phase is Phase.AWAITING_APPROVAL

    @pytest.mark.parametrize("waiting", [True, False], ids=["awaiting", "progressing"])
    def test_registry_rejection_is_noticed(self, loop: Loop, waiting: bool) -> None:
        """A rejection recorded straight in the registry rolls the rollout back at the
        next tick, waiting for approval or still being judged."""
        guard(loop)
        if waiting:
            rid = loop.to_approval()
        else:
            register(loop.registry, loop.tmp, "fraud", "v1.1.0", "staging")
            (rollout,) = loop.ctl.watch_once()
            rid = rollout.id
            loop.ctl.reconcile_once(rid)
        loop.registry.reject_model("fraud", "v1.1.0", "carol", "bias found")
        decision = loop.tick(rid)
        assert isinstance(decision, RollBack)
        assert decision.reasons == ("rejected by carol: bias found",)
        assert loop.store.get(rid).phase is Phase.ROLLED_BACK
        assert loop.route() == {"v1.0.0": 100}
        assert loop.registry.get_model_version("fraud", "v1.1.0").stage == "archived"
        assert loop.told[-1].kind is EventKind.ROLLED_BACK


class TestOverdue:
    def test_reported_once_and_never_rolls_back(self, loop: Loop) -> None:
        """Past ``max_wait`` the wait is logged, counted and told once, shows in the
        status, survives a restart without a second report, and keeps waiting."""
        loop.build(approval={"max_wait": 10})
        guard(loop)
        rid = loop.to_approval()
        loop.tick(rid, 5)
        assert loop.metric("modelreg_controller_awaiting_approval_seconds", model="fraud") == 5
        assert loop.metric("modelreg_controller_approval_overdue_total", model="fraud") == 0
        assert len(loop.told) == 1
        loop.tick(rid, 6)  # 11 s > 10 s
        assert loop.metric("modelreg_controller_approval_overdue_total", model="fraud") == 1
        overdue = loop.told[-1]
        assert overdue.kind is EventKind.AWAITING_APPROVAL
        assert overdue.reasons[0].startswith("approval overdue")
        record = loop.store.get(rid)
        assert "overdue (max_wait 10s)" in record.reason
        assert loop.store.decisions(rid, limit=1)[0].numbers["approval"]["overdue"] is True
        loop.tick(rid)
        assert len(loop.told) == 2
        loop.build(approval={"max_wait": 10})  # a restarted daemon does not tell again
        loop.tick(rid, 700)  # past max_duration too: an approval wait has no deadline
        assert len(loop.told) == 2
        assert loop.metric("modelreg_controller_approval_overdue_total", model="fraud") == 0
        assert loop.metric("modelreg_controller_awaiting_approval_seconds", model="fraud") == 712
        assert loop.store.get(rid).phase is Phase.AWAITING_APPROVAL
        loop.ctl.operate(rid, Event.APPROVE, reason="finally", actor="alice")
        loop.ctl.operate(rid, Event.APPROVE, reason="finally", actor="bob")
        assert loop.store.get(rid).phase is Phase.PROMOTED
        assert loop.metric("modelreg_controller_awaiting_approval_seconds", model="fraud") == 0

    def test_not_overdue_without_max_wait(self, loop: Loop) -> None:
        """Without ``max_wait`` a long wait is shown but never reported."""
        guard(loop)
        rid = loop.to_approval()
        loop.tick(rid, 10_000)
        assert len(loop.told) == 1
        assert "overdue" not in loop.store.get(rid).reason
        assert "waiting 10000s" in loop.store.get(rid).reason
