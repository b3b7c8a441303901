"""IngestStore and IngestSource on real SQLite files: batches, labels, windows, retention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from monitors.errors import ConfigError, IngestValidationError, UnknownPredictionError
from monitors.ingest import (
    HEAD_REVISION,
    VERSION_TABLE,
    IngestSource,
    IngestStore,
    create_ingest_engine,
    default_url,
)
from monitors.kinds import build_source
from monitors.measurement import MetricSpec, Status, Subject, Window

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def event(i: int, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "prediction_id": f"p{i}",
        "model": "fraud",
        "version": "1.0.0" if i % 2 else "1.1.0",
        "arm": "control" if i % 2 else "treatment",
        "unit_id": f"u{i % 97}",
        "timestamp": T0.timestamp() + i,
        "latency_ms": float(10 + i % 50),
        "error": i % 10 == 0,
        "outcome": float(i % 3 == 0),
    }
    record.update(overrides)
    return record


@pytest.fixture
def store(db_url: str) -> Iterator[IngestStore]:
    """A fresh store on each backend of the contract suite (SQLite file, PostgreSQL)."""
    opened = IngestStore.open(db_url)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[IngestStore]:
    """A fresh store in a SQLite file, for SQLite-specific checks."""
    opened = IngestStore.open(f"sqlite:///{tmp_path / 'ingest.db'}")
    yield opened
    opened.close()


def window(seconds: float = 3600, end: datetime | None = None) -> Window:
    return Window(end=end or T0 + timedelta(hours=1), length=timedelta(seconds=seconds))


class TestBatches:
    def test_events_are_stored(self, store: IngestStore) -> None:
        """A valid batch is stored as a whole and its size returned."""
        assert store.add_events([event(i) for i in range(100)]) == 100
        assert store.count() == (100, 0)

    @pytest.mark.parametrize(
        ("change", "match"),
        [
            ({"latency_ms": "12"}, "latency_ms must be a finite number"),
            ({"latency_ms": float("nan")}, "latency_ms must be a finite number"),
            ({"error": 1}, "error must be a boolean"),
            ({"timestamp": "yesterday"}, "timestamp must be epoch seconds"),
            ({"timestamp": datetime(2026, 1, 1)}, "aware datetime"),
            ({"model": ""}, "model must be a non-empty string"),
            ({"outcome": "yes"}, "outcome must be a finite number or null"),
            ({"latency": 3.0}, "unknown field"),
        ],
    )
    def test_one_bad_record_refuses_the_batch(
        self, store: IngestStore, change: dict[str, Any], match: str
    ) -> None:
        """A wrong type anywhere refuses the whole batch; nothing is stored half way."""
        batch = [event(i) for i in range(10)]
        batch[7] = event(7, **change)
        with pytest.raises(IngestValidationError, match=f"event 7: .*{match}"):
            store.add_events(batch)
        assert store.count() == (0, 0)

    def test_missing_field(self, store: IngestStore) -> None:
        """A missing field is named."""
        bad = event(3)
        del bad["unit_id"]
        with pytest.raises(IngestValidationError, match=r"event 1: missing field.*unit_id"):
            store.add_events([event(1), bad])
        assert store.count() == (0, 0)

    def test_problems_are_counted(self, store: IngestStore) -> None:
        """Many bad records: the first few are listed and the rest counted."""
        with pytest.raises(IngestValidationError, match=r"and 15 more"):
            store.add_events([event(i, error="no") for i in range(20)])

    def test_duplicate_ids(self, store: IngestStore) -> None:
        """A repeated prediction id, inside the batch or already stored, refuses the batch."""
        with pytest.raises(IngestValidationError, match="duplicate prediction_id 'p1'"):
            store.add_events([event(1), event(2), event(1)])
        store.add_events([event(1)])
        with pytest.raises(IngestValidationError, match="already stored"):
            store.add_events([event(2), event(1)])
        assert store.count() == (1, 0)

    def test_numpy_scalars_are_numbers(self, store: IngestStore) -> None:
        """Values taken from numpy or pandas are accepted like Python numbers."""
        store.add_events(
            [
                event(
                    1,
                    latency_ms=np.float64(12.5),
                    error=np.bool_(True),
                    timestamp=np.int64(T0.timestamp()),
                    outcome=np.int64(1),
                )
            ]
        )
        frame = store.frame("fraud", window())
        assert frame.loc[0, "latency_ms"] == 12.5
        assert bool(frame.loc[0, "error"]) is True

    def test_datetime_and_int_timestamps(self, store: IngestStore) -> None:
        """Aware datetimes and integer epoch seconds are accepted."""
        store.add_events(
            [
                event(1, timestamp=T0 + timedelta(seconds=5)),
                event(2, timestamp=int(T0.timestamp()) + 6),
            ]
        )
        frame = store.frame("fraud", window())
        assert sorted(frame["ts"]) == [T0.timestamp() + 5, T0.timestamp() + 6]


class TestLabels:
    def test_labels_for_unknown_ids_store_nothing(self, store: IngestStore) -> None:
        """Labels are all-or-nothing: one unknown id refuses the batch."""
        store.add_events([event(i) for i in range(5)])
        labels = [
            {"prediction_id": "p1", "label": 1.0, "timestamp": T0.timestamp()},
            {"prediction_id": "nope", "label": 0, "timestamp": T0.timestamp()},
        ]
        with pytest.raises(UnknownPredictionError, match=r"unknown prediction id.*'nope'"):
            store.add_labels(labels)
        assert store.count() == (5, 0)

    def test_label_validation(self, store: IngestStore) -> None:
        """Wrong label types and repeats are refused with the record's index."""
        store.add_events([event(1)])
        with pytest.raises(IngestValidationError, match="label 0: label must be a finite number"):
            store.add_labels([{"prediction_id": "p1", "label": "cat", "timestamp": 1.0}])
        store.add_labels([{"prediction_id": "p1", "label": 1, "timestamp": 1.0}])
        with pytest.raises(IngestValidationError, match="already labelled"):
            store.add_labels([{"prediction_id": "p1", "label": 1, "timestamp": 2.0}])

    def test_accuracy_over_labelled_predictions(self, store: IngestStore) -> None:
        """Accuracy counts only predictions whose label arrived; the fraction is reported."""
        store.add_events([event(i, arm="a", outcome=float(i % 2)) for i in range(10)])
        # label 4 predictions: p0, p1, p2 correct; p3 wrong
        store.add_labels(
            [{"prediction_id": f"p{i}", "label": float(i % 2), "timestamp": 0.0} for i in range(3)]
            + [{"prediction_id": "p3", "label": 0.0, "timestamp": 0.0}]
        )
        source = IngestSource(store)
        m = source.measure(
            MetricSpec(name="accuracy", query="accuracy"), Subject(model="fraud", arm="a"), window()
        )
        assert m.status is Status.OK
        assert m.value == 0.75
        assert m.sample_size == 4
        assert m.counts == {"correct": 3, "labelled": 4, "total": 10}
        assert m.extra == {"labelled_fraction": 0.4}

    def test_accuracy_without_labels_is_nodata(self, store: IngestStore) -> None:
        """No labels yet: nothing to judge, not an accuracy of zero."""
        store.add_events([event(1)])
        m = IngestSource(store).measure(
            MetricSpec(name="acc", query="accuracy"), Subject(model="fraud"), window()
        )
        assert m.status is Status.NODATA


