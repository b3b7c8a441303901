"""compare_models renders the seed's comparison."""

from __future__ import annotations

from registry import ModelRegistry

V300 = {
    "accuracy": 0.85,
    "precision": 0.83,
    "recall": 0.60,
    "inference_latency_p50": "40ms",
    "model_size": "15MB",
    "training_date": "2024-01-10",
    "feature_scaling": {"amount": "standard", "age": "minmax", "tenure": "log", "x": "none"},
}
V310 = {
    "accuracy": 0.87,
    "precision": 0.85,
    "recall": 0.62,
    "inference_latency_p50": "35ms",
    "model_size": "12MB",
    "training_date": "2024-01-15",
    "feature_scaling": {"amount": "robust", "age": "standard", "tenure": "none", "x": "none"},
}


def test_seed_comparison_layout(tmp_path: object) -> None:
    """Metric deltas, lower-is-better performance, features and the recommendation."""
    with ModelRegistry(home=str(tmp_path)) as reg:
        common = ["amount", "age", "tenure", "x"]
        reg.register_model(
            "fraud-detection", None, version="v3.0.0", metadata=V300,
            features=[*common, "obsolete_feature_x"],
        )  # fmt: skip
        reg.register_model(
            "fraud-detection", None, version="v4.0.0", metadata=V310,
            features=[*common, "merchant_reputation_score"],
        )  # fmt: skip
        result = reg.compare_models("fraud-detection-v3.0.0", "fraud-detection-v4.0.0")
    text = str(result)
    assert text.splitlines()[:2] == ["Comparison: v3.0.0 vs v4.0.0", "=" * 28]
    assert "- Accuracy: 0.85 → 0.87 (+2.4%) ✅" in text
    assert "- Precision: 0.83 → 0.85 (+2.4%) ✅" in text
    assert "- Recall: 0.6 → 0.62 (+3.3%) ✅" in text
    assert "- Latency: 40ms → 35ms (-12.5%) ✅" in text
    assert "- Size: 15MB → 12MB (-20.0%) ✅" in text
    assert "- Added: merchant_reputation_score" in text
    assert "- Removed: obsolete_feature_x" in text
    assert "- Modified: 3 features rescaled" in text
    assert text.endswith("Recommendation: ✅ v4.0.0 is better (improvement in all metrics)")
    assert result.b_is_better is True
    assert "training_date" not in text


def test_regression_is_called_out(tmp_path: object) -> None:
    """Higher latency is worse even though the number went up; mixed results are a trade-off."""
    with ModelRegistry(home=str(tmp_path)) as reg:
        reg.register_model("m", None, metadata={"accuracy": 0.9, "latency_ms": 30})
        reg.register_model("m", None, metadata={"accuracy": 0.92, "latency_ms": 60})
        result = reg.compare_models("m-v1.0.0", "m-v1.0.1")
    assert result.performance[0].better is False
    assert result.recommendation.startswith("⚠️ trade-off")
    assert result.b_is_better is None
    assert result.to_dict()["metrics"][0]["better"] is True


def test_signature_and_feature_type_changes_are_reported(tmp_path: object) -> None:
    """Retyped inputs, new inputs and retyped features appear, and the reason says breaking."""
    with ModelRegistry(home=str(tmp_path)) as reg:
        reg.register_model(
            "m",
            None,
            version="v1",
            metadata={"accuracy": 0.8, "feature_types": {"amount": "float", "age": "int"}},
            signature={"inputs": {"amount": "float"}, "outputs": {"p": "float"}},
        )
        reg.register_model(
            "m",
            None,
            version="v2",
            metadata={"accuracy": 0.9, "feature_types": {"amount": "float", "age": "float"}},
            signature={"inputs": {"amount": "str", "country": "str"}, "outputs": {"p": "float"}},
        )
        result = reg.compare_models("m-v1.0.0", "m-v2.0.0")
    assert result.signature_changes == [
        "signature input amount changed type: float -> str",
        "signature input added: country",
    ]
    assert result.features_modified == ["age retyped"]
    assert result.recommendation.endswith("(breaking signature change: 1)")
    text = str(result)
    assert "- Modified: age retyped" in text
    assert "Signature:\n- signature input amount changed type: float -> str" in text
    assert result.to_dict()["signature_changes"][1] == "signature input added: country"
