"""The imperative shell: the jobs that measure, decide (through ``controller.core``) and act.

- ``actuator``: the only code that changes the world (route pushes, registry moves,
  notifications, intent and confirm, production rollbacks), under a per-model lock.
- ``controller``: ``Controller``, the facade the runtime and the HTTP app hold.
- ``tick``: one rollout evaluation; ``measure``: both arms' measurements;
  ``watch``: starting rollouts and keeping routers in line with the database;
  ``alerts``: Alertmanager actions; ``guard_pass``: one pass of the production guard.
"""
