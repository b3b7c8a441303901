"""Signals and systemd supervision, on the daemon as a real subprocess.

Real SIGHUP/SIGTERM, a real datagram socket as NOTIFY_SOCKET, real SQLite. Where a
test needs the daemon slow or stuck at a known point it sets the test fault
injection variable (``registry.faults``); every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controller.config import load_config
from controller.runtime.daemon import Daemon
from monitors.testing import wait_until
from registry import faults
from serving.route import read_table

from .test_e2e import Stack, build_stack

pytestmark = pytest.mark.slow


def events(stack: Stack) -> list[dict[str, Any]]:
    """The daemon's JSON log lines so far."""
    out = []
    for line in (stack.home / "daemon.log").read_text().splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def named(stack: Stack, name: str) -> list[dict[str, Any]]:
    return [e for e in events(stack) if e.get("event") == name]


def assert_consistent(stack: Stack) -> None:
    """With the daemon stopped: no rollout holds an unapplied intent, and the routing
    file equals the route the database says serving should have."""
    daemon = Daemon.build(load_config(stack.config))
    try:
        records = daemon.store.list_rollouts(model="fraud")
        assert records, "expected a rollout"
        assert [r.id for r in records if r.intent is not None] == []
        desired = daemon.controller.desired_route("fraud")
        assert read_table(stack.home / "routes.json")["fraud"] == desired
    finally:
        daemon.stop()


def set_server(stack: Stack, **server: Any) -> None:
    data = yaml.safe_load(stack.config.read_text())
    data["server"].update(server)
    stack.config.write_text(yaml.safe_dump(data))


@pytest.fixture
def rolling(tmp_path: Path) -> Iterator[Stack]:
    """A stack whose config and registry are ready; the test starts the daemon."""
    s = build_stack(tmp_path)
    s.register("1.0.0", "production")
    yield s
    s.stop()


def start_rollout(s: Stack, *, moving: bool = True) -> None:
    """Traffic on, a candidate registered; wait until its rollout exists (and, with
    ``moving``, until it sends the candidate traffic)."""
    s.start_workload()
    s.register("1.1.0")

    def started() -> bool:
        found = s.rollout("v1.1.0")
        return found is not None and (not moving or found["weight"] > 0)

    assert wait_until(started, timeout=60), s.log_tail()


class TestSighupBurst:
    def test_twenty_sighups_reload_one_at_a_time_and_rollouts_go_on(self, rolling: Stack) -> None:
        """A changed, valid config and 20 SIGHUPs during a slow (2 s) reload: reloads
        never overlap, the burst causes at most one more reload, every reload takes
        the new file and the running canary still finishes."""
        s = rolling
        s.start_daemon({faults.ENV: "reload=sleep:2"})
        start_rollout(s)
        data = yaml.safe_load(s.config.read_text())
        data["models"]["other"] = data["models"]["fraud"]  # a valid change to take effect
        s.config.write_text(yaml.safe_dump(data))
        for _ in range(20):
            s.procs["daemon"].send_signal(signal.SIGHUP)
            time.sleep(0.01)

        def settled() -> bool:
            started, finished = named(s, "reload_started"), named(s, "reload_finished")
            return bool(started) and len(started) == len(finished)

        assert wait_until(settled, timeout=60), s.log_tail()
        time.sleep(0.5)  # an owed reload starts the moment the previous one ends ...
        assert wait_until(settled, timeout=60), s.log_tail()  # ... and is waited for
        reloads = [e for e in events(s) if e.get("event") in ("reload_started", "reload_finished")]
        sequence = [(e["event"], e["seq"]) for e in reloads]
        count = len(sequence) // 2
        assert 1 <= count <= 2, sequence
        expected = [(kind, n) for n in range(1, count + 1)
                    for kind in ("reload_started", "reload_finished")]  # fmt: skip
        assert sequence == expected  # strictly alternating: never two at once
        assert all(e["ok"] for e in reloads if e["event"] == "reload_finished")
        reloaded = named(s, "reloaded")
        assert len(reloaded) == count
        assert all(e["models"] == ["fraud", "other"] for e in reloaded)
        assert httpx.get(f"{s.url}/readyz", timeout=5).status_code == 200
        done = s.wait_finished("v1.1.0", timeout=120)
        assert done["phase"] == "promoted", s.log_tail()


