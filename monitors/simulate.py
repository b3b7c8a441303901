"""A seeded simulated serving workload exported with prometheus-client.

Each version serves requests whose latency is log-normal around a mean and which
fail with a fixed probability. The exporter counts them as a real serving system
would, labelled by ``model`` and ``version``:

- ``predictions_total`` (counter), ``prediction_errors_total`` (counter),
- ``prediction_latency_seconds`` (histogram, ``LATENCY_BUCKETS``).

The sequence of requests of a version depends only on the seed and the version's
position, never on timing or batch sizes: the first ``n`` requests are always the
same, so ``simulate(workload, n)`` tells a test exactly what an exporter capped at
``n`` requests per version has exported. Run it as::

    python -m monitors.simulate --port 0 --model fraud \\
        --version 1.0.0:err=0.01:lat=40 --version 1.1.0:err=0.05:lat=60 \\
        --seed 7 --rate 200 --requests 1000

With ``--port 0`` a free port is chosen; the first stdout line is JSON naming the
address (``{"listening": "127.0.0.1:PORT"}``). ``--hold`` exports zeros until the
process receives SIGUSR1 (so a scraper can see the counters start at zero).
SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from monitors.errors import ConfigError

__all__ = [
    "LATENCY_BUCKETS",
    "Exporter",
    "VersionProfile",
    "VersionTotals",
    "Workload",
    "main",
    "parse_version",
    "simulate",
]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, math.inf,
)  # fmt: skip
_SIGMA = 0.4  # spread of the log-normal latency


@dataclass(frozen=True, slots=True)
class VersionProfile:
    """How one version behaves: error probability and mean latency in ms."""

    version: str
    error_rate: float = 0.01
    latency_ms: float = 50.0

    def __post_init__(self) -> None:
        if not self.version:
            raise ConfigError("a simulated version needs a name")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ConfigError(f"version {self.version}: err must be in [0, 1]")
        if not (math.isfinite(self.latency_ms) and self.latency_ms > 0):
            raise ConfigError(f"version {self.version}: lat must be a positive number of ms")


def parse_version(text: str) -> VersionProfile:
    """``1.0.0:err=0.01:lat=40`` -> VersionProfile."""
    name, *options = text.split(":")
    values: dict[str, float] = {}
    for option in options:
        key, sep, raw = option.partition("=")
        if not sep or key not in ("err", "lat"):
            raise ConfigError(f"cannot parse {option!r} in {text!r}; use err=<p> and lat=<ms>")
        try:
            values[key] = float(raw)
        except ValueError:
            raise ConfigError(f"{key} must be a number in {text!r}") from None
    return VersionProfile(
        version=name, error_rate=values.get("err", 0.01), latency_ms=values.get("lat", 50.0)
    )


class _Stream:
    """The deterministic request sequence of one version."""

    def __init__(self, seed: int, index: int, profile: VersionProfile) -> None:
        self._latency = np.random.default_rng([seed, index, 0])
        self._errors = np.random.default_rng([seed, index, 1])
        self._profile = profile

    def draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Latencies in seconds and error flags of the next ``n`` requests."""
        mean_s = self._profile.latency_ms / 1000.0
        normal = self._latency.standard_normal(n)
        latency = mean_s * np.exp(_SIGMA * normal - _SIGMA**2 / 2)
        errors = self._errors.random(n) < self._profile.error_rate
        return latency, errors


@dataclass(frozen=True, slots=True)
class Workload:
    """A model served by several versions, reproducible from ``seed``."""

    model: str
    versions: tuple[VersionProfile, ...]
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.model or not self.versions:
            raise ConfigError("a workload needs a model and at least one version")
        names = [v.version for v in self.versions]
        if len(set(names)) != len(names):
            raise ConfigError("simulated versions must be distinct")

    def streams(self) -> list[_Stream]:
        """Fresh request sequences, one per version, in version order."""
        return [_Stream(self.seed, i, p) for i, p in enumerate(self.versions)]


@dataclass(slots=True)
class VersionTotals:
    """What a version served: requests, errors, cumulative latency bucket counts."""

    requests: int = 0
    errors: int = 0
    latency_sum: float = field(default=0.0, compare=False)  # float sums depend on batching
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))

    def add(self, latency: np.ndarray, errors: np.ndarray) -> None:
        """Account for one batch of requests."""
        self.requests += len(latency)
        self.errors += int(errors.sum())
        self.latency_sum += float(latency.sum())
        for index, bound in enumerate(LATENCY_BUCKETS):
            self.buckets[index] += int((latency <= bound).sum())


