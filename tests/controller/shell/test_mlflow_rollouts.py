"""The controller on MLflow: a staging alias set by any MLflow client starts a rollout,
and the rollout's promotion moves the production alias. Real mlflow server, real
SQLite governance and ingest databases, the file router."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.guard_store import GuardStore
from controller.adapters.registry_gateway import open_registry
from controller.adapters.rollout_store import RolloutStore
from controller.config import AlertRoute, parse_config
from controller.core.decide import Promote, RollBack, SetWeight
from controller.core.phases import Phase
from controller.errors import ConfigError
from controller.http.app import ApiDeps, create_app
from controller.shell.controller import Controller
from controller.shell.guard_pass import GUARD_ACTOR, Guard
from monitors import AlertIntake, IngestStore
from registry import MLflowRegistry
from serving.route import read_table
from tests.clock import Clock

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's TestClient warns about httpx on import
    from fastapi.testclient import TestClient

from tests.mlflow_server import Raw

from ..support import config, file_controller, register, traffic

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def set_alias(uri: str, name: str, alias: str, version: int) -> None:
    """What any MLflow client does to mark a version for staging."""
    httpx.post(
        f"{uri}/api/2.0/mlflow/registered-models/alias",
        json={"name": name, "alias": alias, "version": str(version)},
        timeout=30,
    ).raise_for_status()


def aliases(uri: str, name: str) -> dict[str, int]:
    found = httpx.get(
        f"{uri}/api/2.0/mlflow/registered-models/get", params={"name": name}, timeout=30
    ).json()["registered_model"]
    return {a["alias"]: int(a["version"]) for a in found.get("aliases", [])}


@dataclass
class World:
    registry: MLflowRegistry
    ingest: IngestStore
    store: RolloutStore
    clock: Clock
    routes: Path
    controller: Controller

    def parts(self) -> tuple[MLflowRegistry, IngestStore, RolloutStore, Clock, Path, Controller]:
        return self.registry, self.ingest, self.store, self.clock, self.routes, self.controller


class TestConfig:
    def test_mlflow_registry_section(self, tmp_path: Path) -> None:
        """kind: mlflow needs tracking_uri; its governance URL is the daemon's database."""
        base = {"routers": {"t": {"kind": "file", "options": {"path": str(tmp_path / "r")}}}}
        cfg = parse_config(
            {**base, "registry": {"kind": "mlflow", "tracking_uri": "http://127.0.0.1:5000",
                                  "home": str(tmp_path)}},
            where="test",
        )  # fmt: skip
        assert cfg.registry_url() == f"sqlite:///{tmp_path / 'mlflow-governance.db'}"
        with open_registry(cfg) as registry:
            assert isinstance(registry, MLflowRegistry)
            assert registry.tracking_uri == "http://127.0.0.1:5000"
        with pytest.raises(ConfigError, match="tracking_uri"):
            parse_config({**base, "registry": {"kind": "mlflow"}}, where="test")
        with pytest.raises(ConfigError, match="governance, not url"):
            parse_config(
                {**base, "registry": {"kind": "mlflow", "tracking_uri": "http://x:1",
                                      "url": "sqlite:///x.db"}},
                where="test",
            )  # fmt: skip


