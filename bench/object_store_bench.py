"""Artifacts on S3: registering a large file through the registry against s3fs's own
``put_file`` of the same file, to the same S3 server, in the same run; prints JSON.

The server is moto's (``moto[server]``, in the dev extra), started here on a free
loopback port; both sides reach it over HTTP through s3fs, pointed at it with
``AWS_ENDPOINT_URL``. Ours is the whole ``register_model``: the hashing pass
(SHA-256, an MD5 per part), the upload with every part's MD5 checked against S3's
ETag, the HEAD check and the version's commit. The baseline only uploads
(``S3FileSystem.put_file``: 50 MiB parts, 10 in flight, nothing verified). Loading
is reported too: the verified download into the cache against ``get_file``.

Runs alternate baseline and ours (``--runs``, medians reported); each object is
deleted after its run so the server's memory stays at one copy. Besides wall time,
each side's CPU seconds (this process, and the moto server's) are reported: on a
shared machine they move less with the load than wall time does.

Usage: python bench/object_store_bench.py [--size MIB] [--runs N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import s3fs
from figures import figure

from registry import ModelRegistry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{endpoint}/moto-api/", timeout=1).status_code < 500:
                return proc, endpoint
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"moto server did not start: {log.read_text()}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(server: int, fn: Any) -> tuple[float, float, float]:
    """Wall seconds, this process's CPU seconds, the server's CPU seconds."""
    server_cpu, own_cpu, start = cpu_s(server), time.process_time(), time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    return wall, time.process_time() - own_cpu, cpu_s(server) - server_cpu


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1024, help="artifact size in MiB")
    parser.add_argument("--runs", type=int, default=1, help="alternating runs of each side")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="modelreg-s3-bench-", dir=args.dir))
    load_before = os.getloadavg()
    proc, endpoint = start_moto(scratch / "moto.log")
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # moto takes any credentials
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("bench")
        size = args.size << 20
        src = scratch / "model.bin"
        with open(src, "wb") as f:
            block = os.urandom(1 << 20)
            for i in range(args.size):
                f.write(hashlib.sha256(block + i.to_bytes(4, "big")).digest() + block[32:])
        baseline: list[float] = []
        ours: list[float] = []
        load_base: list[float] = []
        load_ours: list[float] = []
        cpu: dict[str, list[list[float]]] = {"register": [], "put_file": []}
        peak_rss = 0.0
        for run in range(args.runs):
            wall, client, server = timed(
                proc.pid, lambda: fs.put_file(str(src), "bench/baseline.bin")
            )
            baseline.append(wall)
            cpu["put_file"].append([round(client, 2), round(server, 2)])
            peak_rss = max(peak_rss, rss_mib(proc.pid))
            start = time.perf_counter()
            fs.get_file("bench/baseline.bin", str(scratch / "baseline.out"))
            load_base.append(time.perf_counter() - start)
            (scratch / "baseline.out").unlink()
            fs.rm_file("bench/baseline.bin")

            home = scratch / f"home-{run}"
            with ModelRegistry(
                home=home, actor="bench", artifact_uri=f"s3://bench/registry-{run}"
            ) as reg:
                done: list[Any] = []
                wall, client, server = timed(
                    proc.pid,
                    lambda reg=reg, done=done: done.append(
                        reg.register_model("big", src, requirements="")
                    ),
                )
                ours.append(wall)
                cpu["register"].append([round(client, 2), round(server, 2)])
                mv = done[0]
                peak_rss = max(peak_rss, rss_mib(proc.pid))
                start = time.perf_counter()
                loaded = reg.get_model("big", version=str(mv.version))
                load_ours.append(time.perf_counter() - start)
                assert Path(loaded).stat().st_size == size
                assert mv.artifact_digest is not None
                reg.artifacts.delete(mv.artifact_digest)
            shutil.rmtree(home)
        put = statistics.median(baseline)
        reg_s = statistics.median(ours)
        result: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "server": "moto[server] on loopback (in-memory, single process)",
            "bytes": size,
            "runs": args.runs,
            "register_s": [round(x, 3) for x in ours],
            "baseline_s3fs_put_file_s": [round(x, 3) for x in baseline],
            "ratio": round(reg_s / put, 3),
            "target_ratio": 1.2,
            "cpu_s_client_server": cpu,
            "cpu_ratio": round(
                statistics.median(sum(c) for c in cpu["register"])
                / statistics.median(sum(c) for c in cpu["put_file"]),
                3,
            ),
            "register_mib_per_s": round(args.size / reg_s, 1),
            "baseline_mib_per_s": round(args.size / put, 1),
            "load_verified_s": [round(x, 3) for x in load_ours],
            "baseline_s3fs_get_file_s": [round(x, 3) for x in load_base],
            "load_ratio": round(statistics.median(load_ours) / statistics.median(load_base), 3),
            "moto_peak_rss_mib": round(peak_rss),
            "note": (
                "ours = hash pass (SHA-256 + MD5 per 16 MiB part) + upload (4 parts in flight, "
                "each part's ETag checked) + HEAD + the version's commit; baseline = "
                "S3FileSystem.put_file (50 MiB parts, 10 in flight, nothing verified). "
                "Load: verified download into the cache (32 MiB ranges, 4 in flight, hashed "
                "in order, fsynced) vs get_file (50 MiB ranges, 10 in flight, not hashed)."
            ),
        }
        result["figures"] = figures(result)
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Registering and loading the artifact against s3fs's own put and get."""
    mib = result["bytes"] >> 20
    return [
        figure("object_store_register", f"Register a {mib:,} MiB artifact on S3 (moto), median of "
               f"{result['runs']}", statistics.median(result["register_s"]), "s",
               baseline=statistics.median(result["baseline_s3fs_put_file_s"]),
               baseline_what="s3fs put_file of the same file", target="<= 1.2",
               note=f"CPU ratio (client + server) {result['cpu_ratio']}"),
        figure("object_store_load", f"Load it back verified into the cache ({mib:,} MiB)",
               statistics.median(result["load_verified_s"]), "s",
               baseline=statistics.median(result["baseline_s3fs_get_file_s"]),
               baseline_what="s3fs get_file"),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
