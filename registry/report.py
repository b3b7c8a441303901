"""Governance reports: who deployed what, when, why, approved by whom, trained on what.

``ModelGovernance(registry).generate_audit_report(model, start, end)`` gathers the
facts; ``AuditReport`` renders them as a dict/JSON, Markdown, or one self-contained
HTML page a compliance reviewer can open offline.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from registry.errors import InvalidInput, NotFound, RegistryError
from registry.instants import parse_instant

if TYPE_CHECKING:
    from registry.api import ModelRegistry

_METRIC_KEYS = ("accuracy", "precision", "recall", "roc_auc", "f1_score", "auc")


@dataclass(frozen=True)
class Checkpoint:
    name: str
    passed: bool | None  # None: not applicable
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class Deployment:
    version: str
    at: datetime
    kind: str
    promoted_by: str
    reason: str | None
    approved_by: list[str]
    metrics: dict[str, Any]
    data_sources: list[str]
    checkpoints: list[Checkpoint]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "promoted_by": self.promoted_by,
            "reason": self.reason,
            "approved_by": self.approved_by,
            "metrics": self.metrics,
            "data_sources": self.data_sources,
            "compliance": [c.to_dict() for c in self.checkpoints],
        }


@dataclass(frozen=True)
class AuditReport:
    model: str
    start: datetime
    end: datetime
    deployments: list[Deployment] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    chain: Checkpoint = field(default_factory=lambda: Checkpoint("audit chain", None, ""))
    audit_events: int = 0

    @property
    def compliant(self) -> bool:
        checks = [c for d in self.deployments for c in d.checkpoints] + [self.chain]
        return all(c.passed is not False for c in checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "compliant": self.compliant,
            "audit_chain": self.chain.to_dict(),
            "audit_events_in_range": self.audit_events,
            "deployments": [d.to_dict() for d in self.deployments],
            "stage_history": self.history,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n"

    def to_markdown(self) -> str:
        lines = [
            f"# Audit report: {self.model}",
            "",
            f"Period: {self.start.date()} to {self.end.date()}  ",
            f"Overall: {'compliant' if self.compliant else 'NOT compliant'}  ",
            f"Audit chain: {_mark(self.chain.passed)} {self.chain.detail}  ",
            f"Audit events in period: {self.audit_events}",
            "",
            "## Deployments",
            "",
            "| Version | Deployed | Kind | Promoted by | Approved by | Reason |",
            "|---|---|---|---|---|---|",
        ]
        for d in self.deployments:
            lines.append(
                f"| {d.version} | {d.at:%Y-%m-%d %H:%M} | {d.kind} | {d.promoted_by} | "
                f"{', '.join(d.approved_by) or '-'} | {d.reason or ''} |"
            )
        lines += ["", "## Metrics over time", ""]
        keys = sorted({k for d in self.deployments for k in d.metrics})
        if keys:
            lines.append("| Version | Deployed | " + " | ".join(keys) + " |")
            lines.append("|---|---|" + "---|" * len(keys))
            for d in self.deployments:
                row = " | ".join(str(d.metrics.get(k, "-")) for k in keys)
                lines.append(f"| {d.version} | {d.at:%Y-%m-%d} | {row} |")
        else:
            lines.append("No metrics recorded.")
        lines += ["", "## Data sources", ""]
        for d in self.deployments:
            lines.append(f"- {d.version}: {', '.join(d.data_sources) or 'none recorded'}")
        lines += ["", "## Compliance checkpoints", ""]
        for d in self.deployments:
            lines.append(f"### {d.version}")
            lines += [f"- {_mark(c.passed)} {c.name}: {c.detail}" for c in d.checkpoints]
            lines.append("")
        lines += ["## Stage history", "", "| When | Version | From | To | Who | Reason |"]
        lines.append("|---|---|---|---|---|---|")
        for t in self.history:
            lines.append(
                f"| {t['at'][:19]} | {t['version']} | {t['from_stage'] or '-'} | "
                f"{t['to_stage']} | {t['actor']} | {t['reason'] or ''} |"
            )
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """One page, no external resources: styles inline, everything escaped."""
        e = html.escape
        status = "compliant" if self.compliant else "NOT compliant"
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>Audit report: {e(self.model)}</title>",
            "<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
            "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;"
            "padding:.3rem .6rem;text-align:left}th{background:#f3f3f3}"
            ".pass{color:#137333}.fail{color:#b3261e;font-weight:bold}.na{color:#777}</style>",
            "</head><body>",
            f"<h1>Audit report: {e(self.model)}</h1>",
            f"<p>Period {e(str(self.start.date()))} to {e(str(self.end.date()))}. "
            f'Overall: <span class="{"pass" if self.compliant else "fail"}">{status}</span>. '
            f"Audit chain: {_html_mark(self.chain.passed)} {e(self.chain.detail)}. "
            f"Audit events in period: {self.audit_events}.</p>",
            "<h2>Deployments</h2><table><tr><th>Version</th><th>Deployed</th><th>Kind</th>"
            "<th>Promoted by</th><th>Approved by</th><th>Reason</th><th>Data sources</th></tr>",
        ]
        for d in self.deployments:
            parts.append(
                f"<tr><td>{e(d.version)}</td><td>{d.at:%Y-%m-%d %H:%M}</td><td>{e(d.kind)}</td>"
                f"<td>{e(d.promoted_by)}</td><td>{e(', '.join(d.approved_by) or '-')}</td>"
                f"<td>{e(d.reason or '')}</td><td>{e(', '.join(d.data_sources) or '-')}</td></tr>"
            )
        parts.append("</table><h2>Compliance checkpoints</h2>")
        for d in self.deployments:
            parts.append(f"<h3>{e(d.version)}</h3><ul>")
            parts += [
                f"<li>{_html_mark(c.passed)} {e(c.name)}: {e(c.detail)}</li>" for c in d.checkpoints
            ]
            parts.append("</ul>")
        keys = sorted({k for d in self.deployments for k in d.metrics})
        parts.append("<h2>Metrics over time</h2><table><tr><th>Version</th><th>Deployed</th>")
        parts += [f"<th>{e(k)}</th>" for k in keys]
        parts.append("</tr>")
        for d in self.deployments:
            cells = "".join(f"<td>{e(str(d.metrics.get(k, '-')))}</td>" for k in keys)
            parts.append(f"<tr><td>{e(d.version)}</td><td>{d.at:%Y-%m-%d}</td>{cells}</tr>")
        parts.append("</table><h2>Stage history</h2><table><tr><th>When</th><th>Version</th>"
                     "<th>From</th><th>To</th><th>Who</th><th>Reason</th></tr>")  # fmt: skip
        for t in self.history:
            parts.append(
                f"<tr><td>{e(t['at'][:19])}</td><td>{e(t['version'])}</td>"
                f"<td>{e(t['from_stage'] or '-')}</td><td>{e(t['to_stage'])}</td>"
                f"<td>{e(t['actor'])}</td><td>{e(t['reason'] or '')}</td></tr>"
            )
        parts.append("</table></body></html>")
        return "\n".join(parts) + "\n"


def _mark(passed: bool | None) -> str:
    return {True: "✅", False: "❌", None: "n/a"}[passed]


def _html_mark(passed: bool | None) -> str:
    cls, text = {True: ("pass", "PASS"), False: ("fail", "FAIL"), None: ("na", "n/a")}[passed]
    return f'<span class="{cls}">{text}</span>'


class ModelGovernance:
    """Compliance views over a registry (the seed's ``ModelGovernance``)."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def generate_audit_report(
        self, model: str, start_date: str | datetime, end_date: str | datetime
    ) -> AuditReport:
        """Every deployment of ``model`` in the range with its approvals, metrics,
        data sources and compliance checkpoints, plus the audit chain's state."""
        reg = self.registry
        start = parse_instant(start_date, end_of_day=False)
        end = parse_instant(end_date)
        if end < start:
            raise InvalidInput(
                f"end date {end.date()} is before start date {start.date()}; nothing to report"
            )
        history = [t for t in reg.history(model) if start <= t.at <= end]
        broken = reg.verify_audit_chain()
        chain = Checkpoint(
            "audit chain verifies",
            broken is None,
            "intact" if broken is None else f"broken at event {broken.event_id}: {broken.problem}",
        )
        deployments = [
            self._deployment(model, t.version, t.at, t.kind, t.actor, t.reason)
            for t in history
            if t.to_stage == "production"
        ]
        events = len(reg.audit_log(model, since=start, until=end))
        return AuditReport(
            model=model,
            start=start,
            end=end,
            deployments=deployments,
            history=[t.to_dict() for t in history],
            chain=chain,
            audit_events=events,
        )

    def _deployment(
        self, model: str, version: Any, at: datetime, kind: str, actor: str, reason: str | None
    ) -> Deployment:
        reg = self.registry
        mv = reg.get_model_version(model, version)
        decisions = reg.approvals(model, version)
        # Judge a deployment by what stood when it happened, not by today's state.
        approved = sorted(
            {
                d.approver
                for d in decisions
                if d.decision == "approve" and d.stage == "production" and d.at <= at
            }
        )
        lineage = reg.get_lineage(model, version)
        sources = sorted(n.ref for n in lineage.nodes if n.kind in ("data", "feature_set"))
        metrics = {
            k: mv.metadata[k]
            for k in sorted(mv.metadata)
            if k in _METRIC_KEYS or k.startswith("inference_latency")
        }
        return Deployment(
            version=str(mv.version),
            at=at,
            kind=kind,
            promoted_by=actor,
            reason=reason,
            approved_by=approved,
            metrics=metrics,
            data_sources=sources,
            checkpoints=self._checkpoints(model, mv, approved, kind, at),
        )

    def _checkpoints(
        self, model: str, mv: Any, approved: list[str], kind: str, at: datetime
    ) -> list[Checkpoint]:
        reg = self.registry
        checks = [
            Checkpoint(
                "signature present",
                mv.signature is not None,
                "inputs: " + ", ".join(sorted(mv.signature["inputs"])) if mv.signature else "none",
            )
        ]
        policy = reg.approval_policy(model, "production", at=at)
        if kind == "rollback":
            checks.append(Checkpoint("approvals satisfied", None, "rollback needs no approval"))
        elif policy is None:
            checks.append(Checkpoint("approvals satisfied", None, "no approval policy"))
        else:
            valid = [a for a in approved if a in policy.approvers]
            checks.append(
                Checkpoint(
                    "approvals satisfied",
                    len(valid) >= policy.min_approvals,
                    f"{len(valid)} of {policy.min_approvals} required ({', '.join(valid) or '-'})",
                )
            )
        try:
            reqs = reg.get_file(model, mv.version, "requirements.txt").decode()
            pins = [line for line in reqs.splitlines() if line.strip()]
            checks.append(
                Checkpoint("requirements captured", bool(pins), f"{len(pins)} pinned packages")
            )
        except RegistryError as exc:
            checks.append(Checkpoint("requirements captured", False, str(exc)))
        if mv.artifact_digest is None:
            checks.append(Checkpoint("artifact verifies", None, "metadata-only version"))
        else:
            try:
                reg.artifacts.verify(mv.artifact_digest)
                checks.append(
                    Checkpoint("artifact verifies", True, f"sha256 {mv.artifact_digest[:12]}")
                )
            except (RegistryError, NotFound) as exc:
                checks.append(Checkpoint("artifact verifies", False, str(exc)))
        return checks
