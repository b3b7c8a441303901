"""A real ``mlflow server`` for the tests, started on a free loopback port.

MLflow lives in its own virtualenv (``.venv-mlflow``, made by tests/services.sh) so
that its pins never meet ours; modelreg itself talks to it over REST only. Set
``MODELREG_MLFLOW`` to another ``mlflow`` executable to use that one instead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
