"""Run real Prometheus, Alertmanager and the simulated exporter for tests and benchmarks.

Every server listens on a loopback port with a generated config in a directory the
caller owns; nothing reaches beyond 127.0.0.1 (Alertmanager's gossip is disabled
with an empty ``--cluster.listen-address``). Debian's packaged system services are
never used. ``ServerProcess.stop`` terminates and reaps the process; callers put it
in a ``finally`` or a fixture teardown.
"""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "ALERTMANAGER_BINARY",
    "PROMETHEUS_BINARY",
    "ServerProcess",
    "free_port",
    "start_alertmanager",
    "start_exporter",
    "start_prometheus",
    "wait_until",
]

PROMETHEUS_BINARY = "prometheus"
ALERTMANAGER_BINARY = "prometheus-alertmanager"  # Debian's name for alertmanager


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``check`` until it returns True or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@dataclass
class ServerProcess:
    """A server child process and where to reach it."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate, wait, kill if needed; safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed")
    return path


def _start(
    name: str, argv: Sequence[str], url: str, ready_path: str, workdir: Path, timeout: float
) -> ServerProcess:
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, cwd=workdir)
    server = ServerProcess(name=name, process=process, url=url, log=log)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError("exited")
        return httpx.get(url + ready_path, timeout=1.0).status_code == 200

    if not wait_until(ready, timeout=timeout, interval=0.2) or process.poll() is not None:
        server.stop()
        raise RuntimeError(f"{name} did not become ready in {timeout}s:\n{server.log_tail()}")
    return server


def start_prometheus(
    workdir: Path,
    *,
    targets: Sequence[str],
    scrape_interval: str = "1s",
    rules: Sequence[Mapping[str, Any]] = (),
    alertmanagers: Sequence[str] = (),
    binary: str = PROMETHEUS_BINARY,
    timeout: float = 30.0,
) -> ServerProcess:
    """Prometheus scraping ``targets`` (``host:port``) every ``scrape_interval``.

    ``rules``: alerting rules (``{"alert": ..., "expr": ..., "for": ...}``), evaluated
    every ``scrape_interval`` and sent to ``alertmanagers`` (``host:port``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    settings: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [{"job_name": "sim", "static_configs": [{"targets": list(targets)}]}],
    }
    if rules:
        rule_file = workdir / "rules.yml"
        rule_file.write_text(json.dumps({"groups": [{"name": "modelreg", "rules": list(rules)}]}))
        settings["rule_files"] = [str(rule_file)]
    if alertmanagers:
        settings["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    config.write_text(json.dumps(settings))  # JSON is YAML; no YAML writer needed
    port = free_port()
    argv = [
        _binary(binary),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
    ]
    return _start("prometheus", argv, f"http://127.0.0.1:{port}", "/-/ready", workdir, timeout)


def start_alertmanager(
    workdir: Path,
    *,
    webhook_url: str,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
    bearer_token: str | None = None,
    binary: str = ALERTMANAGER_BINARY,
    timeout: float = 30.0,
) -> ServerProcess:
    """Alertmanager routing every alert to one webhook receiver, gossip disabled.

    With ``bearer_token`` the webhook carries ``Authorization: Bearer <token>``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
    if bearer_token is not None:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": bearer_token}}
    config.write_text(
        json.dumps(
            {
                "route": {
                    "receiver": "modelreg",
                    "group_by": ["alertname", "model"],
                    "group_wait": group_wait,
                    "group_interval": group_interval,
                    "repeat_interval": repeat_interval,
                },
                "receivers": [
                    {
                        "name": "modelreg",
                        "webhook_configs": [webhook],
                    }
                ],
            }
        )
    )
    port = free_port()
    argv = [
        _binary(binary),
        f"--config.file={config}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return _start("alertmanager", argv, f"http://127.0.0.1:{port}", "/-/ready", workdir, timeout)


def start_exporter(
    workdir: Path,
    *,
    model: str,
    versions: Sequence[str],
    seed: int = 0,
    rate: float = 100.0,
    requests: int | None = None,
    delay: float = 0.0,
    hold: bool = False,
    timeout: float = 20.0,
) -> ServerProcess:
    """``python -m monitors.simulate`` on a free loopback port; see that module.

    With ``hold``, it exports zeros until ``server.process.send_signal(SIGUSR1)``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "monitors.simulate", "--port", "0", "--model", model,
            "--seed", str(seed), "--rate", str(rate), "--delay", str(delay)]  # fmt: skip
    for version in versions:
        argv += ["--version", version]
    if requests is not None:
        argv += ["--requests", str(requests)]
    if hold:
        argv.append("--hold")
    log = workdir / "exporter.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=sink, cwd=workdir)
    server = ServerProcess(name="exporter", process=process, url="", log=log)
    line = b""
    if process.stdout is not None and select.select([process.stdout], [], [], timeout)[0]:
        line = process.stdout.readline()  # the first line is written right after binding
    try:
        address = json.loads(line)["listening"]
    except (ValueError, KeyError):
        server.stop()
        raise RuntimeError(f"exporter did not start:\n{server.log_tail()}") from None
    server.url = f"http://{address}"
    return server
