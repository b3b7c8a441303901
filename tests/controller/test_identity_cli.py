"""Identities that mean something: without a tokens file the CLI acts as ``--actor``
(else ``$MODELREG_ACTOR``/the login name), never as an anonymous "operator", so the
registry's four-eyes rule holds; the API refuses an approval from nobody; approval
policies are set, shown and cleared from the command line, audited."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from controller.cli import app
from controller.http.app import ApiDeps, create_app
from registry import ModelRegistry

from .approval_support import Loop, guard, make_loop

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's TestClient warns about httpx on import
    from fastapi.testclient import TestClient


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    yield from make_loop(tmp_path)


def _base(loop: Loop) -> list[str]:
    assert loop.config is not None
    file = loop.tmp / "daemon.yaml"
    file.write_text(yaml.safe_dump(loop.config.model_dump(mode="json", exclude={"source_file"})))
    return ["--config", str(file), "--direct"]


class TestWhoApproves:
    def test_the_registrant_by_default_is_refused(
        self, loop: Loop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No --actor: the login identity ($MODELREG_ACTOR here) approves, and as the
        version's registrant it is refused: four eyes, not an anonymous operator."""
        guard(loop)
        rid = loop.to_approval()
        monkeypatch.setenv("MODELREG_ACTOR", "tester")
        result = CliRunner().invoke(app, ["rollout", "approve", str(rid), *_base(loop)])
        assert result.exit_code == 1
        assert "tester owns or registered fraud-v1.1.0 and cannot approve it" in result.stderr
        assert loop.registry.approvals("fraud", "v1.1.0") == []

    def test_the_global_actor_is_who_approves(
        self, loop: Loop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        guard(loop)
        rid = loop.to_approval()
        monkeypatch.setenv("MODELREG_ACTOR", "tester")
        done = CliRunner().invoke(
            app, ["--actor", "alice", "rollout", "approve", str(rid), *_base(loop), "--json"]
        )
        assert done.exit_code == 0, done.output
        (approval,) = loop.registry.approvals("fraud", "v1.1.0")
        assert approval.approver == "alice"

    def test_an_actor_the_registry_would_refuse_is_one_line(self, loop: Loop) -> None:
        guard(loop)
        rid = loop.to_approval()
        result = CliRunner().invoke(
            app, ["--actor", "bad\nname", "rollout", "approve", str(rid), *_base(loop)]
        )
        assert result.exit_code == 1
        assert result.stderr.startswith("error: ")
        assert len(result.stderr.strip().splitlines()) == 1
        assert loop.registry.approvals("fraud", "v1.1.0") == []

    def test_the_api_without_tokens_refuses_an_approval_from_nobody(self, loop: Loop) -> None:
        guard(loop)
        rid = loop.to_approval()
        api = create_app(ApiDeps(controller=loop.controller, metrics=CollectorRegistry()))
        with TestClient(api) as http:
            nobody = http.post(f"/v1/rollouts/{rid}/approve", json={"reason": "ok"})
            assert nobody.status_code == 403
            assert "an approval needs an identity" in nobody.json()["detail"]
            named = http.post(f"/v1/rollouts/{rid}/approve", json={"actor": "alice"})
            assert named.status_code == 200, named.text
        (approval,) = loop.registry.approvals("fraud", "v1.1.0")
        assert approval.approver == "alice"


class TestApprovalPolicyCommand:
    def test_set_show_clear_at_both_levels(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        artifact = tmp_path / "m.bin"
        artifact.write_bytes(b"w")
        with ModelRegistry(home=home, actor="ops") as registry:
            registry.register_model("fraud", str(artifact))
        runner = CliRunner()

        def run(*args: str) -> dict[str, object]:
            result = runner.invoke(app, ["--home", str(home), "approval-policy", *args, "--json"])
            assert result.exit_code == 0, result.output
            body: dict[str, object] = json.loads(result.stdout)
            return body

        assert run("show", "fraud")["policy"] is None
        run("set", "--approvers", "alice,bob", "--min", "1")
        shown = run("show", "fraud")["policy"]
        assert shown == {"stage": "production", "approvers": ["alice", "bob"],
                         "min_approvals": 1, "model": None}  # fmt: skip
        run("set", "fraud", "--approvers", "carol,dave,erin", "--min", "2")
        assert run("show", "fraud")["policy"] == {
            "stage": "production", "approvers": ["carol", "dave", "erin"],
            "min_approvals": 2, "model": "fraud",
        }  # fmt: skip
        text = runner.invoke(app, ["--home", str(home), "approval-policy", "show", "fraud"])
        assert "fraud production: 2 of carol, dave, erin (its own policy)" in text.stdout
        after = run("clear", "fraud")["policy"]  # the registry-wide one applies again
        assert after == shown
        assert run("clear")["policy"] is None
        assert run("show", "fraud")["policy"] is None
        with ModelRegistry(home=home) as registry:
            actions = [e.action for e in registry.audit_log()]
            assert actions.count("set_approval_policy") == 2
            assert actions.count("clear_approval_policy") == 2
            assert registry.verify_audit_chain() is None

    def test_bad_policies_are_one_line(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        runner = CliRunner()
        none = runner.invoke(app, ["--home", str(home), "approval-policy", "set"])
        assert none.exit_code == 2
        assert "--approvers needs at least one identity" in none.stderr
        too_many = runner.invoke(
            app, ["--home", str(home), "approval-policy", "set", "--approvers", "a", "--min", "2"]
        )
        assert too_many.exit_code == 1
        assert too_many.stderr.startswith("error: min_approvals must be between 1 and")
        assert not home.exists()  # refused before a registry was opened
        missing = runner.invoke(app, ["--home", str(home), "approval-policy", "show", "fraud"])
        assert missing.exit_code == 1
        assert "no registry database at" in missing.stderr
