"""Derived values live as long as their policy: none recomputed while it lives, however
many policies there are, and none kept after it is gone."""

from __future__ import annotations

import gc
from functools import partial

from controller.core import memo


class Policy:
    """Stands for a policy: weakly referenceable, unhashable like the pydantic one."""

    __hash__ = None  # type: ignore[assignment]


def test_many_live_policies_keep_their_values_and_dead_ones_leave() -> None:
    gc.collect()
    before = memo.entries()
    builds: list[int] = []

    def build(i: int) -> int:
        builds.append(i)
        return i

    policies = [Policy() for _ in range(10_000)]  # past the old 4,096 bound
    for _ in range(2):
        for i, policy in enumerate(policies):
            assert memo.per_policy("t", policy, None, partial(build, i)) == i
    assert len(builds) == 10_000  # the second pass computed nothing
    assert memo.entries() == before + 10_000
    del policies, policy
    gc.collect()
    assert memo.entries() == before


def test_a_reused_id_is_computed_again() -> None:
    """A new policy at a dead one's address gets its own value."""
    values = []
    for k in range(50):
        policy = Policy()
        values.append(memo.per_policy("reuse", policy, None, partial(int, k)))
        del policy
    assert values == list(range(50))
