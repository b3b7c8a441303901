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
    "login_page",
    "models_page",
    "rollout_live",
    "rollout_page",
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


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _when(text: str | None) -> str:
    if not text:
        return ""
    return f'<time datetime="{_e(text)}">{_e(text[:19].replace("T", " "))}</time>'


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
        f'<form method="post" action="/ui/logout" class="who">{_e(viewer.name)} '
        f'<input type="hidden" name="csrf" value="{_e(viewer.csrf)}">'
        '<button type="submit">Sign out</button></form>'
        if viewer.auth_on and viewer.name
        else ""
    )
    live_attr = f' data-live="{_e(live)}"' if live else ""
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8">{_ICON}<title>{_e(title)} · modelreg</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="/ui/static/ui.css?v={ASSET_VERSION}">'
        f'<script src="/ui/static/ui.js?v={ASSET_VERSION}" defer></script></head><body>'
        '<header><nav><a class="brand" href="/ui/">modelreg</a> <a href="/ui/">Models</a> '
        '<a href="/ui/rollouts">Rollouts</a> <a href="/ui/audit">Audit</a> '
        '<a href="/ui/alerts">Alerts and guard</a></nav>'
        f"{who}</header>{banner}<main{live_attr}>{body}</main></body></html>"
    )


def login_page(*, error: str | None, next_path: str, csrf: str) -> str:
    message = f'<p class="error" role="alert">{_e(error)}</p>' if error else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">' + _ICON + "<title>Sign in · modelreg</title>"
        f'<link rel="stylesheet" href="/ui/static/ui.css?v={ASSET_VERSION}"></head><body>'
        '<main class="login"><h1>modelreg</h1>'
        f"{message}"
        '<form method="post" action="/ui/login">'
        '<label>API token <input type="password" name="token" autocomplete="current-password" '
        "required autofocus></label>"
        f'<input type="hidden" name="next" value="{_e(next_path)}">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        '<button type="submit">Sign in</button></form>'
        "<p>The same bearer tokens as the API; the token is kept in a cookie this site "
        "alone can read.</p></main></body></html>"
    )


def models_page(rows: Sequence[ModelRow], *, query: str, viewer: Viewer) -> str:
    needle = query.strip().lower()
    shown = [r for r in rows if not needle or needle in r.name.lower()]
    search = (
        '<form method="get" action="/ui/" class="search"><label>Filter '
        f'<input type="search" name="q" value="{_e(query)}" placeholder="model name"></label>'
        '<button type="submit">Filter</button></form>'
    )
    head = (
        "<tr><th>Model</th><th>Production</th><th>Digest</th><th>Versions</th>"
        "<th>Rollout</th><th>Guard</th><th>Deprecated</th></tr>"
    )
    body = "".join(_model_row(r) for r in shown)
    empty = (
        f'<p class="empty">No model matches "{_e(query)}".</p>'
        if rows and not shown
        else ('<p class="empty">No models registered yet.</p>' if not rows else "")
    )
    count = f'<p class="count">{len(shown)} of {len(rows)} models</p>'
    table = f'<table class="models"><thead>{head}</thead><tbody>{body}</tbody></table>'
    return layout("Models", f"<h1>Models</h1>{search}{count}{empty}{table}", viewer)


