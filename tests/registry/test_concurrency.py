"""Several real processes writing one registry at once (SQLite file and PostgreSQL)."""

from __future__ import annotations

import multiprocessing as mp
import threading
from pathlib import Path
from typing import Any

import pytest

from registry import ModelRegistry, SemVer
from registry.errors import Conflict

WORKERS = 4
PER_WORKER = 100


def _register_many(url: str, home: str, n: int, out: Any) -> None:
    try:
        with ModelRegistry(url, home=home, actor="worker") as reg:
            made = [str(reg.register_model("m", None, requirements="").version) for _ in range(n)]
        out.put(("ok", made))
    except BaseException as exc:  # reported to the parent, which fails the test
        out.put(("error", repr(exc)))


def _promote_one(url: str, home: str, version: str, barrier: Any, out: Any) -> None:
    try:
        with ModelRegistry(url, home=home, actor=f"deployer-{version}") as reg:
            barrier.wait(timeout=60)
            reg.promote_model("m", version, to_stage="production")
        out.put(("ok", version))
    except BaseException as exc:
        out.put(("error", repr(exc)))


def _collect(procs: list[Any], out: Any) -> list[tuple[str, Any]]:
    results = [out.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


@pytest.mark.slow
def test_four_processes_register_concurrently(db_url: str, tmp_path: Path) -> None:
    """400 concurrent registrations: 400 distinct versions, no gaps, no error to any caller."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    home = str(tmp_path / "home")
    procs = [
        ctx.Process(target=_register_many, args=(db_url, home, PER_WORKER, out))
        for _ in range(WORKERS)
    ]
    for p in procs:
        p.start()
    results = _collect(procs, out)
    assert [status for status, _ in results] == ["ok"] * WORKERS, results
    made = [v for _, versions in results for v in versions]
    assert len(made) == len(set(made)) == WORKERS * PER_WORKER
    with ModelRegistry(db_url, home=home) as reg:
        versions = sorted(v.version for v in reg.list_versions("m"))
        assert versions == [SemVer(1, 0, i) for i in range(WORKERS * PER_WORKER)]
        history = reg.history("m")
        assert len(history) == WORKERS * PER_WORKER
        assert all(t.kind == "register" for t in history)
        assert reg.verify_audit_chain() is None


@pytest.mark.slow
def test_four_processes_promote_concurrently(db_url: str, tmp_path: Path) -> None:
    """Racing promotions end with exactly one production version and a consistent history."""
    home = str(tmp_path / "home")
    with ModelRegistry(db_url, home=home) as reg:
        for _ in range(WORKERS):
            mv = reg.register_model("m", None)
            reg.promote_model("m", mv.version, to_stage="staging")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    barrier = ctx.Barrier(WORKERS)
    targets = [f"v1.0.{i}" for i in range(WORKERS)]
    procs = [
        ctx.Process(target=_promote_one, args=(db_url, home, v, barrier, out)) for v in targets
    ]
    for p in procs:
        p.start()
    results = _collect(procs, out)
    assert [status for status, _ in results] == ["ok"] * WORKERS, results
    with ModelRegistry(db_url, home=home) as reg:
        production = reg.list_versions("m", stage="production")
        assert len(production) == 1
        assert len(reg.list_versions("m", stage="archived")) == WORKERS - 1
        moves = [(str(t.version), t.from_stage, t.to_stage) for t in reg.history("m")]
        entered = [v for v, _, to in moves if to == "production"]
        left = [v for v, frm, _ in moves if frm == "production"]
        assert sorted(entered) == targets
        # Each promotion archived the one before it, in commit order.
        assert left == entered[:-1]
        assert entered[-1] == str(production[0].version)
        assert reg.verify_audit_chain() is None


def test_group_commit_isolates_a_failing_job(tmp_path: Path) -> None:
    """Threads sharing one commit: a conflicting registration fails alone, the rest land."""
    with ModelRegistry(home=tmp_path, actor="t") as reg:
        reg.register_model("m", None, version="v1.0.0")
        errors: list[BaseException] = []
        made: list[str] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            try:
                version = "v1.0.0" if i % 5 == 0 else None
                mv = reg.register_model("m", None, version=version, requirements="")
                with lock:
                    made.append(str(mv.version))
            except Conflict as exc:
                with lock:
                    errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(errors) == 8
        assert len(made) == len(set(made)) == 32
        assert len(reg.list_versions("m")) == 33
        assert reg.verify_audit_chain() is None
