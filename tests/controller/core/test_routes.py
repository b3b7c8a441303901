"""controller.core.routes: the route each phase implies, production's route, rebasing."""

from __future__ import annotations

import pytest

from controller.core.phases import Phase
from controller.core.routes import REVISIONS_PER_ROLLOUT, production_route, rebased, route_for
from serving.route import Backend, Route

CONTROL = Backend("v1.0.0", 0, "c" * 64)
TREATMENT = Backend("v1.1.0", 0, "t" * 64)


def _split(route: Route) -> list[tuple[str, int]]:
    return [(b.version, b.weight) for b in route.backends]


@pytest.mark.parametrize(
    ("phase", "weight", "split"),
    [
        (Phase.PENDING, 0.0, [("v1.0.0", 100)]),
        (Phase.PROGRESSING, 10.0, [("v1.0.0", 90), ("v1.1.0", 10)]),
        (Phase.PROGRESSING, 33.4, [("v1.0.0", 67), ("v1.1.0", 33)]),
        (Phase.PAUSED, 25.0, [("v1.0.0", 75), ("v1.1.0", 25)]),
        (Phase.PROGRESSING, 100.0, [("v1.1.0", 100)]),
        (Phase.PROMOTED, 50.0, [("v1.1.0", 100)]),
        (Phase.ROLLED_BACK, 50.0, [("v1.0.0", 100)]),
        (Phase.ABORTED, 50.0, [("v1.0.0", 100)]),
    ],
)
def test_route_for_each_phase(phase: Phase, weight: float, split: list[tuple[str, int]]) -> None:
    route = route_for("fraud", 7, CONTROL, TREATMENT, phase=phase, weight=weight, revision=3)
    assert _split(route) == split
    assert route.revision == 7 * REVISIONS_PER_ROLLOUT + 3
    assert route.salt == "fraud:7"
    assert {b.digest for b in route.backends} <= {CONTROL.digest, TREATMENT.digest}


def test_production_route_keeps_the_last_rollouts_block_and_salt() -> None:
    route = production_route("fraud", CONTROL, last_rollout=(7, 4))
    assert _split(route) == [("v1.0.0", 100)]
    assert (route.revision, route.salt) == (7 * REVISIONS_PER_ROLLOUT + 4, "fraud:7")
    first = production_route("fraud", CONTROL, last_rollout=None)
    assert (first.revision, first.salt) == (0, "")


def test_rebased_never_moves_a_revision_back() -> None:
    held = Route("fraud", (Backend("v1.0.0", 100),), revision=9000, salt="fraud:9")
    new = Route("fraud", (Backend("v1.1.0", 100),), revision=7001, salt="fraud:7")
    assert rebased(new, None) == new
    assert rebased(new, held).revision == 9001  # a changed route goes above the held one
    same = Route("fraud", (Backend("v1.0.0", 100),), revision=7001, salt="fraud:9")
    assert rebased(same, held) == held  # serving already has it: no write
    newer = Route("fraud", (Backend("v1.1.0", 100),), revision=9500, salt="fraud:9")
    assert rebased(newer, held) == newer
