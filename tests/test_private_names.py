"""No module reaches into another's private names.

A ``_name`` is a module's or a class's own business: the guard once called the
controller's ``_measure``, ``_lock`` and ``_push_after_production_change``, and every
such call ties two modules together behind their public API's back. This test reads
the project's source (not tests, not benchmarks) and fails on:

- ``from a.module import _name`` of another module's private name (a package's private
  module, such as ``abtest._validate``, may be imported inside its own package);
- ``something._name`` where ``something`` is not ``self`` or ``cls`` and ``_name`` is a
  private name another module of the project defines, not this one (so a class may
  reach another instance of itself, and a library's own underscore API, such as
  SQLAlchemy's ``row._mapping`` or ``os._exit``, is not ours to judge).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("registry", "abtest", "monitors", "controller", "serving")


def _sources() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined(tree: ast.AST) -> set[str]:
    """Private names a module defines: functions, classes, assignments, attributes."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            found.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found.add(node.target.id)
    return {name for name in found if _private(name)}


def _trees() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8")) for path in _sources()}


def _violations() -> list[str]:
    trees = _trees()
    defined = {path: _defined(tree) for path, tree in trees.items()}
    ours = set().union(*defined.values())
    found = []
    for path, tree in trees.items():
        where = path.relative_to(ROOT)
        own = defined[path]
        package = where.parts[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] not in PACKAGES:
                    continue
                for alias in node.names:
                    inside = (
                        node.module == package
                        and (ROOT / package / alias.name).with_suffix(".py").exists()
                    )
                    if _private(alias.name) and not inside:
                        found.append(f"{where}:{node.lineno}: imports {node.module}.{alias.name}")
            elif (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and node.attr in ours
                and node.attr not in own
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(
                    f"{where}:{node.lineno}: uses .{node.attr} of {ast.unparse(node.value)}"
                )
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    assert _violations() == []


def test_the_check_sees_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule fails when broken: another module's private method or name is reported."""
    owner = ast.parse("class A:\n    def _go(self):\n        pass\n\n_TABLE = {}\n")
    user = ast.parse("from controller.owner import _TABLE\n\ndef f(a):\n    a._go()\n")
    trees = {ROOT / "controller" / "owner.py": owner, ROOT / "controller" / "user.py": user}
    monkeypatch.setattr("tests.test_private_names._trees", lambda: trees)
    assert sorted(_violations()) == [
        "controller/user.py:1: imports controller.owner._TABLE",
        "controller/user.py:4: uses ._go of a",
    ]
