"""Threshold triggers as pure functions, tested as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitors.errors import ConfigError
from monitors.measurement import Measurement, Status, Subject, Window
from monitors.triggers import (
    TriggerResult,
    TriggerSpec,
    TriggerStatus,
    auto_rollback_triggers,
    evaluate,
    evaluate_all,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WINDOW = Window(end=NOW, length=timedelta(minutes=5))
CANARY = Subject(model="m", version="2.0.0", arm="treatment")
BASE = Subject(model="m", version="1.0.0", arm="control")


def ok(metric: str, value: float, n: int = 1000, subject: Subject = CANARY) -> Measurement:
    return Measurement(
        metric=metric, subject=subject, window=WINDOW, status=Status.OK, value=value, sample_size=n
    )


ERR = TriggerSpec(name="err", metric="error_rate", threshold=0.02, min_samples=100)
LAT = TriggerSpec(name="lat", metric="latency_p95", threshold=250.0)
ACC = TriggerSpec(name="acc", metric="accuracy", threshold=0.05, compare="drop", min_samples=50)
REL = TriggerSpec(name="rel", metric="accuracy", threshold=0.1, compare="relative_drop")
LOW = TriggerSpec(name="low", metric="ctr", threshold=0.01, direction="below")


@pytest.mark.parametrize(
    ("spec", "measurements", "baseline", "status", "value"),
    [
        (ERR, {"error_rate": ok("error_rate", 0.03)}, None, TriggerStatus.FIRED, 0.03),
        (ERR, {"error_rate": ok("error_rate", 0.02)}, None, TriggerStatus.OK, 0.02),
        (ERR, {"error_rate": ok("error_rate", 0.5, n=99)}, None, TriggerStatus.INSUFFICIENT, None),
        (ERR, {}, None, TriggerStatus.NODATA, None),
        (
            ERR,
            {"error_rate": Measurement.error("error_rate", CANARY, WINDOW, "timeout")},
            None,
            TriggerStatus.ERROR,
            None,
        ),
        (
            ERR,
            {"error_rate": Measurement.nodata("error_rate", CANARY, WINDOW, "none")},
            None,
            TriggerStatus.NODATA,
            None,
        ),
        (LAT, {"latency_p95": ok("latency_p95", 251.0)}, None, TriggerStatus.FIRED, 251.0),
        (
            ACC,
            {"accuracy": ok("accuracy", 0.84)},
            {"accuracy": ok("accuracy", 0.90, subject=BASE)},
            TriggerStatus.FIRED,
            pytest.approx(0.06),
        ),
        (
            ACC,
            {"accuracy": ok("accuracy", 0.87)},
            {"accuracy": ok("accuracy", 0.90, subject=BASE)},
            TriggerStatus.OK,
            pytest.approx(0.03),
        ),
        (ACC, {"accuracy": ok("accuracy", 0.5)}, None, TriggerStatus.NODATA, None),
        (
            ACC,
            {"accuracy": ok("accuracy", 0.5)},
            {"accuracy": ok("accuracy", 0.9, n=10, subject=BASE)},
            TriggerStatus.INSUFFICIENT,
            None,
        ),
        (
            REL,
            {"accuracy": ok("accuracy", 0.5)},
            {"accuracy": ok("accuracy", 0.6, subject=BASE)},
            TriggerStatus.FIRED,
            pytest.approx(1 / 6),
        ),
        (LOW, {"ctr": ok("ctr", 0.005)}, None, TriggerStatus.FIRED, 0.005),
        (LOW, {"ctr": ok("ctr", 0.02)}, None, TriggerStatus.OK, 0.02),
    ],
)
def test_single_evaluation(
    spec: TriggerSpec,
    measurements: dict[str, Measurement],
    baseline: dict[str, Measurement] | None,
    status: TriggerStatus,
    value: object,
) -> None:
    """Each row: one judgement from the spec, the measurements and the baseline."""
    result = evaluate(spec, measurements, (), now=NOW, baseline=baseline)
    assert result.status is status, result.reason
    assert result.value == value
    assert result.threshold == spec.threshold
    assert result.reason.startswith(f"{spec.name}: ")
    assert "\n" not in result.reason


def run(
    spec: TriggerSpec, values: list[float | None], step: timedelta = timedelta(minutes=1)
) -> list[TriggerResult]:
    """Evaluate a sequence of windows, feeding each result into the next history."""
    history: list[TriggerResult] = []
    for index, value in enumerate(values):
        now = NOW + index * step
        measurements = {} if value is None else {spec.metric: ok(spec.metric, value)}
        history.append(evaluate(spec, measurements, history, now=now))
    return history


class TestSequences:
    def test_consecutive_breaches_before_firing(self) -> None:
        """Three breaches in a row fire on the third; the reason counts them."""
        spec = TriggerSpec(name="e", metric="error_rate", threshold=0.1, consecutive=3)
        results = run(spec, [0.2, 0.2, 0.2])
        assert [r.status for r in results] == [
            TriggerStatus.BREACHED,
            TriggerStatus.BREACHED,
            TriggerStatus.FIRED,
        ]
        assert "breach 3 in a row: firing" in results[-1].reason
        assert results[0].consecutive == 1

    def test_a_good_or_missing_window_breaks_the_streak(self) -> None:
        """Only consecutive judged breaches count."""
        spec = TriggerSpec(name="e", metric="error_rate", threshold=0.1, consecutive=2)
        statuses = [r.status for r in run(spec, [0.2, 0.0, 0.2, None, 0.2, 0.2])]
        assert statuses == [
            TriggerStatus.BREACHED,
            TriggerStatus.OK,
            TriggerStatus.BREACHED,
            TriggerStatus.NODATA,
            TriggerStatus.BREACHED,
            TriggerStatus.FIRED,
        ]

    def test_cooldown(self) -> None:
        """After firing, a persisting breach waits out the cooldown, then fires again."""
        spec = TriggerSpec(
            name="e", metric="error_rate", threshold=0.1, cooldown=timedelta(minutes=3)
        )
        statuses = [r.status for r in run(spec, [0.2] * 5)]
        assert statuses == [
            TriggerStatus.FIRED,
            TriggerStatus.COOLDOWN,
            TriggerStatus.COOLDOWN,
            TriggerStatus.FIRED,
            TriggerStatus.COOLDOWN,
        ]

    def test_firing_consumes_the_streak(self) -> None:
        """With N=2 and no cooldown, a persisting breach fires every second window."""
        spec = TriggerSpec(name="e", metric="error_rate", threshold=0.1, consecutive=2)
        fired = [r.fired for r in run(spec, [0.2] * 6)]
        assert fired == [False, True, False, True, False, True]

    def test_evaluate_all(self) -> None:
        """Several specs with per-trigger histories."""
        results = evaluate_all(
            [ERR, LAT],
            {"error_rate": ok("error_rate", 0.5), "latency_p95": ok("latency_p95", 10.0)},
            {},
            now=NOW,
        )
        assert [r.status for r in results] == [TriggerStatus.FIRED, TriggerStatus.OK]


class TestSpecs:
    def test_seed_mapping(self) -> None:
        """set_auto_rollback_triggers' three thresholds become three specs."""
        specs = auto_rollback_triggers(
            error_rate_threshold=0.05,
            latency_threshold=500,
            accuracy_drop_threshold=0.03,
            min_samples=200,
            consecutive=2,
        )
        assert [(s.name, s.metric, s.compare, s.threshold) for s in specs] == [
            ("error_rate", "error_rate", "value", 0.05),
            ("latency_p95", "latency_p95", "value", 500),
            ("accuracy_drop", "accuracy", "drop", 0.03),
        ]
        assert all(s.min_samples == 200 and s.consecutive == 2 for s in specs)
        assert auto_rollback_triggers(latency_threshold=100)[0].name == "latency_p95"

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"threshold": float("nan")}, "finite"),
            ({"consecutive": 0}, "consecutive"),
            ({"min_samples": -1}, "min_samples"),
            ({"direction": "sideways"}, "direction"),
            ({"compare": "ratio"}, "compare"),
            ({"cooldown": timedelta(seconds=-1)}, "cooldown"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, object], match: str) -> None:
        """Invalid specs are configuration errors naming the trigger."""
        base: dict[str, object] = {"name": "t", "metric": "m", "threshold": 1.0}
        with pytest.raises(ConfigError, match=match):
            TriggerSpec(**(base | kwargs))  # type: ignore[arg-type]


