"""Ingest source (``kind: ingest``): raw prediction events and late labels.

Serving code (or the controller's HTTP intake) hands batches of prediction events;
labels arrive later, keyed by prediction id. Both are stored in their own tables
(``ingest_event``, ``ingest_label``) through SQLAlchemy Core, in a separate SQLite
file by default (``$MODELREG_HOME/ingest.db``, else ``./.modelreg/ingest.db``) or in
any database given by URL, including the registry's: the schema has its own Alembic
history under ``monitors/migrations`` with the version table
``monitors_alembic_version``, applied when the store is opened.

A batch is validated as a whole before anything is written, then inserted with one
``executemany`` in one transaction: either every record is stored or none is.
SQLite runs in WAL mode with ``synchronous=NORMAL``: a power cut may lose the last
committed batches of telemetry, never corrupt the file, and ingest stays fast.

Config options are ``IngestOptions``; ``IngestSource.from_options`` builds from them.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import sqlalchemy as sa
from pydantic import AfterValidator, Field
from sqlalchemy.exc import IntegrityError

from monitors.errors import (
    ConfigError,
    IngestConflict,
    IngestValidationError,
    UnknownPredictionError,
)
from monitors.measurement import Measurement, MetricQuery, MetricSpec, Subject, Window
from monitors.source import SourceOptions
from monitors.windows import (
    COUNT_STATISTICS,
    EVENT_COLUMNS,
    STAT_COLUMNS,
    CustomAggregation,
    WindowCounts,
    check_statistic,
    measure_counts,
    measure_frame,
    measure_values,
    value_column,
)

if TYPE_CHECKING:
    # Both load on first use: pandas (about 0.5 s) for ``events`` frames, Alembic
    # (about 0.1 s) for a migration, which an opened store at its head never runs.
    import pandas as pd
    from alembic.config import Config

__all__ = [
    "VERSION_TABLE",
    "IngestOptions",
    "IngestSource",
    "IngestStore",
    "PurgeResult",
    "WindowProbe",
    "create_ingest_engine",
    "default_url",
    "migrate",
    "validate_events",
    "validate_labels",
]

VERSION_TABLE = "monitors_alembic_version"
HEAD_REVISION = "m0001"
"""The newest revision in ``migrations/versions`` (a test holds it to Alembic's head):
an open compares the database with it without importing Alembic."""
_MIGRATIONS = Path(__file__).parent / "migrations"
_BUSY_TIMEOUT_MS = 10_000
_ID_CHUNK = 500
_MAX_PROBLEMS = 5
_MIGRATE_LOCK_KEY = 0x6D6F6E69  # "moni": distinct from the registry's migration lock
# Windows one batch statement reads: five bound parameters each, under SQLite's 32,766
# and PostgreSQL's 65,535 per statement (a power of two: see ``_padded``).
_PROBES_PER_STATEMENT = 4_096
# Execution option of a read-only connection: on SQLite it begins deferred, so a batch
# read never takes the write lock that ingestion needs.
_READ_ONLY = "monitors_read_only"

METADATA = sa.MetaData()
EVENT = sa.Table(
    "ingest_event",
    METADATA,
    sa.Column("prediction_id", sa.String(128), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("arm", sa.String(64), nullable=False),
    sa.Column("unit_id", sa.String(256), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("error", sa.Boolean, nullable=False),
    sa.Column("outcome", sa.Float, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
)
LABEL = sa.Table(
    "ingest_label",
    METADATA,
    sa.Column("prediction_id", sa.String(128), primary_key=True),
    sa.Column("label", sa.Float, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
)

_EVENT_FIELDS = frozenset(
    {
        "prediction_id",
        "model",
        "version",
        "arm",
        "unit_id",
        "timestamp",
        "latency_ms",
        "error",
        "outcome",
        "score",
    }
)
_LABEL_FIELDS = frozenset({"prediction_id", "label", "timestamp"})


# -- database ----------------------------------------------------------------------


def default_url(environ: Mapping[str, str] | None = None) -> str:
    """``sqlite:///<home>/ingest.db`` with home ``$MODELREG_HOME`` or ``./.modelreg``."""
    env = os.environ if environ is None else environ
    home = Path(env.get("MODELREG_HOME") or ".modelreg")
    return f"sqlite:///{home / 'ingest.db'}"


def create_ingest_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and ``BEGIN
    IMMEDIATE`` writers (their parent directory is created)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"ingest: invalid database url {url!r}: {exc}") from None
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions are begun explicitly below
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _alembic_config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 -- see the module's imports

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def current_revision(engine: sa.Engine) -> str | None:
    """The ingest tables' revision (None: never migrated), read with plain SQL from the
    version table Alembic keeps (one row per head)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        table = sa.table(VERSION_TABLE, sa.column("version_num", sa.String))
        rows = conn.execute(sa.select(table.c.version_num)).scalars().all()
    return ",".join(sorted(rows)) or None


def migrate(engine: sa.Engine) -> None:
    """Bring the ingest tables to ``HEAD_REVISION``; one cheap read when already there."""
    if current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command  # noqa: PLC0415 -- see the module's imports

    cfg = _alembic_config()
    with engine.begin() as conn:
        # SQLite writers begin IMMEDIATE (see create_ingest_engine); PostgreSQL takes a
        # transaction-scoped advisory lock: concurrent openers migrate one at a time.
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


# -- validation ----------------------------------------------------------------------


def _is_number(value: object) -> bool:
    """A finite real number; numpy scalars count, booleans do not."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool | np.bool_)
        and math.isfinite(value)
    )


