"""Registrations queued together run as one group in one transaction: each checked
against the rows the ones before it wrote, each failing alone, none trusting what was
prepared before its transaction began. On SQLite and PostgreSQL.

Batches are made deterministic as in ``test_group_commit``: the calls queue behind a
leader blocked inside its operation and then run together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from registry import ModelRegistry, SemVer
from registry.errors import Conflict, VersionNotFound
from registry.ops import registration
from registry.schema import transitions_t, versions_t
from registry.store import Tx
from tests.registry.test_group_commit import _audit_targets, _Batches, _one_batch, _wait_for


@pytest.fixture
def reg(db_url: str, tmp_path: Path) -> Iterator[ModelRegistry]:
    with ModelRegistry(db_url, home=tmp_path / "home", actor="t") as registry:
        registry.register_model("m", None, version="v1.0.0", requirements="")
        yield registry


class _Groups:
    """Records how many registrations each ``run_group`` call ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, fail_first: bool = False) -> None:
        self.ran: list[int] = []
        real = registration._Registration.run_group
        failing = [fail_first]

        def spy(tx: Tx, ops: list[Any]) -> list[tuple[Any, Exception | None]]:
            if failing[0]:
                failing[0] = False
                real(tx, ops)  # writes every row, then fails as the database might
                raise RuntimeError("database went away")
            outcomes = real(tx, ops)
            self.ran.append(len(outcomes))
            return outcomes

        monkeypatch.setattr(registration._Registration, "run_group", staticmethod(spy))


def _register(reg: ModelRegistry, version: str | None = None, **kw: Any) -> Callable[[], Any]:
    return lambda: reg.register_model("m", None, version=version, requirements="", **kw)


def _versions(reg: ModelRegistry, name: str = "m") -> list[SemVer]:
    return sorted(v.version for v in reg.list_versions(name))


def _registered_in_order(reg: ModelRegistry, name: str = "m") -> bool:
    """Each version has one register transition, and their order is the versions'."""
    registered = [t.version for t in reg.history(name) if t.kind == "register"]
    return registered == sorted(registered) == _versions(reg, name)


def _outcome_versions(outcomes: list[tuple[str, Any]]) -> list[Any]:
    return [getattr(o[1], "version", o[1]) if o[0] == "ok" else type(o[1]) for o in outcomes]


