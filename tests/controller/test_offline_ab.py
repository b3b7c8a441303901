"""controller.offline_ab and ``modelreg abtest``: outcomes read from a DataFrame or a
file, versions matched however they are written, the test window, one-line errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.offline_ab import run_ab_test

T0 = datetime(2024, 1, 10, tzinfo=UTC)


def outcomes(days: int = 7, n: int = 6000, lift: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Per-request outcomes over ``days``, 10 % of them on the treatment."""
    rng = np.random.default_rng(seed)
    treated = rng.random(n) < 0.1
    rate = np.where(treated, 0.80 + lift, 0.80)
    return pd.DataFrame({
        "version": np.where(treated, "fraud-detection-v3.1.0", "fraud-detection-v3.0.0"),
        "timestamp": [T0 + timedelta(seconds=float(s))
                      for s in np.sort(rng.random(n)) * days * 86400],
        "value": rng.random(n) < rate,
    })  # fmt: skip


def test_the_seeds_call() -> None:
    results = run_ab_test(
        control="fraud-detection-v3.0.0",
        treatment="fraud-detection-v3.1.0",
        traffic_split=0.1,
        duration_days=7,
        data=outcomes(n=40_000),
        metric="value",
    )
    assert results["treatment_is_better"] is True
    assert results.complete
    assert (results.n_control + results.n_treatment) == 40_000


def test_versions_match_however_written_and_the_window_cuts() -> None:
    frame = outcomes(days=14, n=20_000)
    full = run_ab_test("v3.0.0", "3.1", 0.1, data=frame)
    week = run_ab_test("fraud-detection-v3.0.0", "v3.1.0", 0.1, 7, data=frame)
    assert full.n_control + full.n_treatment == 20_000
    assert 9_000 < week.n_control + week.n_treatment < 11_000  # the first 7 of 14 days
    assert week.complete
    short = run_ab_test("v3.0.0", "v3.1.0", 0.1, 30, data=frame)  # 14 days of 30
    assert not short.complete
    assert "mixture" in short.method


def test_a_metric_column_selects_rows() -> None:
    frame = outcomes(n=4000)
    long = pd.concat([frame.assign(metric="converted"),
                      frame.assign(metric="other", value=0)])  # fmt: skip
    result = run_ab_test("v3.0.0", "v3.1.0", 0.1, data=long, metric="converted")
    assert result.n_control + result.n_treatment == 4000


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_the_command_reads_each_file_kind(tmp_path: Path, suffix: str) -> None:
    frame = outcomes(n=30_000)
    frame["timestamp"] = frame["timestamp"].map(lambda t: t.isoformat())
    file = tmp_path / f"outcomes{suffix}"
    if suffix == ".csv":
        frame.to_csv(file, index=False)
    elif suffix == ".jsonl":
        frame.to_json(file, orient="records", lines=True)
    else:
        file.write_text(json.dumps(frame.to_dict(orient="records"), default=bool))
    args = ["abtest", str(file), "--control", "v3.0.0", "--treatment", "v3.1.0",
            "--split", "0.1", "--days", "7"]  # fmt: skip
    shown = CliRunner().invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert "treatment_is_better: true" in shown.stdout
    assert "decision   promote" in shown.stdout
    body = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    assert body["treatment_is_better"] is True
    assert body["srm"]["mismatch"] is False


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("none", [], "error: no outcomes file at"),
        ("bad", [], "expected a .csv, .jsonl, .ndjson or .json file"),
        ("csv", ["--control", "v9.9.9", "--treatment", "v8.8.8"], "no outcomes of v9.9.9 or"),
        ("csv", ["--split", "2"], "traffic_split must be between 0 and 1"),
        ("nots", [], "the outcomes have no timestamp column"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(tmp_path: Path, setup: str, args: list[str], message: str) -> None:
    file = tmp_path / ("outcomes.txt" if setup == "bad" else "outcomes.csv")
    if setup in ("csv", "bad"):
        outcomes(n=500).to_csv(file, index=False)
    elif setup == "nots":
        outcomes(n=500).drop(columns="timestamp").to_csv(file, index=False)
    base = ["--control", "v3.0.0", "--treatment", "v3.1.0"]
    result = CliRunner().invoke(app, ["abtest", str(file), *base, *args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
