"""The dashboard's pure parts: SVG charts from numbers, pages from records, every value
escaped, and the buttons offered by phase and role."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import pytest

from controller.core.phases import TRANSITIONS, Phase
from controller.http.ui import charts, pages

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _viewer(*roles: str, auth_on: bool = True) -> pages.Viewer:
    return pages.Viewer(name="alice" if auth_on else None, auth_on=auth_on,
                        can=lambda role: not auth_on or role in roles, csrf="f" * 40)  # fmt: skip


class TestCharts:
    def test_points_land_inside_the_plot_in_time_order(self) -> None:
        line = charts.Line("w", [(T0 + timedelta(minutes=k), float(v))
                                 for k, v in ((2, 50), (0, 10), (1, 30))], "s")  # fmt: skip
        svg = charts.render(charts.Chart("weights", lines=[line], y_floor=0, y_ceiling=100))
        (points,) = re.findall(r'<polyline[^>]*points="([^"]+)"', svg)
        xy = [tuple(map(float, p.split(","))) for p in points.split()]
        assert [x for x, _ in xy] == sorted(x for x, _ in xy)
        assert all(0 <= x <= charts.WIDTH and 0 <= y <= charts.HEIGHT for x, y in xy)
        assert xy[0][1] > xy[1][1] > xy[2][1]  # higher values are drawn higher up

    def test_a_missing_value_breaks_the_line(self) -> None:
        values = [1.0, 2.0, math.nan, 3.0, 4.0, None, 5.0]
        line = charts.Line("e", [(T0 + timedelta(seconds=k), v) for k, v in enumerate(values)],
                           "s")  # fmt: skip
        svg = charts.render(charts.Chart("effect", lines=[line]))
        assert len(re.findall("<polyline", svg)) == 2  # 1-2 and 3-4
        assert len(re.findall("<circle", svg)) == 1  # 5 alone
        assert "nan" not in svg.lower()

    def test_no_data_is_said_not_drawn(self) -> None:
        assert "no data yet" in charts.render(charts.Chart("x <y>"))
        assert "x &lt;y&gt;" in charts.render(charts.Chart("x <y>"))

    def test_labels_are_escaped(self) -> None:
        line = charts.Line('<script>alert("x")</script>', [(T0, 1.0), (T0 + timedelta(1), 2.0)],
                           'a" onload="x')  # fmt: skip
        marker = charts.Marker(T0, "<b>rollback</b>")
        svg = charts.render(charts.Chart("<t>", lines=[line], markers=[marker]))
        assert "<script>" not in svg
        assert "<b>" not in svg
        assert 'onload="x' not in svg

    def test_a_band_is_one_polygon_around_the_estimate(self) -> None:
        band = charts.Band("ci", [(T0 + timedelta(seconds=k), -1.0 - k, 1.0 + k)
                                  for k in range(4)], "b")  # fmt: skip
        svg = charts.render(charts.Chart("effect", bands=[band]))
        (points,) = re.findall(r'<polygon[^>]*points="([^"]+)"', svg)
        assert len(points.split()) == 8


class TestButtons:
    @pytest.mark.parametrize("phase", list(Phase))
    def test_only_moves_the_phase_table_allows(self, phase: Phase) -> None:
        offered = {b.action for b in pages.offered(phase.value, _viewer(auth_on=False))}
        allowed = {e.value for (p, e) in TRANSITIONS if p is phase}
        assert offered <= allowed
        assert offered == allowed & {"pause", "resume", "abort", "approve", "reject"}

    def test_only_the_viewers_roles(self) -> None:
        awaiting = Phase.AWAITING_APPROVAL.value
        assert pages.offered(awaiting, _viewer("reader")) == []
        assert {b.action for b in pages.offered(awaiting, _viewer("deployer"))} == {
            "pause", "abort"}  # fmt: skip
        assert {b.action for b in pages.offered(awaiting, _viewer("approver"))} == {
            "approve", "reject"}  # fmt: skip


def _decision(k: int, **extra: object) -> dict[str, object]:
    return {
        "id": k, "at": (T0 + timedelta(minutes=k)).isoformat(), "event": "hold",
        "phase_from": "progressing", "phase_to": "progressing", "weight": 10.0, "step": 0,
        "reasons": ["<b>not yet</b>"], "applied": True,
        "numbers": {"cause": "analysis", "srm_p": 0.5, "metrics": {"error_rate": {
            "status": "inconclusive", "effect": 0.001 * k, "ci": [-0.01, 0.01 + k / 1000],
            "margin": 0.02, "n_control": 100 * k, "n_treatment": 10 * k}}},
        **extra,
    }  # fmt: skip


class TestRolloutPage:
    def test_the_evidence_is_charted_and_every_value_escaped(self) -> None:
        record = {"id": 7, "model": "fraud", "control": "v1", "treatment": "v2<x>",
                  "phase": "progressing", "weight": 10.0, "step": 0,
                  "started_at": T0.isoformat(), "next_eval_at": T0.isoformat(),
                  "finished_at": None, "reason": "<script>bad()</script>"}  # fmt: skip
        view = pages.RolloutView(record, [_decision(k) for k in range(1, 6)])
        html = pages.rollout_page(view, _viewer("deployer"))
        assert "<script>bad()" not in html
        assert "&lt;script&gt;bad()" in html
        assert "<b>not yet</b>" not in html
        assert "v2&lt;x&gt;" in html
        assert html.count("<svg") == 2
        assert "error_rate: candidate minus control" in html
        assert re.findall(r'name="do" value="(\w+)"', html) == ["pause", "abort"]
        assert "p = 0.5: fine" in html

    def test_the_auth_off_banner(self) -> None:
        html = pages.models_page([], query="", viewer=_viewer(auth_on=False))
        assert "Authentication is off" in html
        assert "No models registered yet" in html
        assert "Authentication is off" not in pages.models_page([], query="", viewer=_viewer())


def test_a_step_line_holds_each_value_until_the_next() -> None:
    line = charts.Line("w", [(T0, 10.0), (T0 + timedelta(seconds=5), 50.0)], "s", steps=True)
    svg = charts.render(charts.Chart("weights", lines=[line], y_floor=0, y_ceiling=100))
    (points,) = re.findall(r'<polyline[^>]*points="([^"]+)"', svg)
    (_x0, y0), (x1, y1), (x2, y2) = (tuple(map(float, p.split(","))) for p in points.split())
    assert (y1, x1) == (y0, x2)  # flat at 10 until the second look, then up to 50
    assert y2 < y1
