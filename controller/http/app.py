"""The daemon's HTTP API (FastAPI), built from injected parts by ``create_app``.

- ``/healthz`` (the process answers), ``/readyz`` (started, routers reconciled and
  taking routes; 503 naming the failing router otherwise), ``/metrics``.
- Registry reads and the resolve hot path: ``GET /v1/models/{name}/resolve`` gives
  the version and artifact digest serving should load.
- ``GET /v1/routes/{model}`` for the ``http`` router, with ETag / If-None-Match.
- ``GET /v1/guard``: what the production guard knows, per model.
- Rollouts: list, status, explain, start, pause, resume, abort, approve, reject
  (a rejection needs a ``reason``; it is recorded in the registry and rolls back).
- Ingest of prediction events and late labels in batches.
- ``POST /v1/alerts``: Alertmanager's webhook, mapped by the config's alert routes
  to rollback, pause or abort of the model's active rollout; a rollback for a model
  with no active rollout puts the previous production version back (registry and
  routers) before answering. Repeats act once, across restarts too (``alert_ledger``).
  ``modelreg_alert_action_seconds``: time from the request's arrival to its action
  committed and routed.

Bodies are pydantic models: a bad body is a 422 naming the field. A body over
``server.max_body_bytes`` (``server.max_ingest_body_bytes`` under ``/v1/ingest/``)
is a 413, refused before it is read (``controller.http.limits``). No endpoint takes a
server-side path or URL from a client. Every error is a problem document
(``application/problem+json``, ``controller.http.problems``) whose ``detail`` says
what was wrong: 404 (unknown; also a name or version that cannot exist), 409 (illegal
now), 413 (too large), 422 (invalid, with ``errors``), 503 (another member's model).
Each route's OpenAPI entry lists the statuses it can answer.

With a tokens file (``server.tokens_file``, see ``controller.http.auth``) every route
but the health ones needs ``Authorization: Bearer <token>``: ``reader`` for
reads (resolve and routes included), ``deployer`` to start and steer rollouts and
to post telemetry, ``approver`` to approve or reject (as the token's identity,
never a body's ``actor``), ``alerts`` for ``/v1/alerts``. 401 without a known
token, 403 without the role, and 403 when the registry refuses the approver
(not on its policy's list, or the version's own registrant). Roles are checked
once per request, before the body is parsed (``controller.http.access``); a handler
that needs the caller's identity reads it with ``access.caller``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

import structlog
from fastapi import Body, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from controller.adapters.leases import Fenced
from controller.adapters.request_store import Outcome, RequestKind, RequestRecord
from controller.core.phases import Event
from controller.errors import CannotStart, IllegalMove, RequestNotFound, RolloutNotFound
from controller.http.access import AccessCheck, caller
from controller.http.deps import ApiDeps, readiness
from controller.http.limits import BodyLimit
from controller.http.problems import documented, install, problem
from controller.shell import requests
from controller.shell.requests import http_status
from monitors import IngestStore
from monitors.alerts import WEBHOOK_SCHEMA, AlertAction
from monitors.errors import (
    AlertPayloadError,
    IngestConflict,
    IngestError,
    UnknownPredictionError,
)
from registry import InvalidName, InvalidVersion, RegistryError

__all__ = ["ApiDeps", "create_app"]

log = structlog.get_logger("controller.http.app")


class _Body(BaseModel):
    # strict: a number is a number and a boolean a boolean, as the schema says
    # (lax parsing took `false` for a float and "1" for a number).
    model_config = ConfigDict(extra="forbid", strict=True)


class StartRollout(_Body):
    model: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="started through the API", max_length=2000)


class Action(_Body):
    reason: str = Field(default="", max_length=2000)
    actor: str | None = Field(default=None, max_length=128)


class Rejection(_Body):
    reason: str = Field(
        min_length=1,
        max_length=2000,
        # Not \S: Python and JSON Schema (ECMA) regexes disagree on what is a space.
        pattern=r"[^ \t\n\r\f\v]",
        description="Why: recorded in the registry.",
    )
    actor: str | None = Field(default=None, max_length=128)


class EventIn(_Body):
    prediction_id: str = Field(min_length=1, max_length=128)
    model: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=64)
    arm: str = Field(default="", max_length=64)
    unit_id: str = Field(min_length=1, max_length=256)
    timestamp: float
    latency_ms: float = Field(ge=0)
    error: bool
    outcome: float | None = None
    score: float | None = None


class LabelIn(_Body):
    prediction_id: str = Field(min_length=1, max_length=128)
    label: float
    timestamp: float


class Events(_Body):
    events: list[EventIn] = Field(max_length=100_000)


class Labels(_Body):
    labels: list[LabelIn] = Field(max_length=100_000)


# Fine around the 50 ms target for alert actions, so the daemon's own p99 is readable.
_ALERT_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5,
                  1.0, 2.5, 5.0, 10.0, 30.0)  # fmt: skip

# Row ids the databases can hold (PostgreSQL's integer columns are 32-bit): a larger
# one is a 422 naming the bound, never an OverflowError from the driver (a 500).
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
MAX_LIST = 10_000  # rows one list answer may hold
Stage = Literal["dev", "staging", "production", "archived"]

# The error statuses each kind of route can answer (with tokens on: 401 and 403).
_AUTH = (401, 403)
READ = documented(*_AUTH, 404, 422)
WRITE = documented(400, *_AUTH, 404, 409, 413, 422, 503)
INTAKE = documented(400, *_AUTH, 404, 409, 413, 422, 503)
# The alert intake reads its body itself (Alertmanager's format); the spec says what.
WEBHOOK_BODY = {"required": True, "content": {"application/json": {"schema": WEBHOOK_SCHEMA}}}

_ACTIONS: dict[str, Event] = {
    "pause": Event.PAUSE,
    "resume": Event.RESUME,
    "abort": Event.ABORT,
    "approve": Event.APPROVE,
    "reject": Event.REJECT,
}


def create_app(deps: ApiDeps) -> FastAPI:  # noqa: PLR0915 -- routes are closures over deps
    """The FastAPI application over ``deps``; OpenAPI at ``/openapi.json``."""
    app = FastAPI(
        title="modelreg controller",
        version="0.1.0",
        description="Rollouts judged by statistics; the registry's resolve hot path.",
    )
    install(app)
    app.add_middleware(
        BodyLimit,
        default=deps.max_body_bytes,
        per_prefix={"/v1/ingest/": deps.max_ingest_body_bytes},
        prefix_settings={"/v1/ingest/": "server.max_ingest_body_bytes"},
    )
    # Outermost: roles are checked before any body is read or parsed, so a caller
    # without the role gets 401/403, never 413 or 422 (controller.http.access). It is
    # the only check; handlers that need the caller's identity read access.caller.
    app.add_middleware(AccessCheck, tokens=lambda: deps.tokens, routes=lambda: app.routes)
    controller = deps.controller
    registry = controller.registry
    store = controller.store
    alert_seconds = Histogram(
        "modelreg_alert_action_seconds",
        "Seconds from an alert webhook's arrival to its action committed and routed.",
        ["action"],
        registry=deps.metrics,
        buckets=_ALERT_BUCKETS,
    )

    @app.exception_handler(RegistryError)
    def _registry_error(request: Request, exc: RegistryError) -> Response:
        if request.method == "GET" and isinstance(exc, InvalidName | InvalidVersion):
            # A lookup by a name or version that cannot exist: nothing found.
            return problem(404, f"{exc}; no such model or version can exist")
        return problem(http_status(exc) or 409, str(exc))

    @app.exception_handler(Fenced)
    def _fenced(_request: Request, exc: Fenced) -> Response:
        # Several daemons: this member does not (or no longer) own the model's shard.
        return problem(503, f"{exc}; send it to the member that owns it (GET /v1/cluster)")

    def _refused(_request: Request, exc: Exception) -> Response:
        return problem(http_status(exc) or 500, str(exc))

    for refusal in (RolloutNotFound, RequestNotFound, IllegalMove, CannotStart):  # 404, 409
        app.add_exception_handler(refusal, _refused)

    def _answer(
        outcome: Outcome | None, request: RequestRecord | None, kind: RequestKind
    ) -> Response:
        """A single daemon's answer, or a durable request's: its outcome with the member
        that acted, or 202 with the request while its owner has not applied it yet."""
        if request is None:
            assert outcome is not None
            if outcome.status_code >= 400:
                return problem(outcome.status_code, str(outcome.body.get("detail", "")))
            return JSONResponse(outcome.body, status_code=outcome.status_code)
        if outcome is None:
            detail = (f"recorded as request {request.id}; the member owning shard "
                      f"{request.shard} applies it (GET /v1/requests/{request.id})")  # fmt: skip
            queued = {"request": request.id, "status": request.status.value,
                      "kind": kind.value, "detail": detail}  # fmt: skip
            return JSONResponse(queued, status_code=202)
        if outcome.status_code >= 400:
            detail = str(outcome.body.get("detail", ""))
            member = {"member": request.claimed_by, "request": request.id}
            return problem(outcome.status_code, detail, extensions=member)
        body = {**outcome.body, "member": request.claimed_by, "request": request.id}
        return JSONResponse(body, status_code=outcome.status_code)

    async def _perform(
        kind: RequestKind, model: str, payload: dict[str, Any], key: str
    ) -> tuple[Outcome | None, RequestRecord | None]:
        """One daemon: dispatched at once; several: a durable request (``shell.requests``)."""
        wait = controller.config.ha.request_wait
        return await run_in_threadpool(
            requests.perform, controller, kind, model, payload, key=key, wait=wait
        )

    # -- health -----------------------------------------------------------------

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Not ready (same body)"}})
    async def readyz() -> JSONResponse:
        status, body = readiness(deps)
        return JSONResponse(body, status_code=status)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
    )
    def metrics() -> Response:
        return Response(generate_latest(deps.metrics), media_type=CONTENT_TYPE_LATEST)

    # -- registry reads -----------------------------------------------------------

    @app.get("/v1/models/{name}/resolve", tags=["registry"], responses=READ)
    async def resolve(name: str, stage: Stage = "production") -> dict[str, Any]:
        """The version and artifact digest serving should load (cached, microseconds)."""
        found = registry.resolve(name, stage)
        return {
            "name": found.name,
            "version": str(found.version),
            "stage": found.stage,
            "digest": found.artifact_digest,
            "artifact": found.artifact_name,
        }

    @app.get("/v1/models", tags=["registry"], responses=documented(*_AUTH))
    def list_models() -> list[dict[str, Any]]:
        return [m.to_dict() for m in registry.list_models()]

    @app.get("/v1/models/{name}", tags=["registry"], responses=READ)
    def model_versions(name: str, stage: Stage | None = None) -> list[dict[str, Any]]:
        return [v.to_dict() for v in registry.list_versions(name, stage=stage)]

    @app.get("/v1/models/{name}/versions/{version}", tags=["registry"], responses=READ)
    def model_version(name: str, version: str) -> dict[str, Any]:
        return registry.get_model_version(name, version).to_dict()

    @app.get("/v1/models/{name}/history", tags=["registry"], responses=READ)
    def history(name: str) -> list[dict[str, Any]]:
        return [t.to_dict() for t in registry.history(name)]

    # -- routes (http router) -------------------------------------------------------

    @app.get(
        "/v1/routes/{model}",
        tags=["routing"],
        responses={**READ, 304: {"description": "Not modified (If-None-Match)"}},
    )
    async def route(model: str, request: Request) -> Response:
        """The current route of ``model``; 304 when ``If-None-Match`` has its ETag."""
        for router in deps.http_routers:
            published = router.published(model)
            if published is None:
                continue
            current, etag = published
            headers = {"ETag": etag, "Cache-Control": "no-cache"}
            if request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers=headers)
            return JSONResponse(current.to_dict(), headers=headers)
        raise HTTPException(404, f"no route published for {model!r}")

    # -- rollouts -------------------------------------------------------------------

    @app.get("/v1/rollouts", tags=["rollouts"], responses=READ)
    def rollouts(
        model: str | None = None,
        active: bool | None = None,
        limit: int = Query(100, ge=1, le=MAX_LIST),
    ) -> list[dict[str, Any]]:
        return [r.to_dict() for r in store.list_rollouts(model=model, active=active, limit=limit)]

    @app.get("/v1/guard", tags=["guard"], responses=READ)
    def guard_status(model: str | None = None) -> list[dict[str, Any]]:
        """Per guarded model: each trigger's last judgement and streak, the last guard
        action and whether its cooldown holds."""
        if deps.guard is None:
            raise HTTPException(404, "the production guard is not running in this process")
        return deps.guard.status(now=controller.clock(), model=model)

    @app.get("/v1/cluster", tags=["cluster"], responses=READ)
    def cluster() -> dict[str, Any]:
        """Several daemons: the members, the shards each holds, lease expiry and last
        renewal (times are the database's clock, epoch seconds), and this member."""
        membership = controller.membership
        if membership is None:
            raise HTTPException(404, "this daemon runs alone (ha.enabled is false)")
        return {**membership.leases.status(), "this_member": membership.member}

    @app.post(
        "/v1/rollouts",
        tags=["rollouts"],
        status_code=201,
        responses={**WRITE, 202: {"description": "Queued for the owning member"}},
    )
    async def start(
        body: StartRollout,
        idempotency_key: str | None = Header(default=None, max_length=256),
    ) -> Response:
        """Start a rollout. Several daemons: any member takes it (see ``act``)."""
        payload = {"model": body.model, "version": body.version, "reason": body.reason}
        kind = RequestKind.START
        done = await _perform(kind, body.model, payload, requests.new_key(idempotency_key))
        return _answer(*done, kind)

    @app.get("/v1/requests/{request_id}", tags=["cluster"], responses=READ)
    def request_status(request_id: RowId) -> dict[str, Any]:
        """Several daemons: a recorded action (pending, applying, done or expired) with
        the member that applied it and the answer it got."""
        if controller.requests is None:
            raise HTTPException(404, "this daemon runs alone (ha.enabled is false)")
        return controller.requests.get(request_id).to_dict()

    @app.get("/v1/rollouts/{rollout_id}", tags=["rollouts"], responses=READ)
    def status(rollout_id: RowId) -> dict[str, Any]:
        record = store.get(rollout_id)
        body = record.to_dict()
        last = store.decisions(rollout_id, limit=1)
        body["last_decision"] = last[0].to_dict() if last else None
        return body

    @app.get("/v1/rollouts/{rollout_id}/explain", tags=["rollouts"], responses=READ)
    def explain(rollout_id: RowId, limit: int = Query(50, ge=1, le=MAX_LIST)) -> dict[str, Any]:
        """The rollout, its policy and its decisions with reasons and numbers."""
        record = store.get(rollout_id)
        policy = controller.policy(record.model)
        return {
            "rollout": record.to_dict(),
            "policy": policy.model_dump(mode="json") if policy else None,
            "decisions": [d.to_dict() for d in store.decisions(rollout_id, limit=limit)],
        }

    async def act(
        request: Request, rollout_id: int, action: str, body: Action | Rejection,
        idempotency_key: str | None,
    ) -> Response:  # fmt: skip
        """Pause, resume, abort, approve or reject. Several daemons: any member takes
        it; the member owning the model applies it (once per ``Idempotency-Key``) and
        the answer names it (``member``); 202 with the request if that takes longer
        than ``ha.request_wait``."""
        event = _ACTIONS[action]
        who = caller(request)
        actor = who.identity if who is not None else body.actor  # a token speaks for itself
        if actor is None and action in ("approve", "reject"):
            # The registry's four-eyes rule judges the approver: it must be someone.
            # 403: the request is well formed; who sends it is what is missing.
            what = "an approval" if action == "approve" else "a rejection"
            raise HTTPException(
                403, f'{what} needs an identity: send {{"actor": "..."}} or use a token'
            )
        reason = body.reason or f"{action} through the API"
        model = (await run_in_threadpool(store.get, rollout_id)).model
        payload = {"rollout_id": rollout_id, "event": event.value, "reason": reason,
                   "actor": actor}  # fmt: skip
        kind = RequestKind.OPERATE
        done = await _perform(kind, model, payload, requests.new_key(idempotency_key))
        return _answer(*done, kind)

    def _action_route(action: str) -> None:
        """``POST /v1/rollouts/{id}/<action>``: one route per action, so any other
        method or action on that path is a 405 or 404, never a 422."""
        steered = {**WRITE, 202: {"description": "Queued for the owning member"}}
        path = f"/v1/rollouts/{{rollout_id}}/{action}"
        if action == "reject":

            async def reject(
                request: Request, rollout_id: RowId, body: Rejection,
                idempotency_key: str | None = Header(default=None, max_length=256),
            ) -> Response:  # fmt: skip
                return await act(request, rollout_id, "reject", body, idempotency_key)

            handler: Callable[..., Any] = reject
        else:

            async def steer(
                request: Request, rollout_id: RowId,
                body: Action = Body(default_factory=Action),  # noqa: B008 -- FastAPI's idiom
                idempotency_key: str | None = Header(default=None, max_length=256),
            ) -> Response:  # fmt: skip
                return await act(request, rollout_id, action, body, idempotency_key)

            handler = steer
        handler.__doc__ = f"{action.capitalize()} the rollout (see the rollouts' docs)."
        app.post(path, tags=["rollouts"], responses=steered, name=f"rollout_{action}")(handler)

    for _action in _ACTIONS:
        _action_route(_action)

    # The dashboard (/ui/): its actions go through ``act``, so it offers nothing the API
    # would refuse. Loaded here, with the rest of the app, off the start's path.
    from controller.http.ui.routes import mount  # noqa: PLC0415

    bodies: dict[str, type] = {a: Rejection if a == "reject" else Action for a in _ACTIONS}
    mount(app, deps, act=act, action_bodies=bodies)

    # -- alerts ---------------------------------------------------------------------

    @app.post(
        "/v1/alerts",
        tags=["alerts"],
        responses=INTAKE,
        openapi_extra={"requestBody": WEBHOOK_BODY},
    )
    async def alerts(request: Request) -> dict[str, Any]:
        """Alertmanager's webhook (version 4): matching alerts act once on the rollout."""
        received = time.perf_counter()
        if deps.alerts is None:
            raise HTTPException(404, "no alert routes are configured")
        body = await request.body()
        now = controller.clock()
        try:
            result = deps.alerts.handle(body, now=now)
        except AlertPayloadError as exc:
            raise HTTPException(422, str(exc)) from None
        applied = []
        remembered = result.remembered
        if controller.membership is not None:
            # Several daemons: the owner records the alerts it acted on in the ledger,
            # under its fence, with the request; this member keeps the others.
            acted_on = {a.key for a in result.actions}
            remembered = tuple(r for r in remembered if r[0] not in acted_on)
        for done, action in enumerate(result.actions):
            try:
                outcome = await run_in_threadpool(_alert, action)
            except Exception as exc:
                # Not acted on (e.g. a database error): unsee this alert and the ones not
                # yet tried, so Alertmanager's retry of this 5xx acts instead of counting
                # as a duplicate; the ones already acted on stay remembered.
                lost = {a.key for a in result.actions[done:]}
                deps.alerts.forget(sorted(lost))
                remembered = tuple(r for r in remembered if r[0] not in lost)
                if deps.alert_ledger is not None and remembered:
                    await run_in_threadpool(deps.alert_ledger.remember, remembered, now=now)
                log.error("alert_action_failed", model=action.model, rule=action.rule,
                          alert=action.alert, error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                failed = f"failed ({type(exc).__name__}: {exc}); Alertmanager retries"
                deps.recent_alerts.append({
                    "at": now.isoformat(), "model": action.model, "action": action.action,
                    "rule": action.rule, "alert": action.alert, "acted": False,
                    "result": failed})  # fmt: skip
                raise HTTPException(
                    503,
                    f"alert {action.alert} for {action.model}: {action.action} failed "
                    f"({type(exc).__name__}: {exc}); the alert is not marked handled, so "
                    "send it again (a repeat does not act twice)",
                ) from None
            if outcome.get("acted"):  # committed and routed: how long it took since arrival
                alert_seconds.labels(action.action).observe(time.perf_counter() - received)
            applied.append(outcome)
            deps.recent_alerts.append({"at": now.isoformat(), **outcome})
        if deps.alert_ledger is not None and remembered:  # after the actions committed
            await run_in_threadpool(deps.alert_ledger.remember, remembered, now=now)
        return {"actions": applied, "duplicates": result.duplicates,
                "unmatched": result.unmatched, "resolved": result.resolved}  # fmt: skip

    def _alert(action: AlertAction) -> dict[str, Any]:
        """One alert action: directly with one daemon; with several, as one durable
        request per alert instance, whichever members it reaches."""
        if controller.membership is None:
            return controller.handle_alert(action)
        outcome, request = requests.perform(
            controller, RequestKind.ALERT, action.model, requests.alert_payload(action),
            key=requests.alert_key(action), wait=controller.config.ha.request_wait,
        )  # fmt: skip
        assert request is not None
        if outcome is None:
            return {"model": action.model, "action": action.action, "rule": action.rule,
                    "alert": action.alert, "acted": None, "request": request.id,
                    "result": f"queued as request {request.id} for the member owning shard "
                              f"{request.shard}"}  # fmt: skip
        return {**outcome.body, "member": request.claimed_by, "request": request.id}

    # -- ingest ---------------------------------------------------------------------

    def _no_repeats(kind: str, ids: Iterable[str]) -> None:
        """A batch naming one prediction twice conflicts with itself: 409, like a
        repeat of one already stored (the schema cannot say "unique by field")."""
        seen: set[str] = set()
        for pid in ids:
            if pid in seen:
                raise HTTPException(
                    409, f"{kind} batch refused, nothing stored: it repeats prediction_id {pid!r}"
                )
            seen.add(pid)

    def _ingest() -> IngestStore:
        if deps.ingest is None:
            raise HTTPException(404, "no ingest source is configured")
        return deps.ingest

    @app.post("/v1/ingest/events", tags=["ingest"], responses=INTAKE)
    def ingest_events(body: Events) -> dict[str, int]:
        store_ = _ingest()
        _no_repeats("event", (e.prediction_id for e in body.events))
        try:
            stored = store_.add_events([e.model_dump(exclude_none=True) for e in body.events])
        except IngestConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except IngestError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"stored": stored}

    @app.post("/v1/ingest/labels", tags=["ingest"], responses=INTAKE)
    def ingest_labels(body: Labels) -> dict[str, int]:
        store_ = _ingest()
        _no_repeats("label", (label.prediction_id for label in body.labels))
        try:
            stored = store_.add_labels([label.model_dump() for label in body.labels])
        except UnknownPredictionError as exc:  # labels for predictions never ingested
            raise HTTPException(404, str(exc)) from None
        except IngestConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except IngestError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"stored": stored}

    return app
