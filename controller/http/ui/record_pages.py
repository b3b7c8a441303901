"""The dashboard's pages about the registry's records: a model (its versions, one
version's record with its lineage drawn, a comparison, the stage history), the audit
trail, and the alerts and guard. Pure like ``pages``, whose layout and escaping they
share: every value escaped, nothing read here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from controller.http.ui.pages import Viewer, esc, layout, num, when

__all__ = ["AuditView", "ModelView", "alerts_page", "audit_page", "lineage_svg", "model_page"]


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
    name = esc(view.name)
    quoted = quote(view.name, safe="")
    rows = "".join(
        f'<tr data-version="{esc(v["version"])}"><td><a href="/ui/models/{quoted}?version='
        f'{quote(str(v["version"]))}">{esc(v["version"])}</a></td>'
        f'<td><span class="phase {esc(v["stage"])}">{esc(v["stage"])}</span></td>'
        f"<td>{when(v.get('created_at'))}</td><td>{esc(v.get('owner'))}</td>"
        f"<td>{_metrics_text(v.get('metadata'))}</td><td>{esc(', '.join(v.get('tags') or ()))}</td>"
        f"<td>{esc((v.get('deprecation') or {}).get('reason'))}</td></tr>"
        for v in view.versions
    )
    versions = (
        "<table><thead><tr><th>Version</th><th>Stage</th><th>Registered</th><th>Owner</th>"
        f"<th>Metrics</th><th>Tags</th><th>Deprecated</th></tr></thead><tbody>{rows}</tbody>"
        "</table>"
    )
    history = "".join(
        f"<tr><td>{when(t.get('at'))}</td><td>{esc(t.get('version'))}</td>"
        f"<td>{esc(t.get('from_stage') or '—')} → {esc(t.get('to_stage'))}</td>"
        f"<td>{esc(t.get('kind'))}</td><td>{esc(t.get('actor'))}</td><td>{esc(t.get('reason'))}</td>"
        "</tr>"
        for t in reversed(view.history)
    )
    options = "".join(f'<option value="{esc(v["version"])}">' for v in view.versions)
    a, b = view.compared or ("", "")
    compare_form = (
        f'<form method="get" action="/ui/models/{quoted}" class="compare">'
        f'<datalist id="versions">{options}</datalist>'
        f'<label>Compare <input name="a" list="versions" value="{esc(a)}" required></label> '
        f'<label>with <input name="b" list="versions" value="{esc(b)}" required></label> '
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
    return ", ".join(f"{esc(k)} {num(v)}" for k, v in sorted(metrics.items()))


def _chosen(view: ModelView) -> str:
    v = view.chosen
    if v is None:
        return ""
    files = "".join(
        f"<tr><td>{esc(f.get('name'))}</td><td>{esc(f.get('role'))}</td>"
        f"<td><code>{esc(str(f.get('digest') or '')[:16])}</code></td><td>{esc(f.get('size'))}</td>"
        "</tr>"
        for f in v.get("files") or ()
    )
    signature = v.get("signature")
    sig = (
        "<table><thead><tr><th>Input</th><th>Type</th></tr></thead><tbody>"
        + "".join(
            f"<tr><td>{esc(k)}</td><td>{esc(t)}</td></tr>"
            for k, t in (signature.get("inputs") or {}).items()
        )
        + "</tbody></table>"
        if isinstance(signature, Mapping) and isinstance(signature.get("inputs"), Mapping)
        else "<p class='empty'>No signature recorded.</p>"
    )
    requirements = (
        f"<pre>{esc(view.requirements)}</pre>"
        if view.requirements
        else "<p class='empty'>No requirements recorded.</p>"
    )
    return (
        f'<section class="version"><h2>{esc(v.get("version"))} ({esc(v.get("stage"))})</h2>'
        f"<p>Artifact <code>{esc(v.get('artifact_digest'))}</code>, "
        f"{esc(v.get('artifact_size'))} bytes; parent {esc(v.get('parent') or '—')}</p>"
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
            f'y2="{y2 + box_h / 2}"><title>{esc(relation)}</title></line>'
        )
    for node, (x, y) in where.items():
        label = node if len(node) <= 30 else node[:29] + "…"
        parts.append(
            f'<g class="node"><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="4"/>'
            f'<text x="{x + 6}" y="{y + 18}">{esc(label)}</text><title>{esc(node)}</title></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _comparison(view: ModelView) -> str:
    c = view.comparison
    if c is None:
        return ""
    rows = "".join(
        f"<tr><td>{esc(m.get('name'))}</td><td>{num(m.get('a'))}</td><td>{num(m.get('b'))}</td>"
        f"<td>{num(m.get('delta'))}</td><td>{esc(m.get('better'))}</td></tr>"
        for m in [*(c.get("metrics") or ()), *(c.get("performance") or ())]
    )
    features = c.get("features") or {}
    changed = "; ".join(
        f"{what}: {', '.join(esc(x) for x in features.get(what) or ())}"
        for what in ("added", "removed", "modified")
        if features.get(what)
    )
    return (
        f'<section class="comparison"><p><strong>{esc(c.get("recommendation"))}</strong></p>'
        "<table><thead><tr><th>Metric</th><th>A</th><th>B</th><th>Delta</th><th>Better</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
        f"<p>Features {changed or 'unchanged'}. Signature: "
        f"{esc('; '.join(c.get('signature_changes') or ()) or 'unchanged')}.</p></section>"
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
        f"{esc(view.broken)}</p>"
    )
    filters = (
        '<form method="get" action="/ui/audit" class="filters">'
        f'<label>Model <input name="model" value="{esc(view.model)}"></label> '
        f'<label>From <input name="since" type="date" value="{esc(view.since)}"></label> '
        f'<label>To <input name="until" type="date" value="{esc(view.until)}"></label> '
        '<button type="submit">Filter</button></form>'
    )
    report = ""
    if view.model and view.since and view.until:
        query = f"model={quote(view.model)}&from={quote(view.since)}&to={quote(view.until)}"
        report = (
            "<p>Governance report for this range: "
            + ", ".join(
                f'<a href="{esc(f"/ui/audit/report?{query}&format={fmt}")}">{fmt}</a>'
                for fmt in ("md", "json", "html")
            )
            + "</p>"
        )
    elif view.model:
        report = "<p class='empty'>Choose a date range for the governance report.</p>"
    rows = "".join(
        f"<tr><td>{int(e['id'])}</td><td>{when(e.get('at'))}</td><td>{esc(e.get('actor'))}</td>"
        f"<td>{esc(e.get('action'))}</td><td>{esc(e.get('target'))}</td>"
        f"<td>{esc(e.get('reason'))}</td></tr>"
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
        f'<tr class="{esc(a.get("outcome"))}"><td>{when(a.get("at"))}</td>'
        f"<td>{esc(a.get('cause'))}</td><td>{esc(a.get('model'))}</td>"
        f"<td>{esc(a.get('outcome'))}</td><td>{esc(a.get('from_version'))} → "
        f"{esc(a.get('to_version') or '—')}</td><td>{esc(a.get('reason'))}</td></tr>"
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
            f"<tr><td>{esc(g.get('model'))}</td><td>"
            + "<br>".join(
                f"{esc(name)}: {esc(t.get('status'))}, value {num(t.get('value'))}, "
                f"{esc(t.get('streak'))} in a row"
                for name, t in (g.get("triggers") or {}).items()
            )
            + f"</td><td>{esc((g.get('last_action') or {}).get('outcome'))}"
            + (" (cooldown)" if (g.get("last_action") or {}).get("in_cooldown") else "")
            + "</td></tr>"
            for g in guard
        )
        guarded = (
            "<table><thead><tr><th>Model</th><th>Triggers</th><th>Last action</th></tr></thead>"
            f"<tbody>{guarded}</tbody></table>"
        )
    delivered = "".join(
        f'<tr class="{"acted" if a.get("acted") else "ignored"}"><td>{when(a.get("at"))}</td>'
        f"<td>{esc(a.get('alert'))}</td><td>{esc(a.get('rule'))}</td><td>{esc(a.get('model'))}</td>"
        f"<td>{esc(a.get('action'))}</td><td>{'yes' if a.get('acted') else 'no'}</td>"
        f"<td>{esc(a.get('result'))}</td></tr>"
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
