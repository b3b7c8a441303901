"""The dashboard over HTTP (FastAPI's TestClient): sign-in with the API's tokens into an
HttpOnly, SameSite=Strict cookie; pages that offer only what the API would take from
the viewer; a form without its session's token refused; an approval made from the
page recorded by the registry as the signed-in person."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from controller.core.phases import Phase
from controller.http.app import ApiDeps, create_app
from controller.http.auth import TokenStore, hash_token

from ..approval_support import Loop, guard, make_loop

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PEOPLE = {
    "alice": (["approver"], "mrt_" + "a" * 40),
    "reader": (["reader"], "mrt_" + "r" * 40),
    "deployer": (["deployer"], "mrt_" + "d" * 40),
    "odd": (["reader"], "mrt_" + "o" * 40 + '";,'),  # valid for the API, not for a cookie
}


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    yield from make_loop(tmp_path)


def _app(loop: Loop, *, auth: bool = True, fresh: bool = False) -> TestClient:
    tokens = TokenStore.from_mapping(
        {"tokens": [{"identity": who, "roles": roles, "hash": hash_token(token)}
                    for who, (roles, token) in PEOPLE.items()]}
    ) if auth else None  # fmt: skip
    metrics = loop.metrics if not fresh else CollectorRegistry()
    app = create_app(ApiDeps(controller=loop.ctl, metrics=metrics, tokens=tokens))
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def http(loop: Loop) -> Iterator[TestClient]:
    with _app(loop) as client:
        yield client


def _form_token(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no form token"
    return found.group(1)


def _sign_in(http: TestClient, who: str) -> None:
    form = http.get("/ui/login")
    assert form.status_code == 200
    done = http.post("/ui/login", data={"token": PEOPLE[who][1], "next": "/ui/",
                                        "csrf": _form_token(form.text)})  # fmt: skip
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/ui/"


class TestSignIn:
    def test_a_page_without_a_session_goes_to_sign_in_and_back(self, http: TestClient) -> None:
        away = http.get("/ui/rollouts")
        assert away.status_code == 303
        assert away.headers["location"] == "/ui/login?next=/ui/rollouts"
        form = http.get(away.headers["location"])
        done = http.post("/ui/login", data={"token": PEOPLE["reader"][1], "next": "/ui/rollouts",
                                            "csrf": _form_token(form.text)})  # fmt: skip
        assert done.headers["location"] == "/ui/rollouts"
        cookie = done.headers["set-cookie"]
        assert "modelreg_session=" in cookie
        for attribute in ("HttpOnly", "SameSite=strict", "Path=/ui"):
            assert attribute.lower() in cookie.lower(), cookie
        assert http.get("/ui/rollouts").status_code == 200

    def test_an_unknown_token_or_a_form_without_its_token_is_refused(
        self, http: TestClient
    ) -> None:
        form = http.get("/ui/login").text
        wrong = http.post("/ui/login", data={"token": "mrt_" + "x" * 40, "csrf": _form_token(form)})
        assert wrong.status_code == 401
        assert "not known here" in wrong.text
        assert "modelreg_session" not in wrong.headers.get("set-cookie", "")
        forged = http.post("/ui/login", data={"token": PEOPLE["alice"][1]})
        assert forged.status_code == 403
        assert "modelreg_session" not in forged.headers.get("set-cookie", "")

    def test_another_site_cannot_sign_a_visitor_in(self, http: TestClient) -> None:
        """The sign-in form's nonce must come back in its cookie too: a form posted from
        another site (which cannot read or send that cookie) signs nobody in."""
        nonce = _form_token(http.get("/ui/login").text)
        http.cookies.clear()  # what a cross-site POST carries: no SameSite=Strict cookie
        forged = http.post("/ui/login", data={"token": PEOPLE["reader"][1], "csrf": nonce})
        assert forged.status_code == 403
        assert "modelreg_session" not in forged.headers.get("set-cookie", "")
        nonce = _form_token(http.get("/ui/login").text)
        flagged = http.post("/ui/login", data={"token": PEOPLE["reader"][1], "csrf": nonce},
                            headers={"Sec-Fetch-Site": "cross-site"})  # fmt: skip
        assert flagged.status_code == 403

    def test_a_token_a_cookie_cannot_keep_is_refused_at_sign_in(self, http: TestClient) -> None:
        form = http.get("/ui/login").text
        done = http.post("/ui/login", data={"token": PEOPLE["odd"][1], "csrf": _form_token(form)})
        assert done.status_code == 400
        assert "a cookie cannot keep" in done.text
        assert "modelreg_session" not in done.headers.get("set-cookie", "")

    def test_sign_in_never_sends_anyone_elsewhere(self, http: TestClient) -> None:
        form = http.get("/ui/login").text
        done = http.post("/ui/login", data={"token": PEOPLE["reader"][1], "csrf": _form_token(form),
                                            "next": "https://evil.example/ui/"})  # fmt: skip
        assert done.headers["location"] == "/ui/"

    def test_the_api_still_wants_its_bearer_header(self, http: TestClient) -> None:
        """The cookie stands for a token on the dashboard's routes only."""
        _sign_in(http, "alice")
        assert http.get("/v1/rollouts").status_code == 401

    def test_sign_out_clears_the_session(self, http: TestClient) -> None:
        _sign_in(http, "reader")
        page = http.get("/ui/").text
        out = http.post("/ui/logout", data={"csrf": _form_token(page)})
        assert out.status_code == 303
        http.cookies.clear()  # as the browser does on the expired cookie
        assert http.get("/ui/").status_code == 303


