"""Auto-rollback triggers and ModelMonitor: stored per model or registry-wide, audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry import InvalidInput, ModelMonitor, ModelNotFound, ModelRegistry, RollbackTrigger
from registry.auto_rollback import parse_duration


@pytest.fixture
def registry(tmp_path: Path, db_url: str) -> Iterator[ModelRegistry]:
    """On every backend of the contract suite (SQLite, PostgreSQL)."""
    reg = ModelRegistry(db_url, home=tmp_path / "home", actor="alice")
    artifact = tmp_path / "m.bin"
    artifact.write_bytes(b"m")
    for name in ("fraud", "churn"):
        reg.register_model(name, str(artifact), version="1.0.0", stage="staging")
    yield reg
    reg.close()


def _actions(registry: ModelRegistry) -> list[tuple[str, str, str]]:
    return [(e.action, e.target, e.actor) for e in registry.audit_log()]


class TestSetAutoRollbackTriggers:
    def test_seed_call_sets_registry_wide_triggers(self, registry: ModelRegistry) -> None:
        """The seed's call without a name guards every model; one audit event records it."""
        registry.set_auto_rollback_triggers(
            error_rate_threshold=0.05, latency_threshold=200, accuracy_drop_threshold=0.10
        )
        found = registry.auto_rollback_triggers("churn")
        assert [(t.name, t.metric, t.direction, t.compare, t.threshold) for t in found] == [
            ("error_rate", "error_rate", "above", "value", 0.05),
            ("latency_p95", "latency_p95", "above", "value", 200.0),
            ("accuracy_drop", "accuracy", "above", "drop", 0.10),
        ]
        assert found[0].window_s == 3600
        assert ("set_auto_rollback_triggers", "*", "alice") in _actions(registry)
        assert registry.verify_audit_chain() is None

    def test_model_triggers_override_then_clear_falls_back(self, registry: ModelRegistry) -> None:
        """A model's own triggers win; clearing them brings the registry-wide ones back."""
        registry.set_auto_rollback_triggers(error_rate_threshold=0.05)
        registry.set_auto_rollback_triggers(
            "fraud", latency_threshold=150, window="30m", consecutive=3, cooldown="2h",
            min_samples=50, actor="bob",
        )  # fmt: skip
        (own,) = registry.auto_rollback_triggers("fraud")
        assert (own.metric, own.window_s, own.consecutive, own.cooldown_s, own.min_samples) == (
            "latency_p95", 1800.0, 3, 7200.0, 50,
        )  # fmt: skip
        assert [t.metric for t in registry.auto_rollback_triggers("churn")] == ["error_rate"]
        registry.clear_auto_rollback_triggers("fraud", actor="bob")
        assert [t.metric for t in registry.auto_rollback_triggers("fraud")] == ["error_rate"]
        actions = _actions(registry)
        assert ("set_auto_rollback_triggers", "fraud", "bob") in actions
        assert ("clear_auto_rollback_triggers", "fraud", "bob") in actions
        cleared = next(e for e in registry.audit_log() if e.action.startswith("clear"))
        assert cleared.before is not None
        assert cleared.before["triggers"][0]["threshold"] == 150
        assert cleared.after is not None
        assert cleared.after["triggers"] is None

    def test_nothing_set_means_no_triggers(self, registry: ModelRegistry) -> None:
        """Without any setting a model has no triggers."""
        assert registry.auto_rollback_triggers("fraud") == ()
        assert registry.auto_rollback_settings() == {}

    def test_settings_in_one_read(self, registry: ModelRegistry) -> None:
        """Every level's newest setting, keyed by model (None: registry-wide)."""
        registry.set_auto_rollback_triggers(error_rate_threshold=0.05)
        registry.set_auto_rollback_triggers("fraud", error_rate_threshold=0.01)
        registry.set_auto_rollback_triggers("fraud", error_rate_threshold=0.02)
        settings = registry.auto_rollback_settings()
        assert set(settings) == {None, "fraud"}
        assert settings["fraud"].triggers is not None
        assert settings["fraud"].triggers[0].threshold == 0.02

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({}, "at least one of error_rate_threshold"),
            ({"error_rate_threshold": 5}, "error_rate_threshold must be a fraction"),
            ({"error_rate_threshold": 0}, "error_rate_threshold must be a fraction"),
            ({"accuracy_drop_threshold": 1.5}, "accuracy_drop_threshold must be a fraction"),
            ({"latency_threshold": -1}, "latency_threshold must be a positive number"),
            ({"latency_threshold": float("nan")}, "latency_threshold must be a finite"),
            ({"latency_threshold": "200"}, "latency_threshold must be a finite"),
            ({"error_rate_threshold": 0.1, "window": "soon"}, "window must be a duration"),
            ({"error_rate_threshold": 0.1, "window": "0s"}, "window must be positive"),
            ({"error_rate_threshold": 0.1, "cooldown": -5}, "cooldown must be >= 0"),
            ({"error_rate_threshold": 0.1, "consecutive": 0}, "consecutive must be an integer"),
            ({"error_rate_threshold": 0.1, "min_samples": 1.5}, "min_samples must be an integer"),
        ],
    )
    def test_bad_input_is_named(
        self, registry: ModelRegistry, kwargs: dict[str, Any], message: str
    ) -> None:
        """Each bad argument is refused with an error naming it; nothing is stored."""
        with pytest.raises(InvalidInput, match=message):
            registry.set_auto_rollback_triggers("fraud", **kwargs)
        assert registry.auto_rollback_settings() == {}

    def test_unknown_model(self, registry: ModelRegistry) -> None:
        """Triggers for a model that does not exist are refused."""
        with pytest.raises(ModelNotFound):
            registry.set_auto_rollback_triggers("ghost", error_rate_threshold=0.1)

    @pytest.mark.parametrize(
        ("text", "seconds"), [("90s", 90), ("30m", 1800), ("24h", 86400), ("1d", 86400),
                              ("1h30m", 5400), (45, 45)],
    )  # fmt: skip
    def test_durations(self, text: str | int, seconds: float) -> None:
        """Windows read as seconds, minutes, hours or days."""
        assert parse_duration(text, "window") == seconds

    def test_round_trip(self) -> None:
        """A trigger survives its storage form."""
        trigger = RollbackTrigger("t", "accuracy", 0.8, "below", "value", 60, 10, 2, 30)
        assert RollbackTrigger.from_dict(trigger.to_dict()) == trigger


