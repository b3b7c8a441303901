"""The controller's pure core: what to do, never doing it.

- ``phases``: the rollout phases and the table of legal moves.
- ``policy``: one model's rollout policy, validated (pydantic models).
- ``decide``: ``decide(policy, state, observations, *, now) -> Decision``, the rule that
  judges a rollout (``abtest`` verdicts, triggers, approvals, dwell and horizon).
- ``causes``: why a decision was taken, as a typed value.
- ``horizon``: the policy's planned clock, looks and harm point.
- ``routes``: the route a phase and weight imply, and rebasing over what serving holds.
- ``guard``: the production guard's judgement of rollback triggers.
- ``memo``: values derived from a policy, computed once per policy object.

Nothing here reads a clock, a database, a network or a file; ``now`` and every
observation are passed in. An import-linter contract keeps it so (no sqlalchemy,
httpx, pandas, fastapi, apscheduler, structlog, prometheus_client, nor the shell's
modules), and a test checks that importing it loads none of them.
"""
