"""Governance: approvals, audit verification and reports, lineage, docs, environments,
experiments and deprecation. Registry-level cases run on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from registry import (
    ApprovalRequired,
    Conflict,
    DeprecatedModelWarning,
    IllegalTransition,
    InvalidInput,
    ModelEndOfLife,
    ModelGovernance,
    ModelRegistry,
    NotFound,
    track_experiment,
)
from registry.docs import sync_docs
from registry.experiments import list_experiments
from registry.schema import audit_t
from tests.clock import Clock

LEADS = ["ml-lead@company.com", "data-eng@company.com"]
SEED_META = {
    "accuracy": 0.87,
    "training_data_version": "v2024-01",
    "feature_engineering_version": "v1",
    "experiment": "exp-003-xgboost",
}


def staged(reg: ModelRegistry, name: str = "fraud", **kwargs: object) -> str:
    mv = reg.register_model(name, None, stage="staging", **kwargs)  # type: ignore[arg-type]
    return str(mv.version)


class TestApprovals:
    def test_promotion_waits_for_enough_distinct_listed_approvers(self, reg: ModelRegistry) -> None:
        """The error names who is still needed; enough approvals unlock promotion."""
        reg.set_approval_required("production", LEADS, min_approvals=2)
        version = staged(reg)
        with pytest.raises(ApprovalRequired) as err:
            reg.promote_model("fraud", version, to_stage="production")
        assert err.value.missing == LEADS
        assert "needs 2 more approvals" in str(err.value)
        reg.approve_model("fraud", version, LEADS[0], "Tested in staging")
        with pytest.raises(
            ApprovalRequired, match=r"1 more approval to enter production from: data"
        ):
            reg.promote_model("fraud", version, to_stage="production")
        reg.approve_model("fraud", version, LEADS[1])
        assert reg.promote_model("fraud", version, to_stage="production").stage == "production"

    def test_four_eyes_and_unknown_approvers(self, reg: ModelRegistry) -> None:
        """The registrant cannot approve; an approver outside the list is refused."""
        reg.set_approval_required("production", [*LEADS, "alice"])
        version = staged(reg)
        with pytest.raises(InvalidInput, match="owns or registered"):
            reg.approve_model("fraud", version, "alice")
        with pytest.raises(InvalidInput, match="not an approver"):
            reg.approve_model("fraud", version, "mallory@evil.com")
        assert reg.approvals("fraud", version) == []

    def test_rejection_blocks_and_twice_is_a_conflict(self, reg: ModelRegistry) -> None:
        """A standing rejection refuses promotion with the rejecter's comment."""
        reg.set_approval_required("production", LEADS)
        version = staged(reg)
        reg.reject_model("fraud", version, LEADS[0], "recall too low")
        reg.approve_model("fraud", version, LEADS[1])
        with pytest.raises(IllegalTransition, match=r"rejected for production by .*recall too low"):
            reg.promote_model("fraud", version, to_stage="production")
        with pytest.raises(Conflict):
            reg.approve_model("fraud", version, LEADS[0])

    def test_archived_versions_cannot_be_approved(self, reg: ModelRegistry) -> None:
        """Approving an archived version is refused and records nothing."""
        reg.set_approval_required("production", LEADS)
        reg.register_model("fraud", None)
        reg.promote_model("fraud", "v1", to_stage="archived")
        with pytest.raises(IllegalTransition, match="archived"):
            reg.approve_model("fraud", "v1", LEADS[0])

    def test_model_policy_overrides_global_and_rollback_skips_approval(
        self, reg: ModelRegistry
    ) -> None:
        """A model's own policy wins over the registry's; rollback needs no approval."""
        reg.set_approval_required("production", LEADS, min_approvals=2)
        v1 = staged(reg)
        reg.set_approval_required("production", ["bob"], model="fraud")
        reg.approve_model("fraud", v1, "bob")
        reg.promote_model("fraud", v1, to_stage="production")
        v2 = staged(reg)
        reg.approve_model("fraud", v2, "bob")
        reg.promote_model("fraud", v2, to_stage="production")
        assert str(reg.rollback("fraud", reason="bad").version) == v1

    def test_single_call_approval_required(self, reg: ModelRegistry) -> None:
        """promote_model(..., approval_required=True) wants one approval by someone else."""
        reg.register_model("fraud", None)
        with pytest.raises(ApprovalRequired, match="someone other than its author"):
            reg.promote_model("fraud", "v1", to_stage="staging", approval_required=True)
        reg.approve_model("fraud", "v1", "reviewer", stage="staging")
        mv = reg.promote_model("fraud", "v1", to_stage="staging", approval_required=True)
        assert mv.stage == "staging"

    def test_policies_and_decisions_are_audited(self, reg: ModelRegistry) -> None:
        """Policy, approval and rejection each leave an audit event."""
        reg.set_approval_required("production", LEADS)
        version = staged(reg)
        reg.approve_model("fraud", version, LEADS[0], "ok")
        reg.reject_model("fraud", version, LEADS[1], "no")
        actions = [e.action for e in reg.audit_log()]
        assert {"set_approval_policy", "approve", "reject"} <= set(actions)
        assert reg.audit_log("fraud")[-1].reason == "no"

    @pytest.mark.parametrize(
        ("approvers", "minimum", "message"),
        [([], 1, "non-empty"), (LEADS, 3, "between 1 and"), (["a", "a"], 1, "duplicates")],
    )
    def test_bad_policies(
        self, reg: ModelRegistry, approvers: list[str], minimum: int, message: str
    ) -> None:
        """Invalid policies are refused with the reason."""
        with pytest.raises(InvalidInput, match=message):
            reg.set_approval_required("production", approvers, min_approvals=minimum)


