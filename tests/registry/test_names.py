"""Name validation keeps every caller value away from file-system paths."""

from __future__ import annotations

import pytest

from registry import names
from registry.errors import InvalidName


@pytest.mark.parametrize(
    "bad", ["", "../x", "a/b", "a\\b", "..", "a..b", ".hidden", "-x", "a" * 129, "a b", None, 3]
)
def test_bad_model_names(bad: object) -> None:
    """Separators, dot-dot, leading punctuation, spaces and overlong names are refused."""
    with pytest.raises(InvalidName):
        names.model_name(bad)


@pytest.mark.parametrize("good", ["fraud-detection-model", "m", "Model_2.onnx-x"])
def test_good_model_names(good: str) -> None:
    """Ordinary names pass unchanged."""
    assert names.model_name(good) == good


@pytest.mark.parametrize("bad", ["../model.pkl", "dir/model.pkl", "/etc/passwd", "..", "a\x00b"])
def test_bad_file_names(bad: str) -> None:
    """Artifact file names cannot carry a directory part."""
    with pytest.raises(InvalidName):
        names.file_name(bad)
