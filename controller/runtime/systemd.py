"""The systemd notify protocol, spoken without libsystemd.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET``: a filesystem path, or an
abstract ``AF_UNIX`` address written with a leading ``@``. A notification is one
datagram of newline-separated ``KEY=VALUE`` assignments (``READY=1``,
``WATCHDOG=1``, ``STATUS=...``). Outside systemd the variable is absent and every
call here is a no-op returning False, so the daemon calls these unconditionally.

A failed send is logged and reported as False rather than raised: a lost
watchdog ping must not crash the daemon it is meant to keep alive (systemd
restarts it anyway when pings stop).

Watchdog: with ``WatchdogSec=`` systemd sets ``WATCHDOG_USEC`` (and
``WATCHDOG_PID``); ``watchdog_interval`` turns it into seconds. Ping at half
that interval, as sd_watchdog_enabled(3) recommends.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)

__all__ = [
    "notify",
    "ready",
    "reloading",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval",
]


def _address(raw: str) -> str | None:
    """The socket address for ``NOTIFY_SOCKET``, or None when it is not one we speak.

    ``@name`` is Linux's abstract namespace (a leading NUL byte); anything else
    must be an absolute path. ``vsock:`` addresses (systemd 254+, for VMs) are
    not supported and count as "not under systemd".
    """
    if raw.startswith("@") and len(raw) > 1:
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    return None


def notify(state: str, *, env: Mapping[str, str] = os.environ) -> bool:
    """Send ``state`` (``KEY=VALUE`` lines) to systemd; True when it was sent.

    False when ``NOTIFY_SOCKET`` is unset or unusable (not under systemd) or when
    the datagram could not be sent.
    """
    raw = env.get("NOTIFY_SOCKET", "")
    if not raw:
        return False
    address = _address(raw)
    if address is None:
        log.warning("systemd.notify_socket_unsupported", notify_socket=raw)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        log.warning("systemd.notify_failed", notify_socket=raw, error=str(exc))
        return False
    return True


def ready(*, env: Mapping[str, str] = os.environ) -> bool:
    """Startup is complete: config loaded, listeners bound, jobs scheduled."""
    return notify("READY=1", env=env)


def reloading(*, env: Mapping[str, str] = os.environ) -> bool:
    """A reload (SIGHUP) started; call ``ready()`` again when it is done.

    ``MONOTONIC_USEC`` is what ``Type=notify-reload`` (systemd 253+) requires to
    match the reload to its request; older systemd ignores the extra key.
    """
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}", env=env)


def stopping(*, env: Mapping[str, str] = os.environ) -> bool:
    """Shutdown started; systemd stops expecting watchdog pings."""
    return notify("STOPPING=1", env=env)


def watchdog(*, env: Mapping[str, str] = os.environ) -> bool:
    """The keep-alive ping for ``WatchdogSec=``."""
    return notify("WATCHDOG=1", env=env)


def status(text: str, *, env: Mapping[str, str] = os.environ) -> bool:
    """A one-line status shown by ``systemctl status`` (newlines become spaces)."""
    one_line = " ".join(text.split())
    return notify(f"STATUS={one_line}", env=env)


def watchdog_interval(
    env: Mapping[str, str] = os.environ, *, pid: int | None = None
) -> float | None:
    """The watchdog timeout in seconds, or None when no watchdog applies to us.

    None when ``WATCHDOG_USEC`` is unset, not a positive integer, or when
    ``WATCHDOG_PID`` names another process (the variables leaked to a child).
    ``pid`` defaults to this process.
    """
    raw_usec = env.get("WATCHDOG_USEC", "")
    try:
        usec = int(raw_usec)
    except ValueError:
        return None
    if usec <= 0:
        return None
    raw_pid = env.get("WATCHDOG_PID", "")
    if raw_pid:
        try:
            owner = int(raw_pid)
        except ValueError:
            return None
        if owner != (os.getpid() if pid is None else pid):
            return None
    return usec / 1_000_000
