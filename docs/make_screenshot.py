"""Make docs/dashboard-rollout.png: the rollout page of ./dev demo's first canary.

Runs the demo with a linger, waits for the first rollout to have a few looks, and
has Debian's chromium (through Playwright) save the page. Usage:
    .venv/bin/python docs/make_screenshot.py
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "dashboard-rollout.png"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, subprocess.Popen(
        [sys.executable, "-m", "controller.demo", "--dir", tmp, "--linger", "60"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as demo:  # fmt: skip
        assert demo.stdout is not None
        url = None
        for line in demo.stdout:
            found = re.search(r"dashboard: (http://\S+/ui/)", line)
            if found:
                url = found.group(1)
            if url and "v1.1.0: promoted" in line:
                break
        if url is None:
            print("the demo never named its dashboard", file=sys.stderr)
            return 1
        time.sleep(1)
        rollout = httpx.get(url.replace("/ui/", "/v1/rollouts"), timeout=5).json()[-1]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}rollouts/{rollout['id']}")
            page.screenshot(path=str(OUT), full_page=False)
            browser.close()
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