class TestAuditTrail:
    def test_log_filters_by_model_and_time(self, reg: ModelRegistry, clock: Clock) -> None:
        """audit_log narrows by model name (not prefix) and by time range."""
        reg.register_model("fraud", None)
        clock.advance(timedelta(days=2))
        reg.register_model("fraud-eu", None)
        assert {e.model for e in reg.audit_log("fraud")} == {"fraud"}
        assert {e.target for e in reg.audit_log("fraud-eu")} == {"fraud-eu", "fraud-eu-v1.0.0"}
        later = reg.audit_log(since=clock().date().isoformat())
        assert [e.target for e in later] == ["fraud-eu", "fraud-eu-v1.0.0"]
        with pytest.raises(InvalidInput, match="before since"):
            reg.audit_log(since="2024-02-01", until="2024-01-01")


def _tamper(db: Path, sql: str) -> None:
    conn = sqlite3.connect(db)
    conn.executescript(sql)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("sql", "event", "problem"),
    [
        ("UPDATE audit_event SET actor = 'mallory' WHERE id = 3", 3, "modified"),
        ("DELETE FROM audit_event WHERE id = 4", 4, "missing"),
        (
            "UPDATE audit_event SET id = -1 WHERE id = 2;"
            "UPDATE audit_event SET id = 2 WHERE id = 3;"
            "UPDATE audit_event SET id = 3 WHERE id = -1;",
            2,
            "does not follow",
        ),
        ("DELETE FROM audit_event WHERE id = (SELECT max(id) FROM audit_event)", 5, "head"),
    ],
    ids=["edit", "delete", "reorder", "truncate"],
)
def test_audit_verify_detects_tampering(tmp_path: Path, sql: str, event: int, problem: str) -> None:
    """Edits, deletions, reorderings and truncation are each caught, the event named."""
    from tests.registry.test_cli import cli

    home = tmp_path / "home"
    with ModelRegistry(home=home, actor="alice") as reg:
        for _ in range(2):
            reg.register_model("m", None)
        reg.promote_model("m", "v1.0.0", to_stage="staging")
        reg.promote_model("m", "v1.0.1", to_stage="staging")
        assert reg.verify_audit_chain() is None
    assert cli(tmp_path, "audit", "verify").returncode == 0
    _tamper(home / "registry.db", sql)
    with ModelRegistry(home=home) as reg:
        broken = reg.verify_audit_chain()
    assert broken is not None
    assert broken.event_id == event
    assert problem in broken.problem
    r = cli(tmp_path, "audit", "verify")
    assert r.returncode == 1
    assert f"broken at event {event}" in r.stderr