class TestWindows:
    @pytest.fixture
    def filled(self, store: IngestStore) -> IngestStore:
        store.add_events([event(i) for i in range(1000)])
        return store

    def test_per_arm_statistics_match_numpy(self, filled: IngestStore) -> None:
        """Error rate and p95 per arm equal a direct numpy computation."""
        source = IngestSource(filled)
        treatment = Subject(model="fraud", arm="treatment")
        ids = [i for i in range(1000) if i % 2 == 0]
        m = source.measure(MetricSpec(name="p95", query="latency_p95"), treatment, window())
        assert m.value == pytest.approx(np.quantile([10 + i % 50 for i in ids], 0.95))
        assert m.sample_size == 500
        assert m.stats is not None
        assert m.stats.n == 500
        err = source.measure(MetricSpec(name="e", query="error_rate"), treatment, window())
        assert err.counts == {"errors": 100, "total": 500}
        assert err.value == 0.2

    def test_window_is_half_open(self, filled: IngestStore) -> None:
        """Events at the end instant belong to the next window."""
        w = Window(end=T0 + timedelta(seconds=10), length=timedelta(seconds=10))
        m = IngestSource(filled).measure(
            MetricSpec(name="n", query="count"), Subject(model="fraud"), w
        )
        assert m.value == 10  # p0 .. p9

    def test_version_filter_and_nodata(self, filled: IngestStore) -> None:
        """A version filter narrows the rows; an empty window is nodata."""
        source = IngestSource(filled)
        metric = MetricSpec(name="n", query="count")
        assert (
            source.measure(metric, Subject(model="fraud", version="1.0.0"), window()).value == 500
        )
        empty = source.measure(metric, Subject(model="other"), window())
        assert empty.status is Status.NODATA

    def test_custom_and_outcome_aggregations(self, filled: IngestStore) -> None:
        """Outcome statistics, built in or registered, are computed over set outcomes."""
        source = IngestSource(filled, aggregations={"outcome_share": lambda s: float(s.mean())})
        subject = Subject(model="fraud")
        built_in = source.measure(MetricSpec(name="o", query="outcome_sum"), subject, window())
        custom = source.measure(MetricSpec(name="o", query="outcome_share"), subject, window())
        assert built_in.value == 334
        assert custom.value == pytest.approx(0.334)

    def test_failing_custom_aggregation_is_an_error(self, filled: IngestStore) -> None:
        """User code that raises or returns NaN gives an error measurement."""
        source = IngestSource(
            filled, aggregations={"boom": lambda s: 1 / 0, "nan": lambda s: float("nan")}
        )
        for name in ("boom", "nan"):
            m = source.measure(MetricSpec(name=name, query=name), Subject(model="fraud"), window())
            assert m.status is Status.ERROR

    def test_unknown_statistic(self, filled: IngestStore) -> None:
        """validate() raises for an unknown statistic; measure() reports it as an error."""
        source = IngestSource(filled)
        metric = MetricSpec(name="x", query="latency_p42")
        with pytest.raises(ConfigError, match="unknown ingest statistic 'latency_p42'"):
            source.validate(metric)
        assert source.measure(metric, Subject(model="fraud"), window()).status is Status.ERROR


