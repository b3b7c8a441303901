"""The dashboard's pages as HTML text, from plain data: pure, every value escaped.

``routes`` reads the registry, the rollout store and the guard into the records
below and hands them here; nothing in this module reads a database or a clock, so a
page is a function of its data (and tested as one). The pages work without
JavaScript; ``ui.js`` only refreshes the parts marked ``data-live`` in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from controller.core.phases import TRANSITIONS, Event, Phase
from controller.http.ui import charts

__all__ = [
    "ActionButton",
    "ModelRow",
    "RolloutView",
    "Viewer",
    "esc",
    "login_page",
    "models_page",
    "num",
    "rollout_live",
    "rollout_page",
    "when",
]

_ICON = '<link rel="icon" href="data:,">'  # no favicon request (a 404 in the console)
ASSET_VERSION = "3"  # in the static files' URLs: a new release is fetched afresh


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who looks: their name (None with authentication off), whether authentication
    is on, which roles they hold (``can``) and the form token of their session."""

    name: str | None
    auth_on: bool
    can: Callable[[str], bool]
    csrf: str
    read_only: bool = False  # ``modelreg ui``: no daemon behind the pages


@dataclass(frozen=True, slots=True)
class ModelRow:
    name: str
    production: str | None
    digest: str | None
    versions: int
    rollout_id: int | None = None
    candidate: str | None = None
    phase: str | None = None
    weight: float | None = None
    guard: str | None = None  # triggers' state in a few words
    last_action: str | None = None  # the guard's last action, with its cooldown
    deprecated: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ActionButton:
    action: str  # pause, resume, abort, approve, reject
    role: str  # the role the API asks for it


@dataclass(frozen=True, slots=True)
class RolloutView:
    record: Mapping[str, Any]  # RolloutRecord.to_dict()
    decisions: Sequence[Mapping[str, Any]]  # DecisionRecord.to_dict(), oldest first
    approvals: Mapping[str, Any] | None = None  # needed, missing, approved_by, rejected
    approval_required: bool = False
    margins: Mapping[str, float] = field(default_factory=dict)  # metric -> policy margin


def esc(value: object) -> str:
    """``value`` as HTML text or an attribute's value (None: empty)."""
    return escape("" if value is None else str(value))


def when(text: str | None) -> str:
    """An ISO time as a ``<time>`` element, to the second."""
    if not text:
        return ""
    return f'<time datetime="{esc(text)}">{esc(text[:19].replace("T", " "))}</time>'


def layout(title: str, body: str, viewer: Viewer, *, live: str | None = None) -> str:
    """The page around ``body``: navigation, who is signed in, the auth-off banner."""
    if viewer.read_only:
        banner = (
            '<p class="banner" role="status">Read-only view of the registry (modelreg ui): '
            "no daemon behind it, so nothing here can act.</p>"
        )
    elif viewer.auth_on:
        banner = ""
    else:
        banner = (
            '<p class="banner" role="alert">Authentication is off: anyone who can reach '
            "this port can read and act. Give the daemon a tokens file (server.tokens_file) "
            "to require sign-in.</p>"
        )
    who = (
        f'<form method="post" action="/ui/logout" class="who">{esc(viewer.name)} '
        f'<input type="hidden" name="csrf" value="{esc(viewer.csrf)}">'
        '<button type="submit">Sign out</button></form>'
        if viewer.auth_on and viewer.name
        else ""
    )
    live_attr = f' data-live="{esc(live)}"' if live else ""
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8">{_ICON}<title>{esc(title)} · modelreg</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="/ui/static/ui.css?v={ASSET_VERSION}">'
        f'<script src="/ui/static/ui.js?v={ASSET_VERSION}" defer></script></head><body>'
        '<header><nav><a class="brand" href="/ui/">modelreg</a> <a href="/ui/">Models</a> '
        '<a href="/ui/rollouts">Rollouts</a> <a href="/ui/audit">Audit</a> '
        '<a href="/ui/alerts">Alerts and guard</a></nav>'
        f"{who}</header>{banner}<main{live_attr}>{body}</main></body></html>"
    )


def login_page(*, error: str | None, next_path: str, csrf: str) -> str:
    message = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">' + _ICON + "<title>Sign in · modelreg</title>"
        f'<link rel="stylesheet" href="/ui/static/ui.css?v={ASSET_VERSION}"></head><body>'
        '<main class="login"><h1>modelreg</h1>'
        f"{message}"
        '<form method="post" action="/ui/login">'
        '<label>API token <input type="password" name="token" autocomplete="current-password" '
        "required autofocus></label>"
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        '<button type="submit">Sign in</button></form>'
        "<p>The same bearer tokens as the API; the token is kept in a cookie this site "
        "alone can read.</p></main></body></html>"
    )


