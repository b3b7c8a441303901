"""The dashboard in a real browser against a real daemon and the simulated workload.

One daemon for the rollout's story, in order: a reader watches the canary advance on
screen (the page refreshes itself, its chart gains points) and has no buttons, and a
forged POST from the page is refused; the registry wants one approval, and alice
approves from the page. Another daemon's audit page shows its chain broken after the
database is tampered with.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controller.demo import PROFILES, demo_config
from controller.http.auth import hash_token
from monitors.testing import free_port, wait_until
from registry import ModelRegistry

from .conftest import Pages

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PEOPLE = {
    "alice": (["approver"], "mrt_" + "a" * 40),
    "reader": (["reader"], "mrt_" + "r" * 40),
    "workload": (["deployer"], "mrt_" + "w" * 40),
}


@dataclass
class Daemon:
    home: Path
    url: str
    procs: list[subprocess.Popen[bytes]]
    log: Any

    def tail(self) -> str:
        return (self.home / "daemon.log").read_text()[-3000:]

    def rollout(self) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {PEOPLE['reader'][1]}"}
        rows = httpx.get(f"{self.url}/v1/rollouts", headers=headers, timeout=5).json()
        return next((r for r in rows if r["treatment"] == "v1.1.0"), {})


def _register(home: Path, version: str, stage: str) -> None:
    with ModelRegistry(home=home, actor="e2e") as registry:
        artifact = home / f"{version}.bin"
        artifact.write_bytes(version.encode())
        registry.register_model("fraud", str(artifact), version=version, stage="staging")
        if stage == "production":
            registry.promote_model("fraud", version, to_stage="production", reason="base")
            registry.set_approval_required("production", ["alice", "bob"], 1, model="fraud")


def _start(home: Path, *, workload: bool) -> Daemon:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = demo_config(home, port)
    data["server"]["tokens_file"] = str(home / "tokens.yaml")
    (home / "tokens.yaml").write_text(yaml.safe_dump({"tokens": [
        {"identity": who, "roles": roles, "hash": hash_token(token)}
        for who, (roles, token) in PEOPLE.items()]}))  # fmt: skip
    config = home / "daemon.yaml"
    config.write_text(yaml.safe_dump(data))
    _register(home, "1.0.0", "production")
    log = (home / "daemon.log").open("ab")
    procs = [subprocess.Popen([sys.executable, "-m", "controller", "daemon", "--config",
                               str(config)], stdout=log, stderr=log)]  # fmt: skip
    daemon = Daemon(home, url, procs, log)
    assert wait_until(lambda: _healthy(daemon), timeout=60), daemon.tail()
    if workload:
        env = {**os.environ, "MODELREG_TOKEN": PEOPLE["workload"][1]}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "serving.workload", "--model", "fraud", "--routes",
             str(home / "routes.json"), "--ingest", url, "--rate", "500",
             *[a for p in PROFILES for a in ("--version", p)]],
            stdout=subprocess.DEVNULL, stderr=log, env=env))  # fmt: skip
    return daemon


def _healthy(daemon: Daemon) -> bool:
    assert daemon.procs[0].poll() is None, daemon.tail()
    try:
        return httpx.get(f"{daemon.url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(daemon: Daemon) -> None:
    for proc in daemon.procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in daemon.procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    daemon.log.close()


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("canary")
    daemon = _start(home, workload=True)
    try:
        _register(home, "1.1.0", "staging")
        assert wait_until(lambda: daemon.rollout().get("phase") == "progressing",
                          timeout=60, interval=0.3), daemon.tail()  # fmt: skip
        yield daemon
    finally:
        _stop(daemon)


def _sign_in(page: Any, url: str, who: str, then: str) -> None:
    page.goto(f"{url}{then}")
    assert "/ui/login" in page.url  # no session yet: sent to sign in, and back after
    page.fill("input[name=token]", PEOPLE[who][1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}{then}")


def _points(page: Any, title: str) -> int:
    """How many looks the chart named ``title`` draws (polyline vertices and dots)."""
    figure = page.locator("figure.chart-box", has_text=title).first
    vertices = sum(len(p.split()) for p in figure.locator("polyline").evaluate_all(
        "els => els.map(e => e.getAttribute('points'))"))  # fmt: skip
    return vertices + figure.locator("circle").count()


class TestRolloutStory:
    def test_a_reader_watches_the_canary_advance_without_reloading(
        self, canary: Daemon, pages: Pages
    ) -> None:
        rid = canary.rollout()["id"]
        page = pages.new()
        _sign_in(page, canary.url, "reader", f"/ui/rollouts/{rid}")
        page.evaluate("window.__notReloaded = true")
        start_points = _points(page, "accuracy")
        start_weight = page.locator("dl.summary dd").nth(3).inner_text()

        def advanced() -> bool:
            weight = page.locator("dl.summary dd").nth(3).inner_text()
            return _points(page, "accuracy") > start_points and weight != start_weight

        assert wait_until(advanced, timeout=60, interval=0.5), canary.tail()
        assert page.evaluate("window.__notReloaded") is True, "the page was reloaded"
        assert page.locator("svg.chart").count() >= 3  # weights, accuracy, error_rate
        assert page.locator("button[name=do]").count() == 0

    def test_a_forged_post_from_a_readers_page_is_refused(
        self, canary: Daemon, pages: Pages
    ) -> None:
        rid = canary.rollout()["id"]
        page = pages.new()
        _sign_in(page, canary.url, "reader", f"/ui/rollouts/{rid}")
        pages.allow("status of 403")  # the browser logs each refused fetch
        statuses = page.evaluate(
            """async (rid) => {
                const out = [];
                for (const action of ["pause", "approve", "abort"]) {
                    const reply = await fetch(`/ui/rollouts/${rid}/${action}`, {
                        method: "POST", redirect: "manual",
                        headers: {"Content-Type": "application/x-www-form-urlencoded"},
                        body: "reason=forged"});
                    out.push(reply.status);
                }
                return out;
            }""",
            rid,
        )
        assert statuses == [403, 403, 403]
        assert canary.rollout()["phase"] in ("progressing", "awaiting_approval")

    def test_an_approver_approves_from_the_page(self, canary: Daemon, pages: Pages) -> None:
        assert wait_until(lambda: canary.rollout().get("phase") == "awaiting_approval",
                          timeout=120, interval=0.5), canary.tail()  # fmt: skip
        rid = canary.rollout()["id"]
        page = pages.new()
        _sign_in(page, canary.url, "alice", f"/ui/rollouts/{rid}")
        assert re.search("1 more needed", page.locator("dl.summary").inner_text())
        buttons = {b.get_attribute("value") for b in page.locator("button[name=do]").all()}
        assert buttons == {"approve", "reject"}
        page.fill("form.action.approve input[name=reason]", "charts look right")
        page.click("form.action.approve button")
        page.wait_for_url(re.compile(r".*\?done=approve$"))
        assert "Approve: done." in page.locator("main").inner_text()
        assert wait_until(lambda: canary.rollout().get("phase") == "promoted", timeout=30)
        with ModelRegistry(home=canary.home) as registry:
            (approval,) = registry.approvals("fraud", "1.1.0")
            assert (approval.approver, approval.decision) == ("alice", "approve")
            assert str(registry.resolve("fraud").version) == "v1.1.0"


def test_the_audit_page_shows_a_tampered_chain_broken(tmp_path: Path, pages: Pages) -> None:
    daemon = _start(tmp_path, workload=False)
    try:
        page = pages.new()
        _sign_in(page, daemon.url, "reader", "/ui/audit")
        assert page.locator(".chain-ok").count() == 1
        db = sqlite3.connect(tmp_path / "registry.db")
        db.execute("UPDATE audit_event SET actor = 'mallory' WHERE id = 2")
        db.commit()
        db.close()
        page.reload()
        broken = page.locator(".chain-broken")
        assert broken.count() == 1
        assert "event 2" in broken.inner_text()
        assert "mallory" in page.locator("table").inner_text()
    finally:
        _stop(daemon)