class TestSighupDuringStartup:
    def test_sighup_while_starting_is_reloaded_once_started(self, rolling: Stack) -> None:
        """A SIGHUP during startup (held 3 s before the first reconcile) does not kill the
        daemon (SIGHUP's default action); the reload runs once it is up."""
        s = rolling
        sent = threading.Event()

        def hup_when_starting() -> None:
            if wait_until(lambda: any(e.get("point") == "start" for e in named(s, "test_fault")),
                          timeout=60):  # fmt: skip
                s.procs["daemon"].send_signal(signal.SIGHUP)
                sent.set()

        helper = threading.Thread(target=hup_when_starting, daemon=True)
        helper.start()
        s.start_daemon({faults.ENV: "start=sleep:3"})
        helper.join(timeout=60)
        assert sent.is_set()
        assert wait_until(lambda: named(s, "reload_finished"), timeout=30), s.log_tail()
        assert s.procs["daemon"].poll() is None
        assert [e["ok"] for e in named(s, "reload_finished")] == [True]
        started = [e.get("event") for e in events(s)]
        assert started.index("daemon_ready") < started.index("reload_started")


class TestSigtermDuringStartup:
    def test_sigterm_while_starting_stops_cleanly(self, rolling: Stack) -> None:
        """SIGTERM during startup (held 3 s before the first reconcile) does not kill the
        daemon outright: it finishes starting, stops cleanly and exits 0."""
        s = rolling
        log = s._log("daemon.log")
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller", "daemon", "--config", str(s.config)],
            stdout=log, stderr=log, env={**os.environ, faults.ENV: "start=sleep:3"},
        )  # fmt: skip
        s.procs["daemon"] = proc
        assert wait_until(
            lambda: any(e.get("point") == "start" for e in named(s, "test_fault")), timeout=60
        ), s.log_tail()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, s.log_tail()
        assert named(s, "stop_requested_during_startup")
        assert named(s, "daemon_stopped")


