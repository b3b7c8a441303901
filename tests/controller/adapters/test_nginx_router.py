"""controller.adapters.routers.nginx: rendering, read-back, test-before-load, and a real nginx."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.adapters.routers.nginx import (
    NginxOptions,
    NginxRouter,
    build_nginx_router,
    fragment_path,
    upstream_variable,
)
from controller.adapters.routing import ROUTERS, Router, RouterError, build_router
from monitors.testing import free_port
from serving.route import Backend, Route
from tests.needs import require_executable

NGINX = "/usr/sbin/nginx"
UPSTREAMS = {"v1.0.0": "127.0.0.1:9001", "v1.1.0": "127.0.0.1:9002"}


def route(weights: tuple[int, int] = (30, 70), revision: int = 1, model: str = "fraud") -> Route:
    return Route(
        model,
        (Backend("v1.0.0", weights[0], "a" * 64), Backend("v1.1.0", weights[1])),
        revision=revision,
        salt="r1",
    )


class FakeNginx:
    """Records nginx commands and answers each kind ("-t", "-s") with a scripted result."""

    def __init__(self, *, test_rc: int = 0, reload_rc: int = 0, stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.test_rc = test_rc
        self.reload_rc = reload_rc
        self.stderr = stderr

    def __call__(self, command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(command))
        rc = self.test_rc if "-t" in command else self.reload_rc
        return subprocess.CompletedProcess(list(command), rc, "", self.stderr if rc else "")


def fake_router(tmp_path: Path, fake: FakeNginx, **kwargs: Any) -> NginxRouter:
    options: dict[str, Any] = {
        "include_dir": tmp_path / "modelreg.d",
        "main_config": tmp_path / "nginx.conf",
        "upstreams": UPSTREAMS,
        "run": fake,
    }
    options.update(kwargs)
    return NginxRouter(**options)


class TestRender:
    def test_split_clients_fragment(self, tmp_path: Path) -> None:
        """split_clients mode: one upstream per version, percentages, last bucket '*'."""
        text = fake_router(tmp_path, FakeNginx()).render(route())
        body = [line for line in text.splitlines() if not line.startswith("#")]
        assert body == [
            "upstream modelreg_fraud__v1_0_0 { server 127.0.0.1:9001; }",
            "upstream modelreg_fraud__v1_1_0 { server 127.0.0.1:9002; }",
            'split_clients "${request_id}r1" $modelreg_fraud_upstream {',
            "    30% modelreg_fraud__v1_0_0;",
            "    * modelreg_fraud__v1_1_0;",
            "}",
        ]

    def test_custom_key_and_zero_weight(self, tmp_path: Path) -> None:
        """A sticky key is used as given; a 0% version gets no upstream at all."""
        router = fake_router(tmp_path, FakeNginx(), key="$cookie_uid")
        text = router.render(route((100, 0)))
        assert 'split_clients "${cookie_uid}r1"' in text
        assert "v1_1_0" not in text
        assert "    * modelreg_fraud__v1_0_0;" in text

    def test_weighted_fragment_scales_for_server_counts(self, tmp_path: Path) -> None:
        """weighted mode: per-server weights sum to each version's share."""
        upstreams = {"v1.0.0": "127.0.0.1:9001", "v1.1.0": ["127.0.0.1:9002", "127.0.0.1:9003"]}
        router = fake_router(tmp_path, FakeNginx(), mode="weighted", upstreams=upstreams)
        text = router.render(route())
        assert "    server 127.0.0.1:9001 weight=60; # version=v1.0.0" in text
        assert "    server 127.0.0.1:9002 weight=70; # version=v1.1.0" in text
        assert "    server 127.0.0.1:9003 weight=70; # version=v1.1.0" in text
        assert "map $request_id $modelreg_fraud_upstream { default modelreg_fraud; }" in text

    def test_per_model_upstreams(self, tmp_path: Path) -> None:
        """upstreams may be keyed by model first."""
        upstreams = {"fraud": UPSTREAMS, "churn": {"v1.0.0": "10.0.0.1:80"}}
        router = fake_router(tmp_path, FakeNginx(), upstreams=upstreams)
        assert router.addresses("churn", "v1.0.0") == ("10.0.0.1:80",)
        with pytest.raises(RouterError, match=r"'churn' version 'v1.1.0'.*configured: v1.0.0"):
            router.render(route(model="churn"))

    def test_names_are_nginx_identifiers(self) -> None:
        """Model names with - or . become _ in variables and file names."""
        assert upstream_variable("fraud-detector.eu") == "$modelreg_fraud_detector_eu_upstream"
        assert fragment_path("/d", "fraud-detector").name == "modelreg-fraud_detector.conf"

    def test_salt_needing_quotes_is_refused(self, tmp_path: Path) -> None:
        """A salt nginx would have to quote is refused rather than escaped."""
        bad = Route("fraud", (Backend("v1.0.0", 100),), salt='x";')
        with pytest.raises(RouterError, match="salt"):
            fake_router(tmp_path, FakeNginx()).render(bad)


