"""A real ``mlflow server`` for the tests, started on a free loopback port.

MLflow lives in its own virtualenv (``.venv-mlflow``, made by tests/services.sh) so
that its pins never meet ours; modelreg itself talks to it over REST only. Set
``MODELREG_MLFLOW`` to another ``mlflow`` executable to use that one instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitors.testing import free_port

ROOT = Path(__file__).resolve().parents[1]


def mlflow_binary() -> Path | None:
    configured = os.environ.get("MODELREG_MLFLOW")
    candidate = Path(configured) if configured else ROOT / ".venv-mlflow" / "bin" / "mlflow"
    return candidate if candidate.is_file() else None


def require_mlflow() -> Path:
    binary = mlflow_binary()
    if binary is not None:
        return binary
    message = "mlflow is not installed in .venv-mlflow (tests/services.sh installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def mlflow_server(workdir: Path, *, timeout: float = 90.0) -> Iterator[str]:
    """Run ``mlflow server`` (SQLite backend store, local artifact directory) until exit."""
    binary = require_mlflow()
    port = free_port()
    log = (workdir / "mlflow-server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(binary),
            "server",
            "--backend-store-uri",
            f"sqlite:///{workdir / 'mlflow.db'}",
            "--artifacts-destination",
            str(workdir / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {proc.returncode}: "
                    + (workdir / "mlflow-server.log").read_text()[-2000:]
                )
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not answer on {url} in {timeout:.0f}s")
            time.sleep(0.2)
        yield url
    finally:
        # The server runs in its own session: its group is exactly what we started.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def delete_all_models(url: str) -> None:
    """Empty the server's registry between tests (runs and artifacts may stay)."""
    with httpx.Client(base_url=url, timeout=30) as http:
        while True:
            page = http.get(
                "/api/2.0/mlflow/registered-models/search", params={"max_results": 1000}
            ).json()
            found = page.get("registered_models", [])
            if not found:
                return
            for model in found:
                http.request(
                    "DELETE",
                    "/api/2.0/mlflow/registered-models/delete",
                    json={"name": model["name"]},
                ).raise_for_status()


class Raw:
    """Another MLflow client: plain REST calls, as any MLflow user's code would make."""

    def __init__(self, url: str) -> None:
        self.uri = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        response = self.http.get(f"/api/2.0/mlflow/{endpoint}", params=params)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(f"/api/2.0/mlflow/{endpoint}", json=body)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def version(self, name: str, version: int) -> dict[str, Any]:
        found: dict[str, Any] = self.get("model-versions/get", name=name, version=str(version))[
            "model_version"
        ]
        return found

    def tags(self, name: str, version: int) -> dict[str, str]:
        return {t["key"]: t["value"] for t in self.version(name, version).get("tags", [])}

    def aliases(self, name: str) -> dict[str, int]:
        found = self.get("registered-models/get", name=name)["registered_model"]
        return {a["alias"]: int(a["version"]) for a in found.get("aliases", [])}

    def versions(self, name: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(
            "model-versions/search", filter=f"name='{name}'"
        ).get("model_versions", [])
        return found

    def artifact(self, source: str, rel: str) -> httpx.Response:
        path = source.removeprefix("mlflow-artifacts:/")
        return self.http.get(f"/api/2.0/mlflow-artifacts/artifacts/{path}/{rel}")

    def foreign_version(self, name: str, files: dict[str, bytes]) -> int:
        """Register a version the way another MLflow client does: a run, its files, no tags."""
        self.http.post("/api/2.0/mlflow/registered-models/create", json={"name": name})
        info = self.post("runs/create", {"experiment_id": "0", "run_name": "other"})["run"]["info"]
        source = f"{info['artifact_uri']}/model"
        for rel, data in files.items():
            path = source.removeprefix("mlflow-artifacts:/")
            self.http.put(
                f"/api/2.0/mlflow-artifacts/artifacts/{path}/{rel}", content=data
            ).raise_for_status()
        created = self.post(
            "model-versions/create", {"name": name, "source": source, "run_id": info["run_id"]}
        )
        return int(created["model_version"]["version"])
