"""Semantic versions and the bump a change between two versions requires.

Pure functions: no storage, no clock. ``required_bump`` is what makes automatic
versioning and the check of explicit versions agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from registry.errors import InvalidVersion

_VERSION = re.compile(r"v?(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?")
_MODEL_REF = re.compile(r"(?P<name>.+?)-(?P<version>v\d{1,9}(?:\.\d{1,9}){0,2})")


@dataclass(frozen=True, order=True, slots=True)
class SemVer:
    """A ``major.minor.patch`` version; displayed as ``v3.1.0``."""

    major: int
    minor: int = 0
    patch: int = 0

    @classmethod
    def parse(cls, text: object) -> SemVer:
        """Accept ``v3``, ``3.1``, ``v3.1.0`` (and a ``SemVer``); raise ``InvalidVersion``."""
        if isinstance(text, SemVer):
            return text
        if not isinstance(text, str):
            raise InvalidVersion(f"version must be a string like 'v3.1.0', got {text!r}")
        m = _VERSION.fullmatch(text.strip())
        if m is None:
            raise InvalidVersion(
                f"invalid version {text!r}: expected [v]MAJOR[.MINOR[.PATCH]], e.g. 'v3.1.0'"
            )
        return cls(int(m[1]), int(m[2] or 0), int(m[3] or 0))

    def bump(self, kind: str) -> SemVer:
        """The next version of the given kind: ``major``, ``minor`` or ``patch``."""
        if kind == "major":
            return SemVer(self.major + 1, 0, 0)
        if kind == "minor":
            return SemVer(self.major, self.minor + 1, 0)
        if kind == "patch":
            return SemVer(self.major, self.minor, self.patch + 1)
        raise InvalidVersion(f"version_type must be 'major', 'minor' or 'patch', got {kind!r}")

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"


def split_model_ref(ref: str) -> tuple[str, SemVer]:
    """Split ``fraud-detection-v3.1.0`` into ``("fraud-detection", SemVer(3, 1, 0))``."""
    m = _MODEL_REF.fullmatch(ref.strip()) if isinstance(ref, str) else None
    if m is None:
        raise InvalidVersion(f"model reference {ref!r} is not NAME-vMAJOR[.MINOR[.PATCH]]")
    return m["name"], SemVer.parse(m["version"])


class Bump(IntEnum):
    """How much a version must move; ordered so ``max`` picks the strongest."""

    PATCH = 0
    MINOR = 1
    MAJOR = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class ChangeReport:
    """Differences between a parent and a new version, and the bump they require."""

    bump: Bump
    breaking: list[str] = field(default_factory=list)
    additive: list[str] = field(default_factory=list)


def _inputs(signature: Mapping[str, Any] | None) -> dict[str, str]:
    if not signature:
        return {}
    raw = signature.get("inputs") or {}
    return {str(k): str(v) for k, v in dict(raw).items()}


def required_bump(
    parent_features: Iterable[str] | None,
    features: Iterable[str] | None,
    parent_signature: Mapping[str, Any] | None,
    signature: Mapping[str, Any] | None,
) -> ChangeReport:
    """Classify the change from a parent version.

    Removed or renamed features, removed inputs and inputs whose type changed are
    breaking (major); added features or inputs are minor; anything else is a patch.
    An absent side (``None``) means "not declared" and is not compared, so a version
    that simply omits its features is not a breaking change.
    """
    breaking: list[str] = []
    additive: list[str] = []
    if parent_features is not None and features is not None:
        old, new = list(parent_features), list(features)
        old_set, new_set = set(old), set(new)
        breaking += [f"feature removed: {f}" for f in old if f not in new_set]
        additive += [f"feature added: {f}" for f in new if f not in old_set]
    if parent_signature is not None and signature is not None:
        old_in, new_in = _inputs(parent_signature), _inputs(signature)
        for name, typ in old_in.items():
            if name not in new_in:
                breaking.append(f"signature input removed: {name}")
            elif new_in[name] != typ:
                breaking.append(f"signature input {name} changed type: {typ} -> {new_in[name]}")
        additive += [f"signature input added: {n}" for n in new_in if n not in old_in]
    bump = Bump.MAJOR if breaking else Bump.MINOR if additive else Bump.PATCH
    return ChangeReport(bump, breaking, additive)


def bump_between(parent: SemVer, child: SemVer) -> Bump | None:
    """The bump ``child`` represents over ``parent``, or ``None`` if it is not greater."""
    if child <= parent:
        return None
    if child.major > parent.major:
        return Bump.MAJOR
    if child.minor > parent.minor:
        return Bump.MINOR
    return Bump.PATCH