class NotifySocket:
    """A bound datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.seen: list[str] = []

    def until(self, word: str, timeout: float = 30, *, since: int = 0) -> None:
        """Receive until a datagram containing ``word`` is among those from index
        ``since`` on (bounded)."""
        deadline = time.monotonic() + timeout
        while not any(word in m for m in self.seen[since:]):
            remaining = deadline - time.monotonic()
            assert remaining > 0, (word, self.seen[-10:])
            self.sock.settimeout(remaining)
            self.seen.append(self.sock.recv(4096).decode())

    def drain(self) -> list[str]:
        got = []
        self.sock.setblocking(False)
        try:
            while True:
                got.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        self.seen.extend(got)
        return got

    def collect(self, seconds: float) -> list[str]:
        """Every datagram arriving within ``seconds``."""
        got = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                got.append(self.sock.recv(4096).decode())
            except TimeoutError:
                break
        self.seen.extend(got)
        return got

    def close(self) -> None:
        self.sock.close()


class TestWatchdog:
    def test_ready_after_bind_and_reconcile_then_pings_only_while_loop_is_healthy(
        self, rolling: Stack
    ) -> None:
        """READY=1 comes when the API answers and the routers already hold the database's
        route; WATCHDOG=1 flows while the reconcile loop runs, stops while it is wedged
        (so systemd would restart the daemon) and resumes when it runs again."""
        s = rolling
        wedge = s.home / "wedge"
        notify = NotifySocket(s.home / "notify.sock")
        try:
            s.start_daemon({"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000",
                            faults.ENV: f"watch=block_while:{wedge}"})  # fmt: skip
            notify.until("READY=1")
            # Bound and reconciled before READY: these hold at the moment it arrives.
            assert httpx.get(f"{s.url}/healthz", timeout=5).status_code == 200
            assert read_table(s.home / "routes.json")["fraud"].weight_of("v1.0.0") == 100
            ready_at = next(i for i, e in enumerate(events(s)) if e.get("event") == "daemon_ready")
            assert ready_at >= 0
            notify.until("WATCHDOG=1")

            wedge.write_text("the watcher blocks while this file exists")
            assert wait_until(lambda: named(s, "watchdog_withheld"), timeout=30), s.log_tail()
            notify.drain()  # pings sent before the loop went stale
            quiet = notify.collect(2.5)  # five ping periods
            assert not [m for m in quiet if "WATCHDOG=1" in m], quiet
            assert s.procs["daemon"].poll() is None  # alive; systemd is what restarts it

            assert any("STATUS=reconcile loop stalled" in m for m in notify.seen)
            mark = len(notify.seen)
            wedge.unlink()
            notify.until("WATCHDOG=1", since=mark)
            notify.until("STATUS=serving", since=mark)
            assert wait_until(lambda: named(s, "watchdog_resumed"), timeout=10), s.log_tail()
            s.procs["daemon"].send_signal(signal.SIGTERM)
            notify.until("STOPPING=1")
            assert s.procs["daemon"].wait(timeout=30) == 0
        finally:
            notify.close()


class TestSigterm:
    def test_in_flight_evaluation_finishes_and_state_is_consistent(self, rolling: Stack) -> None:
        """SIGTERM while a rollout's evaluation is in flight: it is waited for, STOPPING=1
        is sent, the exit code is 0; the database holds no half-applied intent and the
        routes equal the database's; a restart carries the rollout on."""
        s = rolling
        notify = NotifySocket(s.home / "notify.sock")
        try:
            s.start_daemon({"NOTIFY_SOCKET": notify.path, faults.ENV: "tick=sleep:5"})
            start_rollout(s)
            seen = len(named(s, "test_fault"))
            assert wait_until(lambda: len(named(s, "test_fault")) > seen, timeout=30)
            s.procs["workload"].send_signal(signal.SIGTERM)
            s.procs["daemon"].send_signal(signal.SIGTERM)  # a tick is in its 5 s now
            notify.until("STOPPING=1")
            assert s.procs["daemon"].wait(timeout=40) == 0
        finally:
            notify.close()
        stopping = named(s, "stopping")
        assert stopping
        assert stopping[-1]["running_jobs"] >= 1, stopping
        assert named(s, "daemon_stopped")[-1]["abandoned_jobs"] == 0
        assert not named(s, "jobs_abandoned")
        assert_consistent(s)

        s.start_daemon()  # the rollout carries on from where the database says
        assert wait_until(
            lambda: httpx.get(f"{s.url}/readyz", timeout=5).status_code == 200, timeout=30
        )
        after = s.rollout("v1.1.0")
        assert after is not None
        assert after["phase"] != "aborted", after
        s.procs["daemon"].send_signal(signal.SIGTERM)
        assert s.procs["daemon"].wait(timeout=30) == 0
        assert_consistent(s)

    def test_hung_evaluation_is_abandoned_within_the_stop_timeout(self, rolling: Stack) -> None:
        """An evaluation stuck past server.stop_timeout_s is abandoned: exit code 0 soon
        after, the abandonment logged, and the next start finds consistent state."""
        s = rolling
        set_server(s, stop_timeout_s=1.0)
        s.start_daemon({faults.ENV: "tick=sleep:120"})
        start_rollout(s, moving=False)  # its first evaluation hangs, and no other starts
        assert wait_until(
            lambda: any(e.get("point") == "tick" for e in named(s, "test_fault")), timeout=30
        )
        s.procs["workload"].send_signal(signal.SIGTERM)
        s.procs["daemon"].send_signal(signal.SIGTERM)
        assert s.procs["daemon"].wait(timeout=20) == 0
        assert named(s, "jobs_abandoned"), s.log_tail()
        assert named(s, "daemon_stopped")[-1]["abandoned_jobs"] >= 1
        s.start_daemon()
        assert wait_until(
            lambda: httpx.get(f"{s.url}/readyz", timeout=5).status_code == 200, timeout=30
        )
        s.procs["daemon"].send_signal(signal.SIGTERM)
        assert s.procs["daemon"].wait(timeout=30) == 0
        assert_consistent(s)