class TestStorage:
    def test_retention(self, store: IngestStore) -> None:
        """Purging deletes old events, their labels, and old labels."""
        store.add_events([event(i) for i in range(10)])
        store.add_labels(
            [
                {"prediction_id": f"p{i}", "label": 1.0, "timestamp": T0.timestamp() + 100}
                for i in range(10)
            ]
        )
        result = store.purge(T0 + timedelta(seconds=4))
        assert (result.events, result.labels) == (4, 4)
        assert store.count() == (6, 6)

    def test_own_version_table_next_to_the_registry(self, tmp_path: Path) -> None:
        """The ingest history lives in monitors_alembic_version, beside another history."""
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
            conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('0002')")
        engine.dispose()
        IngestStore.open(url).close()
        IngestStore.open(url).close()  # reopening is a no-op
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            assert {"ingest_event", "ingest_label", VERSION_TABLE} <= tables
            assert (
                conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0002"
            )
            assert (
                conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar() == "m0001"
            )
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        engine.dispose()

    def test_head_revision_is_alembics(self, tmp_path: Path) -> None:
        """The head an open compares with (without importing Alembic) is the history's
        newest revision; a store behind it is migrated on open, with no reopen cost."""
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        import monitors.ingest

        cfg = Config()
        cfg.set_main_option(
            "script_location", str(Path(monitors.ingest.__file__).parent / "migrations")
        )
        assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION
        url = f"sqlite:///{tmp_path / 'ingest.db'}"
        engine = sa.create_engine(url)
        assert monitors.ingest.current_revision(engine) is None
        IngestStore.open(url).close()
        assert monitors.ingest.current_revision(engine) == HEAD_REVISION
        engine.dispose()

    def test_default_url(self, tmp_path: Path) -> None:
        """MODELREG_HOME decides where the default SQLite file lives."""
        assert default_url({"MODELREG_HOME": str(tmp_path)}) == f"sqlite:///{tmp_path}/ingest.db"
        assert default_url({}) == "sqlite:///.modelreg/ingest.db"

    def test_build_from_config(self, tmp_path: Path) -> None:
        """kind: ingest builds a source on the given URL; bad options are named."""
        built = build_source("ingest", {"url": f"sqlite:///{tmp_path / 'x.db'}"})
        assert isinstance(built, IngestSource)
        with pytest.raises(ConfigError, match="path: Extra inputs are not permitted"):
            build_source("ingest", {"path": "x"})
        with pytest.raises(ConfigError, match="max_samples: Input should be a valid integer"):
            build_source("ingest", {"max_samples": "10"})
        with pytest.raises(ConfigError, match=r"url: .*not a database URL"):
            build_source("ingest", {"url": "not a url"})
        with pytest.raises(ConfigError, match="invalid database url"):
            create_ingest_engine("not a url")

    def test_large_batch_lands_whole(self, sqlite_store: IngestStore) -> None:
        """A 50,000-event batch is stored in full (speed is bench/monitors_bench.py's job)."""
        batch = [event(i, prediction_id=f"big-{i}") for i in range(50_000)]
        assert sqlite_store.add_events(batch) == 50_000
        assert sqlite_store.count() == (50_000, 0)


def test_frame_columns(tmp_path: Path) -> None:
    """frame() reads only the requested event columns and refuses unknown ones."""
    store = IngestStore.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        store.add_events([event(1)])
        frame = store.frame("fraud", window(), columns=("latency_ms",))
        assert list(frame.columns) == ["latency_ms", "label"]
        with pytest.raises(ConfigError, match="unknown event column"):
            store.frame("fraud", window(), columns=("latency",))
    finally:
        store.close()


@pytest.mark.slow
def test_concurrent_openers_migrate_once(tmp_path: Path) -> None:
    """Three processes opening one fresh SQLite file at once all succeed, one revision row."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = f"from monitors.ingest import IngestStore; IngestStore.open({url!r}).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
             for _ in range(3)]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").all()
    engine.dispose()
    assert [r[0] for r in rows] == ["m0001"]