def _epoch(value: object) -> float | None:
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.timestamp()
    return None


def _text(value: object, limit: int = 128) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _raise(kind: str, problems: list[str], total: int) -> None:
    more = f" (and {total - len(problems)} more)" if total > len(problems) else ""
    raise IngestValidationError(
        f"{kind} batch refused, nothing stored: {'; '.join(problems)}{more}"
    )


def _event_row(index: int, record: object, seen: set[str]) -> tuple[Any, ...] | str:
    """The slow path: a full check of one record; the row, or what is wrong with it."""
    problem = _event_problem(index, record, seen)
    if problem or not isinstance(record, Mapping):
        return problem or f"event {index}: not a mapping"
    outcome, score = record.get("outcome"), record.get("score")
    return (
        str(record["prediction_id"]),
        str(record["model"]),
        str(record["version"]),
        str(record["arm"]),
        str(record["unit_id"]),
        _epoch(record["timestamp"]),
        float(record["latency_ms"]),
        bool(record["error"]),
        None if outcome is None else float(outcome),
        None if score is None else float(score),
    )


def _event_problem(index: int, record: object, seen: set[str]) -> str:
    if not isinstance(record, Mapping):
        return f"event {index}: not a mapping"
    missing = sorted(
        {"prediction_id", "model", "version", "arm", "unit_id", "timestamp", "latency_ms", "error"}
        - set(record)
    )
    if missing:
        return f"event {index}: missing field(s) {', '.join(missing)}"
    unknown = sorted(set(record) - _EVENT_FIELDS)
    if unknown:
        return f"event {index}: unknown field(s) {', '.join(map(str, unknown))}"
    for name, limit in (("prediction_id", 128), ("model", 128), ("version", 64), ("unit_id", 256)):
        if not _text(record[name], limit):
            return (
                f"event {index}: {name} must be a non-empty string of at most {limit} "
                f"characters, got {record[name]!r}"
            )
    if not (isinstance(record["arm"], str) and len(record["arm"]) <= 64):
        return f"event {index}: arm must be a string of at most 64 characters"
    if _epoch(record["timestamp"]) is None:
        return (
            f"event {index}: timestamp must be epoch seconds or an aware datetime, "
            f"got {record['timestamp']!r}"
        )
    latency = record["latency_ms"]
    if not _is_number(latency) or latency < 0:
        return f"event {index}: latency_ms must be a finite number >= 0, got {latency!r}"
    if not isinstance(record["error"], bool | np.bool_):
        return f"event {index}: error must be a boolean, got {record['error']!r}"
    for name in ("outcome", "score"):
        value = record.get(name)
        if value is not None and not _is_number(value):
            return f"event {index}: {name} must be a finite number or null, got {value!r}"
    if record["prediction_id"] in seen:
        return f"event {index}: duplicate prediction_id {record['prediction_id']!r}"
    return ""


