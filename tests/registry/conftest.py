from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import ModelRegistry
from tests.clock import Clock


@pytest.fixture
def artifact_uri() -> str | None:
    """Where ``reg`` keeps artifacts: None is its home; the contract suite adds S3."""
    return None


@pytest.fixture
def reg(
    db_url: str, tmp_path: Path, clock: Clock, artifact_uri: str | None
) -> Iterator[ModelRegistry]:
    registry = ModelRegistry(
        db_url, home=tmp_path / "home", actor="alice", clock=clock, artifact_uri=artifact_uri
    )
    yield registry
    registry.close()
