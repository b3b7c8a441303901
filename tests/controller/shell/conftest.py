"""Two members on one database (SQLite and the real PostgreSQL), wired as
``controller.runtime.ha.join`` wires a daemon: each store fenced by its member's leases,
decisions and requests written under its name, a request queue on the controller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.adapters.leases import LeaseStore
from controller.adapters.request_store import RequestStore
from controller.adapters.rollout_store import RolloutStore
from controller.config import HaSection
from controller.shell.controller import Controller
from controller.shell.membership import Membership
from monitors import IngestStore
from registry import ModelRegistry
from tests.clock import Clock

from ..support import config, file_controller, register

MODELS = [f"m{i}" for i in range(8)]
SHARDS = 16


@dataclass
class Pair:
    a: Controller
    b: Controller
    registry: ModelRegistry


def member(controller: Controller, store: RolloutStore, name: str, ttl: float) -> None:
    membership = Membership(LeaseStore(store.engine, member=name, shards=SHARDS, ttl=ttl))
    store.fencing.fence = membership.fence
    store.fencing.member = name
    store.fencing.token = membership.token_of
    controller.membership = membership
    controller.requests = RequestStore(store.engine, fencing=store.fencing, shards=SHARDS,
                                       ttl=controller.config.ha.request_ttl)  # fmt: skip


@pytest.fixture
def pair(tmp_path: Path, db_url: str) -> Iterator[Pair]:
    registry = ModelRegistry(url=db_url, home=tmp_path / "home")
    for model in MODELS:
        register(registry, tmp_path, model, "1.0.0", "production")
        register(registry, tmp_path, model, "1.1.0", "staging")
    routes = tmp_path / "routes.json"
    ingest_url = f"sqlite:///{tmp_path}/ingest.db"
    cfg = config(tmp_path, routes, ingest_url)
    cfg = cfg.model_copy(update={
        "models": dict.fromkeys(MODELS, cfg.models["fraud"]),
        "ha": HaSection(enabled=True, shards=SHARDS, request_wait=0.0),
    })  # fmt: skip
    ingest = IngestStore.open(ingest_url)
    stores = [RolloutStore.open(db_url), RolloutStore.open(db_url)]
    a, b = (file_controller(cfg, registry, s, ingest, routes, Clock()) for s in stores)
    member(a, stores[0], "a", ttl=30.0)
    member(b, stores[1], "b", ttl=30.0)
    for _ in range(2):
        for c in (a, b):
            assert c.membership is not None
            c.membership.round()
    yield Pair(a, b, registry)
    ingest.close()
    for s in stores:
        s.close()
    registry.close()