def models_page(rows: Sequence[ModelRow], *, query: str, viewer: Viewer) -> str:
    needle = query.strip().lower()
    shown = [r for r in rows if not needle or needle in r.name.lower()]
    search = (
        '<form method="get" action="/ui/" class="search"><label>Filter '
        f'<input type="search" name="q" value="{esc(query)}" placeholder="model name"></label>'
        '<button type="submit">Filter</button></form>'
    )
    head = (
        "<tr><th>Model</th><th>Production</th><th>Digest</th><th>Versions</th>"
        "<th>Rollout</th><th>Guard</th><th>Deprecated</th></tr>"
    )
    body = "".join(_model_row(r) for r in shown)
    empty = (
        f'<p class="empty">No model matches "{esc(query)}".</p>'
        if rows and not shown
        else ('<p class="empty">No models registered yet.</p>' if not rows else "")
    )
    count = f'<p class="count">{len(shown)} of {len(rows)} models</p>'
    table = f'<table class="models"><thead>{head}</thead><tbody>{body}</tbody></table>'
    return layout("Models", f"<h1>Models</h1>{search}{count}{empty}{table}", viewer)


def _model_row(row: ModelRow) -> str:
    rollout = (
        f'<a href="/ui/rollouts/{row.rollout_id}">#{row.rollout_id} {esc(row.candidate)}</a> '
        f'<span class="phase {esc(row.phase)}">{esc(row.phase)}</span> '
        f"{_weight(row.weight)}"
        if row.rollout_id is not None
        else '<span class="none">none</span>'
    )
    digest = f'<code title="{esc(row.digest)}">{esc((row.digest or "")[:12])}</code>'
    guard = esc(row.guard or "")
    if row.last_action:
        guard += f"<br><small>{esc(row.last_action)}</small>"
    return (
        f'<tr data-model="{esc(row.name)}"><td><a href="/ui/models/{quote(row.name, safe="")}">'
        f"{esc(row.name)}</a></td><td>{esc(row.production or '—')}</td><td>{digest}</td>"
        f"<td>{row.versions}</td><td>{rollout}</td><td>{guard}</td>"
        f"<td>{esc(', '.join(row.deprecated))}</td></tr>"
    )


def _weight(weight: float | None) -> str:
    return "" if weight is None else f'<span class="weight">{weight:g}% to the candidate</span>'


# -- the rollout page -------------------------------------------------------------------

_BUTTONS = (
    ActionButton("pause", "deployer"),
    ActionButton("resume", "deployer"),
    ActionButton("abort", "deployer"),
    ActionButton("approve", "approver"),
    ActionButton("reject", "approver"),
)
_EVENTS = {
    "pause": Event.PAUSE,
    "resume": Event.RESUME,
    "abort": Event.ABORT,
    "approve": Event.APPROVE,
    "reject": Event.REJECT,
}


def offered(phase: str, viewer: Viewer) -> list[ActionButton]:
    """The actions the API would take from this viewer in ``phase``: a move the phase
    table allows, and a role the viewer holds."""
    try:
        current = Phase(phase)
    except ValueError:
        return []
    return [
        b for b in _BUTTONS if (current, _EVENTS[b.action]) in TRANSITIONS and viewer.can(b.role)
    ]


def rollout_page(
    view: RolloutView, viewer: Viewer, *, notice: Mapping[str, str] | None = None
) -> str:
    """The rollout's page; ``notice`` is what the last action said (``done``,
    ``queued`` or ``error``, from the redirect after a form)."""
    r = view.record
    title = f"Rollout #{r['id']}: {r['model']} {r['treatment']}"
    live = rollout_live(view, viewer)
    said = ""
    notice = notice or {}
    if notice.get("error"):
        said = f'<p class="error" role="alert">Not done: {esc(notice["error"])}</p>'
    elif notice.get("done"):
        said = f'<p class="notice" role="status">{esc(notice["done"]).capitalize()}: done.</p>'
    elif notice.get("queued"):
        said = (
            f'<p class="notice" role="status">{esc(notice["queued"]).capitalize()}: queued '
            "for the daemon that owns this model.</p>"
        )
    return layout(
        title,
        f'<h1>{esc(title)}</h1>{said}<div id="rollout-live">{live}</div>',
        viewer,
        live=f"/ui/rollouts/{int(r['id'])}/live",
    )


