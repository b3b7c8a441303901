"""controller.http.app through FastAPI's TestClient, over real SQLite and the ingest store."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.metrics import ControllerMetrics
from controller.adapters.rollout_store import RolloutStore
from controller.adapters.routers.file import FileRouter
from controller.adapters.routers.http import HttpRouter
from controller.config import AlertRoute
from controller.http.app import ApiDeps, create_app
from controller.http.auth import TokenStore, hash_token
from controller.shell.controller import Controller
from monitors import AlertIntake, IngestSource, IngestStore
from registry import ModelRegistry
from tests.clock import Clock

from ..support import config, register

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` under its TestClient; httpx works and is what we have.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


TOKENS = {"reader": "mrt_" + "r" * 40, "deployer": "mrt_" + "d" * 40,
          "approver": "mrt_" + "a" * 40, "alerts": "mrt_" + "x" * 40}  # fmt: skip


def _app(tmp_path: Path, tokens: TokenStore | None) -> Iterator[TestClient]:
    clock = Clock(T0)
    registry = ModelRegistry(home=tmp_path / "home", actor="tester", clock=clock)
    register(registry, tmp_path, "fraud", "1.0.0", "production")
    register(registry, tmp_path, "fraud", "1.1.0", "staging")
    ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
    store = RolloutStore.open(registry.url)
    routes = tmp_path / "routes.json"
    collector = CollectorRegistry()
    http = HttpRouter()
    controller = Controller(
        config=config(tmp_path, routes, f"sqlite:///{tmp_path}/ingest.db"),
        registry=registry,
        store=store,
        sources={"events": IngestSource(ingest)},
        routers={"table": FileRouter(path=routes)},
        clock=clock,
        metrics=ControllerMetrics(collector),
    )
    http.set(controller.desired_route("fraud"))  # type: ignore[arg-type]
    rules = [AlertRoute(match={"alertname": "FraudErrors"}, action="rollback").rule(0)]
    app = create_app(
        ApiDeps(controller=controller, metrics=collector, ingest=ingest, http_routers=[http],
                alerts=AlertIntake(rules), tokens=tokens)
    )  # fmt: skip
    with TestClient(app) as c:
        yield c
    ingest.close()
    store.close()
    registry.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from _app(tmp_path, None)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    entries = [{"identity": role, "roles": [role], "hash": hash_token(token)}
               for role, token in TOKENS.items()]  # fmt: skip
    yield from _app(tmp_path, TokenStore.from_mapping({"tokens": entries}))


def _as(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def _event(pid: str, **extra: object) -> dict[str, object]:
    return {"prediction_id": pid, "model": "fraud", "version": "v1.0.0", "arm": "control",
            "unit_id": "u1", "timestamp": time.time(), "latency_ms": 3.0, "error": False,
            **extra}  # fmt: skip


class TestApi:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/v1/rollouts/{big}"),
            ("GET", "/v1/rollouts/{big}/explain"),
            ("GET", "/v1/rollouts/1/explain?limit={big}"),
            ("GET", "/v1/rollouts?limit={big}"),
            ("GET", "/v1/requests/{big}"),
            *[
                ("POST", f"/v1/rollouts/{{big}}/{action}")
                for action in ("pause", "resume", "abort", "approve", "reject")
            ],
        ],
    )
    @pytest.mark.parametrize("big", [2**31, 2**63, 10**30])
    def test_ids_and_limits_past_what_the_database_holds_are_422(
        self, client: TestClient, method: str, path: str, big: int
    ) -> None:
        """Not an OverflowError from the database driver (a 500): a 422 naming the bound."""
        answer = client.request(method, path.format(big=big), json={"reason": "r", "actor": "a"})
        assert answer.status_code == 422, answer.text
        assert "less than or equal" in answer.text

    def test_health_and_metrics(self, client: TestClient) -> None:
        """healthz, readyz and metrics answer."""
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        assert "modelreg_controller_rollouts" in client.get("/metrics").text

    def test_resolve(self, client: TestClient) -> None:
        """Resolve gives the production version and its digest; unknown models are 404."""
        body = client.get("/v1/models/fraud/resolve").json()
        assert body["version"] == "v1.0.0"
        assert len(body["digest"]) == 64
        assert client.get("/v1/models/nope/resolve").status_code == 404

    def test_routes_etag(self, client: TestClient) -> None:
        """The http router's route comes with an ETag; repeating it gives 304."""
        first = client.get("/v1/routes/fraud")
        assert first.json()["backends"][0]["version"] == "v1.0.0"
        again = client.get("/v1/routes/fraud", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        assert client.get("/v1/routes/other").status_code == 404

    def test_rollout_lifecycle(self, client: TestClient) -> None:
        """Start, status, explain, pause, resume and abort over HTTP."""
        started = client.post("/v1/rollouts", json={"model": "fraud", "version": "1.1.0"})
        assert started.status_code == 201, started.text
        rid = started.json()["id"]
        assert client.get(f"/v1/rollouts/{rid}").json()["phase"] == "pending"
        refused = client.post(f"/v1/rollouts/{rid}/pause", json={"reason": "x"})
        assert refused.status_code == 409  # nothing to pause before the first weight
        assert "pending" in refused.json()["detail"]
        assert client.post(f"/v1/rollouts/{rid}/abort").json()["phase"] == "aborted"
        explain = client.get(f"/v1/rollouts/{rid}/explain").json()
        assert [d["action"] for d in explain["decisions"]] == ["rollback"]
        assert explain["policy"]["router"] == "table"
        assert client.get("/v1/rollouts").json()[0]["id"] == rid
        assert client.get("/v1/rollouts/999").status_code == 404

    def test_start_refusals(self, client: TestClient) -> None:
        """Starting for an unknown model, or twice, is a 409 naming why."""
        assert client.post("/v1/rollouts", json={"model": "x", "version": "1"}).status_code == 409
        client.post("/v1/rollouts", json={"model": "fraud", "version": "1.1.0"})
        again = client.post("/v1/rollouts", json={"model": "fraud", "version": "1.1.0"})
        assert again.status_code == 409
        assert "already" in again.json()["detail"]

    def test_bad_bodies_name_the_field(self, client: TestClient) -> None:
        """A bad body is a 422 problem whose detail and errors name the field."""
        bad = client.post("/v1/rollouts", json={"model": "fraud"})
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert bad.json()["errors"][0]["loc"] == ["body", "version"]
        assert bad.json()["detail"].startswith("body.version: ")
        bad = client.post("/v1/ingest/events", json={"events": [_event("a", latency_ms=-1)]})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["loc"] == ["body", "events", 0, "latency_ms"]
        for field, value in (("latency_ms", False), ("timestamp", "1"), ("error", 0)):
            typed = client.post(
                "/v1/ingest/events", json={"events": [_event("b", **{field: value})]}
            )
            assert typed.status_code == 422, (field, value)  # as the schema says: strict
        assert client.post("/v1/rollouts/1/explode").status_code == 404
        refused = client.post("/v1/rollouts/1/reject", json={"reason": "  "})
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["loc"] == ["body", "reason"]

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", "/v1/rollouts/99", 404),
            ("GET", "/nowhere", 404),
            ("GET", "/v1/models/fraud/versions/%C3%AD", 404),  # cannot exist: not found
            ("GET", "/v1/models/%16G/resolve", 404),
            ("GET", "/v1/models/fraud?stage=", 422),
            ("POST", "/v1/rollouts", 422),
            ("POST", "/v1/rollouts/1/pause", 404),
            ("DELETE", "/v1/rollouts", 405),
            ("POST", "/v1/rollouts/1/explain", 405),
        ],
    )
    def test_every_error_is_a_problem_document(
        self, client: TestClient, method: str, path: str, status: int
    ) -> None:
        answer = client.request(method, path)
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        body = answer.json()
        assert body["status"] == status
        assert isinstance(body["detail"], str)
        assert body["detail"]
        assert body["title"]

    def test_a_405_names_every_method_of_the_path(self, client: TestClient) -> None:
        answer = client.request("OPTIONS", "/v1/rollouts")
        assert answer.status_code == 405
        assert answer.headers["allow"] == "GET, POST"

    def test_ingest(self, client: TestClient) -> None:
        """Events then labels are stored; labels for unknown predictions are refused."""
        ok = client.post("/v1/ingest/events", json={"events": [_event("a"), _event("b")]})
        assert ok.json() == {"stored": 2}
        dup = client.post("/v1/ingest/events", json={"events": [_event("a")]})
        assert dup.status_code == 409  # conflicts with what is stored
        twice = client.post("/v1/ingest/events", json={"events": [_event("c"), _event("c")]})
        assert twice.status_code == 409
        assert "repeats prediction_id 'c'" in twice.json()["detail"]
        labels = [{"prediction_id": "a", "label": 1.0, "timestamp": time.time()}]
        assert client.post("/v1/ingest/labels", json={"labels": labels}).json() == {"stored": 1}
        unknown = [{"prediction_id": "zz", "label": 1.0, "timestamp": time.time()}]
        assert client.post("/v1/ingest/labels", json={"labels": unknown}).status_code == 404
        assert client.post("/v1/ingest/labels", json={"labels": labels}).status_code == 409

    def test_openapi(self, client: TestClient) -> None:
        """The OpenAPI schema lists the resolve and rollout paths."""
        paths = client.get("/openapi.json").json()["paths"]
        assert "/v1/models/{name}/resolve" in paths
        for action in ("pause", "resume", "abort", "approve", "reject"):
            assert f"/v1/rollouts/{{rollout_id}}/{action}" in paths


