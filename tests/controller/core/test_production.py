"""controller.core.production: the one rule for rolling production back, as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.core.causes import Cause
from controller.core.production import (
    Allowed,
    ProductionAction,
    ProductionFacts,
    Refused,
    RollbackRequest,
    may_roll_back,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _alert(version: str | None = None, since: datetime = T0) -> RollbackRequest:
    return RollbackRequest(model="fraud", cause=Cause.ALERT, actor="alert:r", reason="r",
                           expected=version, instance="f1@x", since=since)  # fmt: skip


def _guard(version: str = "v1.2.0") -> RollbackRequest:
    return RollbackRequest(model="fraud", cause=Cause.GUARD, actor="guard", reason="r",
                           expected=version, cooldown_until=T0 + timedelta(hours=1))  # fmt: skip


def _action(outcome: str, from_version: str, instance: str | None = "f1@x") -> ProductionAction:
    return ProductionAction("fraud", T0, from_version, None, outcome, "r", T0,  # type: ignore[arg-type]
                            Cause.ALERT, instance, id=7)  # fmt: skip


def _facts(production: str | None = "v1.2.0", **kw: object) -> ProductionFacts:
    base: dict[str, object] = {"rollout_active": False, "production": production,
                               "entered_at": T0 - timedelta(hours=1)}  # fmt: skip
    return ProductionFacts(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "facts", "why"),
    [
        (_alert(), _facts(rollout_active=True), "a rollout is active"),
        (_guard(), _facts(rollout_active=True), "a rollout is active"),
        (_alert(), _facts(production=None), "no production version"),
        (_guard("v1.1.0"), _facts(), "production is v1.2.0, not v1.1.0"),
        (_alert("1.1.0"), _facts(), "production is v1.2.0, not 1.1.0"),
        (_alert(since=T0 - timedelta(hours=2)), _facts(), "after this alert started firing"),
        (_alert(), _facts(ledger=(_action("rolled_back", "v1.3.0"),)),
         "after a rollback for this alert instance f1@x"),
        # the registry moved but the ledger row was never finished (a crash): done already
        (_alert(), _facts(ledger=(_action("pending", "v1.3.0"),)),
         "after a rollback for this alert instance f1@x"),
    ],
)  # fmt: skip
def test_refused(request_: RollbackRequest, facts: ProductionFacts, why: str) -> None:
    verdict = may_roll_back(request_, facts)
    assert isinstance(verdict, Refused)
    assert why in verdict.why


def test_allowed_from_the_current_version() -> None:
    assert may_roll_back(_guard(), _facts()) == Allowed("v1.2.0")
    assert may_roll_back(_alert(), _facts()) == Allowed("v1.2.0")
    assert may_roll_back(_alert("1.2.0"), _facts()) == Allowed("v1.2.0")
    # a version label names the version: its start time does not matter then
    assert may_roll_back(_alert("v1.2.0", since=T0 - timedelta(days=1)), _facts()) == Allowed(
        "v1.2.0"
    )


def test_a_pending_action_whose_registry_call_never_happened_is_resumed() -> None:
    pending = _action("pending", "v1.2.0")
    assert may_roll_back(_alert(), _facts(ledger=(pending,))) == Allowed("v1.2.0", pending)


def test_other_instances_and_failed_attempts_do_not_block() -> None:
    others = (_action("rolled_back", "v1.3.0", instance="f2@y"), _action("failed", "v1.2.0"))
    assert may_roll_back(_alert(), _facts(ledger=others)) == Allowed("v1.2.0")
