"""Alertmanager's actions: steer the model's active rollout, or roll production back.

An alert routed to ``pause``, ``abort`` or ``rollback`` acts on the model's active
rollout as an operator action with ``Cause.ALERT``. A rollout the registry has moved
on from (its candidate promoted by hand, say: ``controller.core.superseded``) is ended
first, and the alert is then about production: with no active rollout, a
``rollback`` asks the actuator's one production-rollback path, which judges it with
``controller.core.production`` and remembers the alert instance in the production
ledger, so Alertmanager's repeats act once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controller.core.causes import Cause
from controller.core.phases import Event
from controller.core.production import RollbackRequest
from controller.errors import IllegalMove
from controller.shell.tick import end_superseded, superseded_now
from monitors.alerts import AlertAction

if TYPE_CHECKING:
    from controller.shell.controller import Controller

__all__ = ["handle_alert"]


def handle_alert(controller: Controller, action: AlertAction) -> dict[str, Any]:
    """Apply ``action`` (see the module docstring); the outcome's ``acted`` says whether
    anything changed, the routers included. One unit of work, under the leases held as
    it began (``Controller.acting``)."""
    with controller.acting():
        return _handle(controller, action)


def _handle(controller: Controller, action: AlertAction) -> dict[str, Any]:
    record = controller.store.active_for(action.model)
    outcome: dict[str, Any] = {"model": action.model, "action": action.action,
                               "rule": action.rule, "alert": action.alert}  # fmt: skip
    if record is not None and _ended_superseded(controller, record.id):
        outcome["ended_rollout"] = record.id
        record = None
    if record is None:
        if action.action != "rollback":
            return {**outcome, "acted": False, "result": "ignored: no active rollout"}
        done = controller.actuator.roll_back_production(production_request(action))
        if not done.changed:
            return {**outcome, "acted": False,
                    "result": f"ignored: no active rollout; {done.result}"}  # fmt: skip
        return {**outcome, "acted": done.acted, "from": done.from_version,
                "to": done.to_version, "result": done.result}  # fmt: skip
    if action.version is not None and action.version not in (
        record.treatment,
        record.treatment.lstrip("v"),
    ):
        why = f"ignored: the rollout's candidate is {record.treatment}"
        return {**outcome, "acted": False, "result": why}
    try:
        done_record = controller.operate(
            record.id, Event(action.action), reason=action.reason,
            actor=f"alert:{action.rule}", cause=Cause.ALERT,
        )  # fmt: skip
    except IllegalMove as exc:
        return {**outcome, "acted": False, "rollout": record.id, "result": f"ignored: {exc}"}
    acted = done_record.intent is None and done_record.phase is not record.phase
    return {**outcome, "acted": acted, "rollout": record.id, "result": done_record.phase.value}


def production_request(action: AlertAction) -> RollbackRequest:
    """The production rollback an alert asks for; its instance is one action's key."""
    instance = f"{action.fingerprint}@{action.starts_at.isoformat()}"
    reason = (f"alert {action.alert} (rule {action.rule}, fingerprint {action.fingerprint}; "
              f"alert instance {instance}): {action.reason}")  # fmt: skip
    return RollbackRequest(
        model=action.model,
        cause=Cause.ALERT,
        actor=f"alert:{action.rule}",
        reason=reason,
        expected=action.version,
        instance=instance,
        since=action.starts_at,
    )


def _ended_superseded(controller: Controller, rollout_id: int) -> bool:
    """End the rollout first when the registry moved its versions by hand: the alert is
    then about production (a stale canary's rollback would route its control, and its
    next look would put the alerted version back)."""
    with controller.actuator.lock(controller.store.get(rollout_id).model):
        record = controller.store.get(rollout_id)
        if not record.active:
            return True
        why = superseded_now(controller, record)
        if why is None:
            return False
        if record.intent is not None:  # a crash mid-act: finish that first
            controller.actuator.apply(record, record.intent)
            record = controller.store.get(rollout_id)
            if not record.active:
                return True
        end_superseded(controller, record, why)
        return True
