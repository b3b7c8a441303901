"""IngestSource.measure_many: many windows measured from a fixed number of batch reads,
each measurement equal to the pandas path's over the same window (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from monitors import ingest as ingest_module
from monitors.ingest import IngestSource, IngestStore
from monitors.measurement import MetricQuery, MetricSpec, Status, Subject, Window
from monitors.windows import BUILTIN_STATISTICS, measure_frame

T0 = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
MODELS = ("fraud", "churn", "spam")
VERSIONS = ("v1.0.0", "v1.1.0")


def _events(model: str, offset: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """300 events of ``model``: both versions and arms, errors, outcomes, scores, and a
    label for two events in three (an outcome missing now and then)."""
    events, labels = [], []
    for i in range(300):
        pid = f"{model}-{i}"
        events.append({
            "prediction_id": pid, "model": model, "version": VERSIONS[i % 2],
            "arm": ("control", "treatment")[i % 2], "unit_id": f"u{i % 37}",
            "timestamp": T0.timestamp() + i + offset * 0.25,
            "latency_ms": float(5 + (i * 7 + offset) % 41), "error": (i + offset) % 9 == 0,
            "outcome": None if i % 13 == 0 else float((i + offset) % 3 == 0),
            "score": None if i % 5 == 0 else (i % 17) / 17,
        })  # fmt: skip
        if i % 3:
            labels.append({"prediction_id": pid, "label": float(i % 2),
                           "timestamp": T0.timestamp()})  # fmt: skip
    return events, labels


@pytest.fixture
def store(db_url: str) -> Iterator[IngestStore]:
    opened = IngestStore.open(db_url)
    for offset, model in enumerate(MODELS):
        events, labels = _events(model, offset)
        opened.add_events(events)
        opened.add_labels(labels)
    yield opened
    opened.close()


def _queries() -> list[MetricQuery]:
    """Every built-in statistic for versions, arms and a whole model, over windows of
    several lengths (one holding no event), on three models and one without events."""
    subjects = [Subject(m, version=v) for m in MODELS for v in VERSIONS]
    subjects += [Subject("fraud", arm="treatment"), Subject("churn"), Subject("nobody", "v1")]
    windows = [Window(end=T0 + timedelta(seconds=s), length=timedelta(seconds=length))
               for s, length in ((300, 300), (200, 120), (90, 45), (5000, 10))]  # fmt: skip
    return [
        MetricQuery(MetricSpec(name=f"s_{name}", query=name), subject, window)
        for name in sorted(BUILTIN_STATISTICS)
        for subject in subjects
        for window in windows
    ]


def _frame_path(source: IngestSource, query: MetricQuery) -> Any:
    return source.measure_events(
        source.events(query.subject, query.window), query.metric, query.subject, query.window
    )


class TestMeasureMany:
    def test_equals_the_frame_path_for_every_statistic(self, store: IngestStore) -> None:
        """Each answer equals measure_frame over the window's events read alone."""
        source = IngestSource(store, max_samples=50)
        queries = _queries()
        answers = source.measure_many(queries)
        assert len(answers) == len(queries)
        statuses = set()
        for query, answer in zip(queries, answers, strict=True):
            assert answer == _frame_path(source, query), query
            statuses.add(answer.status)
        assert statuses == {Status.OK, Status.NODATA}  # both kinds of answer were checked

    def test_one_query_equals_many(self, store: IngestStore) -> None:
        """measure() (a batch of one) answers as measure_many() of all."""
        source = IngestSource(store)
        queries = _queries()[::7]
        assert [source.measure(q.metric, q.subject, q.window) for q in queries] == (
            source.measure_many(queries)
        )

    def test_two_statements_for_any_number_of_windows(self, store: IngestStore) -> None:
        """Counts and values are each one statement, whatever the windows and metrics."""
        source = IngestSource(store)
        seen: list[str] = []

        def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
            if not statement.startswith("BEGIN"):
                seen.append(statement)

        sa.event.listen(store.engine, "before_cursor_execute", count)
        try:
            source.measure_many(_queries())
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", count)
        assert len(seen) == 2

    def test_chunks_answer_as_one_statement(
        self, store: IngestStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Windows split over several statements (padded ones among them) answer the same."""
        source = IngestSource(store)
        queries = _queries()
        whole = source.measure_many(queries)
        monkeypatch.setattr(ingest_module, "_PROBES_PER_STATEMENT", 4)
        assert source.measure_many(queries) == whole

    def test_custom_aggregation_and_unknown_statistic(self, store: IngestStore) -> None:
        """A registered aggregation gets the set outcomes; an unknown name is an error."""
        source = IngestSource(store, aggregations={"share": lambda s: float(s.mean())})
        window = Window(end=T0 + timedelta(seconds=300), length=timedelta(seconds=300))
        subject = Subject("fraud", version="v1.0.0")
        share, unknown = source.measure_many([
            MetricQuery(MetricSpec(name="share", query="share"), subject, window),
            MetricQuery(MetricSpec(name="x", query="latency_p42"), subject, window),
        ])  # fmt: skip
        mean = source.measure(MetricSpec(name="share", query="outcome_mean"), subject, window)
        assert share.value == pytest.approx(mean.value)
        assert unknown.status is Status.ERROR

    def test_a_failing_store_gives_error_measurements(self, store: IngestStore) -> None:
        """A database error is data: every query answered, as an error."""
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE ingest_label"))
        answers = IngestSource(store).measure_many(_queries()[:5])
        assert [a.status for a in answers] == [Status.ERROR] * 5
        assert all("ingest store failed" in a.message for a in answers)


def test_measure_frame_of_an_empty_frame_is_nodata() -> None:
    """The shared helpers keep measure_frame's answer for an empty window."""
    import pandas as pd

    window = Window(end=T0, length=timedelta(seconds=60))
    for name in sorted(BUILTIN_STATISTICS):
        answer = measure_frame(pd.DataFrame(), MetricSpec(name=name, query=name),
                               Subject("m"), window)  # fmt: skip
        assert answer.status is Status.NODATA, name
