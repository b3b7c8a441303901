"""registry_gateway.candidate_facts: the registry's facts for many rollouts at once equal
those read rollout by rollout (read_facts), whatever the approvals (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from controller.adapters.registry_gateway import candidate_facts, read_facts
from registry import ModelRegistry

from ..support import register

PAIRS = [
    ("plain", "v1.1.0"),
    ("plain", "v9.9.9"),  # no such version
    ("guarded", "v1.1.0"),  # the model's own approval policy
    ("approved", "v1.1.0"),  # an approval recorded, no policy
    ("rejected", "v1.1.0"),  # a rejection recorded
    ("archived", "v1.1.0"),  # the candidate moved out of staging
    ("early", "v1.1.0"),  # the candidate in dev
    ("lone", "v1.1.0"),  # no production version
]


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[ModelRegistry]:
    reg = ModelRegistry(url=db_url, home=tmp_path / "home", actor="tester")
    for model in dict.fromkeys(m for m, _ in PAIRS):
        if model != "lone":
            register(reg, tmp_path, model, "v1.0.0", "production")
        register(reg, tmp_path, model, "v1.1.0", "dev" if model == "early" else "staging")
    reg.set_approval_required("production", ["alice", "bob"], 2, model="guarded")
    reg.approve_model("approved", "v1.1.0", "carol", "fine")
    reg.reject_model("rejected", "v1.1.0", "dave", "not fine")
    reg.promote_model("archived", "v1.1.0", to_stage="archived", reason="gone")
    yield reg
    reg.close()


def test_equal_to_one_by_one_reads(registry: ModelRegistry) -> None:
    """Every pair's facts, batched, are those read alone: production, stage, approvals."""
    batched = candidate_facts(registry, PAIRS)
    assert batched == {pair: read_facts(registry, *pair) for pair in PAIRS}
    assert batched[("rejected", "v1.1.0")].approvals.rejected == ("dave: not fine",)
    assert batched[("guarded", "v1.1.0")].approval_required
    assert batched[("archived", "v1.1.0")].stage == "archived"
    assert batched[("plain", "v9.9.9")].stage is None
    assert batched[("lone", "v1.1.0")].production is None


def test_equal_under_a_registry_wide_policy(registry: ModelRegistry) -> None:
    """A registry-wide policy guards every model: still the same facts."""
    registry.set_approval_required("production", ["erin"])
    batched = candidate_facts(registry, PAIRS)
    assert batched == {pair: read_facts(registry, *pair) for pair in PAIRS}
    assert batched[("plain", "v1.1.0")].approval_required


def test_plain_pairs_cost_the_same_few_queries(registry: ModelRegistry, tmp_path: Path) -> None:
    """Without approvals anywhere, three pairs or thirty: the same statements."""
    counts = []
    for n in (3, 30):
        models = [f"n{n}x{i}" for i in range(n)]
        for model in models:
            register(registry, tmp_path, model, "v1.0.0", "production")
            register(registry, tmp_path, model, "v1.1.0", "staging")
        seen: list[str] = []

        def count(*args: Any, into: list[str] = seen) -> None:
            into.append(args[2])

        sa.event.listen(sa.Engine, "before_cursor_execute", count)
        try:
            facts = candidate_facts(registry, [(m, "v1.1.0") for m in models])
        finally:
            sa.event.remove(sa.Engine, "before_cursor_execute", count)
        assert {f.stage for f in facts.values()} == {"staging"}
        counts.append(len(seen))
    assert counts[0] == counts[1]