class TestRolloutPage:
    def test_each_viewer_sees_only_the_actions_the_api_would_take(
        self, loop: Loop, http: TestClient
    ) -> None:
        guard(loop, 1)
        rid = loop.to_approval()
        seen = {}
        for who in ("reader", "deployer", "alice"):
            http.cookies.clear()
            _sign_in(http, who)
            page = http.get(f"/ui/rollouts/{rid}").text
            seen[who] = set(re.findall(r'name="do" value="(\w+)"', page))
        assert seen["reader"] == set()
        assert seen["deployer"] == {"pause", "abort"}  # awaiting approval: no resume
        assert seen["alice"] == {"approve", "reject"}

    def test_an_approver_approves_from_the_page(self, loop: Loop, http: TestClient) -> None:
        guard(loop, 1)
        rid = loop.to_approval()
        _sign_in(http, "alice")
        page = http.get(f"/ui/rollouts/{rid}").text
        assert "1 more needed" in page
        form = {"csrf": _form_token(page), "reason": "numbers look right"}
        done = http.post(f"/ui/rollouts/{rid}/approve", data=form)
        assert done.status_code == 303
        assert done.headers["location"] == f"/ui/rollouts/{rid}?done=approve"
        assert loop.store.get(rid).phase is Phase.PROMOTED
        (approval,) = loop.registry.approvals("fraud", "v1.1.0")
        assert (approval.approver, approval.decision) == ("alice", "approve")
        after = http.get(done.headers["location"]).text
        assert "Approve: done." in after

    def test_a_forged_post_is_refused_and_changes_nothing(
        self, loop: Loop, http: TestClient
    ) -> None:
        guard(loop, 1)
        rid = loop.to_approval()
        _sign_in(http, "alice")
        for data in ({}, {"csrf": "0" * 40}):
            forged = http.post(f"/ui/rollouts/{rid}/approve", data=data)
            assert forged.status_code == 403
            assert "form token" in forged.text
        assert loop.store.get(rid).phase is Phase.AWAITING_APPROVAL
        assert loop.registry.approvals("fraud", "v1.1.0") == []

    def test_a_form_from_another_member_or_before_a_restart_still_counts(
        self, loop: Loop, http: TestClient
    ) -> None:
        """The form token is keyed by the session, not by the process that drew it."""
        guard(loop, 1)
        rid = loop.to_approval()
        _sign_in(http, "deployer")
        token = _form_token(http.get(f"/ui/rollouts/{rid}").text)
        with _app(loop, fresh=True) as other:  # another daemon (or this one restarted)
            other.cookies.update(http.cookies)
            done = other.post(f"/ui/rollouts/{rid}/pause", data={"csrf": token})
        assert done.status_code == 303, done.text
        assert loop.store.get(rid).phase is Phase.PAUSED

    def test_a_post_the_browser_flags_as_cross_site_is_refused(
        self, loop: Loop, http: TestClient
    ) -> None:
        guard(loop, 1)
        rid = loop.to_approval()
        _sign_in(http, "deployer")
        token = _form_token(http.get(f"/ui/rollouts/{rid}").text)
        refused = http.post(f"/ui/rollouts/{rid}/pause", data={"csrf": token},
                            headers={"Sec-Fetch-Site": "cross-site"})  # fmt: skip
        assert refused.status_code == 403
        assert loop.store.get(rid).phase is Phase.AWAITING_APPROVAL

    def test_a_reader_with_a_valid_form_token_is_still_refused(
        self, loop: Loop, http: TestClient
    ) -> None:
        guard(loop, 1)
        rid = loop.to_approval()
        _sign_in(http, "reader")
        page = http.get(f"/ui/rollouts/{rid}").text
        refused = http.post(f"/ui/rollouts/{rid}/approve", data={"csrf": _form_token(page)})
        assert refused.status_code == 403
        assert "lacks the approver role" in refused.text
        assert loop.store.get(rid).phase is Phase.AWAITING_APPROVAL

    def test_a_refusal_of_the_registry_is_said_on_the_page(
        self, loop: Loop, http: TestClient
    ) -> None:
        """Rejecting needs a reason; the page says so and nothing moves."""
        guard(loop, 1)
        rid = loop.to_approval()
        _sign_in(http, "alice")
        page = http.get(f"/ui/rollouts/{rid}").text
        done = http.post(f"/ui/rollouts/{rid}/reject", data={"csrf": _form_token(page)})
        assert done.status_code == 303
        assert "error=" in done.headers["location"]
        assert "Not done:" in http.get(done.headers["location"]).text
        assert loop.store.get(rid).phase is Phase.AWAITING_APPROVAL

    def test_the_page_charts_the_looks_and_lists_the_decisions(
        self, loop: Loop, http: TestClient
    ) -> None:
        guard(loop, 1)
        rid = loop.to_approval()
        _sign_in(http, "reader")
        page = http.get(f"/ui/rollouts/{rid}").text
        assert page.count("<svg") >= 2  # the weights, and each metric
        assert "Traffic to the candidate" in page
        assert "candidate minus control" in page
        assert 'data-live="/ui/rollouts/' in page
        live = http.get(f"/ui/rollouts/{rid}/live")
        assert live.status_code == 200
        assert "<html" not in live.text
        assert "Decisions (" in live.text
        assert "default-src 'self'" in live.headers["content-security-policy"]

    def test_an_unknown_rollout_is_a_404(self, http: TestClient) -> None:
        _sign_in(http, "reader")
        assert http.get("/ui/rollouts/999").status_code == 404


