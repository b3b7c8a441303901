"""A rollout the registry has moved on from: its versions changed stage outside it.

A rollout judges its treatment against its control while the control is production
and the treatment a candidate (``dev`` or ``staging``). When someone moves either by
hand (promotes the candidate, archives it, puts another version in production), the
rollout's split no longer means anything, and carrying on would route traffic back to
versions the registry has left: a stale canary could put a version the registry (or an
alert) just pulled out of production back at 100%. Such a rollout ends at once with
``Cause.SUPERSEDED`` and the reason, and serving follows the registry's production
version (``Release``), never the rollout's control.
"""

from __future__ import annotations

from dataclasses import replace

from controller.core.causes import Cause
from controller.core.decisions import Release
from controller.core.phases import Event, move
from controller.core.state import RolloutState

__all__ = ["release", "superseded"]

CANDIDATE_STAGES = ("dev", "staging")


def superseded(
    control: str, treatment: str, *, production: str | None, treatment_stage: str | None
) -> str | None:
    """Why the registry no longer matches a rollout of ``treatment`` against ``control``,
    or None while it does. ``production`` is the model's production version now (None:
    none, or one this registry cannot name); ``treatment_stage`` the treatment's stage
    (None: the version is gone)."""
    if treatment_stage is None:
        return f"{treatment} is no longer in the registry"
    if treatment_stage not in CANDIDATE_STAGES:
        return f"{treatment} was moved to {treatment_stage} outside this rollout"
    if production is None:
        return f"{control} was moved out of production outside this rollout"
    if production != control:
        return f"{production} was put in production outside this rollout (instead of {control})"
    return None


def release(state: RolloutState, why: str) -> Release:
    """End the rollout for ``why`` (``superseded``'s answer) without touching the registry."""
    ended = replace(state, phase=move(state.phase, Event.ABORT), weight=0.0)
    return Release(Event.ABORT, ended, (f"superseded: {why}",), {}, Cause.SUPERSEDED)