def rollout_live(view: RolloutView, viewer: Viewer) -> str:
    """The part of the rollout page that changes: refreshed in place every few seconds."""
    r = view.record
    parts = [_summary(view), _actions(view, viewer), _weights_chart(view)]
    parts += [_metric_chart(view, name) for name in _metric_names(view)]
    parts.append(_timeline(view))
    return f'<div class="rollout" data-phase="{esc(r["phase"])}">{"".join(parts)}</div>'


def _summary(view: RolloutView) -> str:
    r = view.record
    last = view.decisions[-1] if view.decisions else None
    numbers = (last or {}).get("numbers") or {}
    srm = numbers.get("srm_p")
    srm_text = (
        "not measured yet"
        if srm is None
        else (f"p = {srm:.3g}: the split is off" if srm < 0.001 else f"p = {srm:.3g}: fine")
    )
    items = [
        ("Phase", f'<span class="phase {esc(r["phase"])}">{esc(r["phase"])}</span>'),
        ("Control", esc(r["control"])),
        ("Candidate", esc(r["treatment"])),
        ("Weight", f"{float(r['weight']):g}% to the candidate (step {int(r['step']) + 1})"),
        ("Started", when(r.get("started_at"))),
        ("Next look", when(r.get("next_eval_at")) if r.get("finished_at") is None else "—"),
        ("Sample ratio", esc(srm_text)),
        ("Reason", esc(r.get("reason"))),
    ]
    if view.approval_required or view.approvals:
        items.append(("Approvals", _approvals(view)))
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="summary">{rows}</dl>'


def _approvals(view: RolloutView) -> str:
    a = view.approvals or {}
    if a.get("error"):
        return f'<span class="error">{esc(a["error"])}</span>'
    said = []
    if a.get("approved_by"):
        said.append("approved by " + ", ".join(esc(x) for x in a["approved_by"]))
    if a.get("rejected"):
        said.append("rejected: " + "; ".join(esc(x) for x in a["rejected"]))
    needed = int(a.get("needed") or 0)
    if needed:
        who = ", ".join(esc(x) for x in a.get("missing") or ())
        said.append(f"{needed} more needed" + (f" (from {who})" if who else ""))
    elif view.approval_required:
        said.append("enough approvals")
    return "; ".join(said) or "none needed"


def _actions(view: RolloutView, viewer: Viewer) -> str:
    r = view.record
    buttons = offered(str(r["phase"]), viewer)
    if not buttons:
        return ""
    forms = "".join(
        f'<form method="post" action="/ui/rollouts/{int(r["id"])}/{b.action}" '
        f'class="action {b.action}"><input type="hidden" name="csrf" value="{esc(viewer.csrf)}">'
        + (
            '<input type="text" name="reason" placeholder="why (required)" required '
            'maxlength="2000">'
            if b.action == "reject"
            else '<input type="text" name="reason" placeholder="why (optional)" maxlength="2000">'
        )
        + (  # without a token, the registry still wants to know who approves
            '<input type="text" name="actor" placeholder="your name (required)" required '
            'maxlength="128">'
            if not viewer.auth_on and b.action in ("approve", "reject")
            else ""
        )
        + f'<button type="submit" name="do" value="{b.action}">{b.action.capitalize()}</button>'
        "</form>"
        for b in buttons
    )
    return f'<section class="actions"><h2>Act</h2>{forms}</section>'


def _at(decision: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(decision["at"]))


def _markers(view: RolloutView) -> list[charts.Marker]:
    return [
        charts.Marker(
            _at(d), f"{d['event']}: {(d.get('reasons') or [''])[0]}", css=f"marker {d['event']}"
        )
        for d in view.decisions
        if d.get("event") not in ("hold",) or d.get("phase_from") != d.get("phase_to")
    ]


def _weights_chart(view: RolloutView) -> str:
    points = [(_at(d), float(d["weight"])) for d in view.decisions]
    chart = charts.Chart(
        title="Traffic to the candidate",
        lines=[charts.Line("candidate weight (%)", points, "series-treatment", steps=True)],
        markers=_markers(view),
        unit="%",
        y_floor=0.0,
        y_ceiling=100.0,
    )
    return charts.render(chart)


def _metric_names(view: RolloutView) -> list[str]:
    names: dict[str, None] = {}
    for d in view.decisions:
        metrics = (d.get("numbers") or {}).get("metrics") or {}
        for name in metrics:
            names[name] = None
    return list(names)


