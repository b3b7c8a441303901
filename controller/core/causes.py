"""Why a decision was taken, as a typed value.

Every ``Decision`` carries one ``Cause``; it is stored with the decision's numbers
(``numbers["cause"]``) so that metrics, notifications and ``policy simulate`` can
tell a statistical rollback from a trigger or a timeout without reading prose.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Cause"]


class Cause(StrEnum):
    # a rollout moving on
    STARTED = "started"
    ADVANCED = "advanced"  # next canary step: no harm seen at the end of its dwell
    RESTORED = "restored"  # the step's split back after a wait on the control
    # holding
    SETTLING = "settling"  # serving is still switching to the new split
    CLOCK_STEPPED = "clock_stepped"  # the wall clock stepped: the step's window restarts
    COLLECTING = "collecting"  # fewer units than min_samples
    DWELLING = "dwelling"  # the step's (or fixed split's) duration is not over
    AWAITING_EVIDENCE = "awaiting_evidence"  # the last step waits for evidence to promote
    PAUSED = "paused"
    MISSING_DATA = "missing_data"  # held, or rolled back after failure_limit
    # ending
    HARM = "harm"  # a metric significantly worse than control
    TRIGGER = "trigger"  # a threshold trigger breached
    MAX_DURATION = "max_duration"  # undecided at max_duration
    NO_GAIN = "no_gain"  # the fixed-horizon end without evidence of a gain
    EFFICACY = "efficacy"  # a primary significantly better, guardrails non-inferior
    AWAITING_APPROVAL = "awaiting_approval"  # ready to promote, waiting for approval
    APPROVED = "approved"
    REJECTED = "rejected"
    OPERATOR = "operator"  # pause, resume, abort or rollback by a person
    ALERT = "alert"  # an Alertmanager alert routed to a rollback, pause or abort
    GUARD = "guard"  # the production guard's trigger fired
    SUPERSEDED = "superseded"  # the registry moved the rollout's versions outside it
    CORRUPT_ARTIFACT = "corrupt_artifact"  # the candidate's stored artifact fails its digest

    @property
    def on_evidence(self) -> bool:
        """True for endings the data decided (harm, trigger, efficacy), not the clock."""
        return self in (Cause.HARM, Cause.TRIGGER, Cause.EFFICACY, Cause.AWAITING_APPROVAL)