def _webhook(status: str = "firing", model: str = "fraud") -> dict[str, object]:
    return {
        "version": "4", "receiver": "modelreg", "status": status, "groupKey": "g",
        "alerts": [{"status": status, "fingerprint": "f1", "startsAt": "2026-03-01T12:00:00Z",
                    "labels": {"alertname": "FraudErrors", "model": model}}],
    }  # fmt: skip


class TestAlerts:
    def test_alert_rolls_back_once(self, client: TestClient) -> None:
        """A matching firing alert rolls the active rollout back; its repeat acts no more."""
        rid = client.post("/v1/rollouts", json={"model": "fraud", "version": "1.1.0"}).json()["id"]
        first = client.post("/v1/alerts", json=_webhook()).json()
        assert first["actions"][0]["result"] == "rolled_back"
        assert client.post("/v1/alerts", json=_webhook()).json()["duplicates"] == 1
        status = client.get(f"/v1/rollouts/{rid}").json()
        assert status["phase"] == "rolled_back"
        assert "FraudErrors" in status["reason"]
        version = client.get("/v1/models/fraud/versions/1.1.0").json()
        assert version["stage"] == "archived"

    def test_bad_payload(self, client: TestClient) -> None:
        """A body that is no Alertmanager payload is a 422 saying why."""
        bad = client.post("/v1/alerts", json={"version": "3"})
        assert bad.status_code == 422
        assert "version" in bad.json()["detail"]

    def test_no_rollout(self, client: TestClient) -> None:
        """An alert for a model without an active rollout is reported as ignored."""
        body = client.post("/v1/alerts", json=_webhook(model="other")).json()
        assert body["actions"][0]["result"].startswith("ignored: no active rollout")


