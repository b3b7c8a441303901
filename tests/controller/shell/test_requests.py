"""Durable requests: an action sent to any member is applied once, by the member that
owns the model, and the answer names it (SQLite and the real PostgreSQL)."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from controller.adapters.alert_ledger import AlertLedger
from controller.adapters.leases import LEASE, Fenced, LeaseStore
from controller.adapters.request_store import Outcome, RequestKind, RequestStatus
from controller.cli import app as cli
from controller.config import AlertRoute
from controller.core.phases import Phase
from controller.http.app import ApiDeps, create_app
from controller.shell import requests
from controller.shell.controller import Controller
from controller.shell.membership import Membership
from monitors.alerts import AlertAction, AlertIntake

from .conftest import Pair

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _started(pair: Pair) -> None:
    """Every model's rollout started and ticked once by its owner (progressing)."""
    for member in (pair.a, pair.b):
        for record in member.watch_once():
            member.reconcile_once(record.id, force=True)


def _theirs(pair: Pair) -> int:
    """A rollout of a model that b owns (so a is not its owner)."""
    return next(r.id for r in pair.a.store.active() if pair.b.owns(r.model))


@contextmanager
def _owner_pass(controller: Controller) -> Iterator[None]:
    """The owner's request pass every 20 ms in a thread, as the scheduler runs it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.02):
            requests.apply_pending(controller)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _with_wait(controller: Controller, wait: float) -> None:
    ha = controller.config.ha.model_copy(update={"request_wait": wait})
    controller.config = controller.config.model_copy(update={"ha": ha})


def test_a_non_owner_records_the_action_and_the_owner_applies_it(pair: Pair) -> None:
    """``request_wait: 0``: the receiver answers 202 with the request at once; nothing
    is written for the rollout until the owner's pass applies it, under its own name."""
    _started(pair)
    rollout = _theirs(pair)
    app = create_app(ApiDeps(controller=pair.a, metrics=CollectorRegistry()))
    with TestClient(app) as client:
        queued = client.post(f"/v1/rollouts/{rollout}/abort", json={"reason": "bad canary"})
        assert queued.status_code == 202, queued.text
        request_id = queued.json()["request"]
        assert f"/v1/requests/{request_id}" in queued.json()["detail"]
        assert pair.a.store.get(rollout).phase is not Phase.ABORTED
        assert requests.apply_pending(pair.a) == 0  # a does not own it: not a's to apply
        assert requests.apply_pending(pair.b) == 1
        shown = client.get(f"/v1/requests/{request_id}").json()
    assert pair.a.store.get(rollout).phase is Phase.ABORTED
    assert shown["status"] == "done"
    assert shown["member"] == "b"
    assert shown["received_by"] == "a"
    assert shown["outcome"]["status_code"] == 200
    assert shown["outcome"]["body"]["phase"] == "aborted"
    last = pair.a.store.decisions(rollout)[-1]
    assert (last.event, last.member) == ("abort", "b")
    assert requests.apply_pending(pair.b) == 0  # applied once


def test_the_receiver_waits_for_the_owner_and_answers_with_its_outcome(pair: Pair) -> None:
    _started(pair)
    rollout = _theirs(pair)
    _with_wait(pair.a, 10.0)
    app = create_app(ApiDeps(controller=pair.a, metrics=CollectorRegistry()))
    with TestClient(app) as client, _owner_pass(pair.b):
        paused = client.post(f"/v1/rollouts/{rollout}/pause", json={"reason": "look"})
        again = client.post(f"/v1/rollouts/{rollout}/pause", json={"reason": "look"})
    assert paused.status_code == 200, paused.text
    assert (paused.json()["phase"], paused.json()["member"]) == ("paused", "b")
    # The owner's refusal is the answer, with the status a single daemon gives.
    assert again.status_code == 409, again.text
    assert again.json()["member"] == "b"
    assert "paused" in again.json()["detail"]


def test_an_owner_applies_its_own_request_at_once(pair: Pair) -> None:
    _started(pair)
    mine = next(r.id for r in pair.a.store.active() if pair.a.owns(r.model))
    app = create_app(ApiDeps(controller=pair.a, metrics=CollectorRegistry()))
    with TestClient(app) as client:
        answer = client.post(f"/v1/rollouts/{mine}/pause", json={"reason": "x"})
    assert answer.status_code == 200, answer.text  # request_wait is 0: applied in line
    assert answer.json()["member"] == "a"


