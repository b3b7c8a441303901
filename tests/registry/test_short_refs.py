"""The seed's short refs (``fraud-detection-v3.1.0`` for ``fraud-detection-model``) and
typos are refused with a "did you mean", never guessed: a registry must not act on a
model it was not named."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import ModelNotFound, ModelRegistry


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(home=tmp_path / "h")
    for version in ("3.0.0", "3.1.0"):
        registry.register_model("fraud-detection-model", None, version=version)
    registry.register_model("churn", None)
    return registry


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (lambda r: r.compare_models("fraud-detection-v3.0.0", "fraud-detection-model-v3.1.0"),
         "no registered model named 'fraud-detection'; did you mean 'fraud-detection-model'?"),
        (lambda r: r.get_model_version("fraud-detecton-model", "3.0.0"),
         "no registered model named 'fraud-detecton-model'; did you mean "
         "'fraud-detection-model'?"),
        (lambda r: r.history("chrun"), "no registered model named 'chrun'; did you mean 'churn'?"),
        (lambda r: r.history("zzz"), "no registered model named 'zzz'"),
    ],
)  # fmt: skip
def test_a_near_miss_names_the_model(reg: ModelRegistry, call: object, said: str) -> None:
    with pytest.raises(ModelNotFound) as info:
        call(reg)  # type: ignore[operator]
    assert str(info.value) == said
    reg.close()