class TestSet:
    def test_writes_tests_then_reloads(self, tmp_path: Path) -> None:
        """set() writes the fragment, runs nginx -t, then nginx -s reload, in that order."""
        fake = FakeNginx()
        router = fake_router(tmp_path, fake)
        router.set(route())
        conf = str(tmp_path / "nginx.conf")
        assert fake.calls == [
            [NGINX, "-t", "-q", "-c", conf],
            [NGINX, "-s", "reload", "-c", conf],
        ]
        assert router.read("fraud") == route()
        leftovers = [p.name for p in (tmp_path / "modelreg.d").iterdir()]
        assert sorted(leftovers) == [".modelreg.lock", "modelreg-fraud.conf"]

    def test_unchanged_route_is_not_reloaded(self, tmp_path: Path) -> None:
        """Setting the same route again touches nothing."""
        fake = FakeNginx()
        router = fake_router(tmp_path, fake)
        router.set(route())
        router.set(route())
        assert len(fake.calls) == 2

    def test_failed_test_keeps_previous_fragment(self, tmp_path: Path) -> None:
        """When nginx -t fails the old fragment is back and nginx's message is raised."""
        fake = FakeNginx()
        router = fake_router(tmp_path, fake)
        router.set(route())
        before = fragment_path(tmp_path / "modelreg.d", "fraud").read_bytes()
        fake.test_rc, fake.stderr = 1, 'nginx: [emerg] invalid port in upstream "x"'
        with pytest.raises(RouterError, match=r"nginx -t rejected.*invalid port in upstream"):
            router.set(route((50, 50), revision=2))
        assert fragment_path(tmp_path / "modelreg.d", "fraud").read_bytes() == before
        assert fake.calls[-1][1] == "-t"  # no reload after a failed test
        assert router.read("fraud") == route()

    def test_failed_test_of_first_fragment_removes_it(self, tmp_path: Path) -> None:
        """With no previous fragment, a rejected one is removed again."""
        router = fake_router(tmp_path, FakeNginx(test_rc=1, stderr="nginx: [emerg] boom"))
        with pytest.raises(RouterError, match="boom"):
            router.set(route())
        assert router.read("fraud") is None

    def test_failed_reload_keeps_previous_fragment(self, tmp_path: Path) -> None:
        """When the reload fails the old fragment is restored and the error raised."""
        fake = FakeNginx()
        router = fake_router(tmp_path, fake)
        router.set(route())
        fake.reload_rc, fake.stderr = 1, 'nginx: [error] open() "/run/nginx.pid" failed'
        with pytest.raises(RouterError, match=r"reload failed.*nginx\.pid"):
            router.set(route((50, 50), revision=2))
        assert router.read("fraud") == route()

    def test_unknown_version_touches_nothing(self, tmp_path: Path) -> None:
        """A version without a configured upstream fails before any file or command."""
        fake = FakeNginx()
        router = fake_router(tmp_path, fake)
        bad = Route("fraud", (Backend("v1.0.0", 50), Backend("v2.0.0", 50)))
        with pytest.raises(RouterError, match="no upstream address configured"):
            router.set(bad)
        assert fake.calls == []
        assert router.read("fraud") is None

    def test_missing_binary(self, tmp_path: Path) -> None:
        """An nginx binary that cannot run becomes a RouterError."""
        router = NginxRouter(
            include_dir=tmp_path / "d",
            main_config=tmp_path / "nginx.conf",
            upstreams=UPSTREAMS,
            nginx=str(tmp_path / "no-nginx"),
        )
        with pytest.raises(RouterError, match="could not run"):
            router.set(route())
        assert router.read("fraud") is None

    def test_reload_by_pid_file_sends_sighup(self, tmp_path: Path) -> None:
        """With pid_file, reload is SIGHUP to that pid (here a sleeping child)."""
        # The child restores SIGHUP's default action itself and says so before we go
        # on: a runner started under nohup would otherwise hand "ignore" down to it.
        script = (
            "import signal, sys, time; signal.signal(signal.SIGHUP, signal.SIG_DFL); "
            "print('ready', flush=True); time.sleep(60)"
        )
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        try:
            (tmp_path / "nginx.pid").write_text(f"{child.pid}\n")
            fake = FakeNginx()
            router = fake_router(tmp_path, fake, pid_file=tmp_path / "nginx.pid")
            router.set(route())
            assert child.wait(timeout=30) == -signal.SIGHUP
            assert [c[1] for c in fake.calls] == ["-t"]
        finally:
            child.kill()
            child.wait()
            child.stdout.close()

    def test_missing_pid_file_keeps_previous_fragment(self, tmp_path: Path) -> None:
        """A reload that cannot find the master restores the old fragment."""
        router = fake_router(tmp_path, FakeNginx(), pid_file=tmp_path / "absent.pid")
        with pytest.raises(RouterError, match=r"pid file .*absent\.pid"):
            router.set(route())
        assert router.read("fraud") is None

    def test_first_set_after_a_start_reloads_what_is_on_disk(self, tmp_path: Path) -> None:
        """A fragment already on disk (written by a daemon that died before reloading)
        is not trusted: a new router reads None and its first set tests and reloads."""
        fake = FakeNginx()
        fake_router(tmp_path, fake).set(route())
        restarted = fake_router(tmp_path, fake)
        assert restarted.read("fraud") is None
        assert restarted.written("fraud") == route()
        restarted.set(route())
        assert len(fake.calls) == 4  # nginx -t and reload again, once
        assert restarted.read("fraud") == route()
        restarted.set(route())
        assert len(fake.calls) == 4

    def test_models_sharing_a_file_name_are_refused(self, tmp_path: Path) -> None:
        """fraud-x and fraud.x map to one file; the second may not overwrite the first."""
        router = fake_router(tmp_path, FakeNginx())
        router.set(route(model="fraud-x"))
        with pytest.raises(RouterError, match=r"holds model 'fraud-x'"):
            router.set(route(model="fraud.x"))


