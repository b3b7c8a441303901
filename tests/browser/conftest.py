"""Debian's chromium, driven by Playwright, against a real daemon.

Playwright's own browser download cannot run here, so the browser is launched from
``/usr/bin/chromium`` (``executable_path``). Each page collects console errors and
uncaught exceptions (a test fails on any), and a failed test leaves a screenshot of
every page it opened, named in the failure report.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.needs import require_executable, unavailable

CHROMIUM = "/usr/bin/chromium"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_OUTCOME] = report
    return report


_OUTCOME = pytest.StashKey[pytest.TestReport]()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    require_executable(CHROMIUM, "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Pages:
    """New browser contexts (one per person) whose pages record their errors."""

    def __init__(self, browser: Any, shots: Path) -> None:
        self.browser = browser
        self.shots = shots
        self.opened: list[Any] = []
        self.errors: list[str] = []
        self.allowed: list[str] = []  # what a test provokes on purpose (a refused POST)

    def allow(self, text: str) -> None:
        """Console errors containing ``text`` are expected from here on."""
        self.allowed.append(text)

    def new(self) -> Any:
        context = self.browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and self.errors.append(
            f"console error on {page.url}: {m.text}"))  # fmt: skip
        page.on("pageerror", lambda e: self.errors.append(f"uncaught on {page.url}: {e}"))
        self.opened.append(page)
        return page

    def screenshots(self) -> list[Path]:
        saved = []
        for k, page in enumerate(self.opened):
            path = self.shots / f"page-{k}.png"
            try:
                page.screenshot(path=str(path), full_page=True)
                saved.append(path)
            except Exception:
                continue
        return saved


@pytest.fixture
def pages(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pages]:
    shots = Path(os.environ.get("MODELREG_TEST_ARTIFACTS", tmp_path)) / request.node.name
    shots.mkdir(parents=True, exist_ok=True)
    opened = Pages(browser, shots)
    yield opened
    report = request.node.stash.get(_OUTCOME, None)
    if report is not None and report.failed:
        saved = opened.screenshots()
        report.sections.append(("screenshots", "\n".join(str(p) for p in saved)))
        print(f"\nscreenshots of the failed test: {', '.join(str(p) for p in saved)}")
    for page in opened.opened:
        page.context.close()
    unexpected = [e for e in opened.errors if not any(a in e for a in opened.allowed)]
    assert unexpected == [], "pages logged errors"
