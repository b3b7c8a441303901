"""The lazy package fronts of monitors and registry: every public name resolves, and the
table that loads them lists exactly the public names."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["monitors", "registry"])
def test_every_public_name_loads(package: str) -> None:
    """Each name in __all__ is in the loading table and resolves to its module's object."""
    front = importlib.import_module(package)
    table = front._WHERE
    assert set(front.__all__) == set(table)
    for name in front.__all__:
        value = getattr(front, name)
        assert value is getattr(importlib.import_module(table[name]), name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    """A name the front does not have fails as any missing attribute does."""
    import monitors

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = monitors.Nope  # type: ignore[attr-defined]