def test_an_idempotency_key_makes_a_retry_the_same_request(pair: Pair) -> None:
    _started(pair)
    rollout = _theirs(pair)
    headers = {"Idempotency-Key": "abort-once-7"}
    app_a = create_app(ApiDeps(controller=pair.a, metrics=CollectorRegistry()))
    app_b = create_app(ApiDeps(controller=pair.b, metrics=CollectorRegistry()))
    with TestClient(app_a) as a, TestClient(app_b) as b:
        first = a.post(f"/v1/rollouts/{rollout}/abort", json={"reason": "r"}, headers=headers)
        retried = b.post(f"/v1/rollouts/{rollout}/abort", json={"reason": "r"}, headers=headers)
    assert first.status_code == 202
    assert retried.status_code == 200, retried.text  # b owns it: applied by b, once
    assert retried.json()["request"] == first.json()["request"]
    aborts = [d for d in pair.a.store.decisions(rollout) if d.event == "abort"]
    assert len(aborts) == 1


def _alert(model: str, version: str | None = None) -> AlertAction:
    return AlertAction(
        action="rollback", model=model, version=version, rule="errors", alert="ErrorsHigh",
        fingerprint="f00d", starts_at=datetime(2024, 1, 10, 8, 0, tzinfo=UTC), reason="5xx",
    )  # fmt: skip


def test_the_same_alert_sent_to_both_members_acts_once(pair: Pair) -> None:
    """Alertmanager's cluster delivers one alert to every member: one request, one
    rollback by the owner, the same outcome in both answers, the instance in the ledger."""
    _started(pair)
    rollout = pair.a.store.get(_theirs(pair))
    action = _alert(rollout.model)
    payload, key = requests.alert_payload(action), requests.alert_key(action)
    kind = RequestKind.ALERT
    from_a = requests.perform(pair.a, kind, rollout.model, payload, key=key, wait=0.0)
    from_b = requests.perform(pair.b, kind, rollout.model, payload, key=key, wait=0.0)
    again_a = requests.perform(pair.a, kind, rollout.model, payload, key=key, wait=0.0)
    assert from_a[1] is not None
    assert from_b[1] is not None
    assert again_a[1] is not None
    assert from_a[1].id == from_b[1].id == again_a[1].id
    assert from_a[0] is None  # a does not own it and nobody had applied it yet
    assert from_b[0] is not None
    assert from_b[0].body["acted"] is True
    assert again_a[0] == from_b[0]
    assert pair.a.store.get(rollout.id).phase is Phase.ROLLED_BACK
    rollbacks = [d for d in pair.a.store.decisions(rollout.id) if d.event == "rollback"]
    assert len(rollbacks) == 1
    seen = AlertLedger(pair.a.store.engine).load(now=datetime.now(UTC))
    assert action.key in seen


def test_a_deposed_owners_claim_is_taken_over_and_it_cannot_complete(pair: Pair) -> None:
    """b claims a request, then loses the shard to a (its lease expired, as after a
    stall); a claims it again and applies it; b's completion is refused."""
    _started(pair)
    rollout = pair.a.store.get(_theirs(pair))
    assert pair.a.requests is not None
    assert pair.b.requests is not None
    payload = {"rollout_id": rollout.id, "event": "pause", "reason": "r", "actor": None}
    record, _ = pair.a.requests.submit(key=requests.new_key(), model=rollout.model,
                                       kind=RequestKind.OPERATE, payload=payload,
                                       received_by="a")  # fmt: skip
    assert pair.b.requests.claim(record)
    assert not pair.b.requests.claim(record)  # b's own claim in flight: not again
    shard = record.shard
    assert pair.b.membership is not None
    assert pair.a.membership is not None
    leases = pair.a.membership.leases
    with leases._engine.begin() as conn:
        conn.execute(LEASE.update().where(LEASE.c.shard == shard).values(expires_at=0.0))
    token = leases.acquire(shard)
    assert token is not None
    pair.a.membership._owned[shard] = token
    assert requests.apply_pending(pair.a) == 1
    with pytest.raises(Fenced):
        pair.b.requests.complete(record, Outcome(200, {"stale": True}))
    done = pair.a.requests.get(record.id)
    assert (done.status, done.claimed_by) == (RequestStatus.DONE, "a")
    assert done.outcome is not None
    assert "stale" not in done.outcome.body
    assert pair.a.store.get(rollout.id).phase is Phase.PAUSED


def test_a_request_nobody_applies_expires(pair: Pair) -> None:
    _started(pair)
    rollout = pair.a.store.get(_theirs(pair))
    assert pair.b.requests is not None
    pair.b.requests.ttl = 0.001
    payload = {"rollout_id": rollout.id, "event": "pause", "reason": "r", "actor": None}
    record, _ = pair.b.requests.submit(key=requests.new_key(), model=rollout.model,
                                       kind=RequestKind.OPERATE, payload=payload,
                                       received_by="b")  # fmt: skip
    time.sleep(0.05)
    assert requests.apply_pending(pair.b) == 0
    done = pair.b.requests.get(record.id)
    assert done.status is RequestStatus.EXPIRED
    assert done.outcome is not None
    assert done.outcome.status_code == 504
    assert "expired" in done.outcome.body["detail"]
    assert pair.a.store.get(rollout.id).phase is rollout.phase  # not applied late


