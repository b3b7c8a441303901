"""controller.simulation and `modelreg policy simulate`: a policy's real decide() on
simulated traffic, its statistical promises, and the command's output and errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from controller.cli import app
from controller.config import PolicyConfig, parse_config
from controller.simulation import SCENARIOS, Workload, run_once, simulate, simulate_all

ROOT = Path(__file__).parents[2]
BY_KEY = {s.key: s for s in SCENARIOS}
WORKLOAD = Workload(rps=400.0)  # 4,000 requests a look at a 10 s interval


def fixed(weight: int = 50, looks: int = 50, **metric: Any) -> PolicyConfig:
    """A fixed split over ``looks`` intervals judged on one error-rate metric."""
    m = {"name": "error_rate", "source": "events", "query": "error_rate",
         "kind": "proportion", "direction": "lower", **metric}  # fmt: skip
    config = parse_config(
        {
            "sources": {"events": {"kind": "ingest"}},
            "routers": {"r": {"kind": "http"}},
            "models": {"m": {
                "router": "r", "strategy": {"kind": "fixed", "weight": weight,
                                            "duration": looks * 10},
                "interval": 10, "settle": 0, "max_duration": looks * 10,
                "analysis": {"metrics": [m]},
            }},
        }
    )  # fmt: skip
    return config.models["m"]


def _bound(rate: float, runs: int) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / runs)


class TestSimulation:
    def test_seeded_runs_repeat(self) -> None:
        """The same seed gives the same rollouts; another seed gives others."""
        a = simulate(fixed(looks=10), BY_KEY["identical"], WORKLOAD, runs=5, seed=1)
        b = simulate(fixed(looks=10), BY_KEY["identical"], WORKLOAD, runs=5, seed=1)
        assert a.outcomes == b.outcomes
        rng = np.random.default_rng(0)
        assert run_once(fixed(looks=10), BY_KEY["errors_2x"], WORKLOAD, rng).outcome == "rollback"

    @pytest.mark.slow
    def test_processes_do_not_change_the_answer(self) -> None:
        """Splitting the runs over two processes gives the very same outcomes."""
        policy, scenarios = fixed(looks=10), [BY_KEY["identical"], BY_KEY["errors_+25%"]]
        one = simulate_all(policy, scenarios, WORKLOAD, runs=12, seed=3, workers=1, chunk=5)
        two = simulate_all(policy, scenarios, WORKLOAD, runs=12, seed=3, workers=2, chunk=5)
        assert [r.outcomes for r in one] == [r.outcomes for r in two]

    @pytest.mark.parametrize("runs", [pytest.param(400, marks=pytest.mark.slow), 80])
    def test_identical_versions_rarely_decide(self, runs: int) -> None:
        """A/A at 50/50 for 50 looks: rolled back on evidence or promoted in <= 5% of
        rollouts (+3 binomial standard errors); the rest end undecided at the horizon."""
        r = simulate(fixed(), BY_KEY["identical"], WORKLOAD, runs=runs, seed=5)
        assert r.share("rollback") + r.share("promote") <= _bound(0.05, runs)
        assert all(o.cause.value in ("harm", "efficacy", "no_gain") for o in r.outcomes)

    @pytest.mark.parametrize("weight", [50, 10])
    def test_doubled_errors_caught_within_the_stated_looks(self, weight: int) -> None:
        """A 2x error rate is rolled back by the statistics in >= 95% of 100 rollouts,
        90% of them by look 3 at 50/50 and by look 10 at a 10% canary."""
        r = simulate(fixed(weight), BY_KEY["errors_2x"], WORKLOAD, runs=100, seed=6)
        assert r.share("rollback") >= 0.95
        assert all(o.cause.value == "harm" for o in r.outcomes if o.outcome == "rollback")
        looks = sorted(o.look if o.outcome == "rollback" else 10**9 for o in r.outcomes)
        assert looks[89] <= (3 if weight == 50 else 10)

    def test_slower_latency_rolled_back(self) -> None:
        """+15% mean latency (lognormal, median 100 ms) is rolled back in every rollout."""
        policy = fixed(10, name="latency", query="latency_mean", kind="mean")
        r = simulate(policy, BY_KEY["latency_+15%"], WORKLOAD, runs=40, seed=7)
        assert r.share("rollback") == 1.0
        assert r.touched == ("latency",)

    @pytest.mark.parametrize("runs", [pytest.param(400, marks=pytest.mark.slow), 60])
    def test_improvement_keeps_fixed_horizon_power(self, runs: int) -> None:
        """-20% errors at a 10% canary: promoted in >= 90% of the share a single z test at
        look 50 reaches on the same streams."""
        r = simulate(fixed(10), BY_KEY["errors_-20%"], WORKLOAD, runs=runs, seed=8,
                     baseline=True)  # fmt: skip
        assert r.baseline_share is not None
        assert r.share("promote") >= 0.9 * r.baseline_share - 3 * math.sqrt(0.25 / runs)

    def test_bad_workload_named(self) -> None:
        """A workload that cannot be simulated says which number is wrong."""
        with pytest.raises(ValueError, match="error rate"):
            Workload(error_rate=1.5)
        with pytest.raises(ValueError, match="rps"):
            Workload(rps=0)


def _policy_file(tmp_path: Path) -> Path:
    file = tmp_path / "policy.yaml"
    file.write_text(yaml.safe_dump({
        "strategy": {"kind": "fixed", "weight": 50, "duration": 100}, "interval": 10,
        "settle": 0, "max_duration": 100,
        "analysis": {"metrics": [{"name": "error_rate", "source": "events",
                                  "query": "error_rate", "kind": "proportion",
                                  "direction": "lower"}]},
    }))  # fmt: skip
    return file


class TestCommand:
    def test_json_for_a_daemon_config(self) -> None:
        """The example config's policy, as JSON: every scenario with its shares and looks."""
        result = CliRunner().invoke(app, [
            "policy", "simulate", str(ROOT / "config" / "daemon.yaml"), "--runs", "2",
            "--scenario", "errors_2x", "--rps", "400", "--workers", "1", "--json",
        ])  # fmt: skip
        assert result.exit_code == 0, result.output
        body = json.loads(result.stdout)
        assert body["policy"] == "fraud"
        (row,) = body["scenarios"]
        assert row["scenario"] == "errors_2x"
        assert row["rollback"] + row["promote"] + row["undecided"] == pytest.approx(1.0)
        assert set(row["touched_metrics"]) == {"accuracy", "error_rate"}

    def test_table_for_a_single_policy_file(self, tmp_path: Path) -> None:
        """A file holding one policy works too; the table names each scenario."""
        result = CliRunner().invoke(app, [
            "policy", "simulate", str(_policy_file(tmp_path)), "--runs", "3", "--workers", "1",
            "--scenario", "identical", "--scenario", "latency_+15%",
        ])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "identical versions (A/A)" in result.stdout
        assert "+15% latency (no metric changes: as identical)" in result.stdout
        assert "Undecided" in result.stdout

    @pytest.mark.parametrize(
        ("args", "said"),
        [
            (["nope.yaml"], "cannot read"),
            (["POLICY", "--scenario", "errors_3x"], "unknown scenario 'errors_3x'"),
            (["POLICY", "--rps", "-1"], "rps"),
            (["POLICY", "--baseline-error-rate", "2"], "error rate"),
            (["CONFIG", "--model", "ghost"], "no policy for model 'ghost'"),
            (["ODD"], "analysis.metrics[0].source"),
        ],
    )
    def test_bad_input_is_one_line(self, tmp_path: Path, args: list[str], said: str) -> None:
        """Bad input exits 2 with one line naming what was wrong."""
        odd = tmp_path / "odd.yaml"
        odd.write_text(yaml.safe_dump({
            "strategy": {"kind": "fixed", "weight": 50, "duration": 100},
            "analysis": {"metrics": [{"name": "e", "source": ["a", "b"], "query": "error_rate",
                                      "kind": "proportion", "direction": "lower"}]},
        }))  # fmt: skip
        paths = {"POLICY": str(_policy_file(tmp_path)), "ODD": str(odd),
                 "CONFIG": str(ROOT / "config" / "daemon.yaml")}  # fmt: skip
        argv = ["policy", "simulate", *[paths.get(a, a) for a in args], "--runs", "1"]
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2, result.output
        assert said in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1

    def test_several_policies_need_a_model(self, tmp_path: Path) -> None:
        """A config with two policies asks which one."""
        data = yaml.safe_load((ROOT / "config" / "daemon.yaml").read_text())
        data["models"]["other"] = data["models"]["fraud"]
        data["registry"]["home"] = str(tmp_path)
        data["sources"]["ingest"]["options"]["url"] = f"sqlite:///{tmp_path}/i.db"
        data["routers"]["table"]["options"]["path"] = str(tmp_path / "r.json")
        file = tmp_path / "two.yaml"
        file.write_text(yaml.safe_dump(data))
        result = CliRunner().invoke(app, ["policy", "simulate", str(file), "--runs", "1"])
        assert result.exit_code == 2
        assert "pick one with --model" in result.stderr
