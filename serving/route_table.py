"""Serving-side helper: follow the routing table, pick a version per request, report.

``RouteTable`` follows either the file router's JSON file (re-read when its mtime or
size changes) or the daemon's ``GET /v1/routes/{model}`` (polled with
``If-None-Match``, so an unchanged route costs a 304). ``pick(unit_id)`` returns the
backend to serve with abtest's sticky assignment: the first backend of a route is
the control, the second the treatment, and a unit keeps its arm as the canary
grows. ``OutcomeReporter`` batches prediction events and labels to the daemon's
ingest API (or straight into an ``IngestStore``).

    table = RouteTable(model="fraud", path="/var/lib/modelreg/routes.json")
    backend, arm = table.pick(user_id)      # load backend.version / backend.digest
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from abtest.assign import assign
from monitors import IngestStore
from serving.route import Backend, Route, read_table

__all__ = ["OutcomeReporter", "RouteTable"]


class RouteTable:
    """The current route of one model, refreshed at most every ``refresh`` seconds."""

    def __init__(
        self,
        *,
        model: str,
        path: str | Path | None = None,
        url: str | None = None,
        client: httpx.Client | None = None,
        refresh: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        token: str | None = None,
    ) -> None:
        if (path is None) == (url is None):
            raise ValueError("RouteTable follows either a file (path) or an endpoint (url)")
        self.model = model
        self._path = Path(path) if path is not None else None
        self._url = url.rstrip("/") if url is not None else None
        self._client = client or (httpx.Client(timeout=2.0) if url is not None else None)
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._refresh = refresh
        self._clock = clock
        self._checked = -float("inf")
        self._stamp: tuple[int, int] | None = None
        self._etag: str | None = None
        self._route: Route | None = None
        self._lock = threading.Lock()

    def route(self) -> Route | None:
        """The route as last seen (refreshed when due); None until one exists."""
        now = self._clock()
        if now - self._checked >= self._refresh:
            with self._lock:
                self._checked = now
                # On failure keep serving the last good route.
                with contextlib.suppress(OSError, ValueError, httpx.HTTPError):
                    self._reload()
        return self._route

    def _reload(self) -> None:
        if self._path is not None:
            stat = self._path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                self._route = read_table(self._path).get(self.model)
                self._stamp = stamp
            return
        assert self._client is not None
        headers = {**self._auth, **({"If-None-Match": self._etag} if self._etag else {})}
        response = self._client.get(f"{self._url}/v1/routes/{self.model}", headers=headers)
        if response.status_code == 304:
            return
        response.raise_for_status()
        self._route = Route.from_dict(response.json())
        self._etag = response.headers.get("etag")

    def pick(self, unit_id: str) -> tuple[Backend, str] | None:
        """The backend serving ``unit_id`` and its arm (``control``/``treatment``)."""
        route = self.route()
        if route is None or not route.backends:
            return None
        if len(route.backends) == 1:
            return route.backends[0], "control"
        control, treatment = route.backends[0], route.backends[1]
        arm = assign(unit_id, treatment.weight / 100.0, salt=route.salt)
        return (treatment, arm) if arm == "treatment" else (control, arm)


class OutcomeReporter:
    """Buffers prediction events and labels; ``flush`` posts them in two batches."""

    def __init__(
        self,
        *,
        url: str | None = None,
        store: IngestStore | None = None,
        client: httpx.Client | None = None,
        token: str | None = None,
    ) -> None:
        if (url is None) == (store is None):
            raise ValueError("OutcomeReporter needs either the daemon url or an IngestStore")
        self._url = url.rstrip("/") if url else None
        self._store = store
        self._client = client or (httpx.Client(timeout=10.0) if url else None)
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._events: list[dict[str, Any]] = []
        self._labels: list[dict[str, Any]] = []

    def event(self, **fields: Any) -> None:
        self._events.append(fields)

    def label(self, prediction_id: str, label: float, timestamp: float) -> None:
        self._labels.append({"prediction_id": prediction_id, "label": label,
                             "timestamp": timestamp})  # fmt: skip

    def flush(self) -> int:
        """Send what is buffered (events before their labels); return events sent."""
        events, labels = self._events, self._labels
        self._events, self._labels = [], []
        if not events and not labels:
            return 0
        if self._store is not None:
            self._store.add_events(events)
            self._store.add_labels(labels)
            return len(events)
        assert self._client is not None
        for path, body in (("events", {"events": events}), ("labels", {"labels": labels})):
            if body[path]:
                self._post(path, body)
        return len(events)

    def _post(self, path: str, body: Mapping[str, Any]) -> None:
        assert self._client is not None
        response = self._client.post(f"{self._url}/v1/ingest/{path}", json=body, headers=self._auth)
        response.raise_for_status()
