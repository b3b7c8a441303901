from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import ModelRegistry
from tests.clock import Clock


@pytest.fixture
def reg(db_url: str, tmp_path: Path, clock: Clock) -> Iterator[ModelRegistry]:
    registry = ModelRegistry(db_url, home=tmp_path / "home", actor="alice", clock=clock)
    yield registry
    registry.close()