class TestRead:
    def test_round_trip_both_modes(self, tmp_path: Path) -> None:
        """read() parses what set() wrote, in either mode."""
        for mode in ("split_clients", "weighted"):
            router = fake_router(tmp_path / mode, FakeNginx(), mode=mode)
            for weights in [(30, 70), (100, 0), (0, 100), (1, 99)]:
                router.set(route(weights, revision=weights[1]))
                assert router.read("fraud") == route(weights, revision=weights[1])

    def test_hand_edited_fragment_is_reported(self, tmp_path: Path) -> None:
        """Directives that disagree with the header raise RouterError."""
        router = fake_router(tmp_path, FakeNginx())
        router.set(route())
        path = fragment_path(tmp_path / "modelreg.d", "fraud")
        path.write_text(path.read_text().replace("30%", "40%"))
        with pytest.raises(RouterError, match="disagree with the header"):
            router.read("fraud")

    def test_fragment_without_header(self, tmp_path: Path) -> None:
        """A fragment modelreg did not write is not silently parsed."""
        path = fragment_path(tmp_path / "modelreg.d", "fraud")
        path.parent.mkdir()
        path.write_text("upstream x { server 127.0.0.1:1; }\n")
        with pytest.raises(RouterError, match="no # modelreg-route: header"):
            fake_router(tmp_path, FakeNginx()).read("fraud")


