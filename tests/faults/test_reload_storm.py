"""An invalid config and a SIGHUP storm during a live canary, then a good reload.

The daemon (a real subprocess, SQLite, the file router, the simulated workload) runs a
canary of v1.1.0. Its config file is overwritten, kind after kind, with content it
must refuse: a YAML syntax error, an unknown router kind, a negative canary step,
non-UTF-8 bytes, an infinite step duration (YAML's ``.inf``), YAML nested too deeply
to read, and a valid file that changes ``server`` (which needs a restart); after each
write about fifty SIGHUPs are sent at once. Meanwhile ``/healthz`` is polled without
pause: every answer is 200 within a second. After each kind: the daemon runs, every
reload that ran was refused (a ``reload_refused`` line naming the problem, none
crashed, none applied), ``/readyz`` is 200 and the rollout is judged under the last
good config (the explain API's policy), its looks going on. Then a valid file with a
shorter ``step_duration`` and one SIGHUP: it is applied (``reloaded``, the new
duration in the policy). The rollout finishes under it, its decisions follow the
policy's steps once each, one rollout only, and every invariant holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from monitors.testing import wait_until
from tests.controller.stack import TERMINAL, Stack, build_stack
from tests.invariants import decisions_follow_policy

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

STEPS = [10, 25, 50, 100]
SLOW, FAST = 10.0, 1.0  # step_duration before (longer than the storm) and after the good reload
BURST = 50


def _events(stack: Stack, name: str) -> list[dict[str, Any]]:
    """The daemon's JSON log lines named ``name``, in order."""
    found = []
    for line in (stack.home / "daemon.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
    return found


def _bad_configs(good: dict[str, Any]) -> list[tuple[str, bytes, str]]:
    """(kind, file content, what the refusal must say) for each way a file is wrong."""

    def changed(edit: Callable[[dict[str, Any]], None]) -> bytes:
        data = yaml.safe_load(yaml.safe_dump(good))
        edit(data)
        return yaml.safe_dump(data).encode()

    text = yaml.safe_dump(good).encode()
    return [
        ("yaml syntax", b"models: {fraud: [10, 25\nrouters: ][\n", "not valid YAML"),
        ("unknown router kind",
         changed(lambda d: d["routers"]["table"].update(kind="teleport")), "unknown kind"),
        ("negative step",
         changed(lambda d: d["models"]["fraud"]["strategy"].update(steps=[-10, 50, 100])),
         "models.fraud.strategy.steps"),
        ("non-UTF-8", text[:40] + b"\xff\xfe\x80" + text[40:], "not UTF-8"),
        ("infinite step",
         changed(lambda d: d["models"]["fraud"]["strategy"].update(step_duration=float("inf"))),
         "models.fraud.strategy.step_duration"),
        ("nested too deeply", b"models: " + b"[" * 5000, "nested too deeply"),
        ("needs a restart",
         changed(lambda d: d["server"].update(listen="127.0.0.1:1")), "needs a restart"),
    ]  # fmt: skip


class HealthProbe:
    """Polls ``/healthz`` on a thread until stopped; keeps every failure and the slowest
    answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers = 0
        self.failures: list[str] = []
        self.slowest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="healthz", daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get(f"{self.url}/healthz").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                else:
                    if status != 200:
                        self.failures.append(f"status {status}")
                    self.answers += 1
                self.slowest = max(self.slowest, time.monotonic() - started)
                self._stop.wait(0.02)


def _explain(stack: Stack, rollout_id: int) -> dict[str, Any]:
    found: dict[str, Any] = stack.get(f"/v1/rollouts/{rollout_id}/explain", limit=10_000)
    return found


def _step_duration(stack: Stack, rollout_id: int) -> float:
    return float(_explain(stack, rollout_id)["policy"]["strategy"]["step_duration"])


def _storm(pid: int) -> None:
    for _ in range(BURST):
        os.kill(pid, signal.SIGHUP)


def _looked_again(stack: Stack, rollout_id: int, looks: int) -> bool:
    """The rollout has more decisions than ``looks``: it is still being judged."""
    return len(_explain(stack, rollout_id)["decisions"]) > looks


def _settled(stack: Stack, finished_before: int) -> bool:
    """A reload ran since ``finished_before`` and none is in progress."""
    started, finished = _events(stack, "reload_started"), _events(stack, "reload_finished")
    return len(finished) > finished_before and len(started) == len(finished)


def _refused(stack: Stack, finished_before: int, refused_before: int, says: str) -> bool:
    """Settled, and a reload since ``refused_before`` was refused saying ``says``."""
    errors = [e["error"] for e in _events(stack, "reload_refused")[refused_before:]]
    return _settled(stack, finished_before) and any(says in error for error in errors)


@pytest.mark.timeout(300)
def test_invalid_configs_and_sighup_storms_keep_the_last_good_config(tmp_path: Path) -> None:
    stack = build_stack(tmp_path, strategy={"kind": "canary", "steps": STEPS,
                                            "step_duration": SLOW})  # fmt: skip
    stack.register("1.0.0", "production")
    stack.start_daemon()
    stack.start_workload()
    daemon = stack.procs["daemon"]
    try:
        stack.register("1.1.0")

        def moving() -> bool:
            found = stack.rollout("v1.1.0")
            return found is not None and found["weight"] > 0

        assert wait_until(moving, timeout=60), stack.log_tail()
        rollout = stack.rollout("v1.1.0")
        assert rollout is not None
        rid = rollout["id"]
        good = yaml.safe_load(stack.config.read_text())
        with HealthProbe(stack.url) as health:
            for kind, content, says in _bad_configs(good):
                looks = len(_explain(stack, rid)["decisions"])
                finished = len(_events(stack, "reload_finished"))
                refused = len(_events(stack, "reload_refused"))
                stack.config.write_bytes(content)
                _storm(daemon.pid)
                assert wait_until(partial(_refused, stack, finished, refused, says),
                                  timeout=30), (kind, stack.log_tail())  # fmt: skip
                assert daemon.poll() is None, (kind, stack.log_tail())
                assert httpx.get(f"{stack.url}/readyz", timeout=5).status_code == 200, kind
                assert _step_duration(stack, rid) == SLOW, kind  # the last good config
                now = stack.rollout("v1.1.0")
                assert now is not None
                assert now["phase"] not in TERMINAL, (kind, now)
                # The rollout is still looked at: its decisions go on (a look at least
                # every interval; polled, not timed).
                assert wait_until(partial(_looked_again, stack, rid, looks), timeout=30), (
                    kind, stack.log_tail())  # fmt: skip
            assert wait_until(partial(_settled, stack, 0), timeout=30)
            bursts = len(_bad_configs(good))
            print(f"healthz: {health.answers} answers, slowest {health.slowest:.3f} s; "
                  f"{len(_events(stack, 'reload_finished'))} reloads for "
                  f"{bursts * BURST} SIGHUPs")  # fmt: skip
        assert health.failures == [], health.failures[:5]
        assert health.answers > 0
        assert health.slowest < 1.0, health.slowest
        assert not _events(stack, "reload_crashed"), stack.log_tail()
        assert not _events(stack, "reloaded")  # no bad file was ever taken
        reloads = _events(stack, "reload_finished")
        assert len(reloads) == len(_events(stack, "reload_refused"))
        assert all(not r["ok"] for r in reloads)
        seqs = [r["seq"] for r in reloads]
        assert seqs == list(range(1, len(seqs) + 1))  # one at a time, none lost

        # A valid file that changes the step duration, and one SIGHUP: it is taken.
        good["models"]["fraud"]["strategy"]["step_duration"] = FAST
        stack.config.write_text(yaml.safe_dump(good))
        daemon.send_signal(signal.SIGHUP)
        assert wait_until(lambda: bool(_events(stack, "reloaded")), timeout=30), stack.log_tail()
        assert wait_until(partial(_settled, stack, len(reloads)), timeout=30)
        assert [r["ok"] for r in _events(stack, "reload_finished")[len(reloads) :]] == [True]
        assert _step_duration(stack, rid) == FAST
        done = stack.wait_finished("v1.1.0", timeout=120)
        print(f"rollout {rid} ended {done['phase']} at {done['weight']:g}%")
        assert done["phase"] in ("promoted", "rolled_back"), done  # as the policy judged
        assert daemon.poll() is None
        decisions = _explain(stack, rid)["decisions"]
        found = decisions_follow_policy(rid, decisions, [float(s) for s in STEPS])
        assert found == [], found
        rollouts = stack.get("/v1/rollouts", model="fraud")
        assert [r["treatment"] for r in rollouts] == ["v1.1.0"], rollouts  # started once
    finally:
        stack.stop()

    stack.check_invariants()
