"""Operator actions, rollout starts and alert actions sent to any member of several
daemons, applied once by the member that owns the model's shard.

The receiver records a durable request (``controller.adapters.request_store``): an
alert's action keyed by its instance, so Alertmanager's cluster sending one alert to
every member makes one request; an operator action keyed by the caller's idempotency
key, or a fresh one. When the receiver owns the model it applies the request itself,
at once; otherwise the owner's request pass (every ``ha.request_poll``) does, and the
receiver waits up to ``wait`` seconds for the outcome to answer with it. Applying is
claim, dispatch, complete: the claim and the completion are fenced, the dispatch is
the same ``Controller`` call a single daemon makes (its writes fenced too), and the
stored outcome carries the status a single daemon would have answered with
(``http_status``) and the member that acted.

With one daemon (no membership) ``perform`` dispatches directly: no request rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from controller.adapters.leases import Fenced
from controller.adapters.request_store import Outcome, RequestKind, RequestRecord, RequestStatus
from controller.core.causes import Cause
from controller.core.phases import Event
from controller.errors import CannotStart, IllegalMove, RequestNotFound, RolloutNotFound
from controller.shell.alerts import handle_alert
from monitors.alerts import AlertAction
from registry import ApprovalRefused, InvalidInput, NotFound, RegistryError

if TYPE_CHECKING:
    from controller.shell.controller import Controller

__all__ = [
    "alert_key",
    "apply",
    "apply_pending",
    "http_status",
    "new_key",
    "perform",
    "wait_for",
]

log = structlog.get_logger("controller.requests")


def http_status(exc: Exception) -> int | None:
    """The HTTP status an error of an action answers with; None: not an action's
    answer (a fault of this process, re-raised)."""
    if isinstance(exc, RolloutNotFound | RequestNotFound | NotFound):
        return 404
    if isinstance(exc, ApprovalRefused):  # who, not what: a permission
        return 403
    if isinstance(exc, InvalidInput):
        return 422
    if isinstance(exc, IllegalMove | CannotStart | RegistryError):
        return 409
    return None


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def new_key(idempotency_key: str | None = None) -> str:
    """A request's key: the caller's idempotency key (a retry is the same request), or
    a fresh one."""
    return _key("client", idempotency_key) if idempotency_key else _key("new", uuid.uuid4().hex)


def alert_key(action: AlertAction) -> str:
    """One request per alert instance and the action a rule made of it."""
    fingerprint, starts_at = action.key
    return _key("alert", fingerprint, starts_at.isoformat(), action.rule, action.model,
                action.action)  # fmt: skip


def alert_payload(action: AlertAction) -> dict[str, Any]:
    return {"action": action.action, "model": action.model, "version": action.version,
            "rule": action.rule, "alert": action.alert, "fingerprint": action.fingerprint,
            "starts_at": action.starts_at.isoformat(), "reason": action.reason}  # fmt: skip


def _alert_action(payload: dict[str, Any]) -> AlertAction:
    return AlertAction(
        action=payload["action"], model=payload["model"], version=payload["version"],
        rule=payload["rule"], alert=payload["alert"], fingerprint=payload["fingerprint"],
        starts_at=datetime.fromisoformat(payload["starts_at"]), reason=payload["reason"],
    )  # fmt: skip


def dispatch(controller: Controller, kind: RequestKind, payload: dict[str, Any]) -> Outcome:
    """Do what a request asks, as a single daemon would; an action's refusal is an
    outcome (its HTTP status and detail), a fault (``Fenced``, the database) raises."""
    try:
        if kind is RequestKind.OPERATE:
            record = controller.operate(
                int(payload["rollout_id"]), Event(payload["event"]), reason=payload["reason"],
                actor=payload.get("actor"), cause=Cause(payload.get("cause", "operator")),
            )  # fmt: skip
            return Outcome(200, record.to_dict())
        if kind is RequestKind.START:
            started = controller.start_rollout(
                payload["model"], payload["version"], reason=payload["reason"]
            )
            return Outcome(201, started.to_dict())
        return Outcome(200, handle_alert(controller, _alert_action(payload)))
    except Exception as exc:
        status = http_status(exc)
        if status is None:
            raise
        return Outcome(status, {"detail": str(exc)})


def perform(
    controller: Controller,
    kind: RequestKind,
    model: str,
    payload: dict[str, Any],
    *,
    key: str,
    wait: float,
) -> tuple[Outcome | None, RequestRecord | None]:
    """Do ``payload`` for ``model``: directly with one daemon; with several, as a
    durable request applied by the owner (see the module docstring). Returns the
    outcome (None while the request is still pending after ``wait``) and the request."""
    membership = controller.membership
    requests = controller.requests
    if membership is None or requests is None:
        return dispatch(controller, kind, payload), None
    record, created = requests.submit(
        key=key, model=model, kind=kind, payload=payload, received_by=membership.member
    )
    if created:
        log.info("request_recorded", request=record.id, kind=kind.value, model=model,
                 shard=record.shard)  # fmt: skip
    if not record.finished and controller.owns(model):
        apply(controller, record)
    record = wait_for(controller, record.id, wait)
    return (record.outcome if record.finished else None), record


def wait_for(controller: Controller, request_id: int, wait: float) -> RequestRecord:
    """The request once finished, or as it is after ``wait`` seconds."""
    assert controller.requests is not None
    deadline = time.monotonic() + wait
    pause = 0.01
    while True:
        record = controller.requests.get(request_id)
        if record.finished or time.monotonic() >= deadline:
            return record
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.1)


def apply(controller: Controller, record: RequestRecord) -> bool:
    """Claim, dispatch and complete one request as the owner; False when another
    member (or this one, in another thread) has it, or this member lost the shard.
    Claim, action and completion are one unit of work, under the leases held as it
    began (``Controller.acting``): a claim made under one token is not applied under
    a later one, after another member may have taken and applied the request."""
    with controller.acting():
        return _apply(controller, record)


def _apply(controller: Controller, record: RequestRecord) -> bool:
    requests = controller.requests
    assert requests is not None
    try:
        if not requests.claim(record):
            return False
        outcome = dispatch(controller, record.kind, record.payload)
    except Fenced:
        return False  # the shard moved: its new owner claims the request again
    except sa.exc.SQLAlchemyError as exc:  # passing: give the claim back, the pass retries
        log.warning("request_deferred", request=record.id, error=str(exc).splitlines()[0])
        # A claim this member cannot give back is claimed again by whoever can.
        with contextlib.suppress(Fenced, sa.exc.SQLAlchemyError):
            requests.release(record)
        return False
    except Exception as exc:  # a fault, not an answer: the caller learns it, once
        log.exception("request_failed", request=record.id)
        outcome = Outcome(500, {"detail": f"{type(exc).__name__}: {exc}"})
    alerts = []
    if record.kind is RequestKind.ALERT:
        alerts = [(record.payload["fingerprint"],
                   datetime.fromisoformat(record.payload["starts_at"]))]  # fmt: skip
    try:
        done = requests.complete(record, outcome, alerts=alerts)
    except Fenced:
        return False  # applied but not recorded: the new owner applies it again (idempotent)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("request_unrecorded", request=record.id, error=str(exc).splitlines()[0])
        with contextlib.suppress(Fenced, sa.exc.SQLAlchemyError):
            requests.release(record)  # pending again: the pass applies it again (idempotent)
        return False
    log.info("request_applied", request=record.id, kind=record.kind.value, model=record.model,
             status_code=outcome.status_code, received_by=record.received_by)  # fmt: skip
    return done


def apply_pending(controller: Controller, *, limit: int = 100) -> int:
    """The owner's pass: apply the open requests of the shards this member holds,
    oldest first, and close the expired ones; how many it applied."""
    membership, requests = controller.membership, controller.requests
    if membership is None or requests is None:
        return 0
    owned = membership.owned()
    applied = 0
    for record, due in requests.open_in(owned, limit=limit):
        if record.status is RequestStatus.APPLYING and record.claimed_by == membership.member \
                and record.claim_token == owned.get(record.shard):  # fmt: skip
            continue  # this member applies it right now (the receiving thread)
        if due:
            try:
                requests.expire(record)
            except Fenced:
                continue
            log.warning("request_expired", request=record.id, model=record.model)
            continue
        applied += apply(controller, record)
    return applied
