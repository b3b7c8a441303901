"""controller: the daemon that runs rollouts from a config file.

Layers, pure first:

- ``config`` (pydantic, ``load_config``), ``phases`` (the transition table),
  ``decide`` (``decide(policy, state, observations, *, now) -> Decision``): no I/O.
- ``store`` (rollouts and decisions, own Alembic history), ``reconcile`` (one tick:
  load, measure, decide, record intent, act, confirm), ``scheduler`` (APScheduler
  jobs rebuilt from the database), ``routing`` + ``routers/`` (by ``kind:``).
- ``api`` (FastAPI), ``metrics``, ``logging``, ``daemon`` (wiring, signals,
  systemd), ``cli`` (the ``modelreg`` command), ``serving`` (``RouteTable`` for
  serving code), ``workload`` and ``demo`` (the simulated fleet and ``./dev demo``).
"""