class TestReport:
    def test_report_covers_deployments_approvals_and_compliance(
        self, reg: ModelRegistry, clock: Clock
    ) -> None:
        """Who promoted, who approved, data sources and checkpoints, in three formats."""
        reg.set_approval_required("production", LEADS)
        sig = {"inputs": {"amount": "float"}, "outputs": {"p": "float"}}
        reg.register_model("fraud", {"w": 1}, stage="staging", metadata=SEED_META, signature=sig)
        clock.advance(timedelta(days=1))
        reg.approve_model("fraud", "v1", LEADS[0], "looks good")
        reg.promote_model("fraud", "v1", to_stage="production", actor="deployer")
        report = ModelGovernance(reg).generate_audit_report("fraud", "2024-01-01", "2024-01-31")
        assert report.compliant
        (dep,) = report.deployments
        assert (dep.version, dep.promoted_by, dep.approved_by) == ("v1.0.0", "deployer", [LEADS[0]])
        assert dep.data_sources == ["data:v2024-01", "feature-engineering:v1"]
        assert dep.metrics == {"accuracy": 0.87}
        checks = {c.name: c.passed for c in dep.checkpoints}
        assert checks == {
            "signature present": True,
            "approvals satisfied": True,
            "requirements captured": True,
            "artifact verifies": True,
        }
        data = json.loads(report.to_json())
        assert data["audit_chain"]["passed"] is True
        md = report.to_markdown()
        assert "| v1.0.0 |" in md
        assert "looks good" not in md  # comments stay in the approvals view
        page = report.to_html()
        assert page.startswith("<!DOCTYPE html>")
        assert "http" not in page.lower().replace("<!doctype html>", "")
        assert "<script" not in page

    def test_report_flags_failures(self, reg: ModelRegistry) -> None:
        """A missing signature and a corrupted artifact fail their checkpoints."""
        mv = reg.register_model("fraud", {"w": 1}, stage="staging")
        reg.promote_model("fraud", "v1", to_stage="production")
        assert mv.artifact_digest is not None
        path = reg.artifacts.path_for(mv.artifact_digest)
        path.chmod(0o644)
        path.write_bytes(b"tampered")
        report = ModelGovernance(reg).generate_audit_report("fraud", "2024-01-01", "2024-12-31")
        checks = {c.name: c.passed for c in report.deployments[0].checkpoints}
        assert checks["signature present"] is False
        assert checks["artifact verifies"] is False
        assert checks["approvals satisfied"] is None
        assert not report.compliant

    def test_end_before_start_is_refused(self, reg: ModelRegistry) -> None:
        """A reversed range is an error, not an empty report."""
        reg.register_model("fraud", None)
        with pytest.raises(InvalidInput, match="before start date"):
            ModelGovernance(reg).generate_audit_report("fraud", "2024-02-01", "2024-01-01")


class TestLineage:
    def test_seed_tree(self, reg: ModelRegistry) -> None:
        """Registration plus promotion yields exactly the seed's lineage tree."""
        reg.register_model("fraud-detection", None, version="v3.1.0", stage="staging",
                           metadata=SEED_META)  # fmt: skip
        reg.promote_model("fraud-detection", "v3.1.0", to_stage="production")
        graph = reg.get_lineage("fraud-detection", "v3.1.0")
        assert graph.tree() == (
            "data:v2024-01\n"
            "└─> feature-engineering:v1\n"
            "    └─> experiment:exp-003-xgboost\n"
            "        └─> model:fraud-detection-v3.1.0\n"
            "            └─> deployment:production"
        )
        assert "n0 -->|" in graph.to_mermaid()
        assert '"data:v2024-01" -> "feature-engineering:v1"' in graph.to_dot()
        assert {e["relation"] for e in graph.to_dict()["edges"]} == {
            "feeds",
            "produced",
            "deployed",
        }

    def test_impact_queries(self, reg: ModelRegistry) -> None:
        """Which versions used a data version, a feature set or a feature; what is deployed."""
        reg.register_model("a", None, metadata=SEED_META, features=["merchant_risk_score", "x"])
        reg.register_model("b", None, stage="staging",
                           metadata={**SEED_META, "feature_engineering_version": "v2",
                                     "experiment": "exp-004"},
                           features=["x"])  # fmt: skip
        reg.register_model("c", None, metadata={"training_data_version": "v2023-12"})
        reg.promote_model("b", "v1", to_stage="production")
        assert [m.ref for m in reg.models_using_data("v2024-01")] == ["a-v1.0.0", "b-v1.0.0"]
        assert [m.ref for m in reg.models_using_feature_set("v1")] == ["a-v1.0.0"]
        assert [m.ref for m in reg.models_using_feature("merchant_risk_score")] == ["a-v1.0.0"]
        deployed = reg.deployed_downstream_of("data:v2024-01")
        assert [n.label for n in deployed] == ["deployment:production"]
        assert deployed[0].attrs["model"] == "b"

    def test_parent_edges_and_explicit_nodes(self, reg: ModelRegistry) -> None:
        """parent_model links versions; declared nodes and edges extend the graph."""
        reg.register_model("m", None, metadata={"training_data_version": "v1"})
        reg.register_model("m", None, metadata={"parent_model": "m-v1.0.0"})
        reg.add_lineage_node("data:raw-events")
        reg.add_lineage_edge("data:raw-events", "data:v1", "cleaned_into")
        tree = reg.get_lineage("m", "v1.0.1").tree()
        assert tree.splitlines()[0] == "data:raw-events"
        assert "model:m-v1.0.1" in tree

    def test_missing_nodes_and_cycles_are_refused(self, reg: ModelRegistry) -> None:
        """An edge to an undeclared node or one that closes a cycle changes nothing."""
        reg.register_model("m", None, metadata=SEED_META)
        with pytest.raises(NotFound, match="no lineage node 'data:nope'"):
            reg.add_lineage_edge("data:nope", "model:m-v1.0.0")
        with pytest.raises(InvalidInput, match="would create a cycle"):
            reg.add_lineage_edge("model:m-v1.0.0", "data:v2024-01")
        with pytest.raises(InvalidInput, match="own source"):
            reg.add_lineage_edge("data:v2024-01", "data:v2024-01")
        with pytest.raises(InvalidInput, match="invalid lineage reference"):
            reg.add_lineage_node("bogus:x")
        assert len(reg.get_lineage("m", "v1").edges) == 3


