"""The daemon's supervision parts in-process: reload coalescing on a real pipe, the
watchdog heartbeat, and the test fault injection's parsing."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from controller.runtime.heartbeat import Heartbeat, stale_after
from controller.runtime.reloader import Reloader
from monitors.testing import wait_until
from registry import faults
from tests.clock import Clock


class TestReloader:
    def test_burst_during_a_reload_causes_one_more(self) -> None:
        """Requests made while a reload runs are coalesced into exactly one more; two
        reloads never run at once."""
        gate = threading.Event()
        running = 0
        overlaps = 0
        calls = 0
        lock = threading.Lock()

        def reload() -> bool:
            nonlocal running, overlaps, calls
            with lock:
                running += 1
                calls += 1
                overlaps += running > 1
            gate.wait(10)
            with lock:
                running -= 1
            return True

        reloader = Reloader(reload)
        try:
            reloader.request()
            assert wait_until(lambda: calls == 1, timeout=10)
            for _ in range(50):
                reloader.request()
            gate.set()
            assert wait_until(lambda: reloader.completed == 2 and running == 0, timeout=10)
            assert calls == 2
            assert overlaps == 0
        finally:
            reloader.close()

    def test_a_crashing_reload_does_not_stop_reloading(self) -> None:
        """An exception in one reload is logged; the next request still reloads."""
        calls: list[int] = []

        def reload() -> bool:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("boom")
            return True

        reloader = Reloader(reload)
        try:
            reloader.request()
            assert wait_until(lambda: len(calls) == 1, timeout=10)
            reloader.request()
            assert wait_until(lambda: len(calls) == 2, timeout=10)
        finally:
            reloader.close()

    def test_a_request_after_close_is_ignored(self) -> None:
        """A SIGHUP while the daemon stops reaches a closed reloader: it neither
        reloads nor writes to the closed (maybe reused) descriptor."""
        calls: list[int] = []
        reloader = Reloader(lambda: bool(calls.append(1)) or True)
        reloader.close()
        reader, writer = os.pipe()  # takes the freed descriptor numbers, as a file might
        try:
            reloader.request()
            os.set_blocking(reader, False)
            with pytest.raises(BlockingIOError):
                os.read(reader, 1)  # nothing was written into the reused descriptor
            assert calls == []
        finally:
            os.close(reader)
            os.close(writer)


class TestHeartbeat:
    def test_fresh_until_the_limit(self) -> None:
        """Fresh while younger than the limit, stale after, fresh again after a beat."""
        clock = Clock(monotonic=100.0)
        beat = Heartbeat(clock=clock.monotonic)
        clock.advance(4.0)
        assert beat.fresh(5.0)
        clock.advance(1.5)
        assert not beat.fresh(5.0)
        beat.beat()
        assert beat.fresh(5.0)
        assert beat.age() == 0.0

    @pytest.mark.parametrize(
        ("watchdog", "interval", "configured", "expected"),
        [(30.0, 5.0, None, 60.0), (1.0, 1.0, None, 3.0), (10.0, 60.0, None, 180.0),
         (30.0, 5.0, 7.5, 7.5)],
    )  # fmt: skip
    def test_stale_after(
        self, watchdog: float, interval: float, configured: float | None, expected: float
    ) -> None:
        """Two watchdog periods, never under three watch intervals; the config wins."""
        assert stale_after(watchdog, interval, configured) == expected


class TestFaults:
    def test_parse(self, tmp_path: Path) -> None:
        """Entries map points to actions."""
        spec = f"tick=sleep:1.5; watch=block_while:{tmp_path}/w"
        assert faults.parse(spec) == {"tick": ("sleep", "1.5"),
                                      "watch": ("block_while", f"{tmp_path}/w")}  # fmt: skip

    @pytest.mark.parametrize(
        ("spec", "message"),
        [("tock=sleep:1", "bad entry 'tock=sleep:1'"), ("tick=nap:1", "bad entry"),
         ("tick", "bad entry"), ("tick=sleep:soon", "sleep needs seconds")],
    )  # fmt: skip
    def test_bad_spec_names_the_entry(self, spec: str, message: str) -> None:
        """A bad spec is an error naming the variable and the entry."""
        with pytest.raises(ValueError, match=message) as caught:
            faults.parse(spec)
        assert faults.ENV in str(caught.value)

    def test_unset_does_nothing_and_block_while_releases(self, tmp_path: Path) -> None:
        """Without the variable a point returns at once; block_while returns once the
        file is gone."""
        faults.point("tick", env={})
        flag = tmp_path / "flag"
        flag.write_text("x")
        done = threading.Event()
        env = {faults.ENV: f"watch=block_while:{flag}"}
        worker = threading.Thread(target=lambda: (faults.point("watch", env=env), done.set()))
        worker.start()
        assert not done.wait(0.3)
        flag.unlink()
        assert done.wait(10)
        worker.join(10)

    def test_error_raises_the_named_errno_and_error_while_only_while_the_file_exists(
        self, tmp_path: Path
    ) -> None:
        """``error:ENOSPC`` raises that OSError at every hit; ``error_while`` raises EIO
        only while its file exists; an unknown errno name is refused by name."""
        env = {faults.ENV: "commit=error:ENOSPC"}
        for _ in range(2):
            with pytest.raises(OSError, match="No space left") as caught:
                faults.point("commit", env=env)
            assert caught.value.errno == errno.ENOSPC
        flag = tmp_path / "failing"
        env = {faults.ENV: f"blob_write=error_while:{flag}"}
        faults.point("blob_write", env=env)  # no file: nothing
        flag.touch()
        with pytest.raises(OSError, match="Input/output error") as caught:
            faults.point("blob_write", env=env)
        assert caught.value.errno == errno.EIO
        with pytest.raises(ValueError, match="error needs an errno name"):
            faults.parse("commit=error:EWHATEVER")
