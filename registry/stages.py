"""The stage lifecycle as one table: which moves are legal.

``dev -> staging -> production -> archived``. Going back is allowed where it is
safe (staging -> dev, archived -> staging for re-validation); entering
production from anywhere but staging needs ``force`` with a reason, and leaving
production for an older version is what ``rollback`` is for.
"""

from __future__ import annotations

from collections.abc import Sequence

from registry.errors import IllegalTransition, InvalidInput
from registry.records import Transition
from registry.versions import SemVer

STAGES = ("dev", "staging", "production", "archived")
REGISTER_STAGES = ("dev", "staging")

LEGAL: frozenset[tuple[str, str]] = frozenset(
    {
        ("dev", "staging"),
        ("dev", "archived"),
        ("staging", "production"),
        ("staging", "dev"),
        ("staging", "archived"),
        ("production", "archived"),
        ("archived", "staging"),
    }
)


def stage_name(value: object) -> str:
    if value == "prod":
        return "production"
    if not isinstance(value, str) or value not in STAGES:
        raise InvalidInput(f"unknown stage {value!r}: expected one of {', '.join(STAGES)}")
    return value


def check_move(
    from_stage: str, to_stage: str, *, force: bool, reason: str | None, ref: str = "the version"
) -> None:
    """Raise ``IllegalTransition`` naming the version (``ref``, e.g. ``fraud v1.2.0``) and
    both stages unless the move is allowed."""
    if from_stage == to_stage:
        raise IllegalTransition(
            f"{ref} is already in {to_stage!r}", from_stage=from_stage, to_stage=to_stage
        )
    if (from_stage, to_stage) in LEGAL:
        return
    if force:
        if not reason or not reason.strip():
            raise IllegalTransition(
                f"forcing {ref} {from_stage} -> {to_stage} requires a reason",
                from_stage=from_stage,
                to_stage=to_stage,
            )
        return
    allowed = sorted(t for f, t in LEGAL if f == from_stage)
    raise IllegalTransition(
        f"illegal transition of {ref}: {from_stage} -> {to_stage}; from {from_stage} a version "
        f"may go to {', '.join(allowed)} (force=True with a reason overrides; on the command "
        "line --force --reason)",
        from_stage=from_stage,
        to_stage=to_stage,
    )


def last_stable(history: Sequence[Transition], current: SemVer | None) -> SemVer | None:
    """The most recent production version before ``current`` that was not rolled back.

    The one rule for "where does a rollback go": the default target of
    ``rollback()`` and the living docs' rollback plan. Skipping rolled-back
    versions makes repeated rollbacks walk backwards (v3 -> v2 -> v1) instead of
    flipping between the last two.
    """
    rolled_back = {
        t.version for t in history if t.kind == "rollback" and t.from_stage == "production"
    }
    for t in reversed(history):
        if t.to_stage == "production" and t.version != current and t.version not in rolled_back:
            return t.version
    return None