class TestFactory:
    def test_registered_kind(self, tmp_path: Path) -> None:
        """kind: nginx builds an NginxRouter from NginxOptions, satisfying the Router protocol."""
        assert ROUTERS["nginx"].factory is build_nginx_router
        assert ROUTERS["nginx"].options is NginxOptions
        router = build_router(
            "nginx",
            {"include_dir": str(tmp_path), "main_config": "/x.conf", "upstreams": UPSTREAMS},
        )
        assert isinstance(router, NginxRouter)
        assert isinstance(router, Router)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"main_config": "/x", "upstreams": UPSTREAMS}, "include_dir: Field required"),
            ({"include_dir": "/d", "upstreams": UPSTREAMS}, "main_config: Field required"),
            ({"include_dir": "/d", "main_config": "/x"}, "upstreams: Field required"),
            (
                {"include_dir": "/d", "main_config": "/x", "upstreams": UPSTREAMS, "mode": "hash"},
                "mode: Input should be 'split_clients' or 'weighted'",
            ),
            (
                {"include_dir": "/d", "main_config": "/x", "upstreams": UPSTREAMS, "key": "x"},
                r"key: .*one nginx variable like \$request_id, not 'x'",
            ),
            (
                {"include_dir": "/d", "main_config": "/x", "upstreams": {"v1": "a b"}},
                "upstreams: .*v1: 'a b' is not an address",
            ),
            (
                {"include_dir": "/d", "main_config": "/x", "upstreams": {"fraud": {}}},
                "upstreams: .*fraud: maps no version",
            ),
            (
                {"include_dir": "/d", "main_config": "/x", "upstreams": UPSTREAMS, "reload": 1},
                "reload: Extra inputs are not permitted",
            ),
            (
                {"include_dir": "/d", "main_config": "/x", "upstreams": UPSTREAMS, "timeout_s": 0},
                "timeout_s: Input should be greater than 0",
            ),
            (
                {"include_dir": "/d", "main_config": "/x", "upstreams": UPSTREAMS, "nginx": 5},
                "nginx: Input should be a valid string",
            ),
        ],
    )
    def test_invalid_options(self, options: dict[str, Any], message: str) -> None:
        """Config mistakes are ValueErrors naming the option (NginxOptions' one check)."""
        with pytest.raises(ValueError, match=message):
            build_router("nginx", options)


# -- a real nginx -------------------------------------------------------------------


def require_nginx() -> None:
    require_executable(NGINX, "nginx")


class VersionHandler(BaseHTTPRequestHandler):
    """A tiny model server that answers with its version."""

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, UpstreamServer)
        body = server.version.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


class UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, version: str) -> None:
        super().__init__(("127.0.0.1", 0), VersionHandler)
        self.version = version


