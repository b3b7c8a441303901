"""The daemon demo (``./dev demo``): two rollouts and a guarded hotfix, in about a minute.

1. A fresh state directory with a default config: SQLite registry, the ingest
   source, the file router; v1.0.0 of ``fraud`` in production.
2. The daemon starts as its own process, then the simulated serving workload
   (another process) follows the routing table and reports outcomes to ingest.
3. v1.1.0 (more accurate, fewer errors) enters staging: canary 10% -> 25% -> 50% -> promoted.
4. v1.2.0 (many errors) enters staging: the statistics see its error rate is
   significantly worse (harm) and roll it back within seconds of its first step.
5. v1.3.0 (many errors too) is forced straight into production by hand, as a
   hotfix that skips the canary: the daemon routes traffic to it, and the guard
   sees the error rate cross the trigger and rolls production back to v1.1.0.
6. The terminal shows each decision live (weights, units, p-values, reasons) and
   ends with the model's stage history. The dashboard's URL is printed at start:
   the same rollouts, drawn, while they happen.
7. ``--linger SECONDS`` keeps the daemon and the workload running that long after the
   scenario, for a look at the dashboard (default 120 s in a terminal, 0 otherwise
   and under ``CI=true``; Ctrl-C ends it early).

``python -m controller.demo [--dir DIR] [--clean] [--linger S]``; each run keeps its state in a new
directory under ``.modelreg/daemon-demo/`` (it names it) for inspection with
``modelreg rollout ... --config DIR/daemon.yaml --direct``. The registry-only
walkthrough is ``python -m registry.demo``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from registry import ModelRegistry

__all__ = ["demo_config", "main"]

console = Console(width=None if sys.stdout.isatty() else 150)
MODEL = "fraud"
# v1.1.0 also errs less than v1.0.0: with equal error rates the guardrail's
# non-inferiority (margin 50% of a 1% rate) is shown within the 60 s horizon only most
# of the time, and the demo (and the approval test built on it) must not depend on luck.
PROFILES = (
    "v1.0.0:err=0.01:lat=20:acc=0.80",
    "v1.1.0:err=0.005:lat=18:acc=0.88",
    "v1.2.0:err=0.15:lat=25:acc=0.80",
    "v1.3.0:err=0.15:lat=22:acc=0.86",
)


def demo_config(home: Path, port: int, *, interval: float = 1.0) -> dict[str, Any]:
    """The demo's config: short intervals so that a canary takes seconds."""
    return {
        "registry": {"home": str(home)},
        "server": {"listen": f"127.0.0.1:{port}"},
        "sources": {"ingest": {"kind": "ingest", "options": {"url": f"sqlite:///{home}/ingest.db"}}},
        "routers": {"table": {"kind": "file", "options": {"path": str(home / "routes.json")}}},
        "watch_interval": 1,
        "guard": {"interval": 1, "window": 5, "cooldown": 60},
        "models": {
            MODEL: {
                "router": "table",
                "strategy": {"kind": "canary", "steps": [10, 25, 50, 100], "step_duration": 5},
                "interval": interval,
                "settle": 1,
                "min_samples": 100,
                "max_duration": 60,  # the efficacy horizon: evidence is weighed against it
                "analysis": {
                    "planned_n_per_arm": 2000,
                    "metrics": [
                        {"name": "accuracy", "source": "ingest", "query": "accuracy",
                         "kind": "proportion", "role": "primary", "direction": "higher",
                         "min_samples": 100},
                        {"name": "error_rate", "source": "ingest", "query": "error_rate",
                         "kind": "proportion", "role": "guardrail", "direction": "lower",
                         "margin": "50%", "min_samples": 100},
                    ],
                },
                "triggers": [  # a backstop: the statistics act first on a clear regression
                    {"name": "error_rate_high", "metric": "error_rate", "threshold": 0.08,
                     "min_samples": 100, "consecutive": 3},
                ],
            }
        },
    }  # fmt: skip


def _free_port() -> int:
    import socket  # noqa: PLC0415 -- only the demo needs it

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _register(registry: ModelRegistry, home: Path, version: str, stage: str, note: str) -> None:
    artifact = home / f"model-{version}.bin"
    artifact.write_bytes(f"{MODEL} {version}: {note}".encode())
    registry.register_model(
        MODEL,
        str(artifact),
        version=version,
        stage="dev" if stage == "dev" else "staging",  # staging starts a rollout
        metadata={"note": note},
    )
    if stage == "production":
        registry.promote_model(MODEL, version, to_stage="production", reason="initial release")


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the daemon did not become ready in time")


