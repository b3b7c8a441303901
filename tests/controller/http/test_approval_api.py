"""Approve and reject over HTTP (FastAPI's TestClient) with bearer tokens: the token's
identity approves, the registry's four-eyes rule and approvers list answer 403."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.core.phases import Phase
from controller.http.app import ApiDeps, create_app
from controller.http.auth import TokenStore, hash_token

from ..approval_support import Loop, guard, make_loop

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` under its TestClient; httpx works and is what we have.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# identity -> (roles, token); tester registered the versions and is on the approvers list
PEOPLE = {
    "tester": (["approver"], "mrt_" + "t" * 40),
    "alice": (["approver"], "mrt_" + "a" * 40),
    "mallory": (["approver"], "mrt_" + "m" * 40),
    "reader": (["reader"], "mrt_" + "r" * 40),
    "deployer": (["deployer"], "mrt_" + "d" * 40),
}


def _as(identity: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {PEOPLE[identity][1]}"}


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    yield from make_loop(tmp_path)


@pytest.fixture
def http(loop: Loop) -> Iterator[TestClient]:
    tokens = TokenStore.from_mapping(
        {"tokens": [{"identity": who, "roles": roles, "hash": hash_token(token)}
                    for who, (roles, token) in PEOPLE.items()]}
    )  # fmt: skip
    app = create_app(ApiDeps(controller=loop.ctl, metrics=loop.metrics, tokens=tokens))
    with TestClient(app) as client:
        yield client


class TestApproveOverHttp:
    def test_who_may_approve(self, loop: Loop, http: TestClient) -> None:
        """Reader and deployer lack the role; the registrant and an unlisted approver are
        refused by the registry (403, clear body); alice approves as herself."""
        guard(loop, 1)
        rid = loop.to_approval()
        url = f"/v1/rollouts/{rid}/approve"
        for role in ("reader", "deployer"):
            denied = http.post(url, json={"reason": "ok"}, headers=_as(role))
            assert denied.status_code == 403
            assert "lacks the approver role" in denied.json()["detail"]
        own = http.post(url, json={"reason": "mine"}, headers=_as("tester"))
        assert own.status_code == 403
        assert own.json()["detail"] == (
            "tester owns or registered fraud-v1.1.0 and cannot approve it"
        )
        stranger = http.post(url, json={"reason": "sure"}, headers=_as("mallory"))
        assert stranger.status_code == 403
        assert stranger.json()["detail"] == (
            "mallory is not an approver for fraud production; approvers: alice, bob, carol, tester"
        )
        assert loop.store.get(rid).phase is Phase.AWAITING_APPROVAL
        ok = http.post(url, json={"reason": "lgtm", "actor": "bob"}, headers=_as("alice"))
        assert ok.status_code == 200, ok.text
        assert ok.json()["phase"] == "promoted"
        (approval,) = loop.registry.approvals("fraud", "v1.1.0")
        assert approval.approver == "alice"  # the token's identity, not the body's actor

    def test_status_says_what_is_missing(self, loop: Loop, http: TestClient) -> None:
        """After one of two approvals the status's last decision names who else may."""
        guard(loop, 2)
        rid = loop.to_approval()
        assert http.post(f"/v1/rollouts/{rid}/approve", headers=_as("alice")).status_code == 200
        body = http.get(f"/v1/rollouts/{rid}", headers=_as("reader")).json()
        assert body["phase"] == "awaiting_approval"
        assert "1 more approval needed from: bob, carol" in body["reason"]
        assert body["last_decision"]["numbers"]["approval"]["needed"] == 1


class TestRejectOverHttp:
    def test_reject(self, loop: Loop, http: TestClient) -> None:
        """Rejecting needs the approver role and a reason; it rolls back and is recorded
        in the registry as the token's identity."""
        guard(loop, 2)
        rid = loop.to_approval()
        url = f"/v1/rollouts/{rid}/reject"
        assert http.post(url, json={"reason": "no"}, headers=_as("deployer")).status_code == 403
        empty = http.post(url, json={}, headers=_as("alice"))
        assert empty.status_code == 422
        assert "body.reason" in empty.json()["detail"]
        done = http.post(url, json={"reason": "drift risk"}, headers=_as("alice"))
        assert done.status_code == 200, done.text
        assert done.json()["phase"] == "rolled_back"
        assert done.json()["reason"] == "rejected by alice: drift risk"
        assert loop.route() == {"v1.0.0": 100}
        (rejection,) = loop.registry.approvals("fraud", "v1.1.0")
        assert (rejection.approver, rejection.decision) == ("alice", "reject")
        again = http.post(url, json={"reason": "again"}, headers=_as("alice"))
        assert again.status_code == 409  # finished: nothing left to reject