_EVENT_ORDER = tuple(column.name for column in EVENT.columns)
_REQUIRED_EVENT = 8  # fields every event has; outcome and score are optional


def validate_events(records: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Check a whole batch of events and return the rows to insert, as tuples in the
    column order of ``ingest_event``.

    Raises ``IngestValidationError`` naming the first problems (missing field, wrong
    type, non-finite number, duplicate prediction id) if any record is bad. The fast
    path checks each record with a handful of type tests; the detailed diagnosis
    runs only for records that fail it.
    """
    rows: list[tuple[Any, ...]] = []
    problems: list[str] = []
    total = 0
    seen: set[str] = set()
    isfinite = math.isfinite
    for index, record in enumerate(records):
        row: tuple[Any, ...] | None = None
        try:
            pid = record["prediction_id"]
            model = record["model"]
            version = record["version"]
            arm = record["arm"]
            unit = record["unit_id"]
            stamp = record["timestamp"]
            latency = record["latency_ms"]
            error = record["error"]
            outcome = record.get("outcome")
            score = record.get("score")
            present = _REQUIRED_EVENT + ("outcome" in record) + ("score" in record)
            ts = stamp if type(stamp) is float else _epoch(stamp)
            if (
                len(record) == present
                and type(pid) is str
                and 0 < len(pid) <= 128
                and type(model) is str
                and 0 < len(model) <= 128
                and type(version) is str
                and 0 < len(version) <= 64
                and type(arm) is str
                and len(arm) <= 64
                and type(unit) is str
                and 0 < len(unit) <= 256
                and ts is not None
                and isfinite(ts)
                and type(latency) in (float, int)
                and isfinite(latency)
                and latency >= 0
                and type(error) is bool
                and (outcome is None or (type(outcome) in (float, int) and isfinite(outcome)))
                and (score is None or (type(score) in (float, int) and isfinite(score)))
                and pid not in seen
            ):
                row = (
                    pid,
                    model,
                    version,
                    arm,
                    unit,
                    ts,
                    float(latency),
                    error,
                    None if outcome is None else float(outcome),
                    None if score is None else float(score),
                )
        except (KeyError, TypeError, AttributeError):
            row = None
        if row is None:  # not the common shape: check it fully, numpy scalars and all
            checked = _event_row(index, record, seen)
            if isinstance(checked, str):
                total += 1
                if len(problems) < _MAX_PROBLEMS:
                    problems.append(checked)
                continue
            row = checked
        seen.add(row[0])
        rows.append(row)
    if problems:
        _raise("event", problems, total)
    return rows


def _label_problem(index: int, record: object) -> str:
    if not isinstance(record, Mapping):
        return f"label {index}: not a mapping"
    missing = sorted({"prediction_id", "label", "timestamp"} - set(record))
    if missing:
        return f"label {index}: missing field(s) {', '.join(missing)}"
    unknown = sorted(set(record) - _LABEL_FIELDS)
    if unknown:
        return f"label {index}: unknown field(s) {', '.join(map(str, unknown))}"
    if not _text(record["prediction_id"]):
        return f"label {index}: prediction_id must be a non-empty string"
    if not _is_number(record["label"]):
        return f"label {index}: label must be a finite number, got {record['label']!r}"
    if _epoch(record["timestamp"]) is None:
        return (
            f"label {index}: timestamp must be epoch seconds or an aware datetime, "
            f"got {record['timestamp']!r}"
        )
    return ""


def validate_labels(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check a whole batch of labels and return the rows; raise on any bad record."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    total = 0
    seen: set[str] = set()
    for index, record in enumerate(records):
        problem = _label_problem(index, record)
        if not problem and record["prediction_id"] in seen:
            problem = f"label {index}: duplicate prediction_id {record['prediction_id']!r}"
        if problem:
            total += 1
            if len(problems) < _MAX_PROBLEMS:
                problems.append(problem)
            continue
        seen.add(record["prediction_id"])
        rows.append(
            {
                "prediction_id": record["prediction_id"],
                "label": float(record["label"]),
                "ts": _epoch(record["timestamp"]),
            }
        )
    if problems:
        _raise("label", problems, total)
    return rows


# -- store ---------------------------------------------------------------------------


def _fetch_tuples(conn: sa.Connection, query: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """Rows of ``query`` as plain tuples straight from the DBAPI cursor.

    SQLAlchemy ``Row`` objects cost several microseconds each when pandas inspects
    them; a window of a million events would spend seconds there. The statement is
    compiled by the dialect with bound parameters, so nothing is spliced into SQL.
    """
    compiled = query.compile(dialect=conn.dialect)
    params: Any
    if conn.dialect.positional:
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    else:
        params = compiled.params
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _bulk_insert(conn: sa.Connection, table: sa.Table, rows: list[tuple[Any, ...]]) -> None:
    """One DBAPI ``executemany`` of ``rows`` (tuples in column order).

    Going below SQLAlchemy's per-row parameter processing is what makes 50,000+
    events/s possible; the statement is still compiled by the dialect, so the
    paramstyle (qmark for SQLite, pyformat for psycopg) is right for any backend.
    """
    compiled = table.insert().compile(dialect=conn.dialect)
    names = [column.name for column in table.columns]
    if conn.dialect.positional:
        order = [names.index(key) for key in compiled.positiontup or ()]
        params: list[Any] = [tuple(row[i] for i in order) for row in rows]
        if order == list(range(len(names))):
            params = rows
    else:
        params = [dict(zip(names, row, strict=True)) for row in rows]
    conn.exec_driver_sql(str(compiled), params)


@dataclass(frozen=True, slots=True)
class WindowProbe:
    """The events of ``model`` (of one ``arm`` when set) with ``start <= ts < end``
    (epoch seconds): one window of a batch read, answered per version."""

    model: str
    arm: str
    start: float
    end: float


def _padded(probes: Sequence[WindowProbe]) -> Iterator[tuple[int, list[WindowProbe]]]:
    """The probes in chunks of at most ``_PROBES_PER_STATEMENT``, each with the offset of
    its first probe and padded to a power of two with probes that match nothing (no
    model has an empty name): a batch statement is compiled once per size and dialect."""
    for offset in range(0, len(probes), _PROBES_PER_STATEMENT):
        chunk = list(probes[offset : offset + _PROBES_PER_STATEMENT])
        size = 1 << (len(chunk) - 1).bit_length()
        chunk += [_NOTHING] * (size - len(chunk))
        yield offset, chunk


_NOTHING = WindowProbe(model="", arm="", start=0.0, end=0.0)


def _probe_table(size: int) -> sa.CTE:
    """``size`` probes as a ``VALUES`` table ``probe(i, model, arm, t0, t1)`` of bound
    parameters ``i0, m0, a0, s0, e0, i1, ...``."""
    rows = [
        (
            sa.bindparam(f"i{k}", type_=sa.Integer),
            sa.bindparam(f"m{k}", type_=sa.String),
            sa.bindparam(f"a{k}", type_=sa.String),
            sa.bindparam(f"s{k}", type_=sa.Float),
            sa.bindparam(f"e{k}", type_=sa.Float),
        )
        for k in range(size)
    ]
    return (
        sa.values(
            sa.column("i", sa.Integer),
            sa.column("model", sa.String),
            sa.column("arm", sa.String),
            sa.column("t0", sa.Float),
            sa.column("t1", sa.Float),
            name="probe",
        )
        .data(rows)
        .cte("probe")
    )


def _probe_join(table: sa.CTE) -> sa.Join:
    """Each probe's window of events: the ``(model, ts)`` index finds them."""
    e, w = EVENT.c, table.c
    return table.join(
        EVENT,
        sa.and_(
            e.model == w.model,
            e.ts >= sa.cast(w.t0, sa.Float),
            e.ts < sa.cast(w.t1, sa.Float),
            sa.or_(w.arm == "", e.arm == w.arm),
        ),
    )


def _counts_query(size: int, _columns: tuple[str, ...]) -> sa.Select[Any]:
    table = _probe_table(size)
    e, label = EVENT.c, LABEL.c
    labelled = sa.and_(label.label.is_not(None), e.outcome.is_not(None))
    correct = sa.and_(labelled, e.outcome == label.label)
    return (
        sa.select(
            table.c.i,
            e.version,
            sa.func.count(),
            sa.func.sum(sa.case((e.error, 1), else_=0)),
            sa.func.sum(sa.case((labelled, 1), else_=0)),
            sa.func.sum(sa.case((correct, 1), else_=0)),
        )
        .select_from(_probe_join(table).outerjoin(LABEL, label.prediction_id == e.prediction_id))
        .group_by(table.c.i, e.version)
    )


def _values_query(size: int, columns: tuple[str, ...]) -> sa.Select[Any]:
    table = _probe_table(size)
    e = EVENT.c
    return (
        sa.select(table.c.i, e.version, *[e[name] for name in columns])
        .select_from(_probe_join(table))
        .order_by(table.c.i, e.ts, e.prediction_id)
    )


_BATCH_QUERIES = {"counts": _counts_query, "values": _values_query}
# (dialect+driver, kind, size, columns) -> the compiled SQL, its parameters' order (None: named)
# and their defaults. Compiling a statement of thousands of parameters costs more than
# running it.
_COMPILED: dict[
    tuple[str, str, int, tuple[str, ...]],
    tuple[str, tuple[str, ...] | None, dict[str, Any]],
] = {}


def _run_batch(
    conn: sa.Connection,
    kind: str,
    chunk: Sequence[WindowProbe],
    columns: tuple[str, ...] = (),
) -> list[Any]:
    """One batch statement over ``chunk`` (padded: see ``_padded``); its rows."""
    key = (f"{conn.dialect.name}+{conn.dialect.driver}", kind, len(chunk), columns)
    found = _COMPILED.get(key)
    if found is None:
        compiled = _BATCH_QUERIES[kind](len(chunk), columns).compile(dialect=conn.dialect)
        order = tuple(compiled.positiontup or ()) if conn.dialect.positional else None
        found = _COMPILED[key] = (str(compiled), order, dict(compiled.params))
    sql, order, defaults = found
    values = dict(defaults)
    for k, probe in enumerate(chunk):
        values.update({f"i{k}": k, f"m{k}": probe.model, f"a{k}": probe.arm,
                       f"s{k}": probe.start, f"e{k}": probe.end})  # fmt: skip
    params: Any = values if order is None else tuple(values[name] for name in order)
    return list(conn.exec_driver_sql(sql, params).all())


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """How many rows a retention pass deleted."""

    events: int
    labels: int


class IngestStore:
    """Prediction events and labels in a database; migrated when opened."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        migrate(engine)

    @classmethod
    def open(cls, url: str | None = None) -> IngestStore:
        """Open (and migrate) the store at ``url`` or the default SQLite file."""
        return cls(create_ingest_engine(url or default_url()))

    @classmethod
    def reader(cls, engine: sa.Engine) -> IngestStore:
        """A store over ``engine`` that is never migrated: for tools that must only read
        (``config check``), given a read-only engine. Reads fail if the tables differ."""
        store = cls.__new__(cls)
        store._engine = engine
        return store

    @property
    def engine(self) -> sa.Engine:
        """The engine the store writes through."""
        return self._engine

    def add_events(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Store a batch of events all-or-nothing; return how many were stored.

        A prediction id already stored refuses the whole batch.
        """
        rows = validate_events(records)
        if not rows:
            return 0
        try:
            with self._engine.begin() as conn:
                _bulk_insert(conn, EVENT, rows)
        except IntegrityError:
            raise IngestConflict(
                "event batch refused, nothing stored: it repeats a prediction_id "
                "that is already stored"
            ) from None
        return len(rows)

    def add_labels(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Store a batch of late labels all-or-nothing; return how many were stored.

        Every prediction id must have been ingested (``UnknownPredictionError``
        otherwise) and not be labelled yet.
        """
        rows = validate_labels(records)
        if not rows:
            return 0
        ids = [row["prediction_id"] for row in rows]
        try:
            with self._engine.begin() as conn:
                known: set[str] = set()
                for start in range(0, len(ids), _ID_CHUNK):
                    chunk = ids[start : start + _ID_CHUNK]
                    found = conn.execute(
                        sa.select(EVENT.c.prediction_id).where(EVENT.c.prediction_id.in_(chunk))
                    )
                    known.update(found.scalars())
                unknown = [pid for pid in ids if pid not in known]
                if unknown:
                    shown = ", ".join(repr(p) for p in unknown[:_MAX_PROBLEMS])
                    more = (
                        f" (and {len(unknown) - _MAX_PROBLEMS} more)"
                        if len(unknown) > _MAX_PROBLEMS
                        else ""
                    )
                    raise UnknownPredictionError(
                        f"label batch refused, nothing stored: unknown prediction id(s) "
                        f"{shown}{more}"
                    )
                _bulk_insert(conn, LABEL, [(r["prediction_id"], r["label"], r["ts"]) for r in rows])
        except IntegrityError:
            raise IngestConflict(
                "label batch refused, nothing stored: a prediction id is already labelled"
            ) from None
        return len(rows)

    def purge(self, before: datetime) -> PurgeResult:
        """Retention: delete events with a timestamp before ``before``, their labels,
        and labels received before ``before``. ``before`` is passed in, never read."""
        if before.tzinfo is None:
            raise ConfigError("purge cutoff must be timezone-aware")
        cutoff = before.timestamp()
        old_events = sa.select(EVENT.c.prediction_id).where(EVENT.c.ts < cutoff)
        with self._engine.begin() as conn:
            labels = conn.execute(
                LABEL.delete().where(
                    sa.or_(LABEL.c.ts < cutoff, LABEL.c.prediction_id.in_(old_events))
                )
            ).rowcount
            events = conn.execute(EVENT.delete().where(EVENT.c.ts < cutoff)).rowcount
        return PurgeResult(events=events, labels=labels)

    def frame(
        self,
        model: str,
        window: Window,
        *,
        version: str = "",
        arm: str = "",
        columns: Sequence[str] = EVENT_COLUMNS,
    ) -> pd.DataFrame:
        """Events of ``model`` in ``[window.start, window.end)`` (optionally one version
        and/or arm), with their label (NaN while none has arrived), in time order (ties
        by prediction id). ``columns`` picks the event columns; fewer columns read faster
        (``STAT_COLUMNS`` for statistics)."""
        unknown = sorted(set(columns) - set(EVENT_COLUMNS))
        if unknown:
            raise ConfigError(f"unknown event column(s) {', '.join(unknown)}")
        query = (
            sa.select(*[EVENT.c[name] for name in columns], LABEL.c.label)
            .select_from(EVENT.outerjoin(LABEL, EVENT.c.prediction_id == LABEL.c.prediction_id))
            .where(EVENT.c.model == model)
            .where(EVENT.c.ts >= window.start.timestamp())
            .where(EVENT.c.ts < window.end.timestamp())
            .order_by(EVENT.c.ts, EVENT.c.prediction_id)
        )
        if version:
            query = query.where(EVENT.c.version == version)
        if arm:
            query = query.where(EVENT.c.arm == arm)
        with self._engine.connect() as conn:
            rows = _fetch_tuples(conn, query)
        import pandas as pd  # noqa: PLC0415 -- see the module's imports

        frame = pd.DataFrame.from_records(rows, columns=[*columns, "label"])
        types = {"ts": float, "latency_ms": float, "error": bool, "outcome": float,
                 "score": float, "label": float}  # fmt: skip
        return frame.astype({name: kind for name, kind in types.items() if name in frame})

    def window_counts(self, probes: Sequence[WindowProbe]) -> list[dict[str, WindowCounts]]:
        """Per probe, per version, the counts of its window's events (``WindowCounts``),
        aggregated by the database: one statement per 4,096 probes, whatever their
        windows, and no event row leaves the database. A version without events in a
        window is absent from its probe's answer."""
        answers: list[dict[str, WindowCounts]] = [{} for _ in probes]
        with self._reading() as conn:
            for offset, chunk in _padded(probes):
                for i, version, total, errors, labelled, correct in _run_batch(
                    conn, "counts", chunk
                ):
                    answers[offset + i][version] = WindowCounts(
                        int(total), int(errors or 0), int(labelled or 0), int(correct or 0)
                    )
        return answers

    def window_values(
        self, probes: Sequence[WindowProbe], columns: Sequence[str]
    ) -> list[dict[str, dict[str, np.ndarray]]]:
        """Per probe, per version, ``columns`` of its window's events as float arrays
        (NaN where unset), in time order (ties by prediction id, as ``frame``): one
        statement per 4,096 probes. A version without events in a window is absent;
        the key ``""`` holds every version's events (no version has an empty name)."""
        unknown = sorted(set(columns) - {"latency_ms", "outcome", "score"})
        if unknown:
            raise ConfigError(f"not a value column: {', '.join(unknown)}")
        answers: list[dict[str, dict[str, np.ndarray]]] = [{} for _ in probes]
        with self._reading() as conn:
            for offset, chunk in _padded(probes):
                rows = _run_batch(conn, "values", chunk, tuple(columns))
                start = 0
                while start < len(rows):
                    i = rows[start][0]
                    stop = start
                    while stop < len(rows) and rows[stop][0] == i:
                        stop += 1
                    answers[offset + i] = _by_version(rows[start:stop], columns)
                    start = stop
        return answers

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        """A connection for a batch read: one snapshot that never takes SQLite's
        write lock (it begins deferred)."""
        with self._engine.connect().execution_options(**{_READ_ONLY: True}) as conn:
            yield conn

    def count(self) -> tuple[int, int]:
        """(events, labels) currently stored."""
        with self._engine.connect() as conn:
            events = conn.execute(sa.select(sa.func.count()).select_from(EVENT)).scalar_one()
            labels = conn.execute(sa.select(sa.func.count()).select_from(LABEL)).scalar_one()
        return int(events), int(labels)

    def close(self) -> None:
        """Dispose of the engine's connections."""
        self._engine.dispose()


def _database_url(value: str) -> str:
    """A URL SQLAlchemy can parse; whether the database answers is seen at start."""
    try:
        sa.make_url(value)
    except sa.exc.ArgumentError:
        raise ValueError(f"not a database URL: {value!r}") from None
    return value


class IngestOptions(SourceOptions):
    """Options of ``kind: ingest``: where events and labels are stored, and how many
    values of a distribution a measurement keeps."""

    url: Annotated[str, AfterValidator(_database_url)] | None = Field(
        default=None,
        description="The ingest database (any SQLAlchemy URL; sqlite:/// paths are relative "
        "to the config file). Default: sqlite:///$MODELREG_HOME/ingest.db, else "
        "./.modelreg/ingest.db.",
    )
    max_samples: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description="Values of a latency distribution a measurement keeps per arm and "
        "window for the rank tests (an evenly spaced subsample beyond this).",
    )


class IngestSource:
    """A ``MetricSource`` over an ``IngestStore``: ``metric.query`` names a statistic
    (see ``monitors.windows``) or a custom aggregation of the outcome registered here."""

    def __init__(
        self,
        store: IngestStore,
        *,
        aggregations: Mapping[str, CustomAggregation] | None = None,
        max_samples: int = 10_000,
    ) -> None:
        if max_samples < 0:
            raise ConfigError("ingest: max_samples must be >= 0")
        self._store = store
        self._custom = dict(aggregations or {})
        self._max_samples = max_samples

    @classmethod
    def from_options(
        cls,
        options: IngestOptions,
        *,
        aggregations: Mapping[str, CustomAggregation] | None = None,
    ) -> IngestSource:
        """Build from validated config options: opens (and migrates) the store."""
        return cls(
            IngestStore.open(options.url),
            aggregations=aggregations,
            max_samples=options.max_samples,
        )

    def validate(self, metric: MetricSpec) -> None:
        """Raise ``ConfigError`` when ``metric.query`` names no known statistic."""
        check_statistic(metric.query, self._custom)

    @property
    def store(self) -> IngestStore:
        """The store this source reads (the daemon's ingest API writes to it)."""
        return self._store

    def events(self, subject: Subject, window: Window) -> pd.DataFrame | str:
        """The window's events of ``subject`` in one read, or why they could not be read.

        Callers measuring several metrics of one window (a rollout tick, a guard pass)
        read the events once and pass them to ``measure_events`` per metric."""
        try:
            return self._store.frame(
                subject.model,
                window,
                version=subject.version,
                arm=subject.arm,
                columns=STAT_COLUMNS,
            )
        except sa.exc.SQLAlchemyError as exc:
            return f"ingest store failed: {type(exc).__name__}: {exc}"

    def measure_events(
        self, events: pd.DataFrame | str, metric: MetricSpec, subject: Subject, window: Window
    ) -> Measurement:
        """``metric`` over ``events`` (from ``events``), with this source's options."""
        if isinstance(events, str):
            return Measurement.error(metric.name, subject, window, events)
        return measure_frame(
            events, metric, subject, window, custom=self._custom, max_samples=self._max_samples
        )

    def measure(self, metric: MetricSpec, subject: Subject, window: Window) -> Measurement:
        """Compute ``metric.query`` over the window's events (``measure_many`` of one)."""
        return self.measure_many([MetricQuery(metric, subject, window)])[0]

    def measure_many(self, queries: Sequence[MetricQuery]) -> list[Measurement]:
        """Every query's measurement, in order, from at most two batch reads of the
        store per 4,096 distinct windows, whatever the number of queries: the count
        statistics from counts the database aggregates (``IngestStore.window_counts``),
        the others from the values of the columns they read (``window_values``). Every
        metric of one subject and window shares its read, and so do both arms of one
        window (the reads answer per version). A store that fails gives each query an
        error measurement; nothing raises."""
        out: list[Measurement | None] = [None] * len(queries)
        counted: dict[WindowProbe, int] = {}
        valued: dict[WindowProbe, int] = {}
        columns: set[str] = set()
        probes = _probes_of(queries)
        for k, query in enumerate(queries):
            name = query.metric.query
            try:
                check_statistic(name, self._custom)
            except ConfigError as exc:
                out[k] = Measurement.error(query.metric.name, query.subject, query.window,
                                           str(exc))  # fmt: skip
                continue
            probe = probes[k]
            if name in COUNT_STATISTICS:
                counted.setdefault(probe, len(counted))
            else:
                valued.setdefault(probe, len(valued))
                columns.add(value_column(name))
        try:
            counts = self._store.window_counts(list(counted)) if counted else []
            values = self._store.window_values(list(valued), sorted(columns)) if valued else []
        except sa.exc.SQLAlchemyError as exc:
            failed = f"ingest store failed: {type(exc).__name__}: {exc}"
            return [
                m
                if m is not None
                else Measurement.error(q.metric.name, q.subject, q.window, failed)
                for m, q in zip(out, queries, strict=True)
            ]
        for k, query in enumerate(queries):
            if out[k] is not None:
                continue
            probe, version = probes[k], query.subject.version
            metric = query.metric
            if metric.query in COUNT_STATISTICS:
                by_version = counts[counted[probe]]
                found = (
                    by_version.get(version, WindowCounts())
                    if version
                    else sum(by_version.values(), WindowCounts())
                )
                out[k] = measure_counts(found, metric, query.subject, query.window)
                continue
            arrays = values[valued[probe]].get(version)  # "": every version's events
            array = arrays[value_column(metric.query)] if arrays is not None else np.empty(0)
            out[k] = measure_values(array, metric, query.subject, query.window,
                                    custom=self._custom, max_samples=self._max_samples)  # fmt: skip
        return [m for m in out if m is not None]


def _by_version(rows: Sequence[Any], columns: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """One probe's rows (``i, version, *columns``, in time order) as arrays per version,
    and for every version together under ``""``."""
    every = {name: np.array([r[2 + k] for r in rows], dtype=float)
             for k, name in enumerate(columns)}  # fmt: skip
    versions = np.array([r[1] for r in rows], dtype=object)
    out = {"": every}
    for version in dict.fromkeys(versions.tolist()):
        mask = versions == version
        out[version] = {name: values[mask] for name, values in every.items()}
    return out


def _probes_of(queries: Sequence[MetricQuery]) -> list[WindowProbe]:
    """Each query's probe, made once per window and (model, arm): every metric and
    both arms of a rollout share one."""
    made: dict[tuple[int, str, str], WindowProbe] = {}  # the windows live in ``queries``
    probes = []
    for query in queries:
        subject, window = query.subject, query.window
        key = (id(window), subject.model, subject.arm)
        probe = made.get(key)
        if probe is None:
            probe = made[key] = WindowProbe(
                subject.model, subject.arm, window.start.timestamp(), window.end.timestamp()
            )
        probes.append(probe)
    return probes