class TestDocs:
    def test_living_docs_match_the_seed_and_rerun_is_byte_identical(
        self, tmp_path: Path, clock: Clock
    ) -> None:
        """The seed's markdown and catalog; a second sync writes nothing."""
        with ModelRegistry(home=tmp_path / "h", actor="alice", clock=clock) as reg:
            name = "fraud-detection-model"
            for version, acc, day in (("v2.5.0", 0.83, 1), ("v3.0.0", 0.85, 10),
                                      ("v3.1.0", 0.87, 20)):  # fmt: skip
                reg.register_model(name, {"v": version}, version=version, stage="staging",
                                   metadata={"accuracy": acc,
                                             "inference_latency_p50": "35ms"})  # fmt: skip
                clock.set(clock().replace(day=day))
                reg.promote_model(name, version, to_stage="production")
            out = tmp_path / "docs"
            first = sync_docs(reg, out)
            doc = (out / f"{name}.md").read_text()
            assert "## Fraud Detection Model - Production" in doc
            assert "- Version: v3.1.0\n- Deployed: 2024-01-20\n- Accuracy: 87%\n" in doc
            assert "- Latency: 35ms (p50)" in doc
            assert "| v3.1.0 | Prod | 0.87 | 2024-01-20 | Current ✅ |" in doc
            assert "| v3.0.0 | Archived | 0.85 | 2024-01-10 | Replaced by v3.1.0 |" in doc
            assert "1. Rollback to v3.0.0 (tested, stable)" in doc
            assert "3. Deploy fix as v3.1.1" in doc
            folder = out / "models" / f"{name}-v3.1.0"
            assert {p.name for p in folder.iterdir()} == {
                "model.pkl", "metadata.json", "requirements.txt"}  # fmt: skip
            for f in ("model_catalog.yaml", "lineage_graph.json", "deployment_history.md"):
                assert (out / "registry" / f).is_file()
            snapshot = {
                p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()
            }
            second = sync_docs(reg, out)
            assert second.written == []
            assert len(second.unchanged) == len(first.written)
            assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*")
                    if p.is_file()} == snapshot  # fmt: skip

    def test_the_rollback_plan_after_two_rollbacks_says_what_happened(
        self, tmp_path: Path, clock: Clock
    ) -> None:
        """Back at the oldest version after two rollbacks, the plan does not call it the
        first production version: it names the ones rolled back."""
        with ModelRegistry(home=tmp_path / "h", actor="alice", clock=clock) as reg:
            for version in ("v2.5.0", "v3.0.0", "v3.1.0"):
                reg.register_model("fraud", {"v": version}, version=version, stage="staging")
                reg.promote_model("fraud", version, to_stage="production")
            assert str(reg.rollback("fraud", reason="drift").version) == "v3.0.0"
            assert str(reg.rollback("fraud", reason="drift again").version) == "v2.5.0"
            sync_docs(reg, tmp_path / "docs")
            doc = (tmp_path / "docs" / "fraud.md").read_text()
            assert "first production version" not in doc
            assert (
                "No stable version to return to: v3.0.0, v3.1.0 were rolled back from production."
                in doc
            )
            fresh = "solo"
            reg.register_model(fresh, {"v": 1}, version="v1.0.0", stage="staging")
            reg.promote_model(fresh, "v1.0.0", to_stage="production")
            sync_docs(reg, tmp_path / "docs")
            assert (
                "v1.0.0 is the first production version"
                in (tmp_path / "docs" / "solo.md").read_text()
            )


