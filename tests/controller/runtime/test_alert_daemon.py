"""Alerts against the daemon as a real subprocess: dedup across a restart, and a
production rollback whose routing failed being routed later without a restart.

Bounded in time: every wait polls with a timeout. Marked slow.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from monitors.testing import wait_until
from serving.route import read_table

from ..daemon_proc import alert_stack, now_iso, register, webhook

pytestmark = pytest.mark.slow


def _routed(routes: Path) -> list[tuple[str, int]]:
    return [(b.version, b.weight) for b in read_table(routes)["fraud"].backends]


class TestDedupAcrossRestart:
    def test_a_repeat_after_a_crash_acts_no_more(self, tmp_path: Path) -> None:
        """1.0.0 -> 1.1.0 -> 1.2.0 went out; an alert (naming no version) rolls back to
        1.1.0. The daemon is killed, restarted, and Alertmanager's repeat of the same
        alert is a duplicate: production is not walked further down to 1.0.0."""
        daemon = alert_stack(tmp_path)
        register(tmp_path, "1.1.0", "production")
        register(tmp_path, "1.2.0", "production")
        try:
            daemon.start()
            started = now_iso()  # one alert instance: Alertmanager repeats its startsAt
            first = daemon.post_alert(webhook(None, starts=started))
            assert first.status_code == 200, first.text
            (outcome,) = first.json()["actions"]
            assert (outcome["acted"], outcome["from"], outcome["to"]) == (True, "v1.2.0", "v1.1.0")

            daemon.kill()
            daemon.start()
            repeat = daemon.post_alert(webhook(None, starts=started))
            assert repeat.status_code == 200, repeat.text
            assert (repeat.json()["actions"], repeat.json()["duplicates"]) == ([], 1)
            assert daemon.production() == "v1.1.0"

            other = daemon.post_alert(webhook(None, starts=now_iso()))
            (again,) = other.json()["actions"]  # a new instance of the alert still acts
            assert (again["acted"], again["to"]) == (True, "v1.0.0")
        finally:
            daemon.stop()


class TestRoutingRetry:
    def test_failed_push_is_retried_and_reported_until_it_succeeds(self, tmp_path: Path) -> None:
        """The routing directory is replaced by a file: the alert's rollback commits in
        the registry, the answer says routing failed, /readyz names the router. Once the
        directory can be written again the daemon routes v1.0.0 on its own, with a newer
        revision than serving held, and becomes ready."""
        routes = tmp_path / "routing" / "routes.json"
        daemon = alert_stack(tmp_path, routes=routes)
        register(tmp_path, "1.1.0", "production")
        try:
            daemon.start()
            assert wait_until(lambda: _routed(routes) == [("v1.1.0", 100)], timeout=30)
            held = read_table(routes)["fraud"].revision
            (tmp_path / "routing").rename(tmp_path / "routing.saved")
            (tmp_path / "routing").write_text("a file where the routing directory should be")

            answer = daemon.post_alert(webhook("v1.1.0"))
            assert answer.status_code == 200, answer.text
            (outcome,) = answer.json()["actions"]
            assert outcome["acted"] is False
            assert "routing failed" in outcome["result"]
            assert daemon.production() == "v1.0.0"
            ready = httpx.get(f"{daemon.url}/readyz", timeout=5)
            assert ready.status_code == 503
            assert "table" in ready.json()["router_errors"]

            (tmp_path / "routing").unlink()
            (tmp_path / "routing.saved").rename(tmp_path / "routing")
            assert wait_until(
                lambda: httpx.get(f"{daemon.url}/readyz", timeout=2).status_code == 200,
                timeout=30,
            ), daemon.log_tail()
            route = read_table(routes)["fraud"]
            assert [(b.version, b.weight) for b in route.backends] == [("v1.0.0", 100)]
            assert route.revision > held
        finally:
            daemon.stop()