class TestOneGroup:
    def test_a_conflict_within_the_group_fails_alone(
        self, reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A version taken by a registration earlier in the same group is a Conflict
        for the later one; the others get the next numbers, with their files, one
        transition and one audit event each."""
        groups = _Groups(monkeypatch)
        calls = [_register(reg), _register(reg, "v1.0.2"), _register(reg)]
        calls += [_register(reg, "v1.0.2"), _register(reg)]
        outcomes = _one_batch(reg.store, calls)
        assert groups.ran == [5]
        assert _outcome_versions(outcomes) == [
            SemVer(1, 0, 1),
            SemVer(1, 0, 2),
            SemVer(1, 0, 3),
            Conflict,
            SemVer(1, 0, 4),
        ]
        assert "m v1.0.2 already exists" in str(outcomes[3][1])
        assert _versions(reg) == [SemVer(1, 0, i) for i in range(5)]
        assert _registered_in_order(reg)
        files = reg.get_model_version("m", "v1.0.3").files
        assert [f.name for f in files] == ["metadata.json", "requirements.txt"]
        assert _audit_targets(reg).count("m-v1.0.2") == 1
        assert reg.verify_audit_chain() is None

    def test_a_parent_registered_earlier_in_the_group_is_found(
        self, reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A registration naming as parent a version registered just before it in the
        same group finds it; one naming a missing parent fails alone."""
        groups = _Groups(monkeypatch)
        calls = [_register(reg, "v2.0.0"), _register(reg, "v2.1.0", parent="v2.0.0")]
        calls += [_register(reg, parent="v9.0.0"), _register(reg)]
        outcomes = _one_batch(reg.store, calls)
        assert groups.ran == [4]
        assert _outcome_versions(outcomes) == [
            SemVer(2, 0, 0),
            SemVer(2, 1, 0),
            VersionNotFound,
            SemVer(2, 1, 1),
        ]
        assert outcomes[1][1].parent == SemVer(2, 0, 0)
        assert reg.get_model_version("m", "v2.1.1").parent == SemVer(2, 1, 0)
        assert reg.verify_audit_chain() is None

    def test_a_group_failing_as_a_whole_runs_each_registration_alone(
        self, reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An unexpected error in a group rolls back every row it wrote; each of its
        registrations then runs alone and lands once, numbered without gaps."""
        groups = _Groups(monkeypatch, fail_first=True)
        outcomes = _one_batch(reg.store, [_register(reg) for _ in range(4)])
        assert groups.ran == []
        assert _outcome_versions(outcomes) == [SemVer(1, 0, i) for i in range(1, 5)]
        assert _versions(reg) == [SemVer(1, 0, i) for i in range(5)]
        assert _registered_in_order(reg)
        assert sorted(_audit_targets(reg)) == sorted(["m"] + [f"m-v1.0.{i}" for i in range(5)])
        assert reg.verify_audit_chain() is None

    def test_new_models_and_lineage_run_alone_between_groups(
        self, reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A registration that creates its model, or records lineage, runs by itself;
        the registrations around it still group, and every model's history keeps the
        order of its versions."""
        groups = _Groups(monkeypatch)
        lineage = {"training_data_version": "v2024-01"}
        calls = [
            _register(reg),
            _register(reg),
            lambda: reg.register_model("n", None, requirements=""),
            lambda: reg.register_model("n", None, requirements=""),
            _register(reg, metadata=lineage),
            _register(reg),
            _register(reg),
        ]
        outcomes = _one_batch(reg.store, calls)
        assert all(o[0] == "ok" for o in outcomes), outcomes
        assert [str(o[1].version) for o in outcomes] == [
            "v1.0.1",
            "v1.0.2",
            "v1.0.0",
            "v1.0.1",
            "v1.0.3",
            "v1.0.4",
            "v1.0.5",
        ]
        assert groups.ran == [2, 0, 1, 0, 2]
        assert _registered_in_order(reg)
        assert _registered_in_order(reg, "n")
        graph = reg.get_lineage("m", "v1.0.3")
        assert "data:v2024-01" in {n.ref for n in graph.nodes}
        assert reg.verify_audit_chain() is None


def _insert_version(name: str, number: SemVer) -> Callable[[Tx], None]:
    """An operation that is not a registration and adds a version behind its back."""

    def op(tx: Tx) -> None:
        v = versions_t.c
        mid = tx.conn.execute(
            sa.text("SELECT id FROM registered_model WHERE name = :n"), {"n": name}
        ).scalar_one()
        vid = tx.conn.execute(
            versions_t.insert()
            .values(
                model_id=mid,
                major=number.major,
                minor=number.minor,
                patch=number.patch,
                stage="dev",
                metadata={},
                tags=[],
                created_at=tx.now,
            )
            .returning(v.id)
        ).scalar_one()
        tx.conn.execute(
            transitions_t.insert().values(
                model_id=mid,
                version_id=vid,
                to_stage="dev",
                kind="register",
                actor="t",
                at=tx.now,
            )
        )

    return op


class TestStalePreparation:
    def test_a_version_taken_while_waiting_is_a_conflict(self, reg: ModelRegistry) -> None:
        """Registrations prepared while another writer held the lock are checked when
        they run: the version it took is a Conflict, the next number follows it."""
        release = threading.Event()
        s = reg.store

        def leader(tx: Tx) -> None:
            release.wait(10)
            _insert_version("m", SemVer(1, 1, 0))(tx)

        thread = threading.Thread(target=s.write, args=(leader,))
        thread.start()
        _wait_for(lambda: s._leading)
        outcomes: list[Any] = [None, None]

        def run(i: int, call: Callable[[], Any]) -> None:
            try:
                outcomes[i] = ("ok", call())
            except Exception as exc:
                outcomes[i] = ("error", exc)

        callers = [
            threading.Thread(target=run, args=(0, _register(reg, "v1.1.0"))),
            threading.Thread(target=run, args=(1, _register(reg))),
        ]
        for i, t in enumerate(callers):
            t.start()
            _wait_for(lambda i=i: len(s._queue) == i + 1)
        release.set()
        for t in [thread, *callers]:
            t.join(timeout=30)
        assert _outcome_versions(outcomes) == [Conflict, SemVer(1, 1, 1)]

    def test_an_operation_between_registrations_drops_what_they_remembered(
        self, reg: ModelRegistry
    ) -> None:
        """After an operation that is not a registration (it may add versions), the
        next registration of the same model reads its latest version again."""
        calls = [_register(reg), lambda: reg.store.write(_insert_version("m", SemVer(3, 0, 0)))]
        calls += [_register(reg)]
        outcomes = _one_batch(reg.store, calls)
        assert _outcome_versions(outcomes) == [SemVer(1, 0, 1), None, SemVer(3, 0, 1)]
        assert reg.get_model_version("m", "v3.0.1").parent == SemVer(3, 0, 0)

    def test_a_registration_rolled_back_after_writing_leaves_no_gap(
        self, reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A registration whose finishing step fails is rolled back after it wrote its
        rows; the next one in the batch takes its number, not the one after."""
        batches = _Batches(monkeypatch)

        def refused(tx: Tx, result: Any) -> Any:
            raise ValueError("the mirror refused it")

        def mirrored() -> Any:
            with reg.store.finishing(refused):
                return reg.register_model("m", None, requirements="")

        outcomes = _one_batch(reg.store, [_register(reg), mirrored, _register(reg)])
        assert batches.sizes == [1, 3]
        assert _outcome_versions(outcomes) == [SemVer(1, 0, 1), ValueError, SemVer(1, 0, 2)]
        assert _versions(reg) == [SemVer(1, 0, i) for i in range(3)]
        assert _registered_in_order(reg)
        assert reg.verify_audit_chain() is None
