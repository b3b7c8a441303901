"""serving.route_table and the routers: RouteTable follows a file or an endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from controller.adapters.routers.file import FileRouter
from controller.adapters.routers.http import HttpRouter, etag_of
from controller.adapters.routing import RouterError, build_router
from serving.route import Backend, Route
from serving.route_table import RouteTable
from tests.clock import Clock

ROUTE = Route("fraud", (Backend("v1", 90, "a" * 64), Backend("v2", 10, "b" * 64)), 7, "s")


class TestFileRouter:
    def test_set_then_read(self, tmp_path: Path) -> None:
        """A route written is read back equal; other models are kept."""
        router = build_router("file", {"path": str(tmp_path / "r.json")})
        router.set(ROUTE)
        router.set(Route("other", (Backend("v9", 100),)))
        assert router.read("fraud") == ROUTE
        assert set(json.loads((tmp_path / "r.json").read_text())["models"]) == {"fraud", "other"}
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left

    def test_unwritable(self, tmp_path: Path) -> None:
        """A directory that cannot be created is a RouterError."""
        (tmp_path / "f").write_text("x")
        with pytest.raises(RouterError):
            FileRouter(path=tmp_path / "f" / "r.json").set(ROUTE)

    def test_options_checked(self) -> None:
        """Unknown options are refused, naming the option; so is a path that is no string."""
        with pytest.raises(ValueError, match="file router: mode: Extra inputs are not permitted"):
            build_router("file", {"path": "x", "mode": "fast"})
        with pytest.raises(ValueError, match="file router: path: Input should be a valid string"):
            build_router("file", {"path": 3})


class TestRouteTable:
    def test_follows_file_and_sticks(self, tmp_path: Path) -> None:
        """Units keep their arm as the treatment's share grows; reloads follow the file."""
        path = tmp_path / "r.json"
        FileRouter(path=path).set(ROUTE)
        clock = Clock()
        table = RouteTable(model="fraud", path=path, refresh=1.0, clock=clock.monotonic)
        picks = {f"u{i}": table.pick(f"u{i}") for i in range(2000)}
        treated = {u for u, p in picks.items() if p and p[1] == "treatment"}
        assert 120 < len(treated) < 290  # about 10 %
        FileRouter(path=path).set(Route("fraud", (Backend("v1", 50), Backend("v2", 50)), 8, "s"))
        clock.advance(2)
        again = {u for u in picks if (table.pick(u) or (None, ""))[1] == "treatment"}
        assert treated <= again
        assert len(again) > 800

    def test_missing_file_is_no_route(self, tmp_path: Path) -> None:
        """Before the daemon wrote anything there is no route."""
        assert RouteTable(model="fraud", path=tmp_path / "none.json").pick("u") is None

    def test_follows_endpoint_with_etag(self) -> None:
        """The endpoint is polled with If-None-Match; a 304 keeps the route."""
        router = HttpRouter()
        router.set(ROUTE)
        seen: list[str | None] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request.headers.get("if-none-match"))
            route, etag = router.published("fraud")  # type: ignore[misc]
            if request.headers.get("if-none-match") == etag:
                return httpx.Response(304)
            return httpx.Response(200, json=route.to_dict(), headers={"etag": etag})

        clock = Clock()
        client = httpx.Client(transport=httpx.MockTransport(handler))
        table = RouteTable(model="fraud", url="http://d", client=client, clock=clock.monotonic)
        assert table.route() == ROUTE
        clock.advance(1)
        assert table.route() == ROUTE
        assert seen == [None, etag_of(ROUTE)]


class TestOutcomeReporter:
    def test_flush_into_ingest_store(self, tmp_path: Path) -> None:
        """Buffered events and their labels land in the ingest store in one flush."""
        from monitors import IngestStore
        from serving.route_table import OutcomeReporter

        store = IngestStore.open(f"sqlite:///{tmp_path}/ingest.db")
        reporter = OutcomeReporter(store=store)
        reporter.event(prediction_id="p1", model="fraud", version="v1", arm="control",
                       unit_id="u1", timestamp=1.0e9, latency_ms=3.0, error=False,
                       outcome=1.0)  # fmt: skip
        reporter.label("p1", 1.0, 1.0e9)
        assert reporter.flush() == 1
        assert reporter.flush() == 0
        assert store.count() == (1, 1)
        store.close()

    def test_needs_one_target(self) -> None:
        """Either the daemon's URL or a store, not both or neither."""
        from serving.route_table import OutcomeReporter

        with pytest.raises(ValueError, match="either"):
            OutcomeReporter()
