"""Several real daemons on one PostgreSQL schema, with the models, policies and serving
workload the HA process tests (``test_ha_cluster.py``) run them on.

``Cluster.create(tmp, dsn, schema)`` registers ``SLOW + QUICK`` models (each with
v1.0.0 in production and v1.1.0 in staging, so every one gets a rollout at once) and
writes one config per member: ``ha.enabled`` with a ``TTL``-second lease over
``SHARDS`` shards, one shared file router table (``routes.json``, flock-shared between
the members), and the ingest source in the same schema as the registry, so that every
member reads the events of every model. ``start()`` starts the serving workload
(``Workload``: a thread following the shared routing table and writing prediction
events straight into the ingest tables, as ``serving.workload`` does through the API)
and the members.

Policies (evaluation every second):

- ``slow-NN`` models step through ``SLOW_STEPS`` (``SLOW_STEP_S`` s each) and then wait
  for an approval nobody gives, so they stay mid-rollout, evaluated every second, for
  the whole module (their candidate errs less: nothing rolls them back);
- ``quick-NN`` models take ``QUICK_STEPS`` of ``QUICK_STEP_S`` s and are promoted on
  evidence within seconds (a much lower error rate), so the invariants see real
  promotions and production routes, and the alert test a production rollback.

Each member's connections carry the ``application_name`` ``<schema>-<member>``
(``Cluster.terminate_backends`` ends them, and only them), its log goes to
``<member>.log`` (JSON lines), and ``Cluster.log_tails()`` gives the end of each for a
failure message. Every wait polls with a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import yaml

from controller.core.shards import assign
from monitors import IngestStore
from monitors.testing import free_port, wait_until
from registry import ModelRegistry
from serving.route_table import OutcomeReporter, RouteTable

TTL = 3.0  # lease_ttl, seconds; members renew every TTL / 3
INTERVAL = 1.0  # every policy's evaluation interval, seconds
SHARDS = 16
SLOW = tuple(f"slow-{i:02d}" for i in range(24))
QUICK = tuple(f"quick-{i:02d}" for i in range(6))
MODELS = SLOW + QUICK
SLOW_STEPS = (10, 20, 30, 40, 50, 60, 70, 80, 90)
SLOW_STEP_S = 10.0
QUICK_STEPS = (20, 50)
QUICK_STEP_S = 3.0
CONTROL, CANDIDATE = "v1.0.0", "v1.1.0"
ALERT_NAME = "ModelErrorRateHigh"
# Error rates per version: the candidate is better, clearly so for the quick models.
ERRORS = {"slow": {CONTROL: 0.10, CANDIDATE: 0.05}, "quick": {CONTROL: 0.20, CANDIDATE: 0.02}}
RATES = {"slow": 40.0, "quick": 100.0}  # requests per second per model
REPO = Path(__file__).resolve().parents[3]


def kind_of(model: str) -> str:
    return model.split("-", 1)[0]


def steps_of(model: str) -> tuple[int, ...]:
    return SLOW_STEPS if kind_of(model) == "slow" else QUICK_STEPS


def _policy(model: str) -> dict[str, Any]:
    slow = kind_of(model) == "slow"
    metric = {"name": "error_rate", "source": "ingest", "query": "error_rate",
              "kind": "proportion", "role": "primary", "direction": "lower",
              "min_samples": 20}  # fmt: skip
    return {
        "router": "table",
        "strategy": {"kind": "canary", "steps": list(steps_of(model)),
                     "step_duration": SLOW_STEP_S if slow else QUICK_STEP_S},
        "interval": INTERVAL,
        "settle": 1,
        "min_samples": 20,
        "max_duration": 1800 if slow else 40,
        "require_approval": slow,  # nobody approves: slow rollouts stay active
        "analysis": {"planned_n_per_arm": 2000, "metrics": [metric]},
    }  # fmt: skip


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def webhook(model: str, version: str, *, fingerprint: str) -> dict[str, Any]:
    """An Alertmanager (version 4) notification with one firing alert on ``model``."""
    labels = {"alertname": ALERT_NAME, "model": model, "version": version}
    return {
        "version": "4", "receiver": "modelreg", "status": "firing", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "fingerprint": fingerprint, "startsAt": now_iso(),
                    "endsAt": "0001-01-01T00:00:00Z", "labels": labels}],
    }  # fmt: skip


class Workload(threading.Thread):
    """Serving for every model: each tick, ``RATES`` requests per second per model to the
    versions the shared routing table picks (sticky by unit), their outcomes written to
    the ingest tables. Models with a single backend (no rollout) are not served: nothing
    judges them. Errors are kept in ``errors`` (a database restart costs a batch)."""

    def __init__(self, url: str, routes: Path, *, tick: float = 0.25, seed: int = 0) -> None:
        super().__init__(name="ha-workload", daemon=True)
        self.store = IngestStore.open(url)
        self.tables = {m: RouteTable(model=m, path=routes, refresh=0.2) for m in MODELS}
        self.reporter = OutcomeReporter(store=self.store)
        self.tick = tick
        self.rng = np.random.default_rng(seed)
        self.stopping = threading.Event()
        self.served = 0
        self.errors: list[str] = []

    def run(self) -> None:
        next_tick = time.monotonic()
        carry = dict.fromkeys(MODELS, 0.0)
        while not self.stopping.is_set():
            next_tick += self.tick
            now = time.time()
            for model in MODELS:
                carry[model] += RATES[kind_of(model)] * self.tick
                count = int(carry[model])
                carry[model] -= count
                self._serve(model, count, now)
            try:
                self.served += self.reporter.flush()
            except Exception as exc:  # the database went away for a moment: drop the batch
                self.errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
            self.stopping.wait(max(0.0, next_tick - time.monotonic()))

    def _serve(self, model: str, count: int, now: float) -> None:
        table = self.tables[model]
        route = table.route()
        if route is None or len(route.backends) < 2:
            return
        errors = ERRORS[kind_of(model)]
        for _ in range(count):
            unit = uuid.uuid4().hex
            picked = table.pick(unit)
            if picked is None:
                return
            backend, arm = picked
            error = bool(self.rng.random() < errors.get(backend.version, 0.1))
            self.reporter.event(prediction_id=unit, model=model, version=backend.version,
                                arm=arm, unit_id=unit, timestamp=now, latency_ms=20.0,
                                error=error, outcome=1.0)  # fmt: skip

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)
        self.store.close()


@dataclass
class Member:
    """One daemon process of the cluster (started by ``start``)."""

    name: str
    config: Path
    log: Path
    url: str
    process: subprocess.Popen[bytes] | None = None
    _sinks: list[Any] = field(default_factory=list)

    def start(self) -> None:
        sink = self.log.open("ab")
        self._sinks.append(sink)
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controller", "daemon", "--config", str(self.config)],
            stdout=sink, stderr=sink, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path},
        )  # fmt: skip

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        """``/readyz`` answers 200 (started, routers reconciled, leases reachable)."""
        if not self.running:
            return False
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no clean hand-over, as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)

    def stop(self) -> None:
        """SIGTERM (a clean stop hands the shards over), SIGKILL after 30 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process cannot stop
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for sink in self._sinks:
            sink.close()
        self._sinks.clear()

    def signal(self, signum: int) -> None:
        assert self.process is not None, f"{self.name} was never started"
        assert self.process.poll() is None, f"{self.name} exited"
        self.process.send_signal(signum)

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def metric(self, name: str) -> float:
        """A sample of this member's ``/metrics`` (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        return 0.0

    def log_lines(self) -> list[dict[str, Any]]:
        """This member's JSON log lines (other lines skipped)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    found.append(entry)
        return found

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Cluster:
    """The members, the shared state directory and the database (see the module)."""

    tmp: Path
    dsn: str  # the SQLAlchemy URL of the database, without options
    schema: str
    members: dict[str, Member]
    workload: Workload | None = None

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    @property
    def routes(self) -> Path:
        return self.tmp / "routes.json"

    def url(self, application: str = "test") -> str:
        """The schema's URL; connections are named ``<schema>-<application>``."""
        return (f"{self.dsn}?options=-csearch_path%3D{self.schema}"
                f"&application_name={self.schema}-{application}")  # fmt: skip

    @classmethod
    def create(cls, tmp: Path, dsn: str, schema: str, names: tuple[str, ...]) -> Cluster:
        cluster = cls(tmp, dsn, schema, {})
        cluster.register()
        for name in names:
            port = free_port()
            config = tmp / f"{name}.yaml"
            config.write_text(yaml.safe_dump(cluster.config(name, port), sort_keys=False))
            cluster.members[name] = Member(name, config, tmp / f"{name}.log",
                                           f"http://127.0.0.1:{port}")  # fmt: skip
        return cluster

    def config(self, name: str, port: int) -> dict[str, Any]:
        url = self.url(name)
        return {
            "registry": {"url": url, "home": str(self.home)},
            "server": {"listen": f"127.0.0.1:{port}", "stop_timeout_s": 10},
            "sources": {"ingest": {"kind": "ingest", "options": {"url": url}}},
            "routers": {"table": {"kind": "file", "options": {"path": str(self.routes)}}},
            "alerts": [{"name": "error-rate", "match": {"alertname": ALERT_NAME},
                        "action": "rollback", "version_label": "version"}],
            "watch_interval": 1,
            "guard": {"enabled": False},
            "ha": {"enabled": True, "member_id": name, "lease_ttl": TTL, "shards": SHARDS},
            "models": {model: _policy(model) for model in MODELS},
        }  # fmt: skip

    def register(self) -> None:
        """Every model: v1.0.0 in production, v1.1.0 in staging."""
        self.home.mkdir(parents=True, exist_ok=True)
        with ModelRegistry(self.url(), home=self.home, actor="tester") as registry:
            for model in MODELS:
                for version in (CONTROL, CANDIDATE):
                    artifact = self.home / f"{model}-{version}.bin"
                    artifact.write_bytes(f"{model} {version}".encode())
                    registry.register_model(model, str(artifact), version=version,
                                            stage="staging")  # fmt: skip
                    if version == CONTROL:
                        registry.promote_model(model, version, to_stage="production",
                                               reason="baseline")  # fmt: skip

    def start(self, timeout: float = 90.0) -> None:
        self.workload = Workload(self.url("workload"), self.routes)
        self.workload.start()
        for member in self.members.values():
            member.start()
        self.wait(lambda: all(m.ready() for m in self.members.values()), timeout,
                  "every member ready")  # fmt: skip

    def stop(self) -> None:
        for member in self.members.values():
            member.stop()
        if self.workload is not None:
            self.workload.stop()

    # -- observing --------------------------------------------------------------------

    def any_member(self) -> Member:
        for member in self.members.values():
            if member.ready():
                return member
        raise AssertionError("no member is ready")

    def shards(self, via: Member | None = None) -> dict[str, list[int]]:
        """The shards each live member holds, as ``GET /v1/cluster`` shows them."""
        cluster = (via or self.any_member()).get("/v1/cluster")
        return {m["member"]: m["shards"] for m in cluster["members"] if m["live"]}

    def balanced(self, names: tuple[str, ...] | None = None) -> bool:
        """Every shard held, and held as the members' plan splits them among ``names``
        (default: all members): a rebalance still moving shards is not balanced yet, so a
        scenario never starts with a member holding a fraction of its share."""
        wanted = set(names or self.members)
        held = self.shards()
        planned = assign(sorted(wanted), SHARDS)
        return set(held) == wanted and all(
            sorted(shards) == sorted(s for s, owner in planned.items() if owner == name)
            for name, shards in held.items()
        )

    def rollouts(self) -> list[dict[str, Any]]:
        return list(self.any_member().get("/v1/rollouts", limit=1000))

    def decisions(self, rollout_id: int, via: Member | None = None) -> list[dict[str, Any]]:
        """The rollout's decisions through the explain API, oldest first."""
        member = via or self.any_member()
        found = member.get(f"/v1/rollouts/{rollout_id}/explain", limit=10_000)
        return list(found["decisions"])

    def evaluations(
        self, rollouts: list[int], since: float, until: float = float("inf")
    ) -> dict[int, list[tuple[float, str | None]]]:
        """Each rollout's evaluations in ``(since, until]`` (epoch seconds): (time, member),
        oldest first. Every evaluation stores a decision row, a hold included, so these
        are the decision rows (read in one query, not through every explain: polling
        that many answers would load the members the tests are timing)."""
        with self.psql() as conn:
            conn.execute(f"SET search_path = {self.schema}")
            rows = conn.execute(
                "SELECT rollout_id, at, member FROM controller_decision WHERE rollout_id = "
                "ANY(%s) AND at > %s AND at <= %s ORDER BY at, id",
                (rollouts, since, until if until != float("inf") else 1e12),
            ).fetchall()
        found: dict[int, list[tuple[float, str | None]]] = {r: [] for r in rollouts}
        for rollout, at, member in rows:
            found[rollout].append((float(at), member))
        return found

    def finished(self, rollouts: list[int]) -> set[int]:
        """Those of ``rollouts`` that have ended (promoted, rolled back or aborted)."""
        with self.psql() as conn:
            conn.execute(f"SET search_path = {self.schema}")
            rows = conn.execute(
                "SELECT id FROM controller_rollout WHERE id = ANY(%s) AND finished_at IS NOT NULL",
                (rollouts,),
            ).fetchall()
        return {int(rollout) for (rollout,) in rows}

    def wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        if not wait_until(check, timeout=timeout, interval=0.2):
            raise AssertionError(f"timed out after {timeout:g} s waiting for: {what}")

    def psql(self) -> psycopg.Connection[Any]:
        """An autocommit connection to the database (not named as a member's)."""
        dsn = self.dsn.replace("postgresql+psycopg://", "postgresql://")
        return psycopg.connect(dsn, autocommit=True, application_name="ha-test-admin")

    def terminate_backends(self) -> int:
        """End every connection of every member (not the workload's, not the test's):
        what members see when PostgreSQL restarts. How many were ended."""
        prefix = f"{self.schema}-"
        with self.psql() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE starts_with(application_name, %s) AND application_name <> ALL(%s)",
                (prefix, [f"{prefix}workload", f"{prefix}test"]),
            ).fetchall()
        return sum(1 for (ended,) in rows if ended)

    def lock_waits(self, member: str, blocked_by: int | None = None) -> list[str]:
        """The statements of ``member``'s connections waiting for a lock now (held by the
        backend ``blocked_by``, when given). The text is PostgreSQL's first 1,024 bytes
        (``track_activity_query_size``): a long statement shows only its start."""
        with self.psql() as conn:
            rows = conn.execute(
                "SELECT query FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock' "
                "AND (%s::int IS NULL OR %s::int = ANY(pg_blocking_pids(pid)))",
                (f"{self.schema}-{member}", blocked_by, blocked_by),
            ).fetchall()
        return [str(query) for (query,) in rows]

    def log_tails(self) -> str:
        parts = [f"--- {name}.log (end) ---\n{m.log_tail()}" for name, m in self.members.items()]
        if self.workload is not None and self.workload.errors:
            parts.append(f"--- workload errors ---\n{self.workload.errors[-5:]}")
        return "\n".join(parts)

    @contextlib.contextmanager
    def diagnosed(self) -> Iterator[None]:
        """On failure, print every member's log tail (pytest shows it with the failure)."""
        try:
            yield
        except BaseException:
            print(self.log_tails())
            raise