def simulate(workload: Workload, requests: int) -> dict[str, VersionTotals]:
    """Totals of the first ``requests`` requests of each version (no server, no clock)."""
    totals: dict[str, VersionTotals] = {}
    for profile, stream in zip(workload.versions, workload.streams(), strict=True):
        totals[profile.version] = VersionTotals()
        totals[profile.version].add(*stream.draw(requests))
    return totals


class Exporter:
    """Feeds a workload into prometheus-client metrics on an injected registry."""

    def __init__(
        self,
        workload: Workload,
        *,
        registry: CollectorRegistry | None = None,
        limit: int | None = None,
    ) -> None:
        self.workload = workload
        self.registry = registry or CollectorRegistry()
        self._limit = limit
        self._streams = workload.streams()
        self._carry = 0.0
        self.totals = {p.version: VersionTotals() for p in workload.versions}
        labels = ("model", "version")
        self._requests = Counter(
            "predictions", "Predictions served.", labels, registry=self.registry
        )
        self._errors = Counter(
            "prediction_errors", "Predictions that failed.", labels, registry=self.registry
        )
        self._latency = Histogram(
            "prediction_latency_seconds",
            "Prediction latency.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        for profile in workload.versions:  # export zeros before the first request
            self._requests.labels(workload.model, profile.version)
            self._errors.labels(workload.model, profile.version)
            self._latency.labels(workload.model, profile.version)

    @property
    def done(self) -> bool:
        """True once every version has served ``limit`` requests."""
        return self._limit is not None and all(
            t.requests >= self._limit for t in self.totals.values()
        )

    def serve(self, n: int) -> None:
        """Serve the next ``n`` requests of every version (fewer at the limit)."""
        for profile, stream in zip(self.workload.versions, self._streams, strict=True):
            totals = self.totals[profile.version]
            count = n if self._limit is None else min(n, self._limit - totals.requests)
            if count <= 0:
                continue
            latency, errors = stream.draw(count)
            totals.add(latency, errors)
            labels = (self.workload.model, profile.version)
            self._requests.labels(*labels).inc(count)
            if errors.any():
                self._errors.labels(*labels).inc(int(errors.sum()))
            histogram = self._latency.labels(*labels)
            for value in latency:
                histogram.observe(float(value))

    def tick(self, seconds: float, rate: float) -> None:
        """Serve ``rate`` requests per second per version for ``seconds``."""
        self._carry += seconds * rate
        whole = int(self._carry)
        self._carry -= whole
        if whole:
            self.serve(whole)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m monitors.simulate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--version",
        action="append",
        required=True,
        dest="versions",
        help="NAME[:err=P][:lat=MS], repeatable",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s per version")
    parser.add_argument("--requests", type=int, default=None, help="stop after N per version")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds of zeros first")
    parser.add_argument("--tick", type=float, default=0.1)
    parser.add_argument(
        "--hold", action="store_true", help="export zeros until SIGUSR1, then start serving"
    )
    args = parser.parse_args(argv)
    try:
        workload = Workload(
            model=args.model,
            seed=args.seed,
            versions=tuple(parse_version(v) for v in args.versions),
        )
    except ConfigError as exc:
        parser.error(str(exc))
    exporter = Exporter(workload, limit=args.requests)
    server, thread = start_http_server(args.port, addr=args.host, registry=exporter.registry)
    stop = threading.Event()
    go = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        go.set()

    def _go(signum: int, frame: FrameType | None) -> None:
        go.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGUSR1, _go)
    print(json.dumps({"listening": f"{args.host}:{server.server_port}"}), flush=True)
    if args.hold:
        go.wait()
    if stop.wait(args.delay):
        server.shutdown()
        return 0
    last = time.monotonic()
    announced = False
    while not stop.wait(args.tick):
        now = time.monotonic()
        exporter.tick(now - last, args.rate)
        last = now
        if exporter.done and not announced:
            announced = True
            totals = {
                v: {"requests": t.requests, "errors": t.errors} for v, t in exporter.totals.items()
            }
            print(json.dumps({"done": totals}), flush=True)
    server.shutdown()
    thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