def _model_row(row: ModelRow) -> str:
    rollout = (
        f'<a href="/ui/rollouts/{row.rollout_id}">#{row.rollout_id} {_e(row.candidate)}</a> '
        f'<span class="phase {_e(row.phase)}">{_e(row.phase)}</span> '
        f"{_weight(row.weight)}"
        if row.rollout_id is not None
        else '<span class="none">none</span>'
    )
    digest = f'<code title="{_e(row.digest)}">{_e((row.digest or "")[:12])}</code>'
    guard = _e(row.guard or "")
    if row.last_action:
        guard += f"<br><small>{_e(row.last_action)}</small>"
    return (
        f'<tr data-model="{_e(row.name)}"><td><a href="/ui/models/{quote(row.name, safe="")}">'
        f"{_e(row.name)}</a></td><td>{_e(row.production or '—')}</td><td>{digest}</td>"
        f"<td>{row.versions}</td><td>{rollout}</td><td>{guard}</td>"
        f"<td>{_e(', '.join(row.deprecated))}</td></tr>"
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
        said = f'<p class="error" role="alert">Not done: {_e(notice["error"])}</p>'
    elif notice.get("done"):
        said = f'<p class="notice" role="status">{_e(notice["done"]).capitalize()}: done.</p>'
    elif notice.get("queued"):
        said = (
            f'<p class="notice" role="status">{_e(notice["queued"]).capitalize()}: queued '
            "for the daemon that owns this model.</p>"
        )
    return layout(
        title,
        f'<h1>{_e(title)}</h1>{said}<div id="rollout-live">{live}</div>',
        viewer,
        live=f"/ui/rollouts/{int(r['id'])}/live",
    )


def rollout_live(view: RolloutView, viewer: Viewer) -> str:
    """The part of the rollout page that changes: refreshed in place every few seconds."""
    r = view.record
    parts = [_summary(view), _actions(view, viewer), _weights_chart(view)]
    parts += [_metric_chart(view, name) for name in _metric_names(view)]
    parts.append(_timeline(view))
    return f'<div class="rollout" data-phase="{_e(r["phase"])}">{"".join(parts)}</div>'


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
        ("Phase", f'<span class="phase {_e(r["phase"])}">{_e(r["phase"])}</span>'),
        ("Control", _e(r["control"])),
        ("Candidate", _e(r["treatment"])),
        ("Weight", f"{float(r['weight']):g}% to the candidate (step {int(r['step']) + 1})"),
        ("Started", _when(r.get("started_at"))),
        ("Next look", _when(r.get("next_eval_at")) if r.get("finished_at") is None else "—"),
        ("Sample ratio", _e(srm_text)),
        ("Reason", _e(r.get("reason"))),
    ]
    if view.approval_required or view.approvals:
        items.append(("Approvals", _approvals(view)))
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="summary">{rows}</dl>'


