"""Per-group window summaries over a raw event frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitors.windows import summarize


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
