"""controller.runtime.systemd against a real AF_UNIX datagram socket, and the unit file."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.runtime import systemd

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "modelreg.service"


def require_binary(name: str) -> str:
    """The binary's path; skip locally when missing, fail under CI=true."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed (Debian package systemd; see tests/services.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class Listener:
    """A bound SOCK_DGRAM socket standing in for systemd's notify socket."""

    def __init__(self, address: str, env_value: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(5)
        self.env = {"NOTIFY_SOCKET": env_value}

    def receive(self) -> str:
        return self.sock.recv(4096).decode()


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Listener]:
    """One listener per address kind: a filesystem path and an abstract name."""
    if request.param == "path":
        path = str(tmp_path / "notify.sock")
        made = Listener(path, path)
    else:
        name = f"modelreg-test-{uuid.uuid4().hex}"
        made = Listener("\0" + name, "@" + name)
    try:
        yield made
    finally:
        made.sock.close()


class TestNotify:
    def test_ready_sends_one_datagram(self, listener: Listener) -> None:
        """ready() sends READY=1 and reports that it was sent."""
        assert systemd.ready(env=listener.env) is True
        assert listener.receive() == "READY=1"

    def test_each_helper_sends_its_state(self, listener: Listener) -> None:
        """watchdog, stopping and status send their own assignments."""
        assert systemd.watchdog(env=listener.env)
        assert listener.receive() == "WATCHDOG=1"
        assert systemd.stopping(env=listener.env)
        assert listener.receive() == "STOPPING=1"
        assert systemd.status("evaluating\n3 rollouts", env=listener.env)
        assert listener.receive() == "STATUS=evaluating 3 rollouts"

    def test_reloading_carries_monotonic_timestamp(self, listener: Listener) -> None:
        """reloading() sends RELOADING=1 with MONOTONIC_USEC for Type=notify-reload."""
        assert systemd.reloading(env=listener.env)
        lines = listener.receive().split("\n")
        assert lines[0] == "RELOADING=1"
        assert re.fullmatch(r"MONOTONIC_USEC=\d+", lines[1])

    def test_arbitrary_state(self, listener: Listener) -> None:
        """notify() sends the given lines unchanged."""
        assert systemd.notify("READY=1\nSTATUS=up", env=listener.env)
        assert listener.receive() == "READY=1\nSTATUS=up"

    def test_not_under_systemd(self) -> None:
        """Without NOTIFY_SOCKET every call is a no-op returning False."""
        assert systemd.notify("READY=1", env={}) is False
        assert systemd.ready(env={"NOTIFY_SOCKET": ""}) is False

    def test_relative_path_is_refused(self) -> None:
        """A NOTIFY_SOCKET that is neither absolute nor abstract is not used."""
        assert systemd.ready(env={"NOTIFY_SOCKET": "relative/notify.sock"}) is False

    def test_nobody_listening_returns_false(self, tmp_path: Path) -> None:
        """A socket path without a listener is a failed send, not an exception."""
        assert systemd.ready(env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False


class TestWatchdogInterval:
    @pytest.mark.parametrize(
        ("env", "expected"),
        [
            ({}, None),
            ({"WATCHDOG_USEC": "30000000"}, 30.0),
            ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
            ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),
            ({"WATCHDOG_USEC": "0"}, None),
            ({"WATCHDOG_USEC": "-5"}, None),
            ({"WATCHDOG_USEC": "soon"}, None),
            ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "x"}, None),
        ],
    )
    def test_table(self, env: dict[str, str], expected: float | None) -> None:
        """Seconds from WATCHDOG_USEC, only for the process WATCHDOG_PID names."""
        assert systemd.watchdog_interval(env, pid=4242) == expected

    def test_defaults_to_this_process(self) -> None:
        """Without an explicit pid, WATCHDOG_PID is compared with os.getpid()."""
        env = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
        assert systemd.watchdog_interval(env) == 1.0


def unit_settings() -> dict[str, list[str]]:
    """Key -> values of the unit file (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if not line.strip() or line.startswith(("#", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


class TestUnitFile:
    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("Type", "notify"),
            ("NotifyAccess", "main"),
            ("ExecStart", "/usr/bin/modelreg daemon --config /etc/modelreg/config.yaml"),
            ("ExecReload", "/bin/kill -HUP $MAINPID"),
            ("Restart", "on-failure"),
            ("WatchdogSec", "30"),
            ("DynamicUser", "yes"),
            ("StateDirectory", "modelreg"),
            ("ConfigurationDirectory", "modelreg"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("NoNewPrivileges", "yes"),
            ("CapabilityBoundingSet", ""),
            ("AmbientCapabilities", ""),
            ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
            ("SystemCallFilter", "@system-service"),
            ("SystemCallFilter", "~@privileged @resources"),
            ("SystemCallArchitectures", "native"),
            ("UMask", "0077"),
            ("MemoryDenyWriteExecute", "yes"),
            ("ProtectProc", "invisible"),
            ("ProcSubset", "pid"),
        ],
    )
    def test_setting(self, key: str, value: str) -> None:
        """The unit carries each required setting with its exact value."""
        assert value in unit_settings().get(key, [])

    def test_systemd_analyze_verify(self, tmp_path: Path) -> None:
        """systemd-analyze verify accepts the unit.

        verify checks that ExecStart's binary exists; the installed console script
        is not on this machine, so a copy points ExecStart at /bin/true. Nothing
        else is changed.
        """
        analyze = require_binary("systemd-analyze")
        text = UNIT.read_text()
        assert text.count("ExecStart=/usr/bin/modelreg ") == 1
        copy = tmp_path / "modelreg.service"
        copy.write_text(text.replace("ExecStart=/usr/bin/modelreg ", "ExecStart=/bin/true "))
        done = subprocess.run(
            [analyze, "verify", str(copy)], check=False, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == ""

    def test_security_exposure_at_most_2_5(self) -> None:
        """systemd-analyze security --offline rates the unit's exposure 2.5 or lower."""
        analyze = require_binary("systemd-analyze")
        # --threshold is on the 0..100 scale; the printed level is on 0..10.
        done = subprocess.run(
            [analyze, "security", "--offline=yes", "--threshold=25", str(UNIT)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
        assert match is not None, done.stdout + done.stderr
        assert float(match.group(1)) <= 2.5
        assert done.returncode == 0, done.stderr