def _metric_chart(view: RolloutView, name: str) -> str:
    estimate: list[tuple[datetime, float | None]] = []
    band: list[tuple[datetime, float | None, float | None]] = []
    margin: list[tuple[datetime, float | None]] = []
    zero: list[tuple[datetime, float | None]] = []
    control: list[tuple[datetime, float | None]] = []
    treatment: list[tuple[datetime, float | None]] = []
    status = ""
    for d in view.decisions:
        m = ((d.get("numbers") or {}).get("metrics") or {}).get(name)
        if not m:
            continue
        at = _at(d)
        estimate.append((at, m.get("effect")))
        ci = m.get("ci") or (None, None)
        band.append((at, ci[0], ci[1]))
        margin.append(
            (at, m.get("margin") if m.get("margin") is not None else view.margins.get(name))
        )
        zero.append((at, 0.0))
        control.append((at, m.get("control")))
        treatment.append((at, m.get("treatment")))
        status = str(m.get("status") or "")
    lines = [
        charts.Line("candidate minus control", estimate, "series-estimate"),
        charts.Line("no difference", zero, "series-zero", dashed=True),
    ]
    if any(v is not None for _, v in margin):
        lines.append(charts.Line("margin", margin, "series-margin", dashed=True))
    difference = charts.Chart(
        title=f"{name}: candidate minus control, with its confidence sequence"
        + (f" ({status})" if status else ""),
        lines=lines,
        bands=[charts.Band("confidence sequence", band, "band-ci")],
        markers=_markers(view),
    )
    arms = charts.Chart(
        title=f"{name}: each arm",
        lines=[charts.Line("control", control, "series-control"),
               charts.Line("candidate", treatment, "series-treatment")],
        markers=_markers(view),
    )  # fmt: skip
    return f'<div class="metric">{charts.render(arms)}{charts.render(difference)}</div>'


def _timeline(view: RolloutView) -> str:
    rows = []
    for d in reversed(view.decisions):
        numbers = d.get("numbers") or {}
        cause = numbers.get("cause")
        metrics = numbers.get("metrics") or {}
        evidence = "; ".join(
            f"{esc(name)}: effect {num(m.get('effect'))}, CI [{num((m.get('ci') or [None])[0])}, "
            f"{num((m.get('ci') or [None, None])[1])}], n {m.get('n_control')}/"
            f"{m.get('n_treatment')}"
            for name, m in metrics.items()
        )
        reasons = "; ".join(esc(x) for x in d.get("reasons") or ())
        rows.append(
            f'<tr class="{esc(d.get("event"))}"><td>{when(d.get("at"))}</td>'
            f"<td>{esc(d.get('event'))}</td><td>{esc(d.get('phase_from'))} → "
            f"{esc(d.get('phase_to'))}</td><td>{float(d.get('weight') or 0):g}%</td>"
            f"<td>{esc(cause)}</td><td>{reasons}<br><small>{evidence}</small></td></tr>"
        )
    head = (
        "<tr><th>When</th><th>Event</th><th>Phase</th><th>Weight</th><th>Cause</th>"
        "<th>Why, and the numbers</th></tr>"
    )
    return (
        f'<section class="timeline"><h2>Decisions ({len(view.decisions)})</h2>'
        f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def num(value: object) -> str:
    """A number in four significant digits; anything else a dash."""
    if not isinstance(value, int | float):
        return "—"
    return f"{value:.4g}"


def rollouts_page(records: Sequence[Mapping[str, Any]], viewer: Viewer) -> str:
    rows = "".join(
        f'<tr><td><a href="/ui/rollouts/{int(r["id"])}">#{int(r["id"])}</a></td>'
        f"<td>{esc(r['model'])}</td><td>{esc(r['control'])} → {esc(r['treatment'])}</td>"
        f'<td><span class="phase {esc(r["phase"])}">{esc(r["phase"])}</span></td>'
        f"<td>{float(r['weight']):g}%</td><td>{when(r.get('started_at'))}</td></tr>"
        for r in records
    )
    head = (
        "<tr><th>Rollout</th><th>Model</th><th>Versions</th><th>Phase</th><th>Weight</th>"
        "<th>Started</th></tr>"
    )
    empty = "" if records else '<p class="empty">No rollouts yet.</p>'
    return layout(
        "Rollouts",
        f"<h1>Rollouts</h1>{empty}<table><thead>{head}</thead><tbody>{rows}</tbody></table>",
        viewer,
    )
