"""A simulated serving workload: follows the routing table, serves, reports outcomes.

A separate process standing in for the serving fleet. Every ``tick`` it serves
``rate * tick`` requests, each from a new unit id, to the version the route picks
(abtest's sticky assignment via ``RouteTable``). Each version has a profile: error
probability, mean latency (log-normal) and accuracy (probability that the outcome
matches the label). Outcomes go to the daemon's ingest API (events, then their
labels); with ``--metrics-port`` the same requests are also exported for
Prometheus (``predictions_total``, ``prediction_errors_total``,
``prediction_latency_seconds`` by model and version, as ``monitors.simulate``).

    python -m serving.workload --model fraud --routes .modelreg/routes.json \\
        --ingest http://127.0.0.1:8470 --rate 400 \\
        --version v1.0.0:err=0.01:lat=20:acc=0.80 --version v1.1.0:acc=0.88
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

import httpx
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from monitors.simulate import LATENCY_BUCKETS
from serving.route_table import OutcomeReporter, RouteTable

__all__ = ["Profile", "main", "parse_profile"]


@dataclass(frozen=True, slots=True)
class Profile:
    """How one version behaves."""

    version: str
    error_rate: float = 0.01
    latency_ms: float = 20.0
    accuracy: float = 0.8


def parse_profile(text: str) -> Profile:
    """``VERSION[:err=F][:lat=MS][:acc=F]``."""
    version, *parts = text.split(":")
    fields: dict[str, float] = {}
    names = {"err": "error_rate", "lat": "latency_ms", "acc": "accuracy"}
    for part in parts:
        key, _, value = part.partition("=")
        if key not in names:
            raise ValueError(f"unknown profile key {key!r} in {text!r} (err, lat, acc)")
        fields[names[key]] = float(value)
    return Profile(version, **fields)


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0915 -- one loop, read top-down
    parser = argparse.ArgumentParser(prog="python -m serving.workload", description=__doc__)
    parser.add_argument("--model", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--routes", help="routing table file (file router)")
    where.add_argument("--routes-url", help="daemon URL to poll (http router)")
    parser.add_argument("--ingest", help="daemon URL to post outcomes to")
    parser.add_argument("--version", action="append", default=[], type=parse_profile)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--tick", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metrics-port", type=int, default=None)
    args = parser.parse_args(argv)

    profiles = {p.version: p for p in args.version}
    token = os.environ.get("MODELREG_TOKEN")  # a deployer token when the daemon wants one
    table = RouteTable(
        model=args.model, path=args.routes, url=args.routes_url, refresh=0.2, token=token
    )
    reporter = OutcomeReporter(url=args.ingest, token=token) if args.ingest else None
    rng = np.random.default_rng(args.seed)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    registry = CollectorRegistry()
    labels = ("model", "version")
    requests = Counter("predictions", "Predictions served.", labels, registry=registry)
    failures = Counter("prediction_errors", "Predictions that failed.", labels,
                       registry=registry)  # fmt: skip
    latency = Histogram("prediction_latency_seconds", "Prediction latency.", labels,
                        buckets=LATENCY_BUCKETS, registry=registry)  # fmt: skip
    for version in profiles:
        requests.labels(args.model, version)
        failures.labels(args.model, version)
        latency.labels(args.model, version)
    if args.metrics_port is not None:
        server, _thread = start_http_server(args.metrics_port, "127.0.0.1", registry=registry)
        print(json.dumps({"listening": f"127.0.0.1:{server.server_port}"}), flush=True)

    carry = 0.0
    served = 0
    next_tick = time.monotonic()
    while not stop.is_set():
        next_tick += args.tick
        carry += args.rate * args.tick
        count, carry = int(carry), carry - int(carry)
        now = time.time()
        for _ in range(count):
            unit = uuid.uuid4().hex
            picked = table.pick(unit)
            if picked is None:
                break
            backend, arm = picked
            profile = profiles.get(backend.version, Profile(backend.version))
            error = bool(rng.random() < profile.error_rate)
            mu = math.log(profile.latency_ms) - 0.08
            millis = float(rng.lognormal(mu, 0.4))
            correct = bool(rng.random() < profile.accuracy)
            requests.labels(args.model, backend.version).inc()
            if error:
                failures.labels(args.model, backend.version).inc()
            latency.labels(args.model, backend.version).observe(millis / 1000.0)
            served += 1
            if reporter is not None:
                reporter.event(prediction_id=unit, model=args.model, version=backend.version,
                               arm=arm, unit_id=unit, timestamp=now, latency_ms=millis,
                               error=error, outcome=1.0)  # fmt: skip
                reporter.label(unit, 1.0 if correct else 0.0, now)
        if reporter is not None:
            try:
                reporter.flush()
            except httpx.HTTPError as exc:  # the daemon restarting: drop this batch, go on
                print(f"workload: ingest failed: {exc}", file=sys.stderr, flush=True)
        stop.wait(max(0.0, next_tick - time.monotonic()))
    print(json.dumps({"served": served}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
