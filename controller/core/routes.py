"""Route planning: the split a rollout's phase and weight imply, the route of production
between rollouts, and how a route may be pushed over the one serving holds. Pure: the
actuator pushes what these return.

Revisions: each rollout owns a block of ``REVISIONS_PER_ROLLOUT`` revisions (its id
times the block, plus its own counter), so a later rollout's routes are always
newer; ``rebased`` lifts a route above one serving already holds.
"""

from __future__ import annotations

from dataclasses import replace

from controller.core.phases import TERMINAL, Phase
from serving.route import Backend, Route

__all__ = ["REVISIONS_PER_ROLLOUT", "production_route", "rebased", "route_for", "split_of"]

REVISIONS_PER_ROLLOUT = 1000


def route_for(
    model: str,
    rollout_id: int,
    control: Backend,
    treatment: Backend,
    *,
    phase: Phase,
    weight: float,
    revision: int,
) -> Route:
    """The route a rollout in ``phase`` with ``weight`` percent to the treatment implies."""
    w = round(weight)
    if phase is Phase.PROMOTED or (phase not in TERMINAL and w >= 100):
        backends: tuple[Backend, ...] = (replace(treatment, weight=100),)
    elif phase in TERMINAL or w <= 0:
        backends = (replace(control, weight=100),)
    else:
        backends = (replace(control, weight=100 - w), replace(treatment, weight=w))
    return Route(
        model=model,
        backends=backends,
        revision=rollout_id * REVISIONS_PER_ROLLOUT + revision,
        salt=f"{model}:{rollout_id}",
    )


def production_route(
    model: str, production: Backend, *, last_rollout: tuple[int, int] | None
) -> Route:
    """All traffic to ``production`` when no rollout is active. ``last_rollout``: the
    newest finished rollout's id and revision, whose block and salt the route keeps
    (so serving's sticky assignment and revision order carry on); None without one."""
    if last_rollout is None:
        revision, salt = 0, ""
    else:
        rollout_id, rollout_revision = last_rollout
        revision = rollout_id * REVISIONS_PER_ROLLOUT + rollout_revision
        salt = f"{model}:{rollout_id}"
    return Route(
        model=model, backends=(replace(production, weight=100),), revision=revision, salt=salt
    )


Split = tuple[tuple[tuple[str, int], ...], str]


def split_of(route: Route | None) -> Split | None:
    """What serving does with a route: the versions that take traffic, their weights
    (in version order: a router may list them in its own) and the salt; not the
    revision or digests, and not versions at weight 0 (a router may keep or drop
    those)."""
    if route is None:
        return None
    return tuple(sorted((b.version, b.weight) for b in route.backends if b.weight > 0)), route.salt


def rebased(route: Route, held: Route | None) -> Route:
    """``route`` as it may be pushed over ``held``: a revision never moves back.

    Serving already holding these backends keeps its route (no write); otherwise the
    revision goes above the held one when it is not already, since receivers ignore
    routes that are not newer (a production change outside a rollout, a retried push).
    """
    if held is None:
        return route
    if held.backends == route.backends and held.salt == route.salt:
        return held
    if held.revision >= route.revision:
        return replace(route, revision=held.revision + 1)
    return route
