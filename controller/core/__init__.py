"""The controller's pure core: what to do, never doing it.

- ``phases``: the rollout phases and the table of legal moves.
- ``state``: a rollout's state (``RolloutState``) and one evaluation's ``Observations``.
- ``policy``: one model's rollout policy, validated (pydantic models).
- ``decide``: ``decide(policy, state, observations, *, now) -> Decision``, the rule that
  judges a rollout (``abtest`` verdicts, triggers, approvals, dwell and horizon), and
  ``operator`` for a person's or an alert's action.
- ``decisions``: the decision variants, each with a typed cause (``causes``).
- ``horizon``: the policy's planned clock, looks and harm point.
- ``routes``: the route a phase and weight imply, and rebasing over what serving holds.
- ``guard``: the production guard's judgement of rollback triggers.
- ``production``: whether an alert or the guard may roll production back now.
- ``approvals``: whether an approval wait just became overdue (reported once).
- ``memo``: values derived from a policy, computed once per policy object.

Nothing here reads a clock, a database, a network or a file; ``now`` and every
observation are passed in. An import-linter contract keeps it so (no sqlalchemy,
httpx, pandas, fastapi, apscheduler, structlog, prometheus_client, nor the layers
above it), and a test checks that importing any of its modules loads none of them.
"""
