"""Auto-rollback trigger settings: what ``ModelRegistry`` stores for the controller.

The registry only records the triggers (per model, or registry-wide) and audits
each change; the controller's guard judges them against live metrics.
``registry.auto_rollback`` holds the trigger values, their table and the update.
"""

from __future__ import annotations

from registry import auto_rollback, names, queries
from registry.store import Store


def set_triggers(
    store: Store,
    name: str | None,
    *,
    error_rate_threshold: float | None,
    latency_threshold: float | None,
    accuracy_drop_threshold: float | None,
    window: str | float,
    min_samples: int,
    consecutive: int,
    cooldown: str | float,
    actor: str | None,
    default_actor: str,
) -> tuple[auto_rollback.RollbackTrigger, ...]:
    """``ModelRegistry.set_auto_rollback_triggers``: replaces the level's triggers."""
    triggers = auto_rollback.seed_triggers(
        error_rate_threshold=error_rate_threshold,
        latency_threshold=latency_threshold,
        accuracy_drop_threshold=accuracy_drop_threshold,
        window=window,
        min_samples=min_samples,
        consecutive=consecutive,
        cooldown=cooldown,
    )
    _write(store, name, triggers, actor, default_actor, "set_auto_rollback_triggers")
    return triggers


def clear_triggers(
    store: Store, name: str | None, *, actor: str | None, default_actor: str
) -> None:
    _write(store, name, None, actor, default_actor, "clear_auto_rollback_triggers")


def effective_triggers(store: Store, name: str) -> tuple[auto_rollback.RollbackTrigger, ...]:
    names.model_name(name)
    with store.read() as conn:
        return auto_rollback.effective(conn, queries.model_id(conn, name))


def all_settings(store: Store) -> dict[str | None, auto_rollback.Setting]:
    with store.read() as conn:
        return auto_rollback.all_settings(conn)


def _write(
    store: Store,
    name: str | None,
    triggers: tuple[auto_rollback.RollbackTrigger, ...] | None,
    actor: str | None,
    default_actor: str,
    action: str,
) -> None:
    who = names.actor(actor) if actor else default_actor
    auto_rollback.update(
        store,
        name,
        lambda old: auto_rollback.Setting(triggers, old.tracked),
        actor=who,
        action=action,
    )
