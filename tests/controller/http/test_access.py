"""controller.http.access is the one role check: a request is authenticated once, in the
middleware, and the handler that needs the caller (approve, reject) reads who passed it."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from starlette.requests import Request

from controller.http.access import caller
from controller.http.app import ApiDeps, create_app
from controller.http.auth import Principal, TokenEntry, TokenStore, hash_token

from ..approval_support import Loop, guard, make_loop

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` under its TestClient; httpx works and is what we have.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PEOPLE = {
    "alice": (["approver"], "mrt_" + "a" * 40),
    "reader": (["reader"], "mrt_" + "r" * 40),
    "deployer": (["deployer"], "mrt_" + "d" * 40),
}


class CountingTokenStore(TokenStore):
    """A counting wrapper: the real ``TokenStore.authenticate``, with its calls counted."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        super().__init__(entries)
        self.calls = 0

    def authenticate(self, header_value: str | None) -> Principal | None:
        self.calls += 1
        return super().authenticate(header_value)


def _as(identity: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {PEOPLE[identity][1]}"}


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    yield from make_loop(tmp_path)


@pytest.fixture
def tokens() -> CountingTokenStore:
    store = CountingTokenStore.from_mapping(
        {"tokens": [{"identity": who, "roles": roles, "hash": hash_token(token)}
                    for who, (roles, token) in PEOPLE.items()]}
    )  # fmt: skip
    assert isinstance(store, CountingTokenStore)
    return store


class TestOneCheckPerRequest:
    def test_authenticate_runs_once_per_request(
        self, loop: Loop, tokens: CountingTokenStore
    ) -> None:
        """Allowed, refused (401 and 403) and approving requests each look the token up
        exactly once; the open health routes not at all."""
        guard(loop, 1)
        rid = loop.to_approval()
        app = create_app(ApiDeps(controller=loop.ctl, metrics=loop.metrics, tokens=tokens))
        requests = [
            ("GET", "/v1/rollouts", _as("reader"), 200),
            ("GET", f"/v1/rollouts/{rid}", {}, 401),
            ("POST", f"/v1/rollouts/{rid}/approve", _as("deployer"), 403),
            ("POST", "/v1/rollouts", _as("reader"), 403),
            ("POST", f"/v1/rollouts/{rid}/approve", _as("alice"), 200),
            ("GET", f"/v1/rollouts/{rid}/explain", _as("deployer"), 200),
        ]
        with TestClient(app) as client:
            for method, path, headers, status in requests:
                before = tokens.calls
                reply = client.request(method, path, headers=headers, json={"reason": "ok"})
                assert reply.status_code == status, (method, path, reply.text)
                assert tokens.calls == before + 1, (method, path)
            before = tokens.calls
            for path in ("/healthz", "/readyz", "/metrics"):
                assert client.get(path, headers=_as("reader")).status_code == 200
            assert tokens.calls == before
        (approval,) = loop.registry.approvals("fraud", "v1.1.0")
        assert approval.approver == "alice"  # the identity the middleware recorded


class TestCaller:
    def test_without_tokens_the_body_names_the_actor(self, loop: Loop) -> None:
        """With authentication off there is no caller, so the body's actor is recorded."""
        guard(loop, 1)
        rid = loop.to_approval()
        app = create_app(ApiDeps(controller=loop.ctl, metrics=loop.metrics))
        with TestClient(app) as client:
            ok = client.post(f"/v1/rollouts/{rid}/approve", json={"actor": "alice"})
        assert ok.status_code == 200, ok.text
        (approval,) = loop.registry.approvals("fraud", "v1.1.0")
        assert approval.approver == "alice"

    def test_a_request_that_skipped_the_check_has_no_caller(self) -> None:
        """A handler reached without AccessCheck gets an error, never a guessed caller."""
        request = Request({"type": "http", "method": "POST", "path": "/v1/rollouts/1/approve",
                           "headers": [], "query_string": b""})  # fmt: skip
        with pytest.raises(RuntimeError, match="did not pass AccessCheck"):
            caller(request)

    def test_the_recorded_caller_is_returned(self) -> None:
        """What the middleware put in the request's state is what the handler reads."""
        alice = Principal("alice", frozenset())
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [],
                 "query_string": b"", "state": {"principal": alice}}  # fmt: skip
        assert caller(Request(scope)) is alice
        assert caller(Request({**scope, "state": {"principal": None}})) is None
