"""A scripted registry walkthrough on embedded defaults (``./dev demo``).

Trains two small fraud models with numpy, registers them with real artifacts,
promotes, compares, rolls back and prints the history, in a fresh state
directory under ``$MODELREG_HOME`` (or ``./.modelreg``) so it can be re-run.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.console import Console

from registry.api import ModelRegistry
from registry.cli import history_table
from registry.db import default_home

console = Console(width=None if sys.stdout.isatty() else 140)
FEATURES_V1 = ["amount_vs_user_average", "days_since_last_purchase", "merchant_risk_score"]
FEATURES_V2 = [*FEATURES_V1, "merchant_reputation_score"]


@dataclass(frozen=True)
class LogisticModel:
    """A plain logistic regression: what gets pickled as ``model.pkl``."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def predict_proba(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        z = x @ np.asarray(self.weights) + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def _data(
    rng: np.random.Generator, n: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    x = rng.normal(size=(n, len(FEATURES_V2)))
    logits = 1.5 * x[:, 0] - 0.8 * x[:, 1] + 1.2 * x[:, 2] + 1.0 * x[:, 3] - 2.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(np.float64)
    return x, y


def _train(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], features: list[str]
) -> tuple[LogisticModel, float]:
    cols = x[:, : len(features)]
    w = np.zeros(cols.shape[1])
    b = 0.0
    for _ in range(300):  # full-batch gradient descent: small, deterministic
        p = 1 / (1 + np.exp(-(cols @ w + b)))
        w -= 0.5 * cols.T @ (p - y) / len(y)
        b -= 0.5 * float(np.mean(p - y))
    model = LogisticModel(tuple(features), tuple(float(v) for v in w), b)
    return model, float(np.mean((model.predict_proba(cols) > 0.5) == y))


def main() -> None:
    home = default_home() / "demo" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    home.mkdir(parents=True)
    console.rule("[bold]modelreg: registry walkthrough")
    console.print(f"state directory: {home}")
    rng = np.random.default_rng(42)
    x_train, y_train = _data(rng, 20_000)
    x_test, y_test = _data(rng, 5_000)
    name = "fraud-detection-model"
    signature = {
        "inputs": dict.fromkeys(FEATURES_V1, "float"),
        "outputs": {"fraud_probability": "float"},
    }

    with ModelRegistry(home=home, actor="data-scientist@example.com") as registry:
        versions = []
        for features, latency in ((FEATURES_V1, "40ms"), (FEATURES_V2, "35ms")):
            started = time.perf_counter()
            model, _ = _train(x_train, y_train, features)
            acc = float(np.mean((model.predict_proba(x_test[:, : len(features)]) > 0.5) == y_test))
            sig = {**signature, "inputs": dict.fromkeys(features, "float")}
            mv = registry.register_model(
                name,
                model,
                metadata={
                    "algorithm": "LogisticRegression (numpy)",
                    "accuracy": round(acc, 4),
                    "inference_latency_p50": latency,
                    "training_data_version": "v2024-01",
                    "training_duration": f"{time.perf_counter() - started:.2f}s",
                },
                features=features,
                signature=sig,
                tags=["fraud", "demo"],
            )
            versions.append(mv)
            console.print(
                f"registered [bold]{mv.ref}[/bold] (accuracy {acc:.4f}, {mv.artifact_size} bytes, "
                f"sha256 {mv.artifact_digest and mv.artifact_digest[:12]})"
            )
        v1, v2 = versions
        console.print(f"v2 added a feature, so its number is a minor bump: {v2.version}")

        for mv in versions:
            registry.promote_model(name, mv.version, to_stage="staging", reason="validation")
            registry.promote_model(name, mv.version, to_stage="production", reason="approved")
            console.print(f"promoted {mv.ref} to production")
        console.print(f"production now serves: [bold]{registry.resolve(name).ref}[/bold]")

        console.rule("compare")
        console.print(str(registry.compare_models(v1.ref, v2.ref)), highlight=False)

        console.rule("rollback")
        back = registry.rollback(name, reason=f"{v2.version} raises false positives in region EU")
        console.print(f"rolled back to [bold]{back.ref}[/bold]")
        loaded = registry.get_model(name)  # digest verified before unpickling
        p = loaded.predict_proba(x_test[:3, : len(loaded.features)])
        console.print(f"loaded {back.ref} from the store; first predictions: {np.round(p, 3)}")

        console.rule("history")
        console.print(history_table(name, registry.history(name)))
        broken = registry.verify_audit_chain()
        console.print(f"audit chain: {'intact' if broken is None else broken.problem}")
    console.print(f"inspect it: modelreg --home {Path(home)} list {name}")


if __name__ == "__main__":
    main()
