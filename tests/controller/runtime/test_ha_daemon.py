"""A daemon with ``ha.enabled`` on the real PostgreSQL: it joins, takes every shard when
alone, fences its writes, exports the HA metrics, and hands its shards over on stop."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from controller.adapters.leases import LeaseStore
from controller.config import parse_config
from controller.runtime.daemon import Daemon


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
