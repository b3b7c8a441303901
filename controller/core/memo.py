"""Values derived from a policy, computed once per policy object.

Policies are frozen pydantic models but not hashable (they hold lists), and a reload
builds new ones; so derived values are kept by the policy's ``id`` beside a weak
reference that proves the id still names the same object (a dead or reused id is
computed again). The table is bounded: past ``LIMIT`` entries it starts over.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["per_policy"]

T = TypeVar("T")
LIMIT = 4096
_TABLE: dict[tuple[str, int, Hashable], tuple[weakref.ref[Any], Any]] = {}


def per_policy(kind: str, policy: Any, key: Hashable, build: Callable[[], T]) -> T:
    """``build()`` for (``kind``, ``policy``, ``key``), remembered while the policy lives."""
    slot = (kind, id(policy), key)
    found = _TABLE.get(slot)
    if found is not None and found[0]() is policy:
        value: T = found[1]
        return value
    value = build()
    if len(_TABLE) > LIMIT:
        _TABLE.clear()
    _TABLE[slot] = (weakref.ref(policy), value)
    return value
