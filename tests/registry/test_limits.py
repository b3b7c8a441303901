"""Bounded input: metadata, lineage attributes, signatures, tags and features have size
and depth limits, refused before any work (no blob stored, no row written), in one
line from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from registry import InvalidInput, ModelRegistry
from registry.limits import DEFAULT_LIMITS, InputLimits


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(home=tmp_path / "home", actor="tester")


def _nothing_stored(registry: ModelRegistry) -> None:
    assert registry.list_models() == []
    assert list(registry.artifacts.digests()) == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"metadata": _nested(33)}, "nested deeper than 32 levels"),
        ({"metadata": _nested(5000)}, "nested deeper than 32 levels"),
        ({"metadata": {"blob": "x" * (256 * 1024)}}, "over the limit of 262144 bytes"),
        ({"signature": {"inputs": {f"f{i}": "float" for i in range(20000)}}},
         "the signature is"),
        ({"tags": [f"t{i}" for i in range(65)]}, "65 tags, over the limit of 64"),
        ({"features": [f"f{i}" for i in range(10_001)]}, "10001 features"),
        ({"features": ["x" * 257]}, "at most 256 characters"),
    ],
    ids=["depth", "deep", "size", "signature", "tags", "features", "feature name"],
)  # fmt: skip
def test_over_a_limit_is_refused_before_any_work(
    registry: ModelRegistry, tmp_path: Path, kwargs: dict[str, Any], expected: str
) -> None:
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    with pytest.raises(InvalidInput, match=expected):
        registry.register_model("fraud", str(artifact), **kwargs)
    _nothing_stored(registry)


def test_a_cycle_is_refused_as_too_deep(registry: ModelRegistry) -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(InvalidInput, match="nested deeper"):
        registry.register_model("fraud", None, metadata=cyclic)


def test_at_the_limits_is_accepted(registry: ModelRegistry) -> None:
    registry.register_model("fraud", None, metadata=_nested(32), tags=[f"t{i}" for i in range(64)])
    assert registry.get_model_version("fraud", "1.0.0").metadata["a"]


def test_lineage_attributes_and_signatures_later_are_bounded(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidInput, match="lineage attributes is nested deeper"):
        registry.add_lineage_node("data:v1", attrs=_nested(40))
    registry.register_model("fraud", None)
    with pytest.raises(InvalidInput, match="the signature is"):
        registry.set_model_signature(
            "fraud", {f"f{i}": "float" for i in range(20000)}, version="1.0.0"
        )


def test_limits_are_the_registrys_to_set(tmp_path: Path) -> None:
    tight = ModelRegistry(home=tmp_path / "home", limits=InputLimits(metadata_bytes=100, depth=3))
    with pytest.raises(InvalidInput, match="over the limit of 100 bytes"):
        tight.register_model("fraud", None, metadata={"k": "v" * 200})
    with pytest.raises(InvalidInput, match="nested deeper than 3"):
        tight.register_model("fraud", None, metadata=_nested(4))
    assert DEFAULT_LIMITS.metadata_bytes == 256 * 1024
    with pytest.raises(InvalidInput, match=r"limits\.depth must be at least 1"):
        InputLimits(depth=0)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{" + '"a":{' * 5000 + "}" * 5001, "nested deeper than 32 levels"),
        (json.dumps({"blob": "x" * 300_000}), "over the limit of 262144 bytes"),
        (json.dumps({"blob": "x" * 2_000_000}), "over what any limit allows"),
    ],
    ids=["deep", "large", "huge"],
)
def test_the_cli_refuses_in_one_line(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "meta.json").write_text(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}
    done = subprocess.run(
        [sys.executable, "-m", "registry", "--home", str(tmp_path / "h"), "register", "fraud",
         "--metadata", "meta.json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert expected in errors[0]
    assert "Traceback" not in done.stderr