class TestAuth:
    def test_reads_need_a_token(self, secured: TestClient) -> None:
        """Without a token: 401 with a Bearer challenge; health stays open."""
        denied = secured.get("/v1/models/fraud/resolve")
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"].startswith("Bearer")
        assert secured.get("/healthz").status_code == 200
        assert secured.get("/v1/models/fraud/resolve", headers=_as("reader")).status_code == 200

    @pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
    def test_the_api_description_needs_a_token_too(self, secured: TestClient, path: str) -> None:
        assert secured.get(path).status_code == 401
        assert secured.get(path, headers=_as("reader")).status_code == 200

    def test_roles(self, secured: TestClient) -> None:
        """A reader cannot start a rollout (403); a deployer can; alerts reads nothing."""
        body = {"model": "fraud", "version": "1.1.0"}
        assert secured.post("/v1/rollouts", json=body, headers=_as("reader")).status_code == 403
        assert secured.get("/v1/rollouts", headers=_as("alerts")).status_code == 403
        started = secured.post("/v1/rollouts", json=body, headers=_as("deployer"))
        assert started.status_code == 201
        rid = started.json()["id"]
        refused = secured.post(f"/v1/rollouts/{rid}/approve", headers=_as("deployer"))
        assert refused.status_code == 403
        assert "approver" in refused.json()["detail"]

    def test_token_names_the_actor(self, secured: TestClient) -> None:
        """An action taken with a token is recorded as that identity, whatever the body says."""
        rid = secured.post("/v1/rollouts", json={"model": "fraud", "version": "1.1.0"},
                           headers=_as("deployer")).json()["id"]  # fmt: skip
        secured.post(f"/v1/rollouts/{rid}/abort", json={"actor": "mallory"},
                     headers=_as("deployer"))  # fmt: skip
        explain = secured.get(f"/v1/rollouts/{rid}/explain", headers=_as("reader")).json()
        assert explain["rollout"]["phase"] == "aborted"
        assert explain["decisions"][-1]["numbers"]["actor"] == "deployer"
