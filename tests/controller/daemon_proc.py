"""The daemon as a real subprocess with a tokens file, for the alert tests.

``alert_stack`` writes the demo config plus an alert route and a tokens file (an
admin token for the test, an ``alerts``-only token for Alertmanager) and registers
``fraud`` 1.0.0 in production. Every wait polls with a timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from controller.demo import demo_config
from controller.http.auth import generate_token, hash_token
from monitors.testing import free_port, wait_until
from registry import ModelRegistry

ALERT_NAME = "ModelErrorRateHigh"


@dataclass
class DaemonProcess:
    home: Path
    config: Path
    url: str
    admin_token: str
    alert_token: str
    process: subprocess.Popen[bytes] | None = None
    _logs: list[Any] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.home / "daemon.log"

    def start(self, timeout: float = 60.0) -> None:
        sink = self.log.open("ab")
        self._logs.append(sink)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controller", "daemon", "--config", str(self.config)],
            stdout=sink, stderr=sink, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert wait_until(self._up, timeout=timeout), self.log_tail()

    def _up(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, self.log_tail()
        return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for sink in self._logs:
            sink.close()
        self._logs.clear()

    def get(self, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        return httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=10)

    def post_alert(self, payload: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.alert_token}"}
        return httpx.post(f"{self.url}/v1/alerts", json=payload, headers=headers, timeout=10)

    def production(self) -> str:
        return str(self.get("/v1/models/fraud/resolve").json()["version"])

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def register(home: Path, version: str, stage: str) -> None:
    """Register ``fraud`` ``version``; ``production`` from dev is a forced hotfix, so
    the staging watcher never starts a rollout for it; ``staging`` starts one."""
    with ModelRegistry(home=home, actor="tester") as registry:
        artifact = home / f"{version}.bin"
        artifact.write_bytes(version.encode())
        first = stage == "production" and not registry.list_models()
        staged = "staging" if first or stage == "staging" else "dev"
        registry.register_model("fraud", str(artifact), version=version, stage=staged)
        if stage == "production":
            registry.promote_model("fraud", version, to_stage="production", force=not first,
                                   reason="hotfix" if not first else "baseline")  # fmt: skip


def alert_stack(home: Path, *, routes: Path | None = None) -> DaemonProcess:
    """Config, tokens and ``fraud`` 1.0.0 in production; the daemon not started yet."""
    port = free_port()
    data = demo_config(home, port)
    admin, alerts = generate_token(), generate_token()
    tokens = home / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"tokens": [
        {"identity": "tester", "roles": ["admin"], "hash": hash_token(admin)},
        {"identity": "alertmanager", "roles": ["alerts"], "hash": hash_token(alerts)},
    ]}))  # fmt: skip
    data["server"]["tokens_file"] = str(tokens)
    data["alerts"] = [{"name": "error-rate", "match": {"alertname": ALERT_NAME},
                       "action": "rollback", "version_label": "version"}]  # fmt: skip
    if routes is not None:
        data["routers"]["table"]["options"]["path"] = str(routes)
    config = home / "daemon.yaml"
    config.write_text(yaml.safe_dump(data))
    register(home, "1.0.0", "production")
    return DaemonProcess(home, config, f"http://127.0.0.1:{port}", admin, alerts)


def now_iso() -> str:
    """The wall clock as Alertmanager writes ``startsAt`` (the daemon runs on it)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def webhook(
    version: str | None,
    *,
    fingerprint: str = "fp-1",
    starts: str | None = None,
    status: str = "firing",
) -> dict[str, Any]:
    """An Alertmanager (version 4) notification with one alert on ``fraud`` (and on
    ``version`` when given: without it the alert means whatever is in production),
    firing since ``starts`` (default: now, as a new alert would be)."""
    starts = starts or now_iso()
    labels = {"alertname": ALERT_NAME, "model": "fraud"}
    if version is not None:
        labels["version"] = version
    return {
        "version": "4", "receiver": "modelreg", "status": status, "groupKey": "{}:{}",
        "alerts": [{"status": status, "fingerprint": fingerprint, "startsAt": starts,
                    "endsAt": "0001-01-01T00:00:00Z", "labels": labels}],
    }  # fmt: skip
