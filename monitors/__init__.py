"""monitors: what monitoring sees, as per-arm, per-window measurements and triggers.

Public front (everything else is an implementation detail):

- ``Measurement``, ``MetricSpec``, ``Subject``, ``Window``, ``Status``: values.
- ``MetricSource`` (protocol), ``build_source`` / ``SOURCE_KINDS``: sources by kind;
  ``PrometheusSource``, ``IngestSource`` and ``IngestStore``.
- ``TriggerSpec``, ``evaluate``, ``auto_rollback_triggers``: threshold triggers.
- ``AlertIntake``, ``AlertRule``, ``parse_webhook``: Alertmanager webhook intake.

This package knows nothing of the registry, abtest or the controller; it is given
engines, httpx clients and "now" by its caller.
"""

from __future__ import annotations

from monitors.alerts import AlertAction, AlertIntake, AlertRule, Matcher, parse_webhook
from monitors.errors import ConfigError, MonitorsError
from monitors.ingest import IngestSource, IngestStore
from monitors.kinds import SOURCE_KINDS, build_source, register_source
from monitors.measurement import Measurement, MetricSpec, Status, Subject, Window
from monitors.prometheus import PrometheusSource
from monitors.source import MetricSource
from monitors.triggers import (
    TriggerResult,
    TriggerSpec,
    TriggerStatus,
    auto_rollback_triggers,
    evaluate,
)

__all__ = [
    "SOURCE_KINDS",
    "AlertAction",
    "AlertIntake",
    "AlertRule",
    "ConfigError",
    "IngestSource",
    "IngestStore",
    "Matcher",
    "Measurement",
    "MetricSource",
    "MetricSpec",
    "MonitorsError",
    "PrometheusSource",
    "Status",
    "Subject",
    "TriggerResult",
    "TriggerSpec",
    "TriggerStatus",
    "Window",
    "auto_rollback_triggers",
    "build_source",
    "evaluate",
    "parse_webhook",
    "register_source",
]
