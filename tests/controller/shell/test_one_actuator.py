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

ROOT = Path(__file__).resolve().parents[3] / "controller"
ALLOWED = {ROOT / "shell" / "actuator.py", ROOT / "demo.py"}
# Registry stage moves and approvals, rollout-store writes, ledger writes, notifications.
WRITES = frozenset({
    "promote_model", "rollback", "approve_model", "reject_model", "promote_to",
    "record_hold", "record_intent", "confirm", "abandon", "record_pushed",
    "begin", "finish", "on_decision",
})  # fmt: skip


def _writes(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        pushes = name == "set" and any(
            isinstance(a, ast.Name) and a.id == "route" for a in node.args
        )  # a router's set(route)
        if name in WRITES or pushes:
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