LEGEND = (
    "[dim]How to read a decision: [bold]units C/T[/bold] requests routed to control/"
    "treatment so far; [bold]<metric> <status> p=[/bold] the p-value of its test (always "
    "valid however often it is looked at; p=1 is no evidence yet); [bold]better[/bold]/"
    "[bold]worse[/bold] significantly so; [bold]not shown non-inferior[/bold] a guardrail "
    "whose possible loss still exceeds its margin (more data needed); [bold]noninferior"
    "[/bold] its loss is ruled out.[/dim]\n"
)


def _fmt_p(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}"


def _line(decision: dict[str, Any]) -> str:
    numbers = decision.get("numbers") or {}
    units = numbers.get("units")
    parts = [
        f"[bold]{decision['action']:<14}[/bold]",
        f"{decision['phase_to']:<12}",
        f"weight {decision['weight']:>5g}%",
    ]
    if units:
        parts.append(f"units {units[0]}/{units[1]}")
    for name, m in (numbers.get("metrics") or {}).items():
        parts.append(f"{name} {m.get('status')} p={_fmt_p(m.get('p_value'))}")
    if numbers.get("cause"):
        parts.append(f"({numbers['cause']})")
    reason = escape("; ".join(decision["reasons"]))
    return "  ".join(parts) + f"\n    [dim]{reason}[/dim]"


def follow(url: str, version: str, timeout: float) -> dict[str, Any]:
    """Print each new decision of the rollout of ``version`` until it finishes."""
    deadline = time.monotonic() + timeout
    seen = 0
    rollout: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        rows = httpx.get(f"{url}/v1/rollouts", params={"model": MODEL}, timeout=5).json()
        rollout = next((r for r in rows if r["treatment"] == version), None)
        if rollout is not None:
            explain = httpx.get(f"{url}/v1/rollouts/{rollout['id']}/explain",
                                params={"limit": 1000}, timeout=5).json()  # fmt: skip
            for decision in explain["decisions"]:
                if decision["id"] > seen:
                    seen = decision["id"]
                    stamp = decision["at"][11:19]
                    console.print(f"  {stamp}  {_line(decision)}", highlight=False)
            if rollout["phase"] in ("promoted", "rolled_back", "aborted"):
                return dict(rollout)
        time.sleep(0.5)
    raise RuntimeError(f"the rollout of {version} did not finish in {timeout:.0f}s")


def hotfix(home: Path, url: str, version: str, timeout: float) -> None:
    """Force ``version`` into production by hand, then wait for the guard's verdict."""
    with ModelRegistry(home=home, actor="demo") as registry:
        _register(registry, home, version.lstrip("v"), "dev", "hotfix")
        registry.promote_model(MODEL, version, to_stage="production", force=True,
                               reason="hotfix, skipping the canary")  # fmt: skip
    console.print(f"{version} forced into production by hand (no canary)")
    deadline = time.monotonic() + timeout
    routed = False
    while time.monotonic() < deadline:
        resolved = httpx.get(f"{url}/v1/models/{MODEL}/resolve", timeout=5).json()
        if not routed and _routed_to(home, version):
            routed = True
            console.print(f"  routing: all traffic to {version}")
        if resolved["version"] != version:
            last = httpx.get(f"{url}/v1/models/{MODEL}/history", timeout=5).json()[-1]
            console.print(f"  [bold]guard[/bold] rolled production back to {resolved['version']}")
            console.print(f"    [dim]{escape(last['reason'] or '')}[/dim]")
            return
        time.sleep(0.5)
    raise RuntimeError(f"the guard did not roll {version} back in {timeout:.0f}s")


def _routed_to(home: Path, version: str) -> bool:
    try:
        routes = json.loads((home / "routes.json").read_text())
    except (OSError, ValueError):
        return False
    backends = (routes.get("models") or {}).get(MODEL, {}).get("backends") or []
    return [str(b.get("version", "")).lstrip("v") for b in backends] == [version.lstrip("v")]


def _history(url: str) -> None:
    console.rule("stage history")
    table = Table()
    for col in ("At", "Version", "From", "To", "Actor"):
        table.add_column(col, no_wrap=True)  # short: never broken mid-word
    table.add_column("Reason", ratio=1)  # wraps at word boundaries, never cut
    history = httpx.get(f"{url}/v1/models/{MODEL}/history", timeout=5).json()
    for t in history:
        table.add_row(t["at"][11:19], t["version"], t["from_stage"] or "-", t["to_stage"],
                      t["actor"], escape(t["reason"] or ""))  # fmt: skip
    console.print(table)


