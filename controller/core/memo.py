"""Values derived from a policy, computed once per policy object.

Policies are frozen pydantic models but not hashable (they hold lists), and a reload
builds new ones; so derived values are kept by the policy's ``id`` beside a weak
reference that proves the id still names the same object (a reused id is computed
again). An entry goes when its policy does (the weak reference's callback), so the
table holds what the live policies need and no more: a bound that started over past
4,096 entries recomputed every value at each tick beyond ~2,000 rollouts.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["per_policy"]

T = TypeVar("T")
_Slot = tuple[str, int, Hashable]
_TABLE: dict[_Slot, tuple[weakref.ref[Any], Any]] = {}


def per_policy(kind: str, policy: Any, key: Hashable, build: Callable[[], T]) -> T:
    """``build()`` for (``kind``, ``policy``, ``key``), remembered while the policy lives."""
    slot = (kind, id(policy), key)
    found = _TABLE.get(slot)
    if found is not None and found[0]() is policy:
        value: T = found[1]
        return value
    value = build()
    _TABLE[slot] = (weakref.ref(policy, _Forget(slot)), value)
    return value


class _Forget:
    """A weak reference's callback: drop its entry, and only its entry (the id may
    name a newer policy's entry by then)."""

    __slots__ = ("slot",)

    def __init__(self, slot: _Slot) -> None:
        self.slot = slot

    def __call__(self, ref: weakref.ref[Any]) -> None:
        found = _TABLE.get(self.slot)
        if found is not None and found[0] is ref:
            _TABLE.pop(self.slot, None)


def entries() -> int:
    """How many values are remembered (for tests)."""
    return len(_TABLE)