class TestFromConfig:
    def test_mapping(self) -> None:
        """A config mapping builds the spec; cooldown is in seconds."""
        spec = TriggerSpec.from_config(
            {
                "name": "acc",
                "metric": "accuracy",
                "threshold": 0.05,
                "compare": "drop",
                "min_samples": 200,
                "consecutive": 3,
                "cooldown": 600,
            }
        )
        assert spec == TriggerSpec(
            name="acc",
            metric="accuracy",
            threshold=0.05,
            compare="drop",
            min_samples=200,
            consecutive=3,
            cooldown=timedelta(minutes=10),
        )

    @pytest.mark.parametrize(
        ("options", "match"),
        [
            ({"metric": "m", "threshold": 1}, "'name' is required"),
            ({"name": "t", "metric": "m"}, "trigger 't': 'threshold' is required"),
            ({"name": "t", "metric": "m", "threshold": "high"}, "'threshold' must be a number"),
            ({"name": "t", "metric": "m", "threshold": 1, "consecutive": 2.5}, "integer"),
            ({"name": "t", "metric": "m", "threshold": 1, "window": 60}, "unknown key.*window"),
        ],
    )
    def test_errors(self, options: dict[str, object], match: str) -> None:
        """Config errors name the trigger and the key."""
        with pytest.raises(ConfigError, match=match):
            TriggerSpec.from_config(options)
