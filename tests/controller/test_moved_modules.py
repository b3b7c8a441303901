"""The old module paths of moved public names still import, warning where they went."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("controller.serving", "RouteTable", "serving.route_table"),
        ("controller.routing", "Route", "serving.route"),
        ("controller.routing", "register_router", "controller.adapters.routing"),
    ],
)
def test_the_old_path_warns_and_gives_the_same_object(old: str, name: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match="moved"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
