"""controller: the daemon that runs rollouts from a config file.

Where each job lives (inner layers first; an import-linter contract keeps every
layer from importing the ones above it: runtime -> http -> shell -> adapters -> core):

- ``core/``: pure decisions. Phases and their table, the policy models, ``decide``,
  typed causes, the horizon clock, route planning, the guard's judgement, the
  production-rollback rule and the approval-wait rule. No clock, database, network
  or file; a second contract forbids it those libraries.
- ``adapters/``: how the shell reaches the world: the rollout store and the production
  ledger (own Alembic history), the guard's and the alert ledger's tables, routers by
  ``kind:``, metric sources, the registry gateway, notifications, Prometheus metrics.
- ``shell/``: the jobs. ``actuator`` is the only code that changes the world (route
  pushes, registry moves, intents, production rollbacks, notifications); ``controller``
  (``Controller``: ticks, operator actions, starting rollouts, router reconciliation),
  ``measure``, ``alerts`` and ``guard_pass`` decide what to ask of it.
- ``http/``: the API (``app``), the one role check (``access``), tokens (``auth``),
  body limits (``limits``).
- ``runtime/``: the process: wiring (``daemon``), jobs (``scheduler``), SIGHUP
  (``reloader``), ``heartbeat``, ``systemd``, JSON ``logging`` (test failpoints:
  ``registry.faults``).
- Outside the layers: ``config`` (the file's models), ``config_advice``, ``errors``,
  ``cli`` and ``policy_cli`` (the ``modelreg`` command), ``simulation`` (``policy
  simulate``) and ``demo`` (``./dev demo``). Serving-side code is the ``serving``
  package, which imports none of this.
"""
