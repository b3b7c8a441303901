"""The haproxy router against a real HAProxy (Debian's ``haproxy``), started by the test
with a generated config on loopback ports, in front of two real HTTP servers that
answer with their version: weights change through the runtime API without a reload,
and the traffic through HAProxy follows them within binomial bounds."""

from __future__ import annotations

import math
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.adapters.routers.haproxy import HaproxyRouter
from controller.adapters.routing import RouterError, build_router
from monitors.testing import free_port, wait_until
from serving.route import Backend, Route
from tests.needs import require_executable

HAPROXY = "/usr/sbin/haproxy"
SERVERS = {"v1.0.0": "v1", "v1.1.0": "v2"}


def require_haproxy() -> None:
    require_executable(HAPROXY, "haproxy")


class _Version(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.version.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@dataclass
class Haproxy:
    url: str
    socket: Path
    config: Path
    process: subprocess.Popen[bytes]

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        log = self.config.with_suffix(".log")
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(self.config)], stdout=out, stderr=out
            )
        assert wait_until(self.socket.exists, timeout=10), log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Haproxy]:
    require_haproxy()
    servers = []
    for version in SERVERS:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Version)
        server.version = version  # type: ignore[attr-defined]
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    port = free_port()
    sock = tmp_path / "admin.sock"
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        f"global\n  stats socket {sock} mode 600 level admin\n"
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n"
        "  timeout server 10s\n"
        f"frontend fe\n  bind 127.0.0.1:{port}\n  default_backend fraud_backend\n"
        "backend fraud_backend\n  balance roundrobin\n"
        f"  server v1 127.0.0.1:{servers[0].server_address[1]} weight 100\n"
        f"  server v2 127.0.0.1:{servers[1].server_address[1]} weight 0\n"
    )
    proxy = Haproxy(f"http://127.0.0.1:{port}", sock, config, None)  # type: ignore[arg-type]
    proxy.start()
    yield proxy
    proxy.stop()
    for server in servers:
        server.shutdown()
        server.server_close()


def _router(proxy: Haproxy) -> HaproxyRouter:
    router = build_router("haproxy", {"socket": str(proxy.socket), "servers": SERVERS,
                                      "backends": {"fraud": "fraud_backend"}})  # fmt: skip
    assert isinstance(router, HaproxyRouter)
    return router


def _route(treatment: int, revision: int = 1) -> Route:
    return Route("fraud", (Backend("v1.0.0", 100 - treatment, "a" * 64),
                           Backend("v1.1.0", treatment, "b" * 64)), revision, "salt")  # fmt: skip


def _served(url: str, n: int) -> Counter[str]:
    with httpx.Client(timeout=10) as client:
        return Counter(client.get(f"{url}/predict").text for _ in range(n))


def test_the_split_follows_the_weights_without_a_reload(haproxy: Haproxy) -> None:
    router = _router(haproxy)
    assert router.read("fraud") == Route("fraud", (Backend("v1.0.0", 100),), 0)
    pid = haproxy.process.pid
    router.set(_route(10))
    assert router.read("fraud") == _route(10)  # what was pushed, whole
    n = 2000
    served = _served(haproxy.url, n)
    p = 0.10
    bound = 4 * math.sqrt(p * (1 - p) / n)  # four standard errors
    assert abs(served["v1.1.0"] / n - p) <= bound, served
    assert served["v1.0.0"] + served["v1.1.0"] == n
    router.set(_route(100, revision=2))
    assert _served(haproxy.url, 200) == Counter({"v1.1.0": 200})
    assert haproxy.process.pid == pid  # never reloaded, never restarted
    assert haproxy.process.poll() is None


def test_weights_changed_behind_its_back_read_as_drift(haproxy: Haproxy) -> None:
    """HAProxy restarted (its config's weights back) or someone edited them: read
    returns what HAProxy serves with revision 0, and the next set puts it right."""
    router = _router(haproxy)
    router.set(_route(50))
    haproxy.stop()
    haproxy.start()
    drifted = router.read("fraud")
    assert drifted == Route("fraud", (Backend("v1.0.0", 100),), 0)
    router.set(_route(50, revision=3))
    assert router.read("fraud") == _route(50, revision=3)


def test_a_version_without_a_server_changes_nothing(haproxy: Haproxy) -> None:
    router = _router(haproxy)
    router.set(_route(20))
    bad = Route("fraud", (Backend("v1.0.0", 50), Backend("v9.9.9", 50)), 5)
    with pytest.raises(RouterError, match=r"no server configured for fraud v9\.9\.9"):
        router.set(bad)
    assert router.read("fraud") == _route(20)


def test_haproxy_refusals_and_absence_are_router_errors(haproxy: Haproxy, tmp_path: Path) -> None:
    wrong = HaproxyRouter(socket_address=str(haproxy.socket), servers={"v1.0.0": "nope"},
                          backends={"fraud": "fraud_backend"})  # fmt: skip
    with pytest.raises(RouterError, match="haproxy: get weight fraud_backend/nope: No such server"):
        wrong.set(Route("fraud", (Backend("v1.0.0", 100),), 1))
    gone = HaproxyRouter(socket_address=str(tmp_path / "missing.sock"), servers=SERVERS,
                         timeout_s=1)  # fmt: skip
    started = time.monotonic()
    with pytest.raises(RouterError, match=r"missing\.sock"):
        gone.set(_route(10))
    assert time.monotonic() - started < 5
    port = free_port()  # a TCP address where nothing listens
    with pytest.raises(RouterError, match=f"127.0.0.1:{port}"):
        HaproxyRouter(socket_address=f"127.0.0.1:{port}", servers=SERVERS).read("fraud")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"servers": SERVERS}, "socket"),
        ({"socket": "/run/h.sock"}, "servers"),
        ({"socket": "/run/h.sock", "servers": {"v1": "bad name"}}, "HAProxy name"),
        ({"socket": "/run/h.sock", "servers": {"fraud": {"v1": "a"}, "v2": "b"}}, "mix of"),
        ({"socket": "admin.sock", "servers": SERVERS}, "a UNIX socket path"),
        ({"socket": "127.0.0.1:99999", "servers": SERVERS}, "host:port"),
    ],
)
def test_invalid_options_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_router("haproxy", options)
