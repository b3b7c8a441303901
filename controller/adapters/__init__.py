"""The controller's adapters: how the shell reaches the world, one kind of thing each.

- ``rollout_store``: rollouts, decisions and intents in the registry's database
  (its own Alembic history; the records and the state's one serialiser are
  ``rollout_records``); ``production_ledger`` every production rollback made or
  begun (guard and alerts); ``guard_store`` the guard's trigger streaks;
  ``alert_ledger`` the alert deliveries already acted on; ``epoch`` their times;
  ``writes`` their write transactions, group-committed with the registry's.
- ``routing`` + ``routers/``: the router protocol and one module per ``kind:``.
- ``registry_gateway``: what the shell reads from the registry (approvals, how
  production got there), failures as data.
- ``sources``: the configured metric sources, one ``MetricSource`` each.
- ``notify``: decision notifications to webhooks, off the caller's thread.
- ``metrics``: the daemon's Prometheus metrics.

Adapters know nothing of the shell, the HTTP app or the runtime (the layers contract).
"""
