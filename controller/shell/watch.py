"""Starting rollouts and keeping the routers in line with the database (the watcher's jobs).

- ``start_rollout``: judge a staging (or dev) version against production; the record
  is created under the model's lock, after production was read there.
- ``watch_once``: level-triggered, start a rollout for every staging version of a
  model with a policy that never had one (never one rolled back from production);
  on MLflow, a ``staging`` alias another client set is taken in first.
- ``reconcile_routers``: make every router hold the database's routes, judging the
  settled models from one snapshot and pushing the others under their lock. A push the
  fence refuses (several daemons: the shard moved since this member's last lease round)
  leaves the model to its new owner and the pass goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
import structlog

from controller.adapters.leases import Fenced
from controller.adapters.registry_gateway import fronts_mlflow
from controller.adapters.rollout_store import RolloutRecord
from controller.adapters.routing import RouterError
from controller.core.guard import rolled_back_from_production
from controller.core.routes import split_of
from controller.errors import CannotStart, RolloutNotFound
from registry import NotFound, RegistryError

if TYPE_CHECKING:
    from controller.shell.actuator import HeldLocks
    from controller.shell.controller import Controller
    from registry import ModelVersion
    from serving.route import Route

__all__ = ["reconcile_routers", "start_rollout", "watch_once"]

log = structlog.get_logger("controller")


def start_rollout(
    controller: Controller, model: str, version: str, *, reason: str
) -> RolloutRecord:
    """Start judging ``version`` against production; ``CannotStart`` says why not."""
    if controller.policy(model) is None:
        raise CannotStart(f"{model!r} has no rollout policy in {controller.config.source_file}")
    try:
        candidate = controller.registry.get_model_version(model, version)
    except (RegistryError, ValueError) as exc:
        raise CannotStart(f"{model} {version}: {exc}") from None
    if candidate.artifact_digest is None:
        raise CannotStart(f"{candidate.ref} has no model artifact: nothing to serve")
    if candidate.stage not in ("dev", "staging"):
        raise CannotStart(
            f"{candidate.ref} is in {candidate.stage!r}; a rollout needs a staging candidate"
        )
    # Production is read under the model's lock: a guard or alert rollback between
    # the read and the new record would leave the rollout's control on the version
    # just pulled from production.
    with controller.actuator.lock(model), controller.acting():
        try:
            control = controller.registry.resolve(model)
        except NotFound:
            raise CannotStart(f"{model!r} has no production version to compare against") from None
        if getattr(control, "version", None) is None:  # MLflow: another client's, not adopted
            raise CannotStart(
                f"{model!r}: MLflow's production version is another client's and was not "
                "adopted; nothing to compare against"
            )
        if control.version == candidate.version:
            raise CannotStart(f"{candidate.ref} is already in production")
        record = controller.actuator.start(
            model,
            control=(str(control.version), control.artifact_digest),
            candidate=(str(candidate.version), candidate.artifact_digest),
            candidate_stage=candidate.stage,
            reason=reason,
        )
    log.info(
        "rollout_started",
        rollout=record.id,
        model=model,
        control=record.control,
        treatment=record.treatment,
        reason=reason,
    )
    if controller.on_started is not None:
        controller.on_started(record)
    return record


def watch_once(controller: Controller) -> list[RolloutRecord]:
    """Level-triggered: start a rollout for every staging version of a model with a
    policy that never had one (oldest first, one active rollout per model).

    A version that was ever rolled back from production (by the guard, an alert
    or an operator) is never started again automatically; a person may promote it.
    """
    started = []
    models = [m for m in controller.config.models if controller.owns(m)]
    for model, staged in _staged(controller, models).items():
        demoted: set[str] | None = None
        for version in sorted(staged, key=lambda v: v.version):
            if controller.store.active_for(model) is not None:
                break
            if controller.store.exists(model, str(version.version)):
                continue
            if demoted is None:
                demoted = rolled_back_from_production(controller.registry.history(model))
            if str(version.version) in demoted:
                log.debug("rollout_not_started", model=model, version=str(version.version),
                          reason="rolled back from production before")  # fmt: skip
                continue
            try:
                started.append(
                    start_rollout(controller, model, str(version.version), reason="entered staging")
                )
                controller.started(model, str(version.version))
            except CannotStart as exc:  # said once, not at every pass
                controller.refuse_start(model, str(version.version), str(exc))
    return started


def _staged(controller: Controller, models: list[str]) -> dict[str, list[ModelVersion]]:
    """The staging versions of ``models`` that have any, in ``models``' order: one query
    over the whole registry (a pass over a thousand models was a thousand queries every
    few seconds, holding the interpreter from the API's requests). A registry fronting
    MLflow is synced and read model by model: another MLflow client may have set a
    staging alias, which must be taken in first."""
    registry = controller.registry
    found: dict[str, list[ModelVersion]] = {}
    if not fronts_mlflow(registry):
        wanted = set(models)
        for version in registry.list_versions(stage="staging"):
            if version.name in wanted:
                found.setdefault(version.name, []).append(version)
        return {m: found[m] for m in models if m in found}
    from registry.mlflow_sync import sync_staging  # noqa: PLC0415

    for model in models:
        try:
            sync_staging(registry, model, actor="mlflow")
        except RegistryError as exc:
            log.warning("mlflow_sync_failed", model=model, error=str(exc))
        try:
            staged = registry.list_versions(model, stage="staging")
        except NotFound:
            continue
        if staged:
            found[model] = staged
    return found


def reconcile_routers(
    controller: Controller, progress: Callable[[], None] | None = None
) -> dict[str, str]:
    """Make every router hold the database's routes; return the failing routers.

    ``progress`` is called after each model, whatever its outcome: the scheduler
    beats the watchdog's heartbeat with it, so that a pass slowed by many slow
    pushes keeps showing progress while one stuck on a single call does not.
    """
    controller.actuator.forget_unrouted()
    settled = _settled_models(controller)
    unsettled = []
    for model in filter(controller.owns, controller.config.models):
        if model in settled:
            if progress is not None:
                progress()
        else:
            unsettled.append(model)
    for start in range(0, len(unsettled), _MODELS_PER_CHUNK):
        chunk = unsettled[start : start + _MODELS_PER_CHUNK]
        # Each chunk, and each model after it, is a unit of work (``Controller.acting``):
        # a route read before a lost shard was taken back is not pushed under the new lease.
        with controller.actuator.locked(chunk) as held, controller.acting():
            done = _reconcile_held(controller, held, progress) if held else set()
        for model in chunk:  # a busy one (a tick, an alert) and any the chunk could not read
            if model not in done:
                with controller.acting():
                    _reconcile_router(controller, model)
                if progress is not None:
                    progress()
    return controller.failing_routers()


# The careful path takes this many models' locks at once (those free now) and reads
# their routes in a few queries: a start with 1,000 models to push made 3,000 queries.
# Each lock goes as soon as its model is pushed, and the chunk stops pushing after
# _CHUNK_SECONDS: a slow or dead router then holds the chunk's other models (an alert
# for one waits on its lock) no longer than one push, as one model at a time did; the
# rest go one by one.
_MODELS_PER_CHUNK = 256
_CHUNK_SECONDS = 1.0


def _reconcile_held(
    controller: Controller, held: HeldLocks, progress: Callable[[], None] | None
) -> set[str]:
    """``_reconcile_router`` of the models ``held`` (their locks), with their reads
    batched (fresh, under the locks), each lock released after its push and
    ``progress`` after each model; returns the models done: none when the reads
    failed, fewer when the pushes took longer than ``_CHUNK_SECONDS``."""
    try:
        routes = controller.actuator.desired_routes(held)
        controller.actuator.load_pushed(held)
    except (RegistryError, RolloutNotFound) as exc:
        log.warning("desired_routes_failed", models=len(held), error=str(exc))
        return set()
    deadline = time.monotonic() + _CHUNK_SECONDS
    done = set()
    for model, route in routes.items():
        if time.monotonic() > deadline:
            break
        if route is not None:
            _push(controller, model, route)
        held.release(model)
        done.add(model)
        if progress is not None:
            progress()
    return done


def _settled_models(controller: Controller) -> set[str]:
    """Models whose router already holds the versions, weights and salt the
    database implies, judged from one snapshot (three queries a pass, not three
    per model: active rollouts, newest finished ones, production versions).

    Only a fast path: any model that differs, is failing or cannot be judged is
    reconciled the careful way, under its lock with fresh reads. A model that
    changes after the snapshot is pushed by whoever changed it (a tick, an alert,
    the guard) and is looked at again next pass. Digests are not compared: a
    version's artifact never changes.
    """
    try:
        active = {r.model: r for r in controller.store.active()}
        finished = controller.store.latest_finished_by_model()
        production = {m.name: str(m.production) for m in controller.registry.list_models()
                      if m.production is not None}  # fmt: skip
    except (sa.exc.SQLAlchemyError, RegistryError) as exc:
        log.warning("route_snapshot_failed", error=str(exc))
        return set()
    failing = controller.actuator.failing_models()
    settled = set()
    for model in controller.config.models:
        found = controller.actuator.router_for(model)
        if found is None or model in failing:
            continue
        record = active.get(model)
        if record is not None:
            want = split_of(controller.actuator.desired(model, record, None))
        elif model in production:
            last = finished.get(model)
            want = (((production[model], 100),), f"{model}:{last.id}" if last else "")
        else:
            settled.add(model)  # nothing to route: the careful path would do nothing
            continue
        try:
            held = found[1].read(model)
        except RouterError:
            continue
        if held is not None and split_of(held) == want:
            settled.add(model)
    return settled


def _reconcile_router(controller: Controller, model: str) -> None:
    with controller.actuator.lock(model):
        try:
            route = controller.desired_route(model)
        except (RegistryError, RolloutNotFound) as exc:
            log.warning("desired_route_failed", model=model, error=str(exc))
            return
        if route is not None:
            _push(controller, model, route)


def _push(controller: Controller, model: str, route: Route) -> None:
    try:
        controller.actuator.push(route)
    except RouterError:  # recorded and logged by the actuator; retried
        pass
    except Fenced as exc:  # several daemons: the shard moved since the last lease round
        log.info("router_reconcile_skipped", model=model, reason=str(exc))
