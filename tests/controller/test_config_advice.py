"""controller.config_advice and `config check`: margins too wide for the metric."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml
from typer.testing import CliRunner

from controller.cli import app
from controller.config import parse_config
from controller.config_advice import Typical, direction_warnings, margin_warnings
from monitors import IngestStore
from registry import ModelRegistry

from .support import config as make_config
from .support import register, traffic


def _config(margin: float | str, threshold: float = 0.2) -> object:
    data = {
        "sources": {"events": {"kind": "ingest"}},
        "routers": {"r": {"kind": "http"}},
        "models": {"fraud": {
            "router": "r", "strategy": {"kind": "canary", "steps": [10, 50], "step_duration": 5},
            "analysis": {"metrics": [
                {"name": "acc", "source": "events", "query": "accuracy", "kind": "proportion",
                 "direction": "higher"},
                {"name": "err", "source": "events", "query": "error_rate", "kind": "proportion",
                 "role": "guardrail", "direction": "lower", "margin": margin},
            ]},
            "triggers": [{"name": "t", "metric": "err", "threshold": threshold}],
        }},
    }  # fmt: skip
    return parse_config(data, where="c.yaml")


class TestMarginWarnings:
    def test_margin_over_half_a_typical_value_warns(self) -> None:
        """0.01 on a typical 1% error rate tolerates a doubling: one line naming the key."""
        cfg = _config(0.01)
        (line,) = margin_warnings(cfg, {("fraud", "err"): Typical(0.01, "fraud v1 metadata")})  # type: ignore[arg-type]
        assert line.startswith("c.yaml: models.fraud.analysis.metrics[1].margin: 0.01 is 1x")
        assert "10%" in line

    def test_relative_and_small_margins_pass(self) -> None:
        """A relative margin follows the control; a small absolute one is fine."""
        typical = {("fraud", "err"): Typical(0.01, "data")}
        assert margin_warnings(_config("50%"), typical) == []  # type: ignore[arg-type]
        assert margin_warnings(_config(0.004), typical) == []  # type: ignore[arg-type]

    def test_trigger_threshold_bounds_the_typical_value(self) -> None:
        """Without data, a trigger at 5% means typical values are below it: 0.03 warns."""
        assert margin_warnings(_config(0.03, threshold=0.05))  # type: ignore[arg-type]
        assert not margin_warnings(_config(0.02, threshold=0.05))  # type: ignore[arg-type]

    def test_no_rate_margin_may_reach_a_half(self) -> None:
        """An absolute margin of 0.6 on a proportion is too large for any rate."""
        assert margin_warnings(_config(0.6, threshold=2.0))  # type: ignore[arg-type]


class TestConfigCheck:
    def test_warns_from_the_production_versions_recent_data(self, tmp_path: Path) -> None:
        """With an ingest database holding an hour of production traffic at ~1% errors, a
        0.02 absolute margin gets a warning naming the data; the check still passes."""
        now = datetime.now(UTC)
        registry = ModelRegistry(home=tmp_path / "home", actor="tester")
        register(registry, tmp_path, "fraud", "v1.0.0", "production")
        registry.close()
        ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
        traffic(ingest, "fraud", now, {"v1.0.0": (2000, 0.8, 0.01)})
        ingest.close()
        cfg = make_config(tmp_path, tmp_path / "routes.json", f"sqlite:///{tmp_path}/ingest.db")
        file = tmp_path / "daemon.yaml"
        file.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude={"source_file"})))
        result = CliRunner().invoke(app, ["config", "check", str(file)])
        assert result.exit_code == 0, result.output
        assert "ok" in result.stdout
        (warning,) = [line for line in result.stderr.splitlines() if line.startswith("warning")]
        assert "models.fraud.analysis.metrics[1].margin: 0.02" in warning
        assert "fraud v1.0.0, last hour of events" in warning

    def test_no_databases_no_state_created(self, tmp_path: Path) -> None:
        """Without a registry or ingest database nothing is created to look for data."""
        cfg = make_config(tmp_path, tmp_path / "routes.json", f"sqlite:///{tmp_path}/ingest.db")
        file = tmp_path / "daemon.yaml"
        file.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude={"source_file"})))
        result = CliRunner().invoke(app, ["config", "check", str(file)])
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.yaml"]


class TestReadOnly:
    def test_an_existing_database_is_not_migrated_or_written(self, tmp_path: Path) -> None:
        """config check reads an existing registry file without migrating it: an empty
        registry.db is named as no registry (exit 2), stays empty, and no artifact
        directory appears."""
        cfg = make_config(tmp_path, tmp_path / "routes.json", f"sqlite:///{tmp_path}/ingest.db")
        home = Path(cfg.registry.home)
        home.mkdir(parents=True)
        (home / "registry.db").write_bytes(b"")
        (tmp_path / "ingest.db").write_bytes(b"")
        file = tmp_path / "daemon.yaml"
        file.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude={"source_file"})))
        result = CliRunner().invoke(app, ["config", "check", str(file)])
        assert result.exit_code == 2, result.output
        assert "registry.db is an empty file, not a modelreg registry" in result.stderr
        assert (home / "registry.db").stat().st_size == 0
        assert (tmp_path / "ingest.db").stat().st_size == 0
        assert sorted(p.name for p in home.iterdir()) == ["registry.db"]

    def test_a_metric_without_direction_is_flagged(self) -> None:
        """A metric with no direction passes (another one can decide) but is named."""
        data = {
            "sources": {"events": {"kind": "ingest"}},
            "routers": {"r": {"kind": "http"}},
            "models": {"fraud": {
                "router": "r",
                "strategy": {"kind": "canary", "steps": [10, 50], "step_duration": 5},
                "analysis": {"metrics": [
                    {"name": "acc", "source": "events", "query": "accuracy",
                     "kind": "proportion", "direction": "higher"},
                    {"name": "err", "source": "events", "query": "error_rate",
                     "kind": "proportion", "role": "guardrail"},
                ]},
            }},
        }  # fmt: skip
        (line,) = direction_warnings(parse_config(data, where="c.yaml"))
        assert line.startswith("c.yaml: models.fraud.analysis.metrics[1].direction: not set")
        assert "only reported" in line