@pytest.mark.mlflow
@pytest.mark.integration
class TestRolloutsOnMLflow:
    @pytest.fixture
    def world(self, tmp_path: Path, mlflow_uri: str) -> Iterator[World]:
        """'fraud' with v1.0.0 in production, registered through modelreg."""
        yield from self._world(tmp_path, mlflow_uri, baseline=True)

    @pytest.fixture
    def bare(self, tmp_path: Path, mlflow_uri: str) -> Iterator[World]:
        """Nothing registered through modelreg yet."""
        yield from self._world(tmp_path, mlflow_uri, baseline=False)

    def _world(self, tmp_path: Path, mlflow_uri: str, *, baseline: bool) -> Iterator[World]:
        clock = Clock(T0)
        registry = MLflowRegistry(
            mlflow_uri,
            governance=f"sqlite:///{tmp_path / 'governance.db'}",
            home=tmp_path / "home",
            actor="tester",
            clock=clock,
        )
        if baseline:
            register(registry, tmp_path, "fraud", "v1.0.0", "production")
        ingest = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
        store = RolloutStore.open(registry.url)
        routes = tmp_path / "routes" / "routes.json"
        cfg = config(tmp_path, routes, f"sqlite:///{tmp_path}/ingest.db")
        controller = file_controller(
            cfg, registry, store, ingest, routes, clock, CollectorRegistry()
        )
        yield World(registry, ingest, store, clock, routes, controller)
        ingest.close()
        store.close()
        registry.close()

    def test_staging_alias_from_another_client_starts_a_rollout_that_promotes(
        self, world: World, mlflow_uri: str, tmp_path: Path
    ) -> None:
        """Another client's staging alias -> rollout -> promotion moves production in MLflow."""
        registry, ingest, store, clock, routes, controller = world.parts()
        register(registry, tmp_path, "fraud", "v1.1.0", "dev")
        assert controller.watch_once() == []  # dev: nothing to judge
        set_alias(mlflow_uri, "fraud", "staging", 2)
        (rollout,) = controller.watch_once()
        assert (rollout.control, rollout.treatment) == ("v1.0.0", "v1.1.0")
        assert registry.history("fraud")[-1].actor == "mlflow"
        assert isinstance(controller.reconcile_once(rollout.id), SetWeight)
        clock.advance(6)
        traffic(ingest, "fraud", clock(),
                {"v1.0.0": (1500, 0.7, 0.01), "v1.1.0": (1500, 0.85, 0.01)})  # fmt: skip
        decision = controller.reconcile_once(rollout.id)
        assert isinstance(decision, Promote), decision
        assert aliases(mlflow_uri, "fraud")["production"] == 2
        assert "staging" not in aliases(mlflow_uri, "fraud")
        assert str(registry.resolve("fraud").version) == "v1.1.0"
        assert [(b.version, b.weight) for b in read_table(routes)["fraud"].backends] == [
            ("v1.1.0", 100)
        ]
        assert store.get(rollout.id).phase is Phase.PROMOTED
        assert registry.verify_audit_chain() is None

    def test_staging_alias_on_another_clients_version_adopts_it_and_rolls_out(
        self, world: World, raw: Raw, tmp_path: Path
    ) -> None:
        """Another client registers version 2 and sets its staging alias: it is adopted
        as v2.0.0 (its files, its number, no tag written on it), rolled out, promoted."""
        registry, ingest, _, clock, routes, controller = world.parts()
        files = {"MLmodel": b"flavors: {}\n", "model.pkl": b"\x80\x04candidate"}
        number = raw.foreign_version("fraud", files)
        assert controller.watch_once() == []  # no alias yet: not a candidate
        set_alias(raw.uri, "fraud", "staging", number)
        (rollout,) = controller.watch_once()
        assert (rollout.control, rollout.treatment) == ("v1.0.0", f"v{number}.0.0")
        adopted = registry.get_model_version("fraud", f"v{number}.0.0")
        assert adopted.stage == "staging"
        assert adopted.metadata["mlflow"]["version"] == number
        assert raw.tags("fraud", number) == {}  # never rewritten
        assert raw.aliases("fraud")[f"v{number}_0_0"] == number
        assert controller.watch_once() == []  # adopted once
        controller.reconcile_once(rollout.id)
        clock.advance(6)
        traffic(ingest, "fraud", clock(),
                {"v1.0.0": (1500, 0.7, 0.01), f"v{number}.0.0": (1500, 0.85, 0.01)})  # fmt: skip
        assert isinstance(controller.reconcile_once(rollout.id), Promote)
        assert raw.aliases("fraud")["production"] == number
        assert raw.tags("fraud", number) == {}
        assert str(registry.resolve("fraud").version) == f"v{number}.0.0"
        assert [(b.version, b.weight) for b in read_table(routes)["fraud"].backends] == [
            (f"v{number}.0.0", 100)
        ]
        assert registry.verify_audit_chain() is None

    def test_a_model_wholly_another_clients_adopts_production_first(
        self, bare: World, raw: Raw
    ) -> None:
        """Nothing of ours: MLflow's production version is adopted as production, then
        the staging one as the candidate judged against it."""
        registry, _, _, _, _, controller = bare.parts()
        old = raw.foreign_version("fraud", {"model.bin": b"old"})
        new = raw.foreign_version("fraud", {"model.bin": b"new"})
        set_alias(raw.uri, "fraud", "production", old)
        set_alias(raw.uri, "fraud", "staging", new)
        (rollout,) = controller.watch_once()
        assert (rollout.control, rollout.treatment) == (f"v{old}.0.0", f"v{new}.0.0")
        assert registry.get_model_version("fraud", f"v{old}.0.0").stage == "production"
        assert {e.actor for e in registry.history("fraud")} == {"mlflow"}
        held = raw.aliases("fraud")  # the other client's aliases never moved
        assert (held["staging"], held["production"]) == (new, old)
        assert raw.aliases("fraud")["production"] == old
        assert Path(registry.get_model("fraud", version=f"v{new}.0.0")).read_bytes() == b"new"
        assert registry.verify_audit_chain() is None

    def test_an_adoption_that_would_take_a_used_version_starts_nothing(
        self, world: World, raw: Raw, tmp_path: Path
    ) -> None:
        """v3.0.0 is ours already; another client's version 3 cannot be named so: nothing
        is adopted or started, and nothing is written in MLflow."""
        registry, _, store, _, _, controller = world.parts()
        register(registry, tmp_path, "fraud", "v3.0.0", "dev")  # MLflow version 2
        number = raw.foreign_version("fraud", {"model.bin": b"x"})
        assert number == 3
        set_alias(raw.uri, "fraud", "staging", number)
        assert controller.watch_once() == []
        assert registry.get_model_version("fraud", "v3.0.0").stage == "dev"
        assert raw.aliases("fraud").get("v3_0_0") == 2
        assert raw.aliases("fraud")["staging"] == number  # left as the other client set it
        assert store.list_rollouts() == []

    def test_a_regression_rolls_back_and_production_stays(
        self, world: World, mlflow_uri: str, tmp_path: Path
    ) -> None:
        """A worse candidate is rolled back; MLflow's production alias never left v1.0.0."""
        registry, ingest, store, clock, _, controller = world.parts()
        register(registry, tmp_path, "fraud", "v1.1.0", "staging")
        (rollout,) = controller.watch_once()
        controller.reconcile_once(rollout.id)
        clock.advance(6)
        traffic(ingest, "fraud", clock(),
                {"v1.0.0": (1500, 0.8, 0.01), "v1.1.0": (1500, 0.8, 0.4)})  # fmt: skip
        decision = controller.reconcile_once(rollout.id)
        assert isinstance(decision, RollBack), decision
        assert aliases(mlflow_uri, "fraud")["production"] == 1
        assert str(registry.resolve("fraud").version) == "v1.0.0"
        assert store.get(rollout.id).phase is Phase.ROLLED_BACK

    def test_the_guard_rolls_production_back_in_mlflow(
        self, world: World, raw: Raw, tmp_path: Path
    ) -> None:
        """A production version breaching a trigger is rolled back by the guard pass:
        the production alias moves back in MLflow, the route follows, audited."""
        registry, _, store, clock, routes, controller = world.parts()
        register(registry, tmp_path, "fraud", "v1.1.0", "production")
        assert raw.aliases("fraud")["production"] == 2
        controller.reconcile_routers()
        guard = Guard(controller, GuardStore(store.engine), metrics=CollectorRegistry())
        traffic(world.ingest, "fraud", clock() - timedelta(seconds=1),
                {"v1.1.0": (200, 0.8, 0.5)})  # fmt: skip
        (verdict,) = guard.run_once()
        assert verdict.action == "rollback"
        assert raw.aliases("fraud")["production"] == 1
        assert raw.tags("fraud", 2)["modelreg.stage"] == "archived"
        assert str(registry.resolve("fraud").version) == "v1.0.0"
        last = registry.history("fraud")[-1]
        assert (last.kind, last.actor) == ("rollback", GUARD_ACTOR)
        assert [(b.version, b.weight) for b in read_table(routes)["fraud"].backends] == [
            ("v1.0.0", 100)
        ]
        assert registry.verify_audit_chain() is None

    def test_an_alert_rolls_production_back_in_mlflow(
        self, world: World, mlflow_uri: str, tmp_path: Path
    ) -> None:
        """Alertmanager's webhook with no rollout running: the production alias moves back."""
        registry, _, _, _, routes, controller = world.parts()
        register(registry, tmp_path, "fraud", "v1.1.0", "production")
        assert aliases(mlflow_uri, "fraud")["production"] == 2
        controller.reconcile_routers()
        rules = [AlertRoute(match={"alertname": "FraudErrors"}, action="rollback").rule(0)]
        app = create_app(
            ApiDeps(controller=controller, metrics=CollectorRegistry(), alerts=AlertIntake(rules))
        )
        webhook = {
            "version": "4", "receiver": "modelreg", "status": "firing", "groupKey": "g",
            "alerts": [{"status": "firing", "fingerprint": "f1",
                        "startsAt": "2026-03-01T12:00:00Z",
                        "labels": {"alertname": "FraudErrors", "model": "fraud"}}],
        }  # fmt: skip
        with TestClient(app) as client:
            answer = client.post("/v1/alerts", json=webhook)
        assert answer.status_code == 200, answer.text
        (outcome,) = answer.json()["actions"]
        assert (outcome["from"], outcome["to"]) == ("v1.1.0", "v1.0.0")
        assert aliases(mlflow_uri, "fraud")["production"] == 1
        assert str(registry.resolve("fraud").version) == "v1.0.0"
        assert [(b.version, b.weight) for b in read_table(routes)["fraud"].backends] == [
            ("v1.0.0", 100)
        ]
