"""Size and depth limits on what callers hand the registry, checked before any work.

Metadata (and lineage attributes), signatures, tags and feature lists are stored with
every version and read back by every ``info``, ``compare`` and docs sync; an 11 MB
metadata dict or one nested 5,000 deep costs seconds, memory and database space (or a
``RecursionError``) for nothing a model needs. ``InputLimits`` holds the defaults;
``ModelRegistry(limits=...)`` changes them. A value over a limit is ``InvalidInput``
naming what, its size and the limit, raised before a blob is stored or a row written.
Depth is measured without recursion, so any depth is refused cleanly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from registry.errors import InvalidInput

__all__ = ["DEFAULT_LIMITS", "InputLimits", "check_depth", "check_encoded_size"]


@dataclass(frozen=True, slots=True)
class InputLimits:
    metadata_bytes: int = 256 * 1024  # metadata or lineage attributes, as JSON
    depth: int = 32  # nesting of mappings and lists in metadata
    signature_bytes: int = 256 * 1024
    tags: int = 64
    features: int = 10_000
    feature_name: int = 256  # characters

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) < 1:
                raise InvalidInput(f"limits.{name} must be at least 1")


DEFAULT_LIMITS = InputLimits()


def check_depth(value: object, what: str, limit: int) -> None:
    """``InvalidInput`` when mappings and lists in ``value`` nest deeper than ``limit``
    (a cycle nests without end, so it is refused too)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Sequence[object]
        if isinstance(item, Mapping):
            children = list(item.values())
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            raise InvalidInput(f"{what} is nested deeper than {limit} levels (the limit)")
        stack.extend((child, depth + 1) for child in children)


def check_encoded_size(value: Any, what: str, limit: int) -> bytes:
    """``value`` as compact JSON, or ``InvalidInput`` when it is over ``limit`` bytes."""
    encoded = json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    if len(encoded) > limit:
        raise InvalidInput(
            f"{what} is {len(encoded)} bytes as JSON, over the limit of {limit} bytes"
        )
    return encoded