def test_a_start_sent_to_any_member_is_started_by_the_owner(pair: Pair) -> None:
    model = next(m for m in pair.b.config.models if pair.b.owns(m))
    _with_wait(pair.a, 10.0)
    app = create_app(ApiDeps(controller=pair.a, metrics=CollectorRegistry()))
    with TestClient(app) as client, _owner_pass(pair.b):
        started = client.post("/v1/rollouts", json={"model": model, "version": "1.1.0"})
    assert started.status_code == 201, started.text
    assert (started.json()["model"], started.json()["member"]) == (model, "b")


def test_an_unknown_request_is_404(pair: Pair) -> None:
    app = create_app(ApiDeps(controller=pair.a, metrics=CollectorRegistry()))
    with TestClient(app) as client:
        assert client.get("/v1/requests/999").status_code == 404
        assert client.get("/v1/requests/0").status_code == 422


def test_a_process_that_never_joined_leaves_nothing(pair: Pair) -> None:
    """``modelreg rollout --direct`` builds the daemon's parts with the daemon's member id
    but never runs a round: stopping it must not erase the running member."""
    assert pair.b.membership is not None
    before = pair.b.membership.leases.status()
    same_id = Membership(LeaseStore(pair.b.store.engine, member="b", shards=16, ttl=30.0))
    same_id.leave()
    after = pair.b.membership.leases.status()
    assert [m["shards"] for m in after["members"]] == [m["shards"] for m in before["members"]]


def test_the_clis_direct_mode_goes_through_the_queue(pair: Pair, tmp_path: Path) -> None:
    """``modelreg rollout pause ID --direct`` with an ``ha`` config builds the daemon's
    parts but owns no shard: it records a request, the owner applies it, and the
    command says who did. The running members stay members."""
    url = str(pair.a.store.engine.url.render_as_string(hide_password=False))
    if not url.startswith("postgresql"):
        pytest.skip("several daemons need PostgreSQL")
    _started(pair)
    rollout = _theirs(pair)
    cfg = pair.a.config.model_dump(mode="json", exclude={"source_file"})
    cfg["registry"] = {"url": url, "home": str(tmp_path / "home")}
    cfg["ha"] = {**cfg["ha"], "member_id": "b", "request_wait": 20.0}
    file = tmp_path / "ha.yaml"
    file.write_text(yaml.safe_dump(cfg))
    before = pair.b.membership.leases.status() if pair.b.membership else None
    with _owner_pass(pair.b):
        result = CliRunner().invoke(
            cli, ["rollout", "pause", str(rollout), "--direct", "--config", str(file)]
        )
    assert result.exit_code == 0, result.output
    assert "applied by member b" in result.output
    assert f"rollout {rollout}: paused" in result.output
    assert pair.a.store.get(rollout).phase is Phase.PAUSED
    assert pair.b.membership is not None
    assert before is not None
    after = pair.b.membership.leases.status()
    assert [m["member"] for m in after["members"]] == [m["member"] for m in before["members"]]


def _alert_payload(model: str) -> str:
    alert = {"status": "firing", "fingerprint": "beef", "startsAt": "2026-11-26T09:59:30Z",
             "labels": {"alertname": "ErrorsHigh", "model": model}}  # fmt: skip
    return json.dumps(
        {"version": "4", "receiver": "r", "status": "firing", "groupKey": "g", "alerts": [alert]}
    )


def test_one_alert_posted_to_both_members_over_http_rolls_back_once(pair: Pair) -> None:
    """Alertmanager's cluster posts the same webhook to every member: both answers name
    the member that acted, one rollback is recorded, and the owner's ledger row makes
    the alert known to a member that starts later."""
    _started(pair)
    rollout = pair.a.store.get(_theirs(pair))
    rules = [AlertRoute(match={"alertname": "ErrorsHigh"}).rule(0)]
    _with_wait(pair.a, 10.0)
    answers = []
    with _owner_pass(pair.b):
        for member in (pair.a, pair.b):
            ledger = AlertLedger(member.store.engine)
            deps = ApiDeps(controller=member, metrics=CollectorRegistry(),
                           alerts=AlertIntake(rules), alert_ledger=ledger)  # fmt: skip
            with TestClient(create_app(deps)) as client:
                answers.append(client.post("/v1/alerts", content=_alert_payload(rollout.model)))
    bodies = [answer.json()["actions"][0] for answer in answers]
    assert [answer.status_code for answer in answers] == [200, 200]
    assert {body["member"] for body in bodies} == {"b"}
    assert bodies[0]["request"] == bodies[1]["request"]
    assert bodies[0]["acted"] is True
    assert pair.a.store.get(rollout.id).phase is Phase.ROLLED_BACK
    assert [d.event for d in pair.a.store.decisions(rollout.id)].count("rollback") == 1
    known = AlertLedger(pair.a.store.engine).load(now=datetime.now(UTC))
    assert any(fingerprint == "beef" for fingerprint, _ in known)
