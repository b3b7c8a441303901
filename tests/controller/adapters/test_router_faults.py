"""Router faults seen from the daemon (a real subprocess): an nginx whose config test
fails, and a webhook receiver that is down. In both the old routing stays, the error
is on /readyz naming the router, the rollout holds its step, and it resumes once the
router works again."""

from __future__ import annotations

import fcntl
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controller.adapters.routers.nginx import fragment_path
from monitors.testing import wait_until

from ..runtime.test_e2e import Stack, build_stack
from .test_nginx_router import LiveNginx, live_nginx  # noqa: F401 -- a fixture used below
from .test_webhook_router import (  # noqa: F401 -- fixtures used below
    SECRET,
    ReceiverServer,
    port,
    start_receiver,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def use_router(s: Stack, name: str, kind: str, options: dict[str, Any]) -> None:
    data = yaml.safe_load(s.config.read_text())
    data["routers"] = {name: {"kind": kind, "options": options}}
    data["models"]["fraud"]["router"] = name
    s.config.write_text(yaml.safe_dump(data))


def readyz(s: Stack) -> httpx.Response:
    return httpx.get(f"{s.url}/readyz", timeout=5)


def router_failures(s: Stack) -> int:
    return (s.home / "daemon.log").read_text().count('"event": "router_failed"')


def settled_text(fragment: Path) -> str:
    """The fragment read under the router's own lock (``.modelreg.lock``), so never in
    the moment between writing a new fragment and putting the old one back."""
    with (fragment.parent / ".modelreg.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            return fragment.read_text()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def candidate(s: Stack) -> dict[str, Any]:
    found = s.rollout("v1.1.0")
    assert found is not None
    return found


class TestNginxFails:
    def test_rejected_config_holds_the_rollout_until_nginx_is_fixed(
        self,
        tmp_path: Path,
        live_nginx: LiveNginx,  # noqa: F811 -- the imported fixture
    ) -> None:
        """A broken file among nginx's includes makes `nginx -t` fail: the fragment and
        the serving split stay as they were, /readyz is 503 naming the router with
        nginx's message, the metric says 0, and the candidate's rollout does not move
        however often it is retried. Once the file is gone the route goes out and the
        rollout carries on."""
        (tmp_path / "stack").mkdir()
        s = build_stack(tmp_path / "stack")
        router = live_nginx.router
        use_router(s, "edge", "nginx", {
            "include_dir": str(router.include_dir), "main_config": str(router.main_config),
            "upstreams": live_nginx.upstreams,
        })  # fmt: skip
        s.register("1.0.0", "production")
        try:
            s.start_daemon()
            assert wait_until(lambda: readyz(s).status_code == 200, timeout=30), s.log_tail()
            served = router.written("fraud")  # the daemon's, on disk
            assert served is not None
            assert served.weight_of("v1.0.0") == 100
            fragment = fragment_path(router.include_dir, "fraud")
            before = fragment.read_text()

            broken = router.include_dir / "modelreg-zz-broken.conf"
            broken.write_text("this_is_not_a_directive on;\n")
            s.register("1.1.0")
            assert wait_until(lambda: "edge" in readyz(s).json()["router_errors"], timeout=30)
            reply = readyz(s)
            assert reply.status_code == 503
            error = reply.json()["router_errors"]["edge"]
            assert "nginx -t rejected" in error
            assert "this_is_not_a_directive" in error
            metrics = httpx.get(f"{s.url}/metrics", timeout=5).text
            assert 'modelreg_controller_router_ready{router="edge"} 0.0' in metrics

            retried = router_failures(s) + 3
            assert wait_until(lambda: router_failures(s) >= retried, timeout=30), s.log_tail()
            held = candidate(s)
            assert held["weight"] == 0.0, held
            assert held["phase"] == "pending", held
            assert settled_text(fragment) == before
            assert live_nginx.sample(30) == Counter({"v1.0.0": 30})

            broken.unlink()
            assert wait_until(lambda: candidate(s)["weight"] > 0, timeout=30), s.log_tail()
            assert wait_until(lambda: readyz(s).status_code == 200, timeout=30)
            applied = router.written("fraud")
            assert applied is not None
            assert applied.weight_of("v1.1.0") == candidate(s)["weight"]
            explain = s.get(f"/v1/rollouts/{candidate(s)['id']}/explain")
            moves = [d for d in explain["decisions"] if d["action"] == "set_weight"]
            assert [d["weight"] for d in moves][:1] == [10.0]  # decided once, applied once
            assert all(d["applied"] for d in moves)
        finally:
            s.stop()

    def test_failed_reload_holds_the_rollout_until_nginx_answers(
        self,
        tmp_path: Path,
        live_nginx: LiveNginx,  # noqa: F811 -- the imported fixture
    ) -> None:
        """A reload that cannot reach nginx's master (its pid file is missing): the old
        fragment is put back and keeps serving, /readyz names the router and the pid
        file, the rollout holds; once the pid file is there the route is applied."""
        (tmp_path / "stack").mkdir()
        s = build_stack(tmp_path / "stack")
        router = live_nginx.router
        pid_file = tmp_path / "master.pid"
        use_router(s, "edge", "nginx", {
            "include_dir": str(router.include_dir), "main_config": str(router.main_config),
            "upstreams": live_nginx.upstreams, "pid_file": str(pid_file),
        })  # fmt: skip
        s.register("1.0.0", "production")
        fragment = fragment_path(router.include_dir, "fraud")
        before = fragment.read_text()
        try:
            s.start_daemon()
            reply = readyz(s)
            assert reply.status_code == 503
            error = reply.json()["router_errors"]["edge"]
            assert f"nginx reload via pid file {pid_file} failed" in error
            s.register("1.1.0")
            assert wait_until(lambda: s.rollout("v1.1.0") is not None, timeout=30)
            retried = router_failures(s) + 3
            assert wait_until(lambda: router_failures(s) >= retried, timeout=30), s.log_tail()
            held = candidate(s)
            assert held["weight"] == 0.0, held
            assert held["phase"] == "pending", held
            assert settled_text(fragment) == before
            assert live_nginx.sample(30) == Counter({"v1.0.0": 30})

            workers = live_nginx.workers()
            pid_file.write_text((live_nginx.tmp / "nginx.pid").read_text())
            assert wait_until(lambda: candidate(s)["weight"] > 0, timeout=30), s.log_tail()
            assert wait_until(lambda: readyz(s).status_code == 200, timeout=30)
            live_nginx.wait_for_new_workers(workers)  # nginx really reloaded
            applied = router.written("fraud")
            assert applied is not None
            assert applied.weight_of("v1.1.0") == candidate(s)["weight"]
        finally:
            s.stop()


class TestWebhookDown:
    def test_receiver_down_then_up(
        self,
        tmp_path: Path,
        port: int,  # noqa: F811 -- the imported fixture
        start_receiver: Callable[[], ReceiverServer],  # noqa: F811 -- the imported fixture
    ) -> None:
        """With the receiver down the desired route is kept and re-sent with backoff,
        /readyz is 503 naming the router and the last error, and the rollout holds;
        when the receiver comes up it gets the route, /readyz turns 200 and the rollout
        moves on."""
        s = build_stack(tmp_path)
        use_router(s, "hook", "webhook", {
            "url": f"http://127.0.0.1:{port}/routes", "secret": SECRET,
            "attempts": 2, "backoff_s": 0.2, "max_backoff_s": 0.5, "timeout_s": 2,
        })  # fmt: skip
        s.register("1.0.0", "production")
        try:
            s.start_daemon()
            reply = readyz(s)
            assert reply.status_code == 503
            error = reply.json()["router_errors"]["hook"]
            assert f"127.0.0.1:{port}/routes" in error
            assert "ConnectError" in error
            assert "after 2 attempt(s)" in error

            s.register("1.1.0")
            assert wait_until(lambda: s.rollout("v1.1.0") is not None, timeout=30)
            retried = router_failures(s) + 3
            assert wait_until(lambda: router_failures(s) >= retried, timeout=30), s.log_tail()
            held = candidate(s)
            assert held["weight"] == 0.0, held
            assert held["phase"] == "pending", held
            assert readyz(s).status_code == 503

            server = start_receiver()
            assert wait_until(lambda: readyz(s).status_code == 200, timeout=30), s.log_tail()
            assert wait_until(lambda: candidate(s)["weight"] > 0, timeout=30), s.log_tail()
            assert wait_until(
                lambda: any(_weight(r, "v1.1.0") > 0 for r in server.received), timeout=30
            )
            assert server.rejected == 0
            revisions = [r["revision"] for r in server.received]
            assert revisions == sorted(revisions)  # re-sends never go backwards
            s.procs["daemon"].send_signal(signal.SIGTERM)
            assert s.procs["daemon"].wait(timeout=30) == 0
        finally:
            s.stop()


def _weight(route: dict[str, Any], version: str) -> float:
    return float(sum(b["weight"] for b in route["backends"] if b["version"] == version))
