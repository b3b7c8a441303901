"""kill -9 at seeded points of live canaries with the registry on PostgreSQL, eight
times, then every invariant, PostgreSQL's consistency checks included.

The kill loop of ``test_crash_loop`` (``tests.faults.kill_loop``) with the daemon's
``registry.url`` on a scratch PostgreSQL schema: the registry, the rollouts, their
decisions and intents all live there (ingest and routes stay in the stack's home).
Canaries of ten one-second steps (5% to 50%, then promotion). Straight after the last
kill the database is checked as it was left, mid-transaction as likely as not; then
the rollouts finish under a clean daemon and the invariants hold
(``tests.invariants``): on PostgreSQL every index valid and passing ``amcheck``
(``heapallindexed``), no foreign key's child row without its parent, no constraint
NOT VALID; then artifacts, one production version, every stage move audited once
with the chain intact, promotion only on a recorded passing analysis, the router
holding what the database wants, and each rollout's decisions following the policy's
steps once each.

Seeded (``MODELREG_FAULT_SEED``, default 0) so a failing sequence can be replayed.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.controller.stack import build_stack, fast_canary
from tests.faults.kill_loop import finish_and_check, kill_loop
from tests.invariants import database_intact

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration, pytest.mark.postgres]

STEPS = [*(float(s) for s in range(5, 51, 5)), 100.0]
CYCLES = 8


@pytest.mark.timeout(600)
def test_eight_kills_with_the_registry_on_postgres(tmp_path: Path, pg_url: str) -> None:
    rng = random.Random(int(os.environ.get("MODELREG_FAULT_SEED", "0")))
    stack = build_stack(tmp_path, registry_url=pg_url, **fast_canary(STEPS))
    stack.register("1.0.0", "production")
    stack.start_daemon()
    stack.start_workload()
    try:
        kills = kill_loop(stack, cycles=CYCLES, rng=rng)
        # Straight after the last kill, before any recovery: still consistent.
        assert database_intact(pg_url) == [], kills
        finish_and_check(stack, STEPS, kills)
    finally:
        stack.stop()
    assert any("died" in k for k in kills), kills  # the crash windows were really hit
    stack.check_invariants()
