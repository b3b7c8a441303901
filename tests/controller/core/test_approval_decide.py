"""controller.core.decide on approvals: a table of (policy, state, observations) -> decision."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from controller.config import ConfigError, PolicyConfig
from controller.core.decide import (
    Approvals,
    AwaitApproval,
    HoldUntil,
    Observations,
    Promote,
    RollBack,
    RolloutState,
    SetWeight,
    decide,
    operator,
)
from controller.core.phases import Event, Phase
from controller.errors import IllegalMove

from ..support import check_decision
from .test_decide import BETTER_80, LATE, T0, policy, state

WAIT = state(phase=Phase.AWAITING_APPROVAL, step=1, weight=80.0, step_started_at=T0)
LAST = state(step=1, weight=80.0)


def guarded(**approvals: Any) -> Observations:
    return Observations(approval_required=True, approvals=Approvals(**approvals))


AT_100 = T0 + timedelta(seconds=100)

CASES: list[tuple[str, PolicyConfig, RolloutState, Observations, datetime, type, dict]] = [
    ("hold keeps the split", policy(require_approval=True), LAST, BETTER_80, LATE,
     AwaitApproval, {"weight": 80.0, "phase": Phase.AWAITING_APPROVAL, "step_started_at": LATE}),
    ("control empties the treatment",
     policy(require_approval=True, approval={"while_waiting": "control"}), LAST, BETTER_80, LATE,
     AwaitApproval, {"weight": 0.0, "phase": Phase.AWAITING_APPROVAL}),
    ("unreadable approvals never promote", policy(), LAST,
     replace(BETTER_80, approvals=Approvals(error="db down")), LATE, AwaitApproval,
     {"phase": Phase.AWAITING_APPROVAL}),
    ("one of two waits", policy(), WAIT, guarded(needed=1, missing=("bob",),
     approved_by=("alice",)), AT_100, HoldUntil, {"phase": Phase.AWAITING_APPROVAL}),
    ("enough approvals promote", policy(), WAIT, guarded(approved_by=("alice", "bob")), AT_100,
     Promote, {"phase": Phase.PROMOTED, "weight": 100.0}),
    ("an operator's flag does not replace the registry's count", policy(),
     replace(WAIT, approved=True), guarded(needed=1), AT_100, HoldUntil,
     {"phase": Phase.AWAITING_APPROVAL}),
    ("policy-only: an approval in the registry promotes", policy(require_approval=True), WAIT,
     Observations(approvals=Approvals(approved_by=("dave",))), AT_100, Promote,
     {"phase": Phase.PROMOTED}),
    ("policy-only: nobody approved holds", policy(require_approval=True), WAIT,
     Observations(), AT_100, HoldUntil, {"phase": Phase.AWAITING_APPROVAL}),
    ("registry error while waiting holds", policy(), replace(WAIT, approved=True),
     Observations(approvals=Approvals(error="db down")), AT_100, HoldUntil,
     {"phase": Phase.AWAITING_APPROVAL}),
    ("readable again and required by nobody: promote", policy(), WAIT, Observations(), AT_100,
     Promote, {"phase": Phase.PROMOTED, "weight": 100.0}),
    ("readable again but the registry requires approval: hold", policy(), WAIT,
     guarded(needed=1), AT_100, HoldUntil, {"phase": Phase.AWAITING_APPROVAL}),
    ("unreadable while waiting holds, even with nobody requiring approval", policy(), WAIT,
     Observations(approvals=Approvals(error="db down")), AT_100, HoldUntil,
     {"phase": Phase.AWAITING_APPROVAL}),
    ("rejection while waiting rolls back", policy(), WAIT, guarded(rejected=("carol: no",)),
     AT_100, RollBack, {"phase": Phase.ROLLED_BACK, "weight": 0.0}),
    ("rejection while judged rolls back", policy(), state(), guarded(rejected=("carol: no",)),
     AT_100, RollBack, {"phase": Phase.ROLLED_BACK}),
    ("rejection while paused rolls back", policy(), state(phase=Phase.PAUSED),
     guarded(rejected=("carol: no",)), AT_100, RollBack, {"phase": Phase.ROLLED_BACK}),
    ("resumed from a wait on the control restores the split", policy(),
     state(step=1, weight=0.0), BETTER_80, AT_100, SetWeight,
     {"weight": 80.0, "step": 1, "step_started_at": AT_100, "phase": Phase.PROGRESSING}),
    ("reloaded to control: the wait moves to the control",
     policy(approval={"while_waiting": "control"}), WAIT, guarded(needed=1), AT_100, SetWeight,
     {"weight": 0.0, "phase": Phase.AWAITING_APPROVAL, "step_started_at": T0}),
    ("reloaded to hold: the wait gets its split back", policy(), replace(WAIT, weight=0.0),
     guarded(needed=1), AT_100, SetWeight,
     {"weight": 80.0, "phase": Phase.AWAITING_APPROVAL, "step_started_at": T0}),
    ("waiting past max_duration still waits", policy(max_duration=60), WAIT, guarded(needed=2),
     T0 + timedelta(hours=5), HoldUntil, {"phase": Phase.AWAITING_APPROVAL}),
]  # fmt: skip


class TestApprovalDecide:
    @pytest.mark.parametrize(
        ("name", "pol", "st", "ob", "now", "kind", "expect"), CASES, ids=[c[0] for c in CASES]
    )
    def test_table(
        self,
        name: str,
        pol: PolicyConfig,
        st: RolloutState,
        ob: Observations,
        now: datetime,
        kind: type,
        expect: dict[str, Any],
    ) -> None:
        """Each row: the decision variant and the fields of the next state."""
        check_decision(pol, st, ob, now, kind, expect)

    def test_wait_says_what_is_missing(self) -> None:
        """The hold names how many more, from whom, and who approved already."""
        ob = guarded(needed=1, missing=("bob", "carol"), approved_by=("alice",))
        decision = decide(policy(), WAIT, ob, now=AT_100)
        assert "1 more approval needed from: bob, carol (approved by alice)" in decision.reason
        assert decision.numbers["approval"]["waiting_seconds"] == 100

    def test_wait_on_unreadable_approvals_ends_once_readable(self) -> None:
        """Promotion due while the approvals cannot be read waits, saying why, and holds
        (saying so) while they stay unreadable; once they are readable and nobody
        requires approval, it promotes as the analysis said, not "one approval needed"."""
        unread = replace(BETTER_80, approvals=Approvals(error="no such table: approval"))
        entered = decide(policy(), LAST, unread, now=LATE)
        assert isinstance(entered, AwaitApproval), entered.reasons
        assert "cannot read the registry's approvals (no such table: approval)" in entered.reason
        wait = entered.state
        still = decide(
            policy(),
            wait,
            Observations(approvals=unread.approvals),
            now=LATE + timedelta(seconds=60),
        )
        assert isinstance(still, HoldUntil), still.reasons
        assert "cannot read the registry's approvals: no such table: approval" in still.reason
        assert "approval needed" not in still.reason
        done = decide(policy(), wait, Observations(), now=LATE + timedelta(seconds=120))
        assert isinstance(done, Promote), done.reasons
        assert (done.event, done.state.phase, done.state.weight) == (
            Event.PROMOTE, Phase.PROMOTED, 100.0,
        )  # fmt: skip
        assert "neither the policy nor the registry requires approval" in done.reason

    @pytest.mark.parametrize(("waited", "overdue"), [(60, False), (61, True)])
    def test_overdue_flag(self, waited: int, overdue: bool) -> None:
        """Past ``max_wait`` the wait is flagged overdue in reasons and numbers."""
        now = T0 + timedelta(seconds=waited)
        decision = decide(policy(approval={"max_wait": 60}), WAIT, guarded(needed=1), now=now)
        assert decision.numbers["approval"]["overdue"] is overdue
        assert ("overdue (max_wait 60s)" in decision.reason) is overdue

    def test_operator_reject(self) -> None:
        """An operator's rejection rolls back any active rollout, never a finished one."""
        decision = operator(WAIT, Event.REJECT, reason="rejected by alice: no", actor="alice")
        assert isinstance(decision, RollBack)
        assert (decision.event, decision.state.phase) == (Event.REJECT, Phase.ROLLED_BACK)
        with pytest.raises(IllegalMove, match="promoted"):
            operator(state(phase=Phase.PROMOTED), Event.REJECT, reason="late")

    def test_bad_approval_config(self) -> None:
        """An unknown ``while_waiting`` or a non-positive ``max_wait`` names the key."""
        with pytest.raises(ConfigError, match=r"models\.m\.approval\.while_waiting"):
            policy(approval={"while_waiting": "rollback"})
        with pytest.raises(ConfigError, match=r"models\.m\.approval\.max_wait"):
            policy(approval={"max_wait": 0})