class TestModelMonitor:
    def test_seed_usage(self, registry: ModelRegistry) -> None:
        """track_model then set_auto_rollback without a name: accuracy below 0.80 over 24h."""
        monitor = ModelMonitor(registry=registry)
        stored = monitor.track_model(
            name="fraud", stage="production", metrics=["accuracy", "latency", "error_rate"]
        )
        assert stored == ("accuracy", "latency_p95", "error_rate")
        monitor.set_auto_rollback(metric="accuracy", threshold=0.80, window="24h")
        (trigger,) = registry.auto_rollback_triggers("fraud")
        assert (trigger.metric, trigger.direction, trigger.threshold, trigger.window_s) == (
            "accuracy", "below", 0.80, 86400.0,
        )  # fmt: skip
        monitor.set_auto_rollback(metric="latency", threshold=250, window="1h")
        monitor.set_auto_rollback(metric="accuracy", threshold=0.85)  # replaces the rule
        found = {t.name: t for t in registry.auto_rollback_triggers("fraud")}
        assert set(found) == {"accuracy_below", "latency_p95_above"}
        assert found["accuracy_below"].threshold == 0.85
        assert monitor.tracked_metrics("fraud") == stored
        assert registry.auto_rollback_triggers("churn") == ()
        actions = [a for a, _, _ in _actions(registry)]
        assert actions.count("set_auto_rollback") == 3
        assert "track_model" in actions

    def test_tracking_keeps_triggers(self, registry: ModelRegistry) -> None:
        """Re-tracking a model leaves its triggers alone, and setting triggers keeps tracking."""
        monitor = ModelMonitor(registry)
        monitor.track_model("fraud", metrics=["error_rate"])
        monitor.set_auto_rollback("error_rate", 0.1, name="fraud")
        registry.set_auto_rollback_triggers("fraud", latency_threshold=300)
        assert monitor.tracked_metrics("fraud") == ("error_rate",)
        monitor.track_model("fraud", metrics=["error_rate", "latency"])
        assert [t.metric for t in registry.auto_rollback_triggers("fraud")] == ["latency_p95"]

    def test_custom_metric_needs_direction(self, registry: ModelRegistry) -> None:
        """A custom metric is stored as named, once it says which side is bad."""
        monitor = ModelMonitor(registry)
        monitor.track_model("fraud", metrics=["chargebacks"])
        with pytest.raises(InvalidInput, match="needs direction"):
            monitor.set_auto_rollback("chargebacks", 3.0)
        monitor.set_auto_rollback("chargebacks", 3.0, direction="above")
        (trigger,) = registry.auto_rollback_triggers("fraud")
        assert (trigger.metric, trigger.direction) == ("chargebacks", "above")

    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (lambda m: m.track_model("fraud", stage="staging"), "only production versions"),
            (lambda m: m.track_model("fraud", metrics=[]), "non-empty list"),
            (lambda m: m.track_model("fraud", metrics="accuracy"), "non-empty list"),
            (lambda m: m.track_model("fraud", metrics=["acc-uracy"]), "invalid metric"),
            (lambda m: m.set_auto_rollback("accuracy", 0.8), "track_model"),
            (lambda m: m.set_auto_rollback("accuracy", 80, name="fraud"), "fraction"),
            (lambda m: m.set_auto_rollback("latency", 0, name="fraud"), "milliseconds"),
            (lambda m: m.set_auto_rollback("accuracy", 0.8, "forever", "fraud"), "duration"),
            (
                lambda m: m.set_auto_rollback("accuracy", 0.8, name="fraud", direction="above"),
                "makes no sense",
            ),
        ],
    )
    def test_bad_input_is_named(self, registry: ModelRegistry, call: Any, message: str) -> None:
        """Wrong stage, metrics, thresholds or windows are refused with a clear error."""
        with pytest.raises(InvalidInput, match=message):
            call(ModelMonitor(registry))
        assert registry.auto_rollback_settings() == {}

    def test_untracked_metric_refused(self, registry: ModelRegistry) -> None:
        """A rule on a metric the model does not track is refused."""
        monitor = ModelMonitor(registry)
        monitor.track_model("fraud", metrics=["accuracy"])
        with pytest.raises(InvalidInput, match="not tracked"):
            monitor.set_auto_rollback("error_rate", 0.1)
        assert registry.auto_rollback_triggers("fraud") == ()
