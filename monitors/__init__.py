"""monitors: what monitoring sees, as per-arm, per-window measurements and triggers.

Public front (everything else is an implementation detail):

- ``Measurement``, ``MetricSpec``, ``Subject``, ``Window``, ``Status``: values.
- ``MetricSource`` (protocol), ``build_source`` / ``SOURCE_KINDS``: sources by kind,
  each with its options model (``SourceOptions``: ``PrometheusOptions``,
  ``IngestOptions``); ``PrometheusSource``, ``IngestSource`` and ``IngestStore``.
- ``TriggerSpec``, ``evaluate``, ``auto_rollback_triggers``: threshold triggers.
- ``AlertIntake``, ``AlertRule``, ``parse_webhook``: Alertmanager webhook intake.

This package knows nothing of the registry, abtest or the controller; it is given
engines, httpx clients and "now" by its caller.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitors.alerts import AlertAction, AlertIntake, AlertRule, Matcher, parse_webhook
    from monitors.errors import ConfigError, MonitorsError, OptionError
    from monitors.ingest import IngestOptions, IngestSource, IngestStore
    from monitors.kinds import SOURCE_KINDS, SourceKind, build_source, register_source
    from monitors.measurement import Measurement, MetricSpec, Status, Subject, Window
    from monitors.prometheus import PrometheusOptions, PrometheusSource
    from monitors.source import MetricSource, SourceOptions
    from monitors.triggers import (
        TriggerResult,
        TriggerSpec,
        TriggerStatus,
        auto_rollback_triggers,
        evaluate,
    )

# Names are loaded on first use (PEP 562), so that importing one light module of this
# package (its values, its pure rules) does not load the database, HTTP and data-frame
# libraries the rest needs: the controller's pure core depends on that.
_WHERE: dict[str, str] = {
    "AlertAction": "monitors.alerts",
    "AlertIntake": "monitors.alerts",
    "AlertRule": "monitors.alerts",
    "ConfigError": "monitors.errors",
    "IngestOptions": "monitors.ingest",
    "IngestSource": "monitors.ingest",
    "IngestStore": "monitors.ingest",
    "Matcher": "monitors.alerts",
    "Measurement": "monitors.measurement",
    "MetricSource": "monitors.source",
    "MetricSpec": "monitors.measurement",
    "MonitorsError": "monitors.errors",
    "OptionError": "monitors.errors",
    "PrometheusOptions": "monitors.prometheus",
    "PrometheusSource": "monitors.prometheus",
    "SOURCE_KINDS": "monitors.kinds",
    "SourceKind": "monitors.kinds",
    "SourceOptions": "monitors.source",
    "Status": "monitors.measurement",
    "Subject": "monitors.measurement",
    "TriggerResult": "monitors.triggers",
    "TriggerSpec": "monitors.triggers",
    "TriggerStatus": "monitors.triggers",
    "Window": "monitors.measurement",
    "auto_rollback_triggers": "monitors.triggers",
    "build_source": "monitors.kinds",
    "evaluate": "monitors.triggers",
    "parse_webhook": "monitors.alerts",
    "register_source": "monitors.kinds",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "SOURCE_KINDS",
    "AlertAction",
    "AlertIntake",
    "AlertRule",
    "ConfigError",
    "IngestOptions",
    "IngestSource",
    "IngestStore",
    "Matcher",
    "Measurement",
    "MetricSource",
    "MetricSpec",
    "MonitorsError",
    "OptionError",
    "PrometheusOptions",
    "PrometheusSource",
    "SourceKind",
    "SourceOptions",
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
