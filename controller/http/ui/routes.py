"""The dashboard's routes on the daemon's app: ``/ui/`` and below.

Each page reads what it shows in a few queries (the models page: every model, every
production version, every active rollout and the guard's state, whatever the number
of models) and renders it with ``pages``. Actions go through the API's own handler
(``act``), so the dashboard can do nothing the API would refuse: the same roles (the
access check reads the session cookie for these routes), the same phase table, the
same idempotent path with several daemons. A form without its session's form token
is refused before it acts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from controller.adapters.leases import Fenced
from controller.adapters.registry_gateway import read_approvals
from controller.errors import IllegalMove, RolloutNotFound
from controller.http.access import UI_OPEN_TAG, UI_TAG, caller
from controller.http.auth import Principal
from controller.http.deps import ApiDeps
from controller.http.ui import pages, record_pages
from controller.http.ui.session import COOKIE, LOGIN_COOKIE, FormTokens, cookie_safe
from registry import ModelRegistry, NotFound, RegistryError

__all__ = ["mount"]

Act = Callable[[Request, int, str, Any, str | None], Awaitable[Response]]
_STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}
_DECISIONS_SHOWN = 360  # looks on the rollout page: six hours of 1-minute looks
_MAX_FORM = 16_384
_AUDIT_SHOWN = 500  # events on the audit page, newest
_ACTIONS_SHOWN = 200  # production rollbacks on the alerts page


def mount(  # noqa: PLR0915 -- routes are closures over deps
    app: FastAPI,
    deps: ApiDeps,
    *,
    act: Act,
    action_bodies: dict[str, type],
    read_only: bool = False,
) -> None:
    """Add the dashboard's routes to ``app``; ``act`` is the API's rollout-action handler
    and ``action_bodies`` its body model per action (none: no action routes).
    ``read_only``: no buttons, and a banner says why (``modelreg ui``)."""
    controller = deps.controller
    forms = FormTokens()
    static = {name: resources.files(__package__).joinpath("static", name).read_bytes()
              for name in _STATIC}  # fmt: skip

    def viewer(request: Request) -> pages.Viewer:
        principal = caller(request)
        session = _cookie(request)
        auth_on = deps.tokens is not None

        def can(role: str) -> bool:
            if read_only and role != "reader":
                return False
            return not auth_on or (principal is not None and principal.has(role))

        return pages.Viewer(
            name=principal.identity if isinstance(principal, Principal) else None,
            auth_on=auth_on,
            can=can,
            csrf=forms.issue(session if auth_on else None),
            read_only=read_only,
        )

    def html(text: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(text, status_code=status, headers=_SECURITY_HEADERS)

    @app.get("/ui/static/{name}", tags=[UI_OPEN_TAG], include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in static:
            raise HTTPException(404, f"no static file {name!r}")
        return Response(static[name], media_type=_STATIC[name],
                        headers={"Cache-Control": "public, max-age=86400"})  # fmt: skip

    @app.get("/ui", tags=[UI_OPEN_TAG], include_in_schema=False)
    def ui_root() -> Response:
        return RedirectResponse("/ui/", status_code=308)

    def login_page(target: str, error: str | None, status: int = 200) -> Response:
        """The sign-in form, bound to a fresh nonce also set as its cookie."""
        nonce = forms.nonce()
        reply = html(pages.login_page(error=error, next_path=target, csrf=nonce), status)
        reply.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict",
                         path="/ui")  # fmt: skip
        return reply

    @app.get("/ui/login", tags=[UI_OPEN_TAG], include_in_schema=False)
    def login_form(next: str = "/ui/", error: str | None = None) -> Response:
        if deps.tokens is None:
            return RedirectResponse(_local(next), status_code=303)
        return login_page(_local(next), error)

    @app.post("/ui/login", tags=[UI_OPEN_TAG], include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await _form(request)
        target = _local(form.get("next") or "/ui/")
        if _cross_site(request) or not forms.check_login(
            request.cookies.get(LOGIN_COOKIE), form.get("csrf")
        ):
            return login_page(target, "The form expired; sign in again.", 403)
        token = (form.get("token") or "").strip()
        store = deps.tokens
        if store is None:
            return RedirectResponse(target, status_code=303)
        if not token or store.authenticate(f"Bearer {token}") is None:
            return login_page(target, "That token is not known here.", 401)
        if not cookie_safe(token):
            return login_page(target, "That token has characters a cookie cannot keep as they "
                              "are; sign in with a token made by modelreg.", 400)  # fmt: skip
        reply = RedirectResponse(target, status_code=303)
        reply.delete_cookie(LOGIN_COOKIE, path="/ui", httponly=True, samesite="strict")
        reply.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/ui",
                         secure=request.url.scheme == "https")  # fmt: skip
        return reply

    @app.post("/ui/logout", tags=[UI_OPEN_TAG], include_in_schema=False)
    async def logout(request: Request) -> Response:
        form = await _form(request)
        if not forms.check(_cookie(request), form.get("csrf")):
            raise HTTPException(403, "sign-out refused: the form token does not match")
        reply = RedirectResponse("/ui/login", status_code=303)
        reply.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
        return reply

    @app.get("/ui/", tags=[UI_TAG], include_in_schema=False)
    def models(request: Request, q: str = "") -> Response:
        rows = _model_rows(deps)
        return html(pages.models_page(rows, query=q[:200], viewer=viewer(request)))

    @app.get("/ui/rollouts", tags=[UI_TAG], include_in_schema=False)
    def rollouts(request: Request) -> Response:
        records = [r.to_dict() for r in controller.store.list_rollouts(limit=200)]
        return html(pages.rollouts_page(records, viewer(request)))

    def rollout_view(rollout_id: int) -> pages.RolloutView:
        try:
            record = controller.store.get(rollout_id)
        except RolloutNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        decisions = [d.to_dict() for d in
                     controller.store.decisions(rollout_id, limit=_DECISIONS_SHOWN)]  # fmt: skip
        required, approvals = False, None
        if record.active:
            required, found = read_approvals(controller.registry, record.model, record.treatment)
            approvals = {"needed": found.needed, "missing": list(found.missing),
                         "approved_by": list(found.approved_by),
                         "rejected": list(found.rejected), "error": found.error}  # fmt: skip
        policy = controller.policy(record.model)
        margins = {m.name: m.margin for m in policy.analysis.metrics
                   if getattr(m, "margin", None) is not None} if policy else {}  # fmt: skip
        return pages.RolloutView(record.to_dict(), decisions, approvals, required, margins)

    @app.get("/ui/rollouts/{rollout_id}", tags=[UI_TAG], include_in_schema=False)
    def rollout(request: Request, rollout_id: int) -> Response:
        view = rollout_view(rollout_id)
        return html(pages.rollout_page(view, viewer(request), notice=request.query_params))

    @app.get("/ui/rollouts/{rollout_id}/live", tags=[UI_TAG], include_in_schema=False)
    def rollout_live(request: Request, rollout_id: int) -> Response:
        return html(pages.rollout_live(rollout_view(rollout_id), viewer(request)))

    @app.get("/ui/models/{name}", tags=[UI_TAG], include_in_schema=False)
    def model(
        request: Request, name: str, version: str | None = None,
        a: str | None = None, b: str | None = None,
    ) -> Response:  # fmt: skip
        return html(record_pages.model_page(_model_view(controller.registry, name, version, a, b),
                                     viewer(request)))  # fmt: skip

    @app.get("/ui/audit", tags=[UI_TAG], include_in_schema=False)
    def audit(request: Request, model: str = "", since: str = "", until: str = "") -> Response:
        registry = controller.registry
        try:
            events = registry.audit_log(model or None, since=since or None,
                                        until=until or None, limit=_AUDIT_SHOWN)  # fmt: skip
        except RegistryError as exc:
            raise HTTPException(422, _first_line(exc)) from None
        broken = registry.verify_audit_chain()
        view = record_pages.AuditView(
            events=[{"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action,
                     "target": e.target, "reason": e.reason} for e in events],
            broken=None if broken is None else f"event {broken.event_id}: {broken.problem}",
            model=model, since=since, until=until,
        )  # fmt: skip
        return html(record_pages.audit_page(view, viewer(request)))

    @app.get("/ui/audit/report", tags=[UI_TAG], include_in_schema=False)
    def audit_report(
        model: str, start: str = Query(alias="from"), end: str = Query(alias="to"),
        format: str = "md",
    ) -> Response:  # fmt: skip
        from registry.report import ModelGovernance  # noqa: PLC0415

        kinds = {"md": "text/markdown", "json": "application/json", "html": "text/html"}
        if format not in kinds:
            raise HTTPException(422, f"format must be md, json or html, not {format!r}")
        try:
            report = ModelGovernance(controller.registry).generate_audit_report(model, start, end)
        except RegistryError as exc:
            raise HTTPException(422, _first_line(exc)) from None
        text = {"md": report.to_markdown, "json": report.to_json, "html": report.to_html}[format]()
        filename = f"governance-{model}-{start}-{end}.{format}".replace("/", "_")
        return Response(text, media_type=f"{kinds[format]}; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{quote(filename)}"'})  # fmt: skip

    @app.get("/ui/alerts", tags=[UI_TAG], include_in_schema=False)
    def alerts(request: Request) -> Response:
        actions = [
            {"at": a.at.isoformat(), "cause": a.cause.value, "model": a.model,
             "outcome": a.outcome, "from_version": a.from_version, "to_version": a.to_version,
             "reason": a.reason}
            for a in controller.actuator.ledger.recent(_ACTIONS_SHOWN)
        ]  # fmt: skip
        guard = deps.guard.status(now=controller.clock()) if deps.guard is not None else None
        recent = list(deps.recent_alerts)
        return html(record_pages.alerts_page(actions, guard, viewer(request), recent))

    async def steer(request: Request, rollout_id: int, action: str) -> Response:
        form = await _form(request)
        session = _cookie(request) if deps.tokens else None
        if _cross_site(request) or not forms.check(session, form.get("csrf")):
            return html(_refused("The form token does not match this session: nothing was "
                                 "done. Reload the page and try again."), 403)  # fmt: skip
        page = f"/ui/rollouts/{rollout_id}"
        fields = {k: v.strip() for k, v in form.items() if k in ("reason", "actor") and v.strip()}
        if deps.tokens is not None:
            fields.pop("actor", None)  # a token speaks for itself
        try:
            body = action_bodies[action](**fields)
        except ValueError as exc:  # pydantic: a rejection needs its reason
            return RedirectResponse(f"{page}?error={quote(_first_line(exc))}", status_code=303)
        try:
            answer = await act(request, rollout_id, action, body, None)
        except HTTPException as exc:
            return RedirectResponse(f"{page}?error={quote(str(exc.detail))}", status_code=303)
        except (IllegalMove, RolloutNotFound, RegistryError, Fenced) as exc:
            return RedirectResponse(f"{page}?error={quote(_first_line(exc))}", status_code=303)
        done = "queued" if answer.status_code == 202 else "done"
        return RedirectResponse(f"{page}?{done}={quote(action)}", status_code=303)

    def steering(action: str) -> Callable[[Request, int], Awaitable[Response]]:
        async def handler(request: Request, rollout_id: int) -> Response:
            return await steer(request, rollout_id, action)

        return handler

    for action in action_bodies:
        path = f"/ui/rollouts/{{rollout_id}}/{action}"
        name = f"ui_rollout_{action}"
        app.post(path, tags=[UI_TAG], include_in_schema=False, name=name)(steering(action))


_SECURITY_HEADERS = {
    # Every script and style is a file of ours; nothing loads from elsewhere.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _refused(message: str) -> str:
    from html import escape  # noqa: PLC0415

    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Refused</title>'
        f"</head><body><h1>Refused</h1><p>{escape(message)}</p>"
        '<p><a href="/ui/">Back to the dashboard</a></p></body></html>'
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:500]


def _cross_site(request: Request) -> bool:
    """A form posted from another site's page, as the browser says (``Sec-Fetch-Site``):
    refused whatever it carries. A browser that does not say is judged by the form
    token and the cookie's SameSite alone (an Origin check would refuse honest posts
    behind a proxy that rewrites the scheme or the host)."""
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


def _cookie(request: Request) -> str | None:
    return request.cookies.get(COOKIE) or None


def _local(target: str) -> str:
    """``target`` if it is a path of the dashboard, else the dashboard's root: a sign-in
    link must not send anyone elsewhere."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui"):
        return "/ui/"
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, first value of each field."""
    body = await request.body()
    if len(body) > _MAX_FORM:
        raise HTTPException(413, f"form refused: {len(body)} bytes, at most {_MAX_FORM}")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, f"form refused: {exc}") from None
    return {key: values[0] for key, values in fields.items()}


def _model_view(
    registry: ModelRegistry, name: str, version: str | None, a: str | None, b: str | None
) -> record_pages.ModelView:
    """A model's versions and history, one version's record (``version``, else the
    newest) with its requirements and lineage, and the comparison of ``a`` with ``b``."""
    try:
        versions = registry.list_versions(name)
        history = registry.history(name)
    except NotFound as exc:
        raise HTTPException(404, _first_line(exc)) from None
    chosen = requirements = None
    lineage: list[tuple[str, str, str]] = []
    pick = version or (str(versions[0].version) if versions else None)
    if pick is not None:
        try:
            record = registry.get_model_version(name, pick)
        except (NotFound, RegistryError) as exc:
            raise HTTPException(404, _first_line(exc)) from None
        chosen = record.to_dict()
        files = {f.role: f.name for f in record.files}
        if "requirements" in files:
            text = registry.get_file(name, pick, files["requirements"])
            requirements = text.decode("utf-8", "replace")[:20_000]
        graph = registry.get_lineage(name, pick)
        lineage = [(e.src, e.relation, e.dst) for e in graph.edges]
    comparison = None
    if a and b:
        try:
            comparison = registry.compare_models(f"{name}-{a}", f"{name}-{b}").to_dict()
        except RegistryError as exc:
            comparison = {"recommendation": f"Cannot compare: {_first_line(exc)}"}
    return record_pages.ModelView(
        name=name, versions=[v.to_dict() for v in versions],
        history=[t.to_dict() for t in history], chosen=chosen, requirements=requirements,
        lineage=lineage, comparison=comparison, compared=(a, b) if a and b else None,
    )  # fmt: skip


def _model_rows(deps: ApiDeps) -> list[pages.ModelRow]:
    """Every model's row in a handful of queries, whatever the number of models."""
    controller = deps.controller
    registry = controller.registry
    summaries = registry.list_models()
    production = {v.name: v for v in registry.list_versions(stage="production")}
    deprecated: dict[str, list[str]] = {}
    for v in registry.list_versions(deprecated=True):
        deprecated.setdefault(v.name, []).append(str(v.version))
    active = controller.store.active_for_models([s.name for s in summaries])
    guard: dict[str, dict[str, Any]] = {}
    if deps.guard is not None:
        guard = {str(g["model"]): g for g in deps.guard.status(now=controller.clock())}
    rows = []
    for s in summaries:
        prod = production.get(s.name)
        record = active.get(s.name)
        state = guard.get(s.name)
        rows.append(
            pages.ModelRow(
                name=s.name,
                production=str(prod.version) if prod else None,
                digest=prod.artifact_digest if prod else None,
                versions=s.versions,
                rollout_id=record.id if record else None,
                candidate=record.treatment if record else None,
                phase=record.phase.value if record else None,
                weight=record.weight if record else None,
                guard=_guard_words(state),
                last_action=_last_action(state),
                deprecated=tuple(sorted(deprecated.get(s.name, ()))),
            )
        )
    return rows


def _guard_words(state: dict[str, Any] | None) -> str | None:
    if not state:
        return None
    triggers = state.get("triggers") or {}
    breaching = [f"{name} ({t['streak']} in a row)" for name, t in triggers.items()
                 if int(t.get("streak") or 0) > 0]  # fmt: skip
    if breaching:
        return "breaching: " + ", ".join(breaching)
    statuses = sorted({str(t.get("status")) for t in triggers.values()})
    return f"{len(triggers)} trigger(s): {', '.join(statuses)}" if triggers else None


def _last_action(state: dict[str, Any] | None) -> str | None:
    action = (state or {}).get("last_action")
    if not action:
        return None
    cooldown = " (cooldown)" if action.get("in_cooldown") else ""
    return f"{action['outcome']} {action['from']} → {action.get('to') or '—'}{cooldown}"
