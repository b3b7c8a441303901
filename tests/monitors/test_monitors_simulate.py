"""The seeded simulated workload and its prometheus-client exporter (no server)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from monitors.errors import ConfigError
from monitors.simulate import LATENCY_BUCKETS, Exporter, Workload, parse_version, simulate

WORKLOAD = Workload(
    model="m",
    seed=5,
    versions=(parse_version("1.0.0:err=0.1:lat=40"), parse_version("2.0.0:err=0.3:lat=80")),
)


class TestWorkload:
    def test_parse_version(self) -> None:
        """NAME:err=P:lat=MS, with defaults for what is left out."""
        profile = parse_version("2.1.0:lat=75")
        assert (profile.version, profile.error_rate, profile.latency_ms) == ("2.1.0", 0.01, 75.0)
        with pytest.raises(ConfigError, match="use err=<p> and lat=<ms>"):
            parse_version("1.0.0:p99=3")
        with pytest.raises(ConfigError, match=r"err must be in \[0, 1\]"):
            parse_version("1.0.0:err=2")

    def test_deterministic_and_independent_of_batching(self) -> None:
        """The first n requests are the same however they are served."""
        expected = simulate(WORKLOAD, 1000)
        assert simulate(WORKLOAD, 1000) == expected
        exporter = Exporter(WORKLOAD, limit=1000)
        for size in (1, 10, 333, 700):
            exporter.serve(size)
        assert exporter.done
        assert exporter.totals == expected
        assert expected["2.0.0"].errors > expected["1.0.0"].errors

    def test_exported_values(self) -> None:
        """Counters and histogram buckets carry model and version labels."""
        registry = CollectorRegistry()
        exporter = Exporter(WORKLOAD, registry=registry)
        labels = {"model": "m", "version": "1.0.0"}
        assert registry.get_sample_value("predictions_total", labels) == 0.0
        exporter.tick(0.5, rate=400)  # 200 requests per version
        totals = exporter.totals["1.0.0"]
        assert registry.get_sample_value("predictions_total", labels) == 200
        assert registry.get_sample_value("prediction_errors_total", labels) == totals.errors
        for bound, count in zip(LATENCY_BUCKETS, totals.buckets, strict=True):
            le = "+Inf" if bound == float("inf") else str(bound)
            assert (
                registry.get_sample_value("prediction_latency_seconds_bucket", labels | {"le": le})
                == count
            )

    def test_invalid_workload(self) -> None:
        """Duplicate versions are refused."""
        with pytest.raises(ConfigError, match="distinct"):
            Workload(model="m", versions=(parse_version("1"), parse_version("1")))
