"""Run every benchmark and write one JSON document of their headline figures.

Each benchmark runs as its own process (a fresh interpreter, nothing shared) and
prints its JSON; its ``figures`` (``bench/figures.py``: the figure, its same-run
baseline, the ratio and the target) are gathered here with the load average
before and after it, its wall time and its full output. ``--quick`` runs small
sizes to check that everything works (a few minutes); ``--full`` the sizes the
README reports. ``--only NAME`` runs some; with ``--update`` the others' entries
are kept from the existing file, so one benchmark can be re-run on a quiet moment.

The README's benchmark tables are rendered from this file by
``bench/readme_tables.py``; ``tests/test_bench_tables.py`` fails when they differ.

Usage: python bench/run_all.py --quick|--full [--only NAME ...] [--update]
       [--out bench/results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from figures import load_average

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    quick: list[str]
    full: list[str]
    needs: tuple[str, ...] = ()  # what must be here, else the entry says it was skipped
    title: str = ""


BENCHES = [
    Bench("registry", "registry_bench.py", ["--quick"], [],
          title="Registry: registrations, resolve, reads, a large artifact"),
    Bench("serve", "serve_bench.py", ["--quick"], [], needs=("wrk",),
          title="Daemon: start, footprint, HTTP, alerts"),
    Bench("daemon", "daemon_bench.py", ["--quick"], ["--rollouts", "100,1000,10000"],
          title="Daemon: evaluation ticks and the production guard"),
    Bench("stats", "stats_bench.py", ["--n", "100000", "--rollouts", "200", "--resamples", "10"],
          [], title="Statistics: abtest against bare scipy/numpy on the same data"),
    Bench("monitors", "monitors_bench.py", ["--events", "200000", "--queries", "10"], [],
          title="Monitors: ingest, window statistics, Prometheus queries"),
    Bench("decision", "decision_bench.py", ["--runs", "200"], [],
          title="The decision rule through the real decide(): seeded simulated rollouts"),
    Bench("object_store", "object_store_bench.py", ["--size", "128"], ["--runs", "3"],
          needs=("moto_server",),
          title="Artifacts on S3 (moto's server on loopback, through s3fs)"),
    Bench("mlflow", "mlflow_bench.py", ["--registrations", "10", "--rounds", "1"], [],
          needs=(str(ROOT / ".venv-mlflow" / "bin" / "mlflow"),),
          title="MLflowRegistry against MLflow's own client, same server"),
    Bench("ui", "ui_bench.py", ["--models", "200", "--looks", "100", "--runs", "5"], [],
          title="Dashboard: server time of its pages"),
    Bench("ha", "ha_bench.py", ["--runs", "3", "--rollouts", "200", "--ticks", "1"],
          ["--rollouts", "2000"], needs=("psql",),
          title="Several daemons on PostgreSQL: takeover and spread"),
]  # fmt: skip


def _missing(bench: Bench) -> list[str]:
    """The programs (on PATH, beside this Python, or paths) it needs that are not here."""
    beside = str(Path(sys.executable).parent)
    return [
        t for t in bench.needs if shutil.which(t) is None and shutil.which(t, path=beside) is None
    ]


def run(bench: Bench, mode: str) -> dict[str, Any]:
    """One benchmark's entry: its figures, load, time and full output (or why not)."""
    entry: dict[str, Any] = {"title": bench.title, "script": f"bench/{bench.script}",
                             "mode": mode}  # fmt: skip
    missing = _missing(bench)
    if missing:
        entry["skipped"] = f"{', '.join(missing)} not installed"
        return entry
    args = bench.quick if mode == "quick" else bench.full
    entry["args"] = args
    entry["load_average_before"] = load_average()
    entry["started"] = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(BENCH / bench.script), *args],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    entry["load_average_after"] = load_average()
    if done.returncode != 0:
        entry["failed"] = f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"
        return entry
    output = json.loads(done.stdout)
    entry["figures"] = output.pop("figures", [])
    entry["output"] = output
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--only", action="append", choices=[b.name for b in BENCHES])
    parser.add_argument("--update", action="store_true", help="keep the other entries")
    parser.add_argument("--out", type=Path, default=BENCH / "results.json")
    args = parser.parse_args()
    chosen = [b for b in BENCHES if not args.only or b.name in args.only]
    previous: dict[str, Any] = {}
    if args.update and args.out.exists():
        previous = json.loads(args.out.read_text())
    benches: dict[str, Any] = dict(previous.get("benches", {}))
    for bench in chosen:
        print(f"running {bench.script} ...", file=sys.stderr, flush=True)
        benches[bench.name] = run(bench, "quick" if args.quick else "full")
        entry = benches[bench.name]
        status = entry.get("skipped") or entry.get("failed") or f"{entry['seconds']} s"
        print(f"  {bench.name}: {status}", file=sys.stderr, flush=True)
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        "benches": {b.name: benches[b.name] for b in BENCHES if b.name in benches},
    }
    args.out.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    failed = [n for n, e in document["benches"].items() if "failed" in e]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