class TestEachArm:
    def test_each_arms_value_is_stored_with_the_look_and_charted(
        self, loop: Loop, http: TestClient
    ) -> None:
        """The traffic makes the control 70 % accurate and the candidate 85 %: the
        decision's numbers carry both arms, and the page draws them."""
        guard(loop, 1)
        rid = loop.to_approval()
        last = loop.store.decisions(rid)[-1].numbers["metrics"]["accuracy"]
        assert last["control"] == pytest.approx(0.70, abs=0.05)
        assert last["treatment"] == pytest.approx(0.85, abs=0.05)
        assert last["treatment"] - last["control"] == pytest.approx(last["effect"], abs=1e-6)
        _sign_in(http, "reader")
        page = http.get(f"/ui/rollouts/{rid}").text
        assert "accuracy: each arm" in page
        assert "series-control" in page


class TestModelsPage:
    def test_lists_production_and_the_active_rollout(self, loop: Loop, http: TestClient) -> None:
        guard(loop, 1)
        rid = loop.to_approval()
        _sign_in(http, "reader")
        page = http.get("/ui/").text
        row = re.search(r'<tr data-model="fraud">.*?</tr>', page, re.S)
        assert row, page
        assert "v1.0.0" in row.group(0)
        assert f'href="/ui/rollouts/{rid}"' in row.group(0)
        assert "awaiting_approval" in row.group(0)
        assert "0 of 1 models" in http.get("/ui/?q=nomatch").text


