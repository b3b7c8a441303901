"""Semantic versions and the bump rules (pure)."""

from __future__ import annotations

import pytest

from registry.errors import InvalidVersion
from registry.versions import Bump, SemVer, bump_between, required_bump, split_model_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [("v3", "v3.0.0"), ("3.1", "v3.1.0"), ("v3.1.0", "v3.1.0"), ("10.20.30", "v10.20.30")],
)
def test_parse_forms(text: str, expected: str) -> None:
    """Short and long forms all display canonically as vMAJOR.MINOR.PATCH."""
    assert str(SemVer.parse(text)) == expected


@pytest.mark.parametrize("text", ["", "v", "3.1.0.1", "v-1", "latest", "1.x", "v1..2", 3])
def test_parse_rejects(text: object) -> None:
    """Anything else is an InvalidVersion naming the input."""
    with pytest.raises(InvalidVersion):
        SemVer.parse(text)


@pytest.mark.parametrize(
    ("kind", "expected"), [("major", "v4.0.0"), ("minor", "v3.1.0"), ("patch", "v3.0.1")]
)
def test_bump(kind: str, expected: str) -> None:
    """The seed's examples: v3.0.0 -> v4.0.0 / v3.1.0 / v3.0.1."""
    assert str(SemVer(3).bump(kind)) == expected


def test_ordering_is_numeric() -> None:
    """v1.10.0 sorts after v1.9.0."""
    assert SemVer.parse("v1.10") > SemVer.parse("v1.9")


def test_split_model_ref() -> None:
    """The seed names versions as NAME-vX.Y.Z, with dashes inside the name."""
    assert split_model_ref("fraud-detection-v3.1.0") == ("fraud-detection", SemVer(3, 1, 0))
    with pytest.raises(InvalidVersion):
        split_model_ref("fraud-detection")


@pytest.mark.parametrize(
    ("old", "new", "bump"),
    [
        (["a"], ["a"], Bump.PATCH),
        (["a"], ["a", "b"], Bump.MINOR),
        (["a", "b"], ["b"], Bump.MAJOR),
        (None, ["a"], Bump.PATCH),
    ],
)
def test_required_bump_for_features(old: list[str] | None, new: list[str], bump: Bump) -> None:
    """Undeclared features are not compared; removal is breaking, addition minor."""
    assert required_bump(old, new, None, None).bump is bump


def test_bump_between() -> None:
    """The size of a step between two versions; None when not increasing."""
    assert bump_between(SemVer(1, 2, 3), SemVer(2)) is Bump.MAJOR
    assert bump_between(SemVer(1, 2, 3), SemVer(1, 3)) is Bump.MINOR
    assert bump_between(SemVer(1, 2, 3), SemVer(1, 2, 4)) is Bump.PATCH
    assert bump_between(SemVer(1, 2, 3), SemVer(1, 2, 3)) is None
