"""Shared fixtures: database backends for the contract suite, moto's S3 server
(``tests.s3server``) and an injected clock (``tests.clock.Clock``)."""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import s3server
from tests.clock import Clock
from tests.mlflow_server import Raw

PG_DSN = os.environ.get("MODELREG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_state: dict[str, str | None] = {}


def _pg_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can (checked once per run)."""
    if "why" not in _pg_state:
        try:
            import psycopg

            dsn = PG_DSN.replace("postgresql+psycopg://", "postgresql://")
            psycopg.connect(dsn, connect_timeout=3).close()
            _pg_state["why"] = None
        except Exception as exc:  # any failure means "not here", reported below
            _pg_state["why"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return _pg_state["why"]


def require_postgres() -> None:
    why = _pg_unavailable()
    if why is None:
        return
    message = f"PostgreSQL at {PG_DSN} is not reachable ({why}); PostgreSQL cases did not run"
    if os.environ.get("MODELREG_REQUIRE_POSTGRES") == "1" or os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    require_postgres()
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = PG_DSN.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_DSN}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="session")
def mlflow_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real ``mlflow server`` per test session (tests.mlflow_server)."""
    from tests.mlflow_server import mlflow_server

    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@pytest.fixture
def mlflow_uri(mlflow_server_url: str) -> str:
    """The session's MLflow server, its registry emptied for this test."""
    from tests.mlflow_server import delete_all_models

    delete_all_models(mlflow_server_url)
    return mlflow_server_url


@pytest.fixture
def raw(mlflow_uri: str) -> Iterator[Raw]:
    """Another MLflow client's plain REST calls on the session's server."""
    client = Raw(mlflow_uri)
    yield client
    client.http.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The contract suite runs once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def clock() -> Clock:
    """The test's clock (tests.clock), at 2024-01-10 09:00 UTC."""
    return Clock()


def require_s3_server() -> None:
    """moto[server] and s3fs come with the dev extra; without them S3 cases are
    reported as not run (and fail under CI, which installs them)."""
    missing = [m for m in ("moto", "flask", "s3fs") if importlib.util.find_spec(m) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (pip install -e '.[dev]'); S3 cases did not run"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3server.S3Server]:
    """moto's S3 server on a free loopback port, for the whole session."""
    require_s3_server()
    server = s3server.start(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server: s3server.S3Server, monkeypatch: pytest.MonkeyPatch) -> s3server.S3Server:
    """Point s3fs at the server the way production points it anywhere: AWS_* variables."""
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in s3_server.environ().items():
        monkeypatch.setenv(key, value)
    return s3_server


@pytest.fixture
def s3_uri(s3_env: s3server.S3Server) -> str:
    """``s3://<a new bucket>/registry``."""
    return f"s3://{s3_env.new_bucket()}/registry"
