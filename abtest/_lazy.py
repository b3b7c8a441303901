"""Modules imported on first use, so that importing a statistics module stays cheap.

``scipy.special`` alone takes about 0.3 s to import and ``scipy.stats`` twice that.
The daemon imports the decision rule at start, but the first analysis runs only
when a rollout is judged, and the CLI's ``--help`` or ``list`` never runs one. A
:class:`LazyModule` stands where the module would be bound; its first attribute
read imports the module (under Python's import lock, so concurrent first reads
from scheduler threads are safe) and keeps the attribute on the instance, so
later reads cost what a module attribute read costs.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """A module name whose import waits until one of its attributes is read."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        # Called only for attributes not yet on the instance: import, then keep.
        value = getattr(importlib.import_module(self._name), attr)
        setattr(self, attr, value)
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