class TestAuthOff:
    def test_a_banner_says_so_and_forms_still_need_their_token(self, loop: Loop) -> None:
        guard(loop, 1)
        rid = loop.to_approval()
        with _app(loop, auth=False) as http:
            page = http.get(f"/ui/rollouts/{rid}").text
            assert "Authentication is off" in page
            assert {"approve", "reject", "pause", "abort"} <= set(
                re.findall(r'name="do" value="(\w+)"', page)
            )
            assert http.post(f"/ui/rollouts/{rid}/pause", data={}).status_code == 403
            assert 'name="actor"' in page  # the registry still wants to know who approves
            form = {"csrf": _form_token(page), "actor": "alice", "reason": "looks right"}
            done = http.post(f"/ui/rollouts/{rid}/approve", data=form)
            assert done.headers["location"].endswith("?done=approve")
            (approval,) = loop.registry.approvals("fraud", "v1.1.0")
            assert approval.approver == "alice"
            assert loop.store.get(rid).phase is Phase.PROMOTED


class TestModelAuditAlertsPages:
    def test_a_model_page_with_versions_history_and_a_comparison(
        self, loop: Loop, http: TestClient
    ) -> None:
        guard(loop, 1)
        loop.to_approval()
        _sign_in(http, "reader")
        page = http.get("/ui/models/fraud").text
        assert 'data-version="v1.1.0"' in page
        assert 'data-version="v1.0.0"' in page
        assert "Stage history" in page
        assert "staging" in page
        compared = http.get("/ui/models/fraud?a=v1.0.0&b=v1.1.0").text
        assert 'class="comparison"' in compared
        assert http.get("/ui/models/nothing-here").status_code == 404

    def test_the_audit_page_says_whether_the_chain_verifies(
        self, loop: Loop, http: TestClient
    ) -> None:
        import sqlite3

        _sign_in(http, "reader")
        page = http.get("/ui/audit").text
        assert "The audit chain verifies" in page
        assert "register" in page
        db = sqlite3.connect(loop.tmp / "home" / "registry.db")
        db.execute("UPDATE audit_event SET actor = 'mallory' WHERE id = 1")
        db.commit()
        db.close()
        broken = http.get("/ui/audit").text
        assert "The audit chain is broken: event 1" in broken
        assert "chain-ok" not in broken

    def test_the_governance_report_downloads(self, loop: Loop, http: TestClient) -> None:
        _sign_in(http, "reader")
        page = http.get("/ui/audit?model=fraud&since=2026-01-01&until=2026-12-31").text
        assert (
            "/ui/audit/report?model=fraud&amp;from=2026-01-01&amp;to=2026-12-31&amp;format=md"
            in page
        )
        for fmt, kind in (("md", "text/markdown"), ("json", "application/json"),
                          ("html", "text/html")):  # fmt: skip
            reply = http.get(f"/ui/audit/report?model=fraud&from=2026-01-01&to=2026-12-31"
                             f"&format={fmt}")  # fmt: skip
            assert reply.status_code == 200, reply.text
            assert reply.headers["content-type"].startswith(kind)
            assert "attachment" in reply.headers["content-disposition"]
            assert "fraud" in reply.text
        bad = http.get("/ui/audit/report?model=fraud&from=2026-12-31&to=2026-01-01")
        assert bad.status_code == 422

    def test_the_alerts_page_lists_production_rollbacks(self, loop: Loop, http: TestClient) -> None:
        from controller.core.causes import Cause
        from controller.core.production import RollbackRequest

        from ..support import register

        register(loop.registry, loop.tmp, "fraud", "v1.0.1", "production")
        done = loop.ctl.actuator.roll_back_production(RollbackRequest(
            model="fraud", cause=Cause.ALERT, actor="alert:bad", reason="FraudErrors firing",
            expected=None, instance="f1@t", since=None))  # fmt: skip
        assert done.acted
        _sign_in(http, "reader")
        page = http.get("/ui/alerts").text
        assert "FraudErrors firing" in page
        assert "rolled_back" in page
        assert "v1.0.1 → v1.0.0" in page