@dataclass
class LiveNginx:
    router: NginxRouter
    process: subprocess.Popen[bytes]
    port: int
    tmp: Path
    upstreams: dict[str, str]

    def workers(self) -> set[int]:
        """Pids of the master's children (its worker processes)."""
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                found.add(int(entry.name))
        return found

    def wait_for_new_workers(self, old: set[int]) -> None:
        """Block until the reload replaced every old worker (bounded, not timed)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            current = self.workers()
            if current and not current & old:
                return
            time.sleep(0.05)
        pytest.fail(f"nginx did not replace workers {old} after reload; see {self.tmp}/error.log")

    def sample(self, n: int) -> Counter[str]:
        seen: Counter[str] = Counter()
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10) as client:
            for _ in range(n):
                response = client.get("/")
                response.raise_for_status()
                seen[response.text] += 1
        return seen


MAIN_CONFIG = """\
{user}
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log notice;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/modelreg.d/modelreg-*.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://{variable}; }}
    }}
}}
"""


@pytest.fixture
def live_nginx(tmp_path: Path) -> Iterator[LiveNginx]:
    """nginx on a free loopback port in front of two version servers; 100% v1.0.0 at start."""
    require_nginx()
    upstream_servers = [UpstreamServer("v1.0.0"), UpstreamServer("v1.1.0")]
    for server in upstream_servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    upstreams = {s.version: f"127.0.0.1:{s.server_address[1]}" for s in upstream_servers}
    port = free_port()
    main = tmp_path / "nginx.conf"
    main.write_text(
        MAIN_CONFIG.format(
            # Workers must reach the pytest tmp dir (0700, root's) for temp files.
            user="user root;" if os.geteuid() == 0 else "",
            tmp=tmp_path,
            port=port,
            variable=upstream_variable("fraud"),
        )
    )
    router = NginxRouter(include_dir=tmp_path / "modelreg.d", main_config=main, upstreams=upstreams)
    # nginx cannot start without the variable, so the first fragment is written directly.
    path = fragment_path(tmp_path / "modelreg.d", "fraud")
    path.parent.mkdir()
    path.write_text(router.render(route((100, 0), revision=0)))
    process = subprocess.Popen(
        [NGINX, "-c", str(main)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    live = LiveNginx(router, process, port, tmp_path, upstreams)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if live.sample(1) == Counter({"v1.0.0": 1}):
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"nginx did not come up: {stderr}")
            time.sleep(0.05)
        yield live
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
        for server in upstream_servers:
            server.shutdown()
            server.server_close()


def within_binomial(observed: int, n: int, p: float, sds: float = 4.0) -> bool:
    return abs(observed - n * p) <= sds * math.sqrt(n * p * (1 - p))


@pytest.mark.integration
class TestRealNginx:
    def test_split_30_70(self, live_nginx: LiveNginx) -> None:
        """A 30/70 split observed over 2,000 requests is within 4 binomial SDs."""
        old = live_nginx.workers()
        live_nginx.router.set(route((30, 70)))
        live_nginx.wait_for_new_workers(old)
        seen = live_nginx.sample(2000)
        assert set(seen) == {"v1.0.0", "v1.1.0"}
        assert within_binomial(seen["v1.0.0"], 2000, 0.30), seen
        assert live_nginx.router.read("fraud") == route((30, 70))

    def test_rejected_fragment_leaves_old_config_serving(self, live_nginx: LiveNginx) -> None:
        """nginx -t failing raises with nginx's message; the old fragment keeps serving."""
        bad_upstreams = {**live_nginx.upstreams, "v9.9.9": "127.0.0.1:99999"}
        router = NginxRouter(
            include_dir=live_nginx.router.include_dir,
            main_config=live_nginx.router.main_config,
            upstreams=bad_upstreams,
        )
        path = fragment_path(router.include_dir, "fraud")
        before = path.read_bytes()
        workers = live_nginx.workers()
        bad = Route("fraud", (Backend("v1.0.0", 50), Backend("v9.9.9", 50)), revision=5)
        with pytest.raises(RouterError, match=r"nginx -t rejected.*invalid port"):
            router.set(bad)
        assert path.read_bytes() == before
        assert live_nginx.workers() == workers  # never reloaded
        assert live_nginx.sample(50) == Counter({"v1.0.0": 50})

    def test_failed_reload_keeps_old_config(self, live_nginx: LiveNginx) -> None:
        """A reload that cannot reach the master restores the old fragment; old split serves."""
        router = NginxRouter(
            include_dir=live_nginx.router.include_dir,
            main_config=live_nginx.router.main_config,
            upstreams=live_nginx.upstreams,
            pid_file=live_nginx.tmp / "wrong.pid",
        )
        workers = live_nginx.workers()
        with pytest.raises(RouterError, match=r"wrong\.pid"):
            router.set(route((0, 100), revision=6))
        assert router.written("fraud") == route((100, 0), revision=0)
        assert router.read("fraud") is None  # this router never saw nginx load it
        assert live_nginx.workers() == workers
        assert live_nginx.sample(50) == Counter({"v1.0.0": 50})

    def test_fragment_written_but_never_loaded_is_loaded_after_a_restart(
        self, live_nginx: LiveNginx
    ) -> None:
        """A daemon died between writing a fragment and reloading: nginx still serves
        the old split. The restarted daemon's router does not take the file for what
        nginx serves; its first set reloads, and the new split serves."""
        path = fragment_path(live_nginx.router.include_dir, "fraud")
        path.write_text(live_nginx.router.render(route((0, 100), revision=8)))  # no reload
        assert live_nginx.sample(20) == Counter({"v1.0.0": 20})
        restarted = NginxRouter(
            include_dir=live_nginx.router.include_dir,
            main_config=live_nginx.router.main_config,
            upstreams=live_nginx.upstreams,
        )
        assert restarted.read("fraud") is None
        old = live_nginx.workers()
        restarted.set(route((0, 100), revision=8))
        live_nginx.wait_for_new_workers(old)
        assert live_nginx.sample(50) == Counter({"v1.1.0": 50})

    def test_weighted_mode_exact_proportions(self, live_nginx: LiveNginx) -> None:
        """weighted mode: one worker's smooth round-robin gives 3 of every 10 to v1.0.0."""
        router = NginxRouter(
            include_dir=live_nginx.router.include_dir,
            main_config=live_nginx.router.main_config,
            upstreams=live_nginx.upstreams,
            mode="weighted",
        )
        old = live_nginx.workers()
        router.set(route((30, 70), revision=7))
        live_nginx.wait_for_new_workers(old)
        assert live_nginx.sample(100) == Counter({"v1.0.0": 30, "v1.1.0": 70})
        assert router.read("fraud") == route((30, 70), revision=7)
