"""A daemon with ``ha.enabled`` on the real PostgreSQL: it joins, takes every shard when
alone, fences its writes, exports the HA metrics, and hands its shards over on stop."""

from __future__ import annotations

import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from controller.adapters.leases import LeaseStore
from controller.config import parse_config
from controller.runtime.daemon import Daemon
from registry import ModelRegistry

from ..shell.test_router_health import policy
from ..support import register


@pytest.mark.postgres
def test_a_lone_member_owns_every_shard_and_leaves_cleanly(pg_url: str, tmp_path: Path) -> None:
    config = parse_config(
        {
            "registry": {"url": pg_url, "home": str(tmp_path / "home")},
            "server": {"listen": "127.0.0.1:0"},
            "sources": {"events": {"kind": "ingest",
                                   "options": {"url": f"sqlite:///{tmp_path}/ingest.db"}}},
            "routers": {"table": {"kind": "file",
                                  "options": {"path": str(tmp_path / "routes.json")}}},
            "ha": {"enabled": True, "member_id": "solo", "lease_ttl": 30, "shards": 8},
        },
        where="test",
    )  # fmt: skip
    metrics = CollectorRegistry()
    daemon = Daemon.build(config, metrics=metrics)
    membership = daemon.controller.membership
    assert membership is not None
    assert daemon.store.fencing.fence == membership.fence
    daemon.start()
    try:
        assert sorted(membership.owned()) == list(range(8))
        assert metrics.get_sample_value("modelreg_ha_shards_owned") == 8
        assert metrics.get_sample_value("modelreg_ha_takeovers_total") == 8
        assert "leases" in daemon.scheduler.job_ids()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient
        with TestClient(daemon.app) as client:
            cluster = client.get("/v1/cluster").json()
            ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["ha"] == {"member": "solo", "shards": 8, "error": None}
        assert cluster["this_member"] == "solo"
        (member,) = cluster["members"]
        assert (member["member"], member["live"], member["shards"]) == (
            "solo",
            True,
            list(range(8)),
        )
        assert member["lease_expires_at"] > cluster["now"]
        assert cluster["unowned"] == []
    finally:
        daemon.stop()
    # stop() gave the leases up: the next member takes them at once, not after a TTL
    engine = sa.create_engine(pg_url)
    try:
        other = LeaseStore(engine, member="next", shards=8, ttl=30)
        assert all(lease.owner is None for lease in other.leases().values())
        assert other.members() == []
        assert other.acquire(0) == 2  # the first member's token was 1
    finally:
        engine.dispose()


class _SlowRoutes(BaseHTTPRequestHandler):
    """A webhook receiver that takes every route after ``DELAY_S``."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(DELAY_S)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


DELAY_S = 0.5


@pytest.mark.postgres
def test_a_start_up_reconciliation_longer_than_a_lease_keeps_the_leases(
    pg_url: str, tmp_path: Path
) -> None:
    """Start-up pushes every model's route before the scheduler (and its lease job)
    runs. With a slow router that outlasts the lease TTL, the member must renew on the
    way, or its own route writes are refused and its shards go to whoever comes."""
    models = [f"m{i}" for i in range(6)]  # 6 pushes x 0.5 s = 3 s, the TTL is 1.2 s
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowRoutes)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/routes"
    with ModelRegistry(pg_url, home=tmp_path / "home", actor="tester") as registry:
        for model in models:
            register(registry, tmp_path, model, "1.0.0", "production")
    config = parse_config(
        {
            "registry": {"url": pg_url, "home": str(tmp_path / "home")},
            "server": {"listen": "127.0.0.1:0"},
            "sources": {"events": {"kind": "ingest",
                                   "options": {"url": f"sqlite:///{tmp_path}/ingest.db"}}},
            "routers": {"hook": {"kind": "webhook",
                                 "options": {"url": url, "secret": "s", "attempts": 1}}},
            "models": dict.fromkeys(models, policy()),
            "ha": {"enabled": True, "member_id": "slow", "lease_ttl": 1.2, "shards": 4},
        },
        where="test",
    )  # fmt: skip
    daemon = Daemon.build(config, metrics=CollectorRegistry())
    membership = daemon.controller.membership
    assert membership is not None
    started = time.monotonic()
    try:
        daemon.start()
        assert membership.refused_writes == 0
        assert time.monotonic() - started > 2 * 1.2  # the reconciliation outlasted leases
        assert sorted(membership.owned()) == [0, 1, 2, 3]
        assert daemon.controller.failing_routers() == {}
        leases = membership.leases
        now = leases.now()
        assert all(lease.owner == "slow" and lease.expires_at > now
                   for lease in leases.leases().values())  # fmt: skip
    finally:
        daemon.stop()
        server.shutdown()
        server.server_close()