class TestEnvironments:
    def test_promote_to_copies_artifact_and_records_both_sides(self, tmp_path: Path) -> None:
        """The copy keeps its number, artifact digest and files; lineage and audit in both."""
        with ModelRegistry(home=tmp_path, environment="dev", actor="alice") as dev:
            mv = dev.register_model("fraud", {"w": [1, 2]}, metadata={"accuracy": 0.9},
                                    features=["a"], requirements="numpy==2.0\n")  # fmt: skip
            copied = dev.promote_to("fraud-v1.0.0", "staging")
            assert dev.promote_to("fraud-v1.0.0", "staging").version == copied.version
            assert "promoted_to" in [e.action for e in dev.audit_log("fraud")]
            edges = dev.get_lineage("fraud", "v1").to_dict()["edges"]
        assert (tmp_path / "environments" / "dev" / "registry.db").is_file()
        assert (tmp_path / "environments" / "staging" / "registry.db").is_file()
        with ModelRegistry(home=tmp_path, environment="staging") as staging:
            got = staging.get_model_version("fraud", "v1.0.0")
            assert got.artifact_digest == mv.artifact_digest
            assert got.stage == "staging"
            assert staging.get_model("fraud", version="v1") == {"w": [1, 2]}
            assert staging.get_file("fraud", "v1", "requirements.txt") == b"numpy==2.0\n"
            assert "imported_from" in [e.action for e in staging.audit_log("fraud")]
        assert {"from": "model:fraud-v1.0.0", "to": "model:fraud-v1.0.0@staging",
                "relation": "promoted_to"} in edges  # fmt: skip

    def test_promote_to_same_environment_is_refused(self, tmp_path: Path) -> None:
        """Copying into the registry's own environment is an error."""
        with ModelRegistry(home=tmp_path, environment="dev") as dev:
            dev.register_model("fraud", None)
            with pytest.raises(InvalidInput, match="already in environment"):
                dev.promote_to("fraud-v1.0.0", "dev")


class TestExperiments:
    def test_tracking_registers_with_lineage_and_increment(self, reg: ModelRegistry) -> None:
        """Params, metrics and duration are kept; the model links back to the run."""
        with track_experiment("xgboost-v1", increment="0042", registry=reg) as exp:
            exp.log_params({"n_estimators": 673, "max_depth": 6})
            exp.log_metric("accuracy", 0.87)
            mv = exp.register_model(model={"w": 1}, name="fraud", auto_version=True,
                                    features=["a"])  # fmt: skip
        with track_experiment("xgboost-v2", increment="0043", registry=reg) as exp2:
            mv2 = exp2.register_model(model={"w": 2}, name="fraud", features=["a", "b"])
        assert (str(mv.version), str(mv2.version)) == ("v1.0.0", "v1.1.0")
        assert mv.metadata["hyperparameters"] == {"n_estimators": 673, "max_depth": 6}
        assert mv.increment == "0042"
        (run,) = list_experiments(reg, increment="0042")
        assert run.status == "completed"
        assert run.metrics == {"accuracy": 0.87}
        assert run.duration_s is not None
        assert [v.ref for v in reg.list_versions(increment="0043")] == ["fraud-v1.1.0"]
        assert "experiment:xgboost-v1" in reg.get_lineage("fraud", "v1").tree()

    def test_failed_run_is_recorded_as_failed(self, reg: ModelRegistry) -> None:
        """An exception inside the block marks the experiment failed and propagates."""
        with pytest.raises(RuntimeError), track_experiment("boom", registry=reg):
            raise RuntimeError("training diverged")
        assert list_experiments(reg, name="boom")[0].status == "failed"
        with pytest.raises(InvalidInput, match="finite"), track_experiment("x", registry=reg) as e:
            e.log_metric("loss", float("nan"))


