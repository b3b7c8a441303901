"""``modelreg rollout reject`` run in-process against the database (``--direct``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from controller.cli import app
from controller.core.phases import Phase

from .approval_support import Loop, guard, make_loop


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    yield from make_loop(tmp_path)


def _config_file(loop: Loop) -> Path:
    assert loop.config is not None
    file = loop.tmp / "daemon.yaml"
    file.write_text(yaml.safe_dump(loop.config.model_dump(mode="json", exclude={"source_file"})))
    return file


class TestRejectCommand:
    def test_reject_needs_a_reason_then_rolls_back(self, loop: Loop) -> None:
        """Without --reason: exit 2 and nothing recorded; with it: rolled back, the
        rejection in the registry under --actor."""
        guard(loop)
        rid = loop.to_approval()
        base = ["--config", str(_config_file(loop)), "--direct"]
        runner = CliRunner()
        bare = runner.invoke(app, ["rollout", "reject", str(rid), *base, "--actor", "alice"])
        assert bare.exit_code == 2
        assert "rollout reject needs --reason" in bare.stderr
        assert loop.registry.approvals("fraud", "v1.1.0") == []
        done = runner.invoke(
            app, ["rollout", "reject", str(rid), *base, "--actor", "alice", "--reason", "bias"]
        )
        assert done.exit_code == 0, done.output
        assert f"rollout {rid}: rolled_back" in done.stdout
        assert loop.store.get(rid).phase is Phase.ROLLED_BACK
        assert loop.route() == {"v1.0.0": 100}
        (rejection,) = loop.registry.approvals("fraud", "v1.1.0")
        assert (rejection.approver, rejection.comments) == ("alice", "bias")

    def test_registrant_cannot_reject(self, loop: Loop) -> None:
        """The registrant's rejection fails with the registry's one-line reason."""
        guard(loop)
        rid = loop.to_approval()
        base = ["--config", str(_config_file(loop)), "--direct"]
        result = CliRunner().invoke(
            app, ["rollout", "reject", str(rid), *base, "--actor", "tester", "--reason", "x"]
        )
        assert result.exit_code == 1
        assert "tester owns or registered fraud-v1.1.0 and cannot reject it" in result.stderr
        assert loop.store.get(rid).phase is Phase.AWAITING_APPROVAL
