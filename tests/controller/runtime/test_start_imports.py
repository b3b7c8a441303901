"""A daemon imports only what its config uses by the time it is ready: no data frames
(the rounds measure from numpy aggregates), no Alembic once its databases are at
their head, no HTTP client without a Prometheus source, no statistics before a
rollout is judged and no MLflow client on our own registry. Checked on the modules
loaded, which a wall clock could not say reliably on a shared machine
(``bench/serve_bench.py`` times the start)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from monitors.testing import free_port
from registry import ModelRegistry

PROBE = """
import json, os, signal, sys
from controller.config import load_config
from controller.runtime.daemon import run

watched = json.loads(sys.argv[2])

def ready(daemon):
    loaded = sorted(m for m in watched if m in sys.modules)
    print("LOADED " + json.dumps(loaded), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

sys.exit(run(load_config(sys.argv[1]), on_ready=ready))
"""
NOT_AT_START = ["pandas", "alembic", "httpx", "scipy", "registry.mlflow_registry"]


def _config(tmp_path: Path, sources: dict[str, object]) -> Path:
    home = tmp_path / "home"
    with ModelRegistry(home=home, actor="tester") as registry:
        registry.register_model("fraud", None, version="1.0.0", stage="staging", requirements="")
        registry.promote_model("fraud", "1.0.0", to_stage="production", reason="baseline")
    path = tmp_path / "daemon.yaml"
    policy = {
        "router": "table",
        "strategy": {"kind": "canary", "steps": [50], "step_duration": 60},
        "analysis": {"metrics": [{"name": "errors", "source": "events", "query": "error_rate",
                                  "kind": "proportion", "direction": "lower"}]},
    }  # fmt: skip
    path.write_text(yaml.safe_dump({
        "registry": {"home": str(home)},
        "server": {"listen": f"127.0.0.1:{free_port()}"},
        "sources": sources,
        "routers": {"table": {"kind": "http"}},
        "models": {"fraud": policy},
    }))  # fmt: skip
    return path


def loaded_at_ready(config: Path, watched: list[str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(config), json.dumps(watched)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    line = next(x for x in out.stdout.splitlines() if x.startswith("LOADED "))
    found: list[str] = json.loads(line.removeprefix("LOADED "))
    return found


def test_a_ready_daemon_on_the_ingest_source_loads_only_what_it_uses(tmp_path: Path) -> None:
    config = _config(tmp_path, {"events": {"kind": "ingest", "options": {
        "url": f"sqlite:///{tmp_path}/ingest.db"}}})  # fmt: skip
    first = loaded_at_ready(config, NOT_AT_START)
    assert "alembic" in first  # the first start creates the tables: the probe sees it
    assert loaded_at_ready(config, NOT_AT_START) == []


def test_a_prometheus_source_loads_the_http_client(tmp_path: Path) -> None:
    """The probe's other side: what a config uses is loaded (a source is built at start)."""
    config = _config(tmp_path, {"events": {"kind": "prometheus", "options": {
        "url": "http://127.0.0.1:9"}}})  # fmt: skip
    assert loaded_at_ready(config, NOT_AT_START) == ["alembic", "httpx"]
