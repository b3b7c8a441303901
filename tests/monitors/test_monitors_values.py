"""Windows, subjects, metric specs, measurements and PromQL templates."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from monitors.errors import ConfigError, TemplateError
from monitors.measurement import Measurement, MetricSpec, Status, Subject, Window
from monitors.promql import escape_label_value, parse_template, render_template

END = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class TestWindow:
    def test_start_and_duration(self) -> None:
        """A window ends at the given instant and starts one length earlier."""
        window = Window(end=END, length=timedelta(minutes=5))
        assert window.start == END - timedelta(minutes=5)
        assert window.promql_duration() == "300s"
        assert Window(end=END, length=timedelta(milliseconds=1500)).promql_duration() == "1500ms"

    def test_naive_end_is_refused(self) -> None:
        """A naive end would make every timestamp comparison ambiguous."""
        with pytest.raises(ConfigError, match="timezone-aware"):
            Window(end=datetime(2026, 1, 1), length=timedelta(minutes=1))

    def test_non_positive_length_is_refused(self) -> None:
        """An empty window measures nothing."""
        with pytest.raises(ConfigError, match="positive"):
            Window(end=END, length=timedelta(0))


class TestMeasurement:
    WINDOW = Window(end=END, length=timedelta(minutes=1))
    SUBJECT = Subject(model="m", version="1.0.0", arm="treatment")

    @pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
    def test_ok_needs_a_finite_value(self, value: float | None) -> None:
        """No ok measurement can carry NaN, infinity or nothing."""
        with pytest.raises(ValueError, match="finite"):
            Measurement(
                metric="x", subject=self.SUBJECT, window=self.WINDOW, status=Status.OK, value=value
            )

    def test_error_carries_no_value(self) -> None:
        """A failed observation can never be read as a passing value."""
        failed = Measurement.error("x", self.SUBJECT, self.WINDOW, "timeout")
        assert failed.value is None
        assert not failed.ok
        with pytest.raises(ValueError, match="must not carry"):
            Measurement(
                metric="x",
                subject=self.SUBJECT,
                window=self.WINDOW,
                status=Status.NODATA,
                value=1.0,
            )

    def test_subject_describe(self) -> None:
        """Subjects read as model@version[arm] in messages."""
        assert self.SUBJECT.describe() == "m@1.0.0[treatment]"


class TestMetricSpec:
    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"type": "summary"}, "type must be one of"),
            ({"aggregate": "median"}, "aggregate must be one of"),
            ({"quantile": 1.0}, "quantile"),
            ({"scale": 0.0}, "scale"),
            ({"query": ""}, "query must not be empty"),
        ],
    )
    def test_invalid_specs(self, kwargs: dict[str, object], match: str) -> None:
        """Each invalid field is a ConfigError naming the metric and the field."""
        base: dict[str, object] = {"name": "m", "query": "up"}
        with pytest.raises(ConfigError, match=match):
            MetricSpec(**(base | kwargs))  # type: ignore[arg-type]


class TestMetricSpecFromConfig:
    def test_full_mapping(self) -> None:
        """Every field can be given; step is in seconds."""
        spec = MetricSpec.from_config(
            {
                "name": "p95",
                "query": "x_bucket",
                "type": "histogram",
                "aggregate": "sum",
                "quantile": 0.99,
                "step": 30,
                "scale": 1000,
                "sample_query": "y",
            }
        )
        assert spec == MetricSpec(
            name="p95",
            query="x_bucket",
            type="histogram",
            aggregate="sum",
            quantile=0.99,
            step=timedelta(seconds=30),
            scale=1000.0,
            sample_query="y",
        )

    @pytest.mark.parametrize(
        ("options", "match"),
        [
            ({"query": "x"}, "'name' is required"),
            ({"name": "m", "query": "x", "quantil": 0.9}, "metric 'm': unknown key.*quantil"),
            ({"name": "m", "query": 3}, "metric 'm': 'query' must be a string"),
            ({"name": "m", "query": "x", "step": "30s"}, "'step' must be a number"),
            ({"name": "m", "query": "x", "type": "summary"}, "type must be one of"),
        ],
    )
    def test_errors_name_metric_and_key(self, options: dict[str, object], match: str) -> None:
        """Config errors say which metric and which key."""
        with pytest.raises(ConfigError, match=match):
            MetricSpec.from_config(options)


class TestTemplates:
    WINDOW = Window(end=END, length=timedelta(minutes=5))

    def test_render_all_placeholders(self) -> None:
        """Every placeholder is filled; the window becomes a PromQL duration."""
        text = render_template(
            'rate(x{model="{{model}}",version="{{ version }}",arm="{{arm}}"}[{{window}}])',
            Subject(model="m", version="2.0.0", arm="canary"),
            self.WINDOW,
        )
        assert text == 'rate(x{model="m",version="2.0.0",arm="canary"}[300s])'

    def test_values_are_escaped_for_label_matchers(self) -> None:
        """A hostile version string cannot close the matcher and inject PromQL."""
        text = render_template(
            'x{version="{{version}}"}',
            Subject(model="m", version='1"} or vector(1) #\\'),
            self.WINDOW,
        )
        assert text == 'x{version="1\\"} or vector(1) #\\\\"}'
        assert escape_label_value("a\nb") == "a\\nb"

    def test_unknown_placeholder(self) -> None:
        """An unknown placeholder is a configuration error that lists the known ones."""
        with pytest.raises(TemplateError, match=r"unknown placeholder \{\{region\}\}.*\{\{arm\}\}"):
            parse_template('x{region="{{region}}"}')

    def test_malformed_placeholder(self) -> None:
        """Unbalanced braces are reported, not passed to Prometheus."""
        with pytest.raises(TemplateError, match="malformed"):
            parse_template('x{model="{{model}"}')

    def test_parse_reports_used_placeholders(self) -> None:
        """parse_template tells which placeholders a query depends on."""
        assert parse_template("sum(x[{{window}}]) by ({{ model }})") == {"window", "model"}
