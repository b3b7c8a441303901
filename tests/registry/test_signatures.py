"""Signatures inferred from a sample input at registration; absent ones reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from registry import InvalidInput, ModelRegistry
from registry.signatures import infer_signature


class Scorer:
    """A model with predict(): a fraud probability and a flag per record."""

    def predict(self, rows: Any) -> dict[str, list[Any]]:
        records = rows if isinstance(rows, list) else [rows]
        return {"fraud_probability": [0.1 for _ in records], "fraud_flag": [False for _ in records]}


class Broken:
    def predict(self, rows: Any) -> Any:
        raise RuntimeError("needs a fitted pipeline")


@pytest.mark.parametrize(
    ("example", "inputs"),
    [
        ({"amount": 12.5, "merchant_id": 7, "location": "FR", "card_present": True},
         {"amount": "float", "merchant_id": "int", "location": "str", "card_present": "bool"}),
        ([{"amount": 1.0, "merchant_id": 3}], {"amount": "float", "merchant_id": "int"}),
        ({"amount": [1.0, 2.5], "tags": [["a"], ["b"]]}, {"amount": "float", "tags": "list"}),
        ({"amount": [1, 2.5], "id": [1, "x"]}, {"amount": "float", "id": "str"}),
        (pd.DataFrame({"amount": [1.0], "merchant_id": [3], "location": ["FR"]}),
         {"amount": "float", "merchant_id": "int", "location": "str"}),
        (np.zeros((4, 3)), {"x0": "float", "x1": "float", "x2": "float"}),
        (np.array([1, 2]), {"x0": "int", "x1": "int"}),
    ],
)  # fmt: skip
def test_inputs_from_each_kind_of_example(example: Any, inputs: dict[str, str]) -> None:
    assert infer_signature(example) == {"inputs": inputs, "outputs": {}}


def test_outputs_from_the_models_predict() -> None:
    sig = infer_signature({"amount": 1.0}, Scorer())
    assert sig["outputs"] == {"fraud_probability": "float", "fraud_flag": "bool"}
    assert infer_signature({"amount": 1.0}, Broken())["outputs"] == {}  # cannot ask: unknown


@pytest.mark.parametrize("example", [{}, "a string", 3, object()])
def test_an_example_without_fields_is_refused(example: Any) -> None:
    with pytest.raises(InvalidInput, match="input_example"):
        infer_signature(example)


def test_registration_records_it_and_explicit_wins(tmp_path: Path) -> None:
    with ModelRegistry(home=tmp_path / "h") as reg:
        mv = reg.register_model("fraud", Scorer(), input_example={"amount": 1.0, "n": 2})
        assert mv.signature == {
            "inputs": {"amount": "float", "n": "int"},
            "outputs": {"fraud_probability": "float", "fraud_flag": "bool"},
        }
        files = {f.name for f in mv.files}
        assert "signature.json" in files
        given = {"inputs": {"amount": "float"}, "outputs": {"score": "float"}}
        mv2 = reg.register_model("fraud", None, signature=given, input_example={"x": 1})
        assert mv2.signature == given
        assert reg.register_model("other", None).signature is None


def test_info_says_when_there_is_no_signature(tmp_path: Path) -> None:
    env = {**os.environ, "MODELREG_HOME": str(tmp_path / "h")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "registry", *args], capture_output=True,
                              text=True, env=env, timeout=60, check=False)  # fmt: skip

    assert run("register", "bare").returncode == 0
    assert "signature: none recorded" in run("info", "bare").stdout
    example = json.dumps({"amount": 1.5, "merchant_id": 2})
    made = run("register", "sig", "--input-example", example, "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["signature"]["inputs"] == {
        "amount": "float",
        "merchant_id": "int",
    }