def _approvals(view: RolloutView) -> str:
    a = view.approvals or {}
    if a.get("error"):
        return f'<span class="error">{_e(a["error"])}</span>'
    said = []
    if a.get("approved_by"):
        said.append("approved by " + ", ".join(_e(x) for x in a["approved_by"]))
    if a.get("rejected"):
        said.append("rejected: " + "; ".join(_e(x) for x in a["rejected"]))
    needed = int(a.get("needed") or 0)
    if needed:
        who = ", ".join(_e(x) for x in a.get("missing") or ())
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
        f'class="action {b.action}"><input type="hidden" name="csrf" value="{_e(viewer.csrf)}">'
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
            f"{_e(name)}: effect {_num(m.get('effect'))}, CI [{_num((m.get('ci') or [None])[0])}, "
            f"{_num((m.get('ci') or [None, None])[1])}], n {m.get('n_control')}/"
            f"{m.get('n_treatment')}"
            for name, m in metrics.items()
        )
        reasons = "; ".join(_e(x) for x in d.get("reasons") or ())
        rows.append(
            f'<tr class="{_e(d.get("event"))}"><td>{_when(d.get("at"))}</td>'
            f"<td>{_e(d.get('event'))}</td><td>{_e(d.get('phase_from'))} → "
            f"{_e(d.get('phase_to'))}</td><td>{float(d.get('weight') or 0):g}%</td>"
            f"<td>{_e(cause)}</td><td>{reasons}<br><small>{evidence}</small></td></tr>"
        )
    head = (
        "<tr><th>When</th><th>Event</th><th>Phase</th><th>Weight</th><th>Cause</th>"
        "<th>Why, and the numbers</th></tr>"
    )
    return (
        f'<section class="timeline"><h2>Decisions ({len(view.decisions)})</h2>'
        f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _num(value: object) -> str:
    if not isinstance(value, int | float):
        return "—"
    return f"{value:.4g}"


def rollouts_page(records: Sequence[Mapping[str, Any]], viewer: Viewer) -> str:
    rows = "".join(
        f'<tr><td><a href="/ui/rollouts/{int(r["id"])}">#{int(r["id"])}</a></td>'
        f"<td>{_e(r['model'])}</td><td>{_e(r['control'])} → {_e(r['treatment'])}</td>"
        f'<td><span class="phase {_e(r["phase"])}">{_e(r["phase"])}</span></td>'
        f"<td>{float(r['weight']):g}%</td><td>{_when(r.get('started_at'))}</td></tr>"
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


# -- a model: its versions, history, one version's record, a comparison ---------------


@dataclass(frozen=True, slots=True)
class ModelView:
    name: str
    versions: Sequence[Mapping[str, Any]]  # ModelVersion.to_dict(), newest first
    history: Sequence[Mapping[str, Any]]  # Transition.to_dict(), oldest first
    chosen: Mapping[str, Any] | None = None  # one version's full record (files too)
    requirements: str | None = None  # its requirements file, if any
    lineage: Sequence[tuple[str, str, str]] = ()  # (from ref, relation, to ref)
    comparison: Mapping[str, Any] | None = None  # Comparison.to_dict()
    compared: tuple[str, str] | None = None


def model_page(view: ModelView, viewer: Viewer) -> str:
    name = _e(view.name)
    quoted = quote(view.name, safe="")
    rows = "".join(
        f'<tr data-version="{_e(v["version"])}"><td><a href="/ui/models/{quoted}?version='
        f'{quote(str(v["version"]))}">{_e(v["version"])}</a></td>'
        f'<td><span class="phase {_e(v["stage"])}">{_e(v["stage"])}</span></td>'
        f"<td>{_when(v.get('created_at'))}</td><td>{_e(v.get('owner'))}</td>"
        f"<td>{_metrics_text(v.get('metadata'))}</td><td>{_e(', '.join(v.get('tags') or ()))}</td>"
        f"<td>{_e((v.get('deprecation') or {}).get('reason'))}</td></tr>"
        for v in view.versions
    )
    versions = (
        "<table><thead><tr><th>Version</th><th>Stage</th><th>Registered</th><th>Owner</th>"
        f"<th>Metrics</th><th>Tags</th><th>Deprecated</th></tr></thead><tbody>{rows}</tbody>"
        "</table>"
    )
    history = "".join(
        f"<tr><td>{_when(t.get('at'))}</td><td>{_e(t.get('version'))}</td>"
        f"<td>{_e(t.get('from_stage') or '—')} → {_e(t.get('to_stage'))}</td>"
        f"<td>{_e(t.get('kind'))}</td><td>{_e(t.get('actor'))}</td><td>{_e(t.get('reason'))}</td>"
        "</tr>"
        for t in reversed(view.history)
    )
    options = "".join(f'<option value="{_e(v["version"])}">' for v in view.versions)
    a, b = view.compared or ("", "")
    compare_form = (
        f'<form method="get" action="/ui/models/{quoted}" class="compare">'
        f'<datalist id="versions">{options}</datalist>'
        f'<label>Compare <input name="a" list="versions" value="{_e(a)}" required></label> '
        f'<label>with <input name="b" list="versions" value="{_e(b)}" required></label> '
        '<button type="submit">Compare</button></form>'
    )
    body = (
        f"<h1>{name}</h1><h2>Versions ({len(view.versions)})</h2>{versions}"
        f"{_chosen(view)}<h2>Compare two versions</h2>{compare_form}{_comparison(view)}"
        f"<h2>Stage history</h2><table><thead><tr><th>When</th><th>Version</th><th>Move</th>"
        f"<th>Kind</th><th>By</th><th>Why</th></tr></thead><tbody>{history}</tbody></table>"
    )
    return layout(view.name, body, viewer)


def _metrics_text(metadata: object) -> str:
    metrics = metadata.get("metrics") if isinstance(metadata, Mapping) else None
    if not isinstance(metrics, Mapping):
        return ""
    return ", ".join(f"{_e(k)} {_num(v)}" for k, v in sorted(metrics.items()))


def _chosen(view: ModelView) -> str:
    v = view.chosen
    if v is None:
        return ""
    files = "".join(
        f"<tr><td>{_e(f.get('name'))}</td><td>{_e(f.get('role'))}</td>"
        f"<td><code>{_e(str(f.get('digest') or '')[:16])}</code></td><td>{_e(f.get('size'))}</td>"
        "</tr>"
        for f in v.get("files") or ()
    )
    signature = v.get("signature")
    sig = (
        "<table><thead><tr><th>Input</th><th>Type</th></tr></thead><tbody>"
        + "".join(
            f"<tr><td>{_e(k)}</td><td>{_e(t)}</td></tr>"
            for k, t in (signature.get("inputs") or {}).items()
        )
        + "</tbody></table>"
        if isinstance(signature, Mapping) and isinstance(signature.get("inputs"), Mapping)
        else "<p class='empty'>No signature recorded.</p>"
    )
    requirements = (
        f"<pre>{_e(view.requirements)}</pre>"
        if view.requirements
        else "<p class='empty'>No requirements recorded.</p>"
    )
    return (
        f'<section class="version"><h2>{_e(v.get("version"))} ({_e(v.get("stage"))})</h2>'
        f"<p>Artifact <code>{_e(v.get('artifact_digest'))}</code>, "
        f"{_e(v.get('artifact_size'))} bytes; parent {_e(v.get('parent') or '—')}</p>"
        f"<h3>Signature</h3>{sig}<h3>Files</h3><table><thead><tr><th>Name</th><th>Role</th>"
        f"<th>Digest</th><th>Bytes</th></tr></thead><tbody>{files}</tbody></table>"
        f"<h3>Requirements</h3>{requirements}<h3>Lineage</h3>{lineage_svg(view.lineage)}"
        "</section>"
    )


def lineage_svg(edges: Sequence[tuple[str, str, str]]) -> str:
    """The lineage as a layered drawing: each node in the column of its longest path
    from a source, edges as arrows between the columns."""
    if not edges:
        return "<p class='empty'>No lineage recorded.</p>"
    nodes: dict[str, int] = {}
    for src, _, dst in edges:
        nodes.setdefault(src, 0)
        nodes.setdefault(dst, 0)
    for _ in range(len(nodes)):  # longest path layering (the graph is acyclic)
        changed = False
        for src, _, dst in edges:
            if nodes[dst] < nodes[src] + 1:
                nodes[dst] = nodes[src] + 1
                changed = True
        if not changed:
            break
    columns: dict[int, list[str]] = {}
    for node, layer in sorted(nodes.items()):
        columns.setdefault(layer, []).append(node)
    col_w, row_h, box_w, box_h = 230, 44, 210, 28
    where = {n: (10 + layer * col_w, 10 + i * row_h)
             for layer, names in columns.items() for i, n in enumerate(names)}  # fmt: skip
    width = 20 + (max(columns) + 1) * col_w
    height = 20 + max(len(v) for v in columns.values()) * row_h
    parts = [f'<svg class="lineage" viewBox="0 0 {width} {height}" role="img" '
             'aria-label="lineage" xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    for src, relation, dst in edges:
        (x1, y1), (x2, y2) = where[src], where[dst]
        parts.append(
            f'<line class="edge" x1="{x1 + box_w}" y1="{y1 + box_h / 2}" x2="{x2}" '
            f'y2="{y2 + box_h / 2}"><title>{_e(relation)}</title></line>'
        )
    for node, (x, y) in where.items():
        label = node if len(node) <= 30 else node[:29] + "…"
        parts.append(
            f'<g class="node"><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="4"/>'
            f'<text x="{x + 6}" y="{y + 18}">{_e(label)}</text><title>{_e(node)}</title></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _comparison(view: ModelView) -> str:
    c = view.comparison
    if c is None:
        return ""
    rows = "".join(
        f"<tr><td>{_e(m.get('name'))}</td><td>{_num(m.get('a'))}</td><td>{_num(m.get('b'))}</td>"
        f"<td>{_num(m.get('delta'))}</td><td>{_e(m.get('better'))}</td></tr>"
        for m in [*(c.get("metrics") or ()), *(c.get("performance") or ())]
    )
    features = c.get("features") or {}
    changed = "; ".join(
        f"{what}: {', '.join(_e(x) for x in features.get(what) or ())}"
        for what in ("added", "removed", "modified")
        if features.get(what)
    )
    return (
        f'<section class="comparison"><p><strong>{_e(c.get("recommendation"))}</strong></p>'
        "<table><thead><tr><th>Metric</th><th>A</th><th>B</th><th>Delta</th><th>Better</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
        f"<p>Features {changed or 'unchanged'}. Signature: "
        f"{_e('; '.join(c.get('signature_changes') or ()) or 'unchanged')}.</p></section>"
    )


# -- audit -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditView:
    events: Sequence[Mapping[str, Any]]  # id, at, actor, action, target, reason, hash
    broken: str | None  # the chain's first broken link, None when it verifies
    model: str = ""
    since: str = ""
    until: str = ""


def audit_page(view: AuditView, viewer: Viewer) -> str:
    verdict = (
        '<p class="notice chain-ok" role="status">The audit chain verifies: every event '
        "is linked to the one before it, none missing or changed.</p>"
        if view.broken is None
        else f'<p class="error chain-broken" role="alert">The audit chain is broken: '
        f"{_e(view.broken)}</p>"
    )
    filters = (
        '<form method="get" action="/ui/audit" class="filters">'
        f'<label>Model <input name="model" value="{_e(view.model)}"></label> '
        f'<label>From <input name="since" type="date" value="{_e(view.since)}"></label> '
        f'<label>To <input name="until" type="date" value="{_e(view.until)}"></label> '
        '<button type="submit">Filter</button></form>'
    )
    report = ""
    if view.model and view.since and view.until:
        query = f"model={quote(view.model)}&from={quote(view.since)}&to={quote(view.until)}"
        report = (
            "<p>Governance report for this range: "
            + ", ".join(
                f'<a href="{_e(f"/ui/audit/report?{query}&format={fmt}")}">{fmt}</a>'
                for fmt in ("md", "json", "html")
            )
            + "</p>"
        )
    elif view.model:
        report = "<p class='empty'>Choose a date range for the governance report.</p>"
    rows = "".join(
        f"<tr><td>{int(e['id'])}</td><td>{_when(e.get('at'))}</td><td>{_e(e.get('actor'))}</td>"
        f"<td>{_e(e.get('action'))}</td><td>{_e(e.get('target'))}</td>"
        f"<td>{_e(e.get('reason'))}</td></tr>"
        for e in reversed(view.events)
    )
    table = (
        "<table><thead><tr><th>#</th><th>When</th><th>Who</th><th>What</th><th>On</th>"
        f"<th>Why</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return layout("Audit", f"<h1>Audit</h1>{verdict}{filters}{report}{table}", viewer)


# -- alerts and the guard -----------------------------------------------------------------


def alerts_page(
    actions: Sequence[Mapping[str, Any]], guard: Sequence[Mapping[str, Any]] | None,
    viewer: Viewer, recent: Sequence[Mapping[str, Any]] = (),
) -> str:  # fmt: skip
    rows = "".join(
        f'<tr class="{_e(a.get("outcome"))}"><td>{_when(a.get("at"))}</td>'
        f"<td>{_e(a.get('cause'))}</td><td>{_e(a.get('model'))}</td>"
        f"<td>{_e(a.get('outcome'))}</td><td>{_e(a.get('from_version'))} → "
        f"{_e(a.get('to_version') or '—')}</td><td>{_e(a.get('reason'))}</td></tr>"
        for a in actions
    )
    table = (
        "<table><thead><tr><th>When</th><th>Cause</th><th>Model</th><th>Outcome</th>"
        f"<th>Production</th><th>Why</th></tr></thead><tbody>{rows}</tbody></table>"
        if actions
        else "<p class='empty'>No production rollbacks yet, by alert or guard.</p>"
    )
    if guard is None:
        guarded = "<p class='empty'>The production guard does not run in this process.</p>"
    else:
        guarded = "".join(
            f"<tr><td>{_e(g.get('model'))}</td><td>"
            + "<br>".join(
                f"{_e(name)}: {_e(t.get('status'))}, value {_num(t.get('value'))}, "
                f"{_e(t.get('streak'))} in a row"
                for name, t in (g.get("triggers") or {}).items()
            )
            + f"</td><td>{_e((g.get('last_action') or {}).get('outcome'))}"
            + (" (cooldown)" if (g.get("last_action") or {}).get("in_cooldown") else "")
            + "</td></tr>"
            for g in guard
        )
        guarded = (
            "<table><thead><tr><th>Model</th><th>Triggers</th><th>Last action</th></tr></thead>"
            f"<tbody>{guarded}</tbody></table>"
        )
    delivered = "".join(
        f'<tr class="{"acted" if a.get("acted") else "ignored"}"><td>{_when(a.get("at"))}</td>'
        f"<td>{_e(a.get('alert'))}</td><td>{_e(a.get('rule'))}</td><td>{_e(a.get('model'))}</td>"
        f"<td>{_e(a.get('action'))}</td><td>{'yes' if a.get('acted') else 'no'}</td>"
        f"<td>{_e(a.get('result'))}</td></tr>"
        for a in reversed(recent)
    )
    received = (
        "<table><thead><tr><th>When</th><th>Alert</th><th>Rule</th><th>Model</th><th>Action"
        f"</th><th>Acted</th><th>What it did</th></tr></thead><tbody>{delivered}</tbody></table>"
        if recent
        else "<p class='empty'>No alert has reached this daemon since it started.</p>"
    )
    return layout(
        "Alerts and guard",
        f"<h1>Alerts and guard</h1><h2>Recent alerts, and what each did</h2>{received}"
        f"<h2>Production rollbacks (alerts and guard)</h2>{table}"
        f"<h2>The guard's triggers</h2>{guarded}",
        viewer,
    )