class TestDeprecation:
    def test_warning_then_end_of_life(self, reg: ModelRegistry, clock: Clock) -> None:
        """A deprecated version warns on load; after end of life it needs force."""
        reg.register_model("fraud", {"w": 1})
        reg.deprecate_model("fraud", "v1", "Superseded by v3.x series", "2024-06-01")
        with pytest.warns(DeprecatedModelWarning, match="Superseded"):
            assert reg.get_model("fraud", version="v1") == {"w": 1}
        clock.set(clock().replace(year=2024, month=7))
        with pytest.raises(ModelEndOfLife, match="end of life"):
            reg.get_model("fraud", version="v1")
        with pytest.warns(DeprecatedModelWarning):
            assert reg.get_model("fraud", version="v1", force=True) == {"w": 1}


def test_governance_cli(tmp_path: Path) -> None:
    """approve/reject/approvals, audit log/report, lineage formats, impact, docs sync."""
    from tests.registry.test_cli import cli

    with ModelRegistry(home=tmp_path / "home", actor="alice") as reg:
        reg.set_approval_required("production", LEADS)
        reg.register_model("fraud", {"w": 1}, stage="staging", metadata=SEED_META)
    r = cli(tmp_path, "--actor", LEADS[0], "approve", "fraud", "v1", "--comments", "ok")
    assert r.returncode == 0, r.stderr
    r = cli(tmp_path, "--actor", "mallory", "approve", "fraud", "v1")
    assert r.returncode == 1
    assert "not an approver" in r.stderr
    decisions = json.loads(cli(tmp_path, "approvals", "fraud", "v1", "--json").stdout)
    assert decisions["decisions"][0]["approver"] == LEADS[0]
    assert decisions["policy"]["approvers"] == LEADS
    assert cli(tmp_path, "promote", "fraud", "v1", "--to", "production").returncode == 0
    log = json.loads(cli(tmp_path, "audit", "log", "--model", "fraud", "--json").stdout)
    assert [e["action"] for e in log][-2:] == ["approve", "promote"]
    for fmt, marker in (("md", "# Audit report: fraud"), ("json", '"compliant"'),
                        ("html", "<!DOCTYPE html>")):  # fmt: skip
        r = cli(tmp_path, "audit", "report", "fraud", "--from", "2020-01-01", "--to", "2099-01-01",
                "--format", fmt)  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert marker in r.stdout
    r = cli(tmp_path, "audit", "report", "fraud", "--from", "2024-02-01", "--to", "2024-01-01")
    assert r.returncode == 1
    assert "before start date" in r.stderr
    assert cli(tmp_path, "lineage", "fraud", "v1").stdout.startswith("data:v2024-01\n└─> ")
    assert cli(tmp_path, "lineage", "fraud", "v1", "--format", "dot").stdout.startswith("digraph")
    assert "graph TD" in cli(tmp_path, "lineage", "fraud", "v1", "--format", "mermaid").stdout
    assert json.loads(cli(tmp_path, "lineage", "fraud", "v1", "--format", "json").stdout)["nodes"]
    assert cli(tmp_path, "impact", "--data", "v2024-01").stdout.strip() == "fraud-v1.0.0"
    out = tmp_path / "docs"
    assert (
        f"files written to {out}/, 0 unchanged"
        in cli(tmp_path, "docs", "sync", "--out", str(out)).stdout
    )
    assert " 0 files written" in " " + cli(tmp_path, "docs", "sync", "--out", str(out)).stdout
    assert (out / "fraud.md").is_file()


def test_governance_mutations_are_audited(reg: ModelRegistry) -> None:
    """Every governance mutation increases the audit chain and keeps it verifiable."""
    before = len(reg.audit_log())
    reg.set_approval_required("staging", LEADS)
    reg.add_lineage_node("data:v9")
    with reg.store.read() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(audit_t)).scalar_one()
    assert count == before + 2
    assert reg.verify_audit_chain() is None
