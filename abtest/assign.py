"""Sticky, deterministic assignment of a unit to an arm by hashing.

``bucket`` maps ``(salt, unit_id)`` to a float in ``[0, 1)`` from the first 8
bytes of a BLAKE2b digest; ``assign`` puts the unit in treatment iff its bucket
is below the treatment weight. Monotone by construction: a unit in treatment
at 10% stays in treatment at 25%, so raising a canary's weight only moves
units from control to treatment. Change the salt to reshuffle for a new
experiment. Pure and fast enough for the serving hot path (about a
microsecond per call).
"""

from __future__ import annotations

import hashlib
from typing import Literal

from abtest import _validate as v

__all__ = ["Arm", "assign", "bucket"]

Arm = Literal["control", "treatment"]
_SCALE = 2.0**-64


def _bytes(name: str, value: str | int | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode("ascii")
    raise ValueError(f"{name} must be str, int or bytes, got {type(value).__name__}")


def bucket(unit_id: str | int | bytes, *, salt: str | bytes) -> float:
    """Uniform position of ``unit_id`` in ``[0, 1)`` for this ``salt``.

    The salt is length-prefixed so that no (salt, id) pair collides with
    another by moving bytes across the boundary.
    """
    s = _bytes("salt", salt)
    digest = hashlib.blake2b(
        len(s).to_bytes(4, "big") + s + _bytes("unit_id", unit_id), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") * _SCALE


def assign(unit_id: str | int | bytes, treatment_weight: float, *, salt: str | bytes) -> Arm:
    """``treatment`` iff ``bucket(unit_id, salt) < treatment_weight`` (a fraction in [0, 1])."""
    w = v.closed_unit("treatment_weight", treatment_weight)
    return "treatment" if bucket(unit_id, salt=salt) < w else "control"