def _default_linger() -> float:
    """120 s for a person at a terminal; none for scripts, pipes and CI."""
    return 0.0 if os.environ.get("CI") == "true" or not sys.stdout.isatty() else 120.0


def _linger(url: str, seconds: float) -> None:
    """Keep serving ``seconds`` for a look at the dashboard; Ctrl-C ends it early."""
    if seconds <= 0:
        return
    console.print(f"the dashboard stays up at {url}/ui/ for {seconds:g} s (Ctrl-C to stop)")
    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        console.print("stopping")


def _start(
    home: Path,
    config_file: Path,
    url: str,
    env: dict[str, str],
    procs: list[subprocess.Popen[bytes]],
) -> None:
    """The daemon, once ready, then the workload (appended to ``procs`` as started)."""
    log = (home / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "controller", "daemon", "--config", str(config_file)],
        stdout=log, stderr=log, env=env,
    )  # fmt: skip
    procs.append(daemon)
    _wait_ready(url, daemon)
    console.print(f"daemon ready on {url} (logs: {home / 'daemon.log'})")
    console.print(f"dashboard: [bold]{url}/ui/[/bold] (the rollouts below, drawn live)")
    workload = subprocess.Popen(
        [sys.executable, "-m", "serving.workload", "--model", MODEL,
         "--routes", str(home / "routes.json"), "--ingest", url, "--rate", "600",
         *[arg for p in PROFILES for arg in ("--version", p)]],
        stdout=subprocess.DEVNULL, stderr=(home / "workload.log").open("wb"), env=env,
    )  # fmt: skip
    procs.append(workload)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m controller.demo", description=__doc__)
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="state directory (default: a new one under .modelreg/daemon-demo/)",
    )
    parser.add_argument("--clean", action="store_true", help="delete the state directory after")
    parser.add_argument(
        "--linger",
        type=float,
        default=None,
        metavar="SECONDS",
        help="keep the daemon serving this long after the scenario, for the dashboard "
        "(default: 120 in a terminal, 0 otherwise and under CI=true)",
    )
    args = parser.parse_args(argv)
    if args.linger is None:
        args.linger = _default_linger()
    if args.linger < 0:
        parser.error(f"--linger must be 0 or more seconds, not {args.linger:g}")
    return args


def _state_dir(chosen: Path | None) -> Path:
    if chosen is None:
        base = Path(os.environ.get("MODELREG_HOME") or ".modelreg") / "daemon-demo"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=base)).resolve()
    home = chosen.resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    home = _state_dir(args.dir)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config_file = home / "daemon.yaml"
    config_file.write_text(yaml.safe_dump(demo_config(home, port), sort_keys=False))
    started = time.monotonic()
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        console.rule("[bold]modelreg daemon demo")
        with ModelRegistry(home=home, actor="demo") as registry:
            _register(registry, home, "1.0.0", "production", "baseline")
        console.print(f"state in {home}; v1.0.0 of {MODEL!r} is in production")
        _start(home, config_file, url, env, procs)
        console.print("simulated serving: 600 requests/s following the routing table\n")
        console.print(LEGEND, highlight=False)

        for version, note in (("1.1.0", "more accurate, fewer errors"), ("1.2.0", "many errors")):
            console.rule(f"v{version} ({note}) enters staging")
            with ModelRegistry(home=home, actor="demo") as registry:
                _register(registry, home, version, "staging", note)
            result = follow(url, f"v{version}", timeout=120)
            colour = "green" if result["phase"] == "promoted" else "red"
            console.print(f"[{colour}]v{version}: {result['phase']}[/{colour}]\n")

        console.rule("v1.3.0 (many errors) forced into production by hand")
        hotfix(home, url, "v1.3.0", timeout=120)
        console.print()

        _history(url)
        resolved = httpx.get(f"{url}/v1/models/{MODEL}/resolve", timeout=5).json()
        console.print(
            f"resolve: {MODEL} -> {resolved['version']} ({resolved['digest'][:12]}...); "
            f"done in {time.monotonic() - started:.0f}s"
        )
        _linger(url, args.linger)
        return 0
    except (RuntimeError, httpx.HTTPError) as exc:
        console.print(f"[red]demo failed: {exc}[/red] (see {home}/daemon.log)")
        return 1
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.clean:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
