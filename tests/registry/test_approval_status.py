"""ModelRegistry.approval_status: the promotion's approval judgement, read without a move.
Runs on every backend the ``reg`` fixture gives (SQLite, and PostgreSQL where present)."""

from __future__ import annotations

import pytest

from registry import ApprovalRefused, InvalidInput, ModelRegistry

LEADS = ["ml-lead@company.com", "data-eng@company.com", "alice"]  # alice registers


def staged(reg: ModelRegistry) -> str:
    return str(reg.register_model("fraud", None, stage="staging").version)  # type: ignore[arg-type]


class TestApprovalStatus:
    def test_unguarded_stage_needs_nothing(self, reg: ModelRegistry) -> None:
        """Without a policy nothing is required or missing."""
        status = reg.approval_status("fraud", staged(reg))
        assert (status.required, status.needed, status.missing, status.rejected) == (
            False, 0, (), ()
        )  # fmt: skip

    def test_counts_down_and_names_who_is_left(self, reg: ModelRegistry) -> None:
        """Each listed approval lowers ``needed``; the registrant is never 'missing'."""
        reg.set_approval_required("production", LEADS, min_approvals=2, model=None)
        version = staged(reg)
        before = reg.approval_status("fraud", version)
        assert (before.required, before.needed, before.missing) == (True, 2, tuple(LEADS[:2]))
        reg.approve_model("fraud", version, LEADS[0], "ok")
        after = reg.approval_status("fraud", version)
        assert (after.needed, after.missing, after.approved_by) == (1, (LEADS[1],), (LEADS[0],))
        reg.approve_model("fraud", version, LEADS[1])
        assert reg.approval_status("fraud", version).needed == 0
        assert reg.promote_model("fraud", version, to_stage="production").stage == "production"

    def test_rejection_stands(self, reg: ModelRegistry) -> None:
        """A rejection shows with who and why, and blocks the promotion."""
        reg.set_approval_required("production", LEADS, min_approvals=1)
        version = staged(reg)
        reg.reject_model("fraud", version, LEADS[1], "bias")
        (rejection,) = reg.approval_status("fraud", version).rejected
        assert (rejection.approver, rejection.comments) == (LEADS[1], "bias")

    def test_refusals_are_approval_refused(self, reg: ModelRegistry) -> None:
        """Registrant and unlisted approvers get ``ApprovalRefused`` (still InvalidInput)."""
        reg.set_approval_required("production", LEADS, min_approvals=1)
        version = staged(reg)
        with pytest.raises(ApprovalRefused, match="alice owns or registered"):
            reg.approve_model("fraud", version, "alice")
        with pytest.raises(ApprovalRefused, match="mallory is not an approver"):
            reg.reject_model("fraud", version, "mallory", "no")
        assert issubclass(ApprovalRefused, InvalidInput)
