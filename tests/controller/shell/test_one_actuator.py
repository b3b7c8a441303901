"""Only the actuator changes the world.

``controller.shell.actuator`` is the one place that pushes routes, moves registry
stages, writes rollout intents and decisions, writes the production ledger and hands
out notifications. This test reads every other module of the daemon's package and
fails if one of them calls those writes itself. The adapters implement the writes
(and are called only by the actuator); ``demo`` is a person using the registry.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3] / "controller"
ALLOWED = {ROOT / "shell" / "actuator.py", ROOT / "demo.py"}
# Registry stage moves and approvals, rollout-store writes, ledger writes, notifications.
WRITES = frozenset({
    "promote_model", "rollback", "approve_model", "reject_model", "promote_to",
    "register_model", "deprecate_model", "set_model_signature",
    "create", "record_hold", "record_intent", "confirm", "abandon", "record_pushed",
    "on_decision",
})  # fmt: skip
LEDGER_WRITES = (
    "ledger.begin",
    "ledger.finish",
    "ledger.finish_in",
    "ledger.record",
    "ledger.record_alone",
)  # the production ledger's rows


def _writes(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        pushes = name == "set" and any(
            isinstance(a, ast.Name) and a.id == "route" for a in node.args
        )  # a router's set(route)
        ledger = ast.unparse(node.func).endswith(LEDGER_WRITES)
        if name in WRITES or pushes or ledger:
            found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: .{name}(...)")
    return found


def test_only_the_actuator_changes_the_world() -> None:
    callers = [
        line
        for path in sorted(ROOT.rglob("*.py"))
        if path not in ALLOWED and "adapters" not in path.parts and "migrations" not in path.parts
        for line in _writes(path)
    ]
    assert callers == []


def test_the_actuator_does_them() -> None:
    """The check is not vacuous: the actuator itself is found making these calls."""
    found = {line.split(": .", 1)[1] for line in _writes(ROOT / "shell" / "actuator.py")}
    assert {"promote_model(...)", "rollback(...)", "record_intent(...)", "set(...)"} <= found


def test_an_effect_outside_the_models_lock_is_refused(tmp_path: Path) -> None:
    """The actuator checks its own rule: a push, an intent or a new rollout for a model
    whose lock this thread does not hold raises instead of racing another actor."""
    from controller.adapters.rollout_store import RolloutStore
    from monitors import IngestStore
    from registry import ModelRegistry
    from serving.route import Backend, Route
    from tests.clock import Clock

    from ..support import config, file_controller

    routes = tmp_path / "routes.json"
    ingest_url = f"sqlite:///{tmp_path}/ingest.db"
    with ModelRegistry(home=tmp_path / "home") as registry:
        store = RolloutStore.open(registry.url)
        ingest = IngestStore.open(ingest_url)
        controller = file_controller(config(tmp_path, routes, ingest_url), registry, store,
                                     ingest, routes, Clock())  # fmt: skip
        actuator = controller.actuator
        route = Route("fraud", (Backend("v1.0.0", 100),), revision=1)
        try:
            with pytest.raises(RuntimeError, match="only under its lock"):
                actuator.push(route)
            with actuator.lock("other"), pytest.raises(RuntimeError, match="only under"):
                actuator.push(route)  # another model's lock is not this one's
            with actuator.lock("fraud"):
                actuator.push(route)  # under its lock: pushed
            assert routes.exists()
        finally:
            ingest.close()
            store.close()
