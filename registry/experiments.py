"""Experiment tracking: ``with track_experiment("xgboost-v1", increment="0042") as exp:``.

An experiment records its parameters, metrics, start, end and duration; models
registered through it get the right semantic bump automatically and a lineage
edge from the experiment. The ``increment`` label (the seed's increments) is kept
on the experiment and on every version it registers, and can be filtered on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from registry import names
from registry.api import ModelRegistry
from registry.audit import utc
from registry.errors import InvalidInput, NotFound
from registry.records import ModelVersion
from registry.schema import experiments_t
from registry.store import Tx
from registry.versions import SemVer


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    name: str
    increment: str | None
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]
    status: str
    actor: str
    started_at: datetime
    ended_at: datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "increment": self.increment,
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "status": self.status,
            "actor": self.actor,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "duration_s": self.duration_s,
        }


def _json_value(key: str, value: Any) -> Any:
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InvalidInput(f"{key} must be a finite number, got {value!r}")
        return value
    raise InvalidInput(f"{key} must be a number, string, boolean or None, got {value!r}")


class Experiment:
    """A running experiment; use through ``track_experiment``."""

    def __init__(self, registry: ModelRegistry, name: str, increment: str | None) -> None:
        self.registry = registry
        self.name = name
        self.increment = increment
        self.params: dict[str, Any] = {}
        self.metrics: dict[str, Any] = {}
        self.registered: list[ModelVersion] = []
        self._id: int | None = None

    def log_param(self, key: str, value: Any) -> None:
        self.params[str(key)] = _json_value(f"param {key!r}", value)

    def log_params(self, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            self.log_param(key, value)

    def log_metric(self, key: str, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"metric {key!r} must be a number, got {value!r}")
        self.metrics[str(key)] = _json_value(f"metric {key!r}", value)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value)

    def register_model(
        self,
        model: Any,
        name: str,
        *,
        auto_version: bool = True,
        version: str | SemVer | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ModelVersion:
        """Register ``model`` with this experiment's params, metrics and lineage.

        With ``auto_version`` the number follows the changes against the latest
        version (major/minor/patch); otherwise ``version`` is required.
        """
        if not auto_version and version is None:
            raise InvalidInput("pass version=... or auto_version=True")
        if auto_version and version is not None:
            raise InvalidInput("pass either version=... or auto_version=True, not both")
        meta = {
            **self.metrics,
            "hyperparameters": dict(self.params),
            **dict(metadata or {}),
            "experiment": self.name,
        }
        if self.increment is not None:
            meta["increment"] = self.increment
        mv = self.registry.register_model(
            name, model, version=None if auto_version else version, metadata=meta, **kwargs
        )
        self.registered.append(mv)
        return mv


def _start(registry: ModelRegistry, exp: Experiment) -> int:
    def op(tx: Tx) -> int:
        result = tx.conn.execute(
            experiments_t.insert().values(
                name=exp.name,
                increment=exp.increment,
                params={},
                metrics={},
                status="running",
                actor=registry.actor,
                started_at=tx.now,
            )
        )
        tx.audit(
            actor=registry.actor,
            action="experiment_start",
            target=f"experiment:{exp.name}",
            after={"increment": exp.increment},
        )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    return registry.store.write(op)


def _finish(registry: ModelRegistry, exp: Experiment, status: str) -> None:
    def op(tx: Tx) -> None:
        tx.conn.execute(
            experiments_t.update()
            .where(experiments_t.c.id == exp._id)
            .values(params=exp.params, metrics=exp.metrics, status=status, ended_at=tx.now)
        )
        tx.audit(
            actor=registry.actor,
            action="experiment_end",
            target=f"experiment:{exp.name}",
            after={
                "status": status,
                "metrics": exp.metrics,
                "registered": [mv.ref for mv in exp.registered],
            },
        )

    registry.store.write(op)


@contextmanager
def track_experiment(
    name: str,
    increment: str | None = None,
    *,
    registry: ModelRegistry | None = None,
    params: Mapping[str, Any] | None = None,
) -> Iterator[Experiment]:
    """Track one experiment run; it ends ``completed``, or ``failed`` on an exception."""
    names.identifier(name, "experiment name")
    if increment is not None and (not isinstance(increment, str) or not increment.strip()):
        raise InvalidInput(f"increment must be a non-empty string, got {increment!r}")
    owned = registry is None
    reg = registry if registry is not None else ModelRegistry(increment=increment)
    exp = Experiment(reg, name, increment)
    if params:
        exp.log_params(params)
    try:
        exp._id = _start(reg, exp)
        try:
            yield exp
        except BaseException:
            _finish(reg, exp, "failed")
            raise
        _finish(reg, exp, "completed")
    finally:
        if owned:
            reg.close()


def list_experiments(
    registry: ModelRegistry, *, increment: str | None = None, name: str | None = None
) -> list[ExperimentRecord]:
    """Experiments, oldest first, optionally for one increment or name."""
    e = experiments_t.c
    query = sa.select(experiments_t).order_by(e.id)
    if increment is not None:
        query = query.where(e.increment == increment)
    if name is not None:
        query = query.where(e.name == name)
    with registry.store.read() as conn:
        rows = list(conn.execute(query))
    return [
        ExperimentRecord(
            r.name,
            r.increment,
            r.params or {},
            r.metrics or {},
            r.status,
            r.actor,
            utc(r.started_at),
            utc(r.ended_at) if r.ended_at else None,
        )
        for r in rows
    ]


def get_experiment(registry: ModelRegistry, name: str) -> ExperimentRecord:
    found = list_experiments(registry, name=name)
    if not found:
        raise NotFound(f"no experiment named {name!r}")
    return found[-1]


__all__: Sequence[str] = ("Experiment", "ExperimentRecord", "list_experiments", "track_experiment")
