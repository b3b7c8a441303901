"""Per-group window summaries over a raw event frame."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from monitors.measurement import MetricSpec, Subject, Window
from monitors.windows import measure_by, measure_frame, summarize


def frame(n: int = 2000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    outcome = rng.integers(0, 2, n).astype(float)
    label = np.where(rng.random(n) < 0.5, outcome, 1 - outcome)
    label[rng.random(n) < 0.3] = np.nan  # 30 % of labels not arrived yet
    return pd.DataFrame(
        {
            "arm": rng.choice(["control", "treatment"], n),
            "latency_ms": rng.gamma(2.0, 20.0, n),
            "error": rng.random(n) < 0.05,
            "outcome": outcome,
            "label": label,
        }
    )


class TestSummarize:
    def test_matches_a_bare_groupby(self) -> None:
        """Counts, error rate and latency quantiles agree with plain pandas."""
        data = frame()
        table = summarize(data)
        grouped = data.groupby("arm")
        pd.testing.assert_series_equal(
            table["latency_p95"], grouped["latency_ms"].quantile(0.95), check_names=False
        )
        pd.testing.assert_series_equal(
            table["error_rate"], grouped["error"].mean(), check_names=False
        )
        assert table["count"].sum() == len(data)

    def test_accuracy_and_labelled_fraction(self) -> None:
        """Accuracy is over labelled rows; the labelled fraction sits beside it."""
        data = frame()
        table = summarize(data)
        treated = data[data["arm"] == "treatment"]
        labelled = treated.dropna(subset=["label"])
        assert table.loc["treatment", "accuracy"] == pytest.approx(
            (labelled["outcome"] == labelled["label"]).mean()
        )
        assert table.loc["treatment", "labelled_fraction"] == pytest.approx(
            len(labelled) / len(treated)
        )

    def test_empty_frame(self) -> None:
        """No events: an empty table with the usual columns."""
        table = summarize(frame().iloc[0:0])
        assert table.empty
        assert "latency_p95" in table.columns


class TestMeasureBy:
    def test_one_measurement_per_arm(self) -> None:
        """Grouped measurements equal per-arm ones and a bare groupby's quantile."""
        data = frame()
        window = Window(end=datetime(2026, 1, 1, tzinfo=UTC), length=timedelta(hours=1))
        p95 = MetricSpec(name="p95", query="latency_p95")
        grouped = measure_by(data, p95, window, model="m")
        bare = data.groupby("arm")["latency_ms"].quantile(0.95)
        assert sorted(grouped) == ["control", "treatment"]
        for arm, m in grouped.items():
            assert m.subject == Subject(model="m", arm=arm)
            assert m.value == pytest.approx(bare[arm])
            single = measure_frame(data[data["arm"] == arm], p95, m.subject, window)
            assert m == single
        assert measure_by(data.iloc[0:0], p95, window, model="m") == {}
