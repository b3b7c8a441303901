"""Daemon.reload: a reload that fails half-way puts the last good config back, whole."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from controller.config import load_config
from controller.demo import demo_config
from controller.runtime.daemon import Daemon
from monitors.testing import free_port


def test_a_reload_whose_replan_fails_keeps_the_last_good_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "daemon.yaml"
    data = demo_config(tmp_path, free_port())
    file.write_text(yaml.safe_dump(data))
    daemon = Daemon.build(load_config(file), metrics=CollectorRegistry())
    daemon.start()
    try:
        good = daemon.config
        data["watch_interval"] = 2
        file.write_text(yaml.safe_dump(data))
        planned: list[float] = []
        real = daemon.scheduler.replan

        def replan() -> None:  # a fault injected by the test: the first re-plan fails
            planned.append(daemon.controller.config.watch_interval)
            if len(planned) == 1:
                raise RuntimeError("re-planning failed")
            real()

        monkeypatch.setattr(daemon.scheduler, "replan", replan)
        assert daemon.reload() is False
        assert planned == [2, 1]  # tried the new one, then put the good one back
        assert daemon.config is good
        assert daemon.controller.config is good
        assert daemon.reload() is True  # the same file again, re-planned this time
        assert daemon.config.watch_interval == 2
        assert daemon.controller.config is daemon.config
    finally:
        daemon.stop()
