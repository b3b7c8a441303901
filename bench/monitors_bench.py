"""Benchmarks of monitors; prints one JSON object.

- ingest: events/s of ``IngestStore.add_events`` in 50,000-event batches into a
  fresh SQLite file (validation included), and labels/s.
- windows: p95 latency per arm over 1,000,000 events, computed by monitors
  (``measure_by`` arm: a full Measurement per arm, and the ``summarize`` table) against a bare
  ``frame.groupby("arm")["latency_ms"].quantile(0.95)`` on the same frame; ratio =
  monitors time / bare time. Also ``IngestSource.measure`` end to end (SQLite read +
  pandas) for one arm of the stored 1,000,000 events.
- prometheus: latency per query of ``PrometheusSource.measure`` against a real
  Prometheus (Debian package) scraping the simulated exporter, per metric type.

Usage: python bench/monitors_bench.py [--events 1000000] [--queries 50]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from figures import figure

from monitors.ingest import IngestSource, IngestStore
from monitors.measurement import MetricSpec, Subject, Window
from monitors.prometheus import PrometheusSource
from monitors.testing import start_exporter, start_prometheus, wait_until
from monitors.windows import measure_by, summarize

T0 = 1_800_000_000.0
BATCH = 50_000


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def batch(offset: int, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    latency = rng.gamma(2.0, 20.0, n)
    errors = rng.random(n) < 0.02
    arms = rng.random(n) < 0.5
    return [
        {
            "prediction_id": f"p{offset + i}",
            "model": "fraud",
            "version": "1.1.0" if arms[i] else "1.0.0",
            "arm": "treatment" if arms[i] else "control",
            "unit_id": f"u{(offset + i) % 10_007}",
            "timestamp": T0 + (offset + i) * 0.001,
            "latency_ms": float(latency[i]),
            "error": bool(errors[i]),
            "outcome": float(i % 2),
        }
        for i in range(n)
    ]


def bench_ingest(workdir: Path, events: int) -> tuple[dict[str, Any], IngestStore]:
    store = IngestStore.open(f"sqlite:///{workdir / 'ingest.db'}")
    rng = np.random.default_rng(1)
    insert_seconds = 0.0
    rates = []
    for offset in range(0, events, BATCH):
        records = batch(offset, min(BATCH, events - offset), rng)
        start = time.perf_counter()
        store.add_events(records)
        elapsed = time.perf_counter() - start
        insert_seconds += elapsed
        rates.append(len(records) / elapsed)
    labels = [{"prediction_id": f"p{i}", "label": 1.0, "timestamp": T0 + 3600}
              for i in range(0, min(events, 200_000), 2)]  # fmt: skip
    start = time.perf_counter()
    store.add_labels(labels)
    label_seconds = time.perf_counter() - start
    return {
        "events": events,
        "batch_size": BATCH,
        "events_per_s": round(events / insert_seconds),
        "events_per_s_best_batch": round(max(rates)),
        "events_per_s_worst_batch": round(min(rates)),
        "labels": len(labels),
        "labels_per_s": round(len(labels) / label_seconds),
    }, store


def bench_windows(store: IngestStore, events: int) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({
        "prediction_id": [f"p{i}" for i in range(events)],
        "model": "fraud",
        "version": "1.0.0",
        "arm": np.where(rng.random(events) < 0.5, "treatment", "control"),
        "unit_id": "u",
        "ts": T0 + np.arange(events) * 0.001,
        "latency_ms": rng.gamma(2.0, 20.0, events),
        "error": rng.random(events) < 0.02,
        "outcome": (np.arange(events) % 2).astype(float),
        "score": np.nan,
        "label": np.nan,
    })  # fmt: skip
    end = datetime.fromtimestamp(T0 + events * 0.001 + 1, UTC)
    window = Window(end=end, length=timedelta(days=1))
    p95 = MetricSpec(name="latency_p95", query="latency_p95")

    def bare() -> object:
        return frame.groupby("arm")["latency_ms"].quantile(0.95)

    def per_arm() -> object:
        return measure_by(frame, p95, window, model="fraud", by="arm")

    def table() -> object:
        return summarize(frame)["latency_p95"]

    bare_s = best_of(3, bare)
    per_arm_s = best_of(3, per_arm)
    table_s = best_of(3, table)
    source = IngestSource(store)
    start = time.perf_counter()
    stored = source.measure(p95, Subject(model="fraud", arm="treatment"), window)
    measure_s = time.perf_counter() - start
    return {
        "events": events,
        "bare_groupby_p95_s": round(bare_s, 4),
        "measure_by_arm_p95_s": round(per_arm_s, 4),
        "ratio_measure_by_vs_bare": round(per_arm_s / bare_s, 2),
        "summarize_all_stats_s": round(table_s, 4),
        "ratio_summarize_vs_bare": round(table_s / bare_s, 2),
        "ingest_source_measure_one_arm_from_sqlite_s": round(measure_s, 3),
        "ingest_source_measure_samples": stored.sample_size,
    }


def bench_prometheus(workdir: Path, queries: int) -> dict[str, Any]:
    missing = [b for b in ("prometheus",) if shutil.which(b) is None]
    if missing:
        return {"skipped": f"{', '.join(missing)} not installed"}
    versions = ["1.0.0:err=0.02:lat=40", "1.1.0:err=0.05:lat=80"]
    exporter = start_exporter(workdir / "exporter", model="fraud", rate=200, versions=versions)
    prometheus = None
    try:
        prometheus = start_prometheus(workdir / "prom",
                                      targets=[exporter.url.removeprefix("http://")])  # fmt: skip
        source = PrometheusSource(base_url=prometheus.url, scrape_interval=timedelta(seconds=1))
        subject = Subject(model="fraud", version="1.1.0")
        selector = 'model="{{model}}",version="{{version}}"'
        metrics = {
            "counter": MetricSpec(name="requests", type="counter",
                                  query=f"predictions_total{{{selector}}}"),
            "histogram_p95": MetricSpec(name="p95", type="histogram",
                                        query=f"prediction_latency_seconds_bucket{{{selector}}}"),
            "gauge_ratio": MetricSpec(
                name="error_ratio",
                query=f"increase(prediction_errors_total{{{selector}}}[{{{{window}}}}]) / "
                f"increase(predictions_total{{{selector}}}[{{{{window}}}}])"),
            "range_1s_step": MetricSpec(name="rate", type="range", step=timedelta(seconds=1),
                                        query=f"rate(predictions_total{{{selector}}}[5s])"),
        }  # fmt: skip

        def has_data() -> bool:
            now = datetime.now(UTC)
            m = source.measure(metrics["counter"], subject,
                               Window(end=now, length=timedelta(seconds=5)))  # fmt: skip
            return m.ok and (m.value or 0) > 0

        wait_until(has_data, timeout=30, interval=0.5)
        time.sleep(3)
        out: dict[str, Any] = {"queries_per_type": queries}
        for name, metric in metrics.items():
            latencies = []
            statuses = set()
            for _ in range(queries):
                window = Window(end=datetime.now(UTC), length=timedelta(seconds=30))
                start = time.perf_counter()
                m = source.measure(metric, subject, window)
                latencies.append((time.perf_counter() - start) * 1000)
                statuses.add(str(m.status))
            latencies.sort()
            out[name] = {
                "p50_ms": round(statistics.median(latencies), 2),
                "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
                "statuses": sorted(statuses),
            }
        source.close()
        return out
    finally:
        if prometheus is not None:
            prometheus.stop()
        exporter.stop()


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Ingest rates, the window statistics against a bare pandas groupby, and the
    Prometheus queries' latency."""
    ingest, windows = result["ingest"], result["windows"]
    out = [
        figure("monitors_ingest_events", f"Ingest events/s ({ingest['events']:,} events, "
               f"batches of {ingest['batch_size']:,})", ingest["events_per_s"], "events/s"),
        figure("monitors_ingest_labels", "Ingest labels/s", ingest["labels_per_s"], "labels/s"),
        figure("monitors_p95_by_arm", f"p95 latency per arm over {windows['events']:,} events "
               "(measure_by)", windows["measure_by_arm_p95_s"] * 1000, "ms",
               baseline=windows["bare_groupby_p95_s"] * 1000,
               baseline_what="bare pandas groupby quantile, same frame"),
        figure("monitors_ingest_measure", "IngestSource.measure, one arm, from SQLite",
               windows["ingest_source_measure_one_arm_from_sqlite_s"] * 1000, "ms"),
    ]  # fmt: skip
    for kind, entry in result["prometheus"].items():
        if isinstance(entry, dict) and "p50_ms" in entry:
            what = f"PrometheusSource.measure, {kind}, p50"
            note = f"p95 {entry['p95_ms']} ms"
            out.append(figure(f"monitors_prometheus_{kind}", what, entry["p50_ms"], "ms",
                              note=note))  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="monitors-bench-") as tmp:
        workdir = Path(tmp)
        ingest, store = bench_ingest(workdir, args.events)
        windows = bench_windows(store, args.events)
        store.close()
        prometheus = bench_prometheus(workdir, args.queries)
    result = {"ingest": ingest, "windows": windows, "prometheus": prometheus}
    result["figures"] = figures(result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
