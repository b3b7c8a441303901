"""``ModelMonitor``: the seed's monitoring API, mapped onto stored auto-rollback triggers.

    monitor = ModelMonitor(registry=registry)
    monitor.track_model(name="fraud", stage="production",
                        metrics=["accuracy", "latency", "error_rate"])
    monitor.set_auto_rollback(metric="accuracy", threshold=0.80, window="24h")

The registry only records what is watched and when to roll back; the controller
daemon's guard measures the production version every interval and rolls it back
(``docs``: README, "Guarding production"). Only production can be guarded: a
staging candidate is judged by its rollout policy instead.

Metrics: ``accuracy`` (rolls back below the threshold), ``latency`` (p95 in
milliseconds, above), ``error_rate`` (above); any other name of letters, digits
and ``_`` is a custom metric and needs ``direction=``. The daemon judges a custom
metric when a policy defines a metric of that name (or the ingest source computes a
statistic of that name); otherwise it has no data and never causes a rollback.
"""

from __future__ import annotations

from collections.abc import Sequence

from registry import auto_rollback, queries
from registry.api import ModelRegistry
from registry.auto_rollback import RollbackTrigger, Setting
from registry.errors import InvalidInput
from registry.stages import stage_name

__all__ = ["ModelMonitor"]

DEFAULT_METRICS = ("accuracy", "latency", "error_rate")


class ModelMonitor:
    """Tracks production models' metrics and sets their auto-rollback rules."""

    def __init__(self, registry: ModelRegistry, *, actor: str | None = None) -> None:
        self.registry = registry
        self.actor = actor or registry.actor
        self._tracked: list[str] = []  # models tracked through this monitor, in order

    def track_model(
        self,
        name: str,
        stage: str = "production",
        metrics: Sequence[str] = DEFAULT_METRICS,
    ) -> tuple[str, ...]:
        """Record that ``name``'s production version is watched on ``metrics``; returns
        the stored metric names (``latency`` is stored as ``latency_p95``). Audited."""
        _production_only(stage)
        if isinstance(metrics, str) or not isinstance(metrics, Sequence) or not metrics:
            raise InvalidInput("metrics must be a non-empty list such as ['accuracy', 'latency']")
        stored = tuple(dict.fromkeys(auto_rollback.monitor_metric(m) for m in metrics))
        auto_rollback.update(
            self.registry.store,
            name,
            lambda old: Setting(old.triggers, stored),
            actor=self.actor,
            action="track_model",
        )
        if name not in self._tracked:
            self._tracked.append(name)
        return stored

    def tracked_metrics(self, name: str) -> tuple[str, ...]:
        """The metrics recorded for ``name`` by ``track_model`` (empty if none)."""
        with self.registry.store.read() as conn:
            model_id = queries.model_id(conn, name)
            return auto_rollback.setting(conn, model_id).tracked or ()

    def set_auto_rollback(
        self,
        metric: str,
        threshold: float,
        window: str | float = "24h",
        name: str | None = None,
        *,
        direction: str | None = None,
        min_samples: int = 100,
        consecutive: int = 1,
        cooldown: str | float = "1h",
    ) -> RollbackTrigger:
        """Roll production back when ``metric`` crosses ``threshold`` over ``window``.

        For model ``name``, else for every model tracked through this monitor. Adds
        to (or replaces the same rule in) the model's own triggers, which take the
        place of registry-wide ones. The metric must be one the model tracks, when
        ``track_model`` recorded any.
        """
        trigger = auto_rollback.monitor_trigger(
            metric,
            threshold,
            window=window,
            direction=direction,
            min_samples=min_samples,
            consecutive=consecutive,
            cooldown=cooldown,
        )
        targets = [name] if name is not None else list(self._tracked)
        if not targets:
            raise InvalidInput("set_auto_rollback needs name=, or track_model(...) called first")

        def change(old: Setting) -> Setting:
            if old.tracked is not None and trigger.metric not in old.tracked:
                raise InvalidInput(
                    f"metric {trigger.metric!r} is not tracked for this model (tracked: "
                    f"{', '.join(old.tracked)}); add it with track_model first"
                )
            kept = tuple(t for t in old.triggers or () if t.name != trigger.name)
            return Setting((*kept, trigger), old.tracked)

        for target in targets:
            auto_rollback.update(
                self.registry.store, target, change, actor=self.actor, action="set_auto_rollback"
            )
        return trigger


def _production_only(stage: str) -> None:
    if stage_name(stage) != "production":
        raise InvalidInput(
            f"only production versions can be guarded by auto-rollback, not {stage!r}; "
            "a staging candidate is judged by its rollout policy"
        )
