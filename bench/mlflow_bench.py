"""MLflowRegistry against direct MlflowClient calls, in the same run; prints one JSON object.

A real ``mlflow server`` (``.venv-mlflow``, SQLite backend store, local artifact
directory) is started on a loopback port. Both sides talk to it:

- register: ``MLflowRegistry.register_model`` of a pickled object with its
  metadata and requirements (three files logged to a run, a model version with
  tags, its semver alias, plus our governance transaction and audit event),
  against the same MLflow work done with MLflow's own ``MlflowClient`` in a
  subprocess of ``.venv-mlflow`` (create_run, log_artifacts of the same three
  files, create_model_version with a tag, set_registered_model_alias,
  set_terminated). Target: ours <= 1.2x of MLflow's own calls (p50 per
  registration).
- resolve: ``MLflowRegistry.resolve`` served from its cache, against
  ``MlflowClient.get_model_version_by_alias``. Target: >= 100x faster (p50).
  Our uncached resolve (one alias lookup over REST) is shown beside them.

The two sides alternate in ``--rounds`` rounds (after one uncounted warm-up round)
so that drift on a shared machine hits both alike; each figure is the median over
rounds of the round's p50.

Usage: python bench/mlflow_bench.py [--registrations 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from figures import figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from registry import MLflowRegistry  # noqa: E402
from tests.mlflow_server import mlflow_binary, mlflow_server  # noqa: E402

DIRECT = r"""
import json, pickle, statistics, sys, tempfile, time
from pathlib import Path
from mlflow import MlflowClient

uri, name, n, lookups = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
exp = client.get_experiment_by_name("bench-direct")
exp_id = exp.experiment_id if exp else client.create_experiment("bench-direct")
client.create_registered_model(name)
files = Path(tempfile.mkdtemp())
(files / "model.pkl").write_bytes(pickle.dumps({"weights": list(range(256))}))
(files / "metadata.json").write_text(json.dumps({"accuracy": 0.87}))
(files / "requirements.txt").write_text("xgboost==1.7.0\n")
register = []
for i in range(n):
    t0 = time.perf_counter()
    run = client.create_run(exp_id, run_name=f"{name} {i}")
    client.log_artifacts(run.info.run_id, str(files), artifact_path="model")
    mv = client.create_model_version(
        name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
        tags={"semver": f"v1.0.{i}"},
    )
    client.set_registered_model_alias(name, f"v1_0_{i}", mv.version)
    client.set_terminated(run.info.run_id)
    register.append(time.perf_counter() - t0)
client.set_registered_model_alias(name, "production", mv.version)
resolve = []
for _ in range(lookups):
    t0 = time.perf_counter()
    client.get_model_version_by_alias(name, "production")
    resolve.append(time.perf_counter() - t0)
print(json.dumps({"register": register, "resolve": resolve}))
"""


def p50(values: list[float]) -> float:
    return statistics.median(values)


def ours(uri: str, home: Path, name: str, n: int, lookups: int) -> dict[str, list[float]]:
    register: list[float] = []
    home.mkdir(parents=True, exist_ok=True)  # the governance database's directory
    with MLflowRegistry(uri, home=home, actor="bench") as reg:
        for i in range(n):
            t0 = time.perf_counter()
            mv = reg.register_model(
                name,
                {"weights": list(range(256))},
                metadata={"accuracy": 0.87},
                requirements="xgboost==1.7.0\n",
            )
            register.append(time.perf_counter() - t0)
            if i == 0:
                reg.promote_model(name, mv.version, to_stage="staging")
                reg.promote_model(name, mv.version, to_stage="production")
        reg.resolve(name)
        cached: list[float] = []
        for _ in range(lookups * 100):
            t0 = time.perf_counter()
            reg.resolve(name)
            cached.append(time.perf_counter() - t0)
    uncached: list[float] = []
    with MLflowRegistry(uri, home=home, actor="bench", cache_ttl=0.0) as reg:
        for _ in range(lookups):
            t0 = time.perf_counter()
            reg.resolve(name)
            uncached.append(time.perf_counter() - t0)
    return {"register": register, "resolve_cached": cached, "resolve_uncached": uncached}


def direct(uri: str, name: str, n: int, lookups: int) -> dict[str, list[float]]:
    binary = mlflow_binary()
    assert binary is not None
    python = binary.parent / "python"
    done = subprocess.run(
        [str(python), "-c", DIRECT, uri, name, str(n), str(lookups)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registrations", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lookups", type=int, default=200)
    args = parser.parse_args()
    if mlflow_binary() is None:
        sys.exit("mlflow is not installed in .venv-mlflow: run tests/services.sh")
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, mlflow_server(Path(tmp)) as uri:
        # A warm-up round, not counted: a fresh server's first minute is slower.
        ours(uri, Path(tmp) / "warm", "warm-ours", args.registrations, 10)
        direct(uri, "warm-direct", args.registrations, 10)
        for r in range(args.rounds):
            mine = ours(uri, Path(tmp) / f"home{r}", f"ours{r}", args.registrations, args.lookups)
            theirs = direct(uri, f"direct{r}", args.registrations, args.lookups)
            rounds.append(
                {
                    "register_ms": p50(mine["register"]) * 1e3,
                    "direct_register_ms": p50(theirs["register"]) * 1e3,
                    "resolve_cached_us": p50(mine["resolve_cached"]) * 1e6,
                    "resolve_uncached_ms": p50(mine["resolve_uncached"]) * 1e3,
                    "direct_by_alias_ms": p50(theirs["resolve"]) * 1e3,
                }
            )
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    ratio = med["register_ms"] / med["direct_register_ms"]
    speedup = med["direct_by_alias_ms"] * 1e3 / med["resolve_cached_us"]
    result: dict[str, Any] = {
        "registrations_per_round": args.registrations,
        "rounds": rounds,
        "register": {
            "ours_p50_ms": round(med["register_ms"], 2),
            "mlflow_client_p50_ms": round(med["direct_register_ms"], 2),
            "ratio": round(ratio, 3),
            "target_ratio": 1.2,
            "met": ratio <= 1.2,
        },
        "resolve": {
            "ours_cached_p50_us": round(med["resolve_cached_us"], 3),
            "ours_uncached_p50_ms": round(med["resolve_uncached_ms"], 3),
            "mlflow_get_model_version_by_alias_p50_ms": round(med["direct_by_alias_ms"], 3),
            "speedup": round(speedup, 1),
            "target_speedup": 100,
            "met": speedup >= 100,
        },
    }
    result["figures"] = figures(result)
    print(json.dumps(result, indent=2))


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Registering and resolving through MLflowRegistry against MLflow's own client."""
    reg, res = result["register"], result["resolve"]
    alias_us = res["mlflow_get_model_version_by_alias_p50_ms"] * 1000
    return [
        figure("mlflow_register", "Register through MLflowRegistry (3 files, version, tags, "
               "alias; plus our governance commit), p50", reg["ours_p50_ms"], "ms",
               baseline=reg["mlflow_client_p50_ms"], baseline_what="MlflowClient, same work",
               target="<= 1.2"),
        figure("mlflow_resolve", "Resolve production, from the cache, p50",
               res["ours_cached_p50_us"], "µs", baseline=alias_us,
               baseline_what="get_model_version_by_alias (µs)",
               ratio=alias_us / res["ours_cached_p50_us"], target=">= 100",
               note=f"uncached {res['ours_uncached_p50_ms']} ms; ratio = how many times faster"),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
