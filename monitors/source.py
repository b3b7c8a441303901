"""The source protocol: one question, one method.

A source answers: for this metric, this subject (model, version or arm) and this
window, what was observed? It never raises for a failed observation; it returns a
``Measurement`` with status ``error`` or ``nodata`` and a message.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from monitors.measurement import Measurement, MetricSpec, Subject, Window

__all__ = ["MetricSource"]


@runtime_checkable
class MetricSource(Protocol):
    """Anything that can measure a metric for a subject over a window."""

    def measure(self, metric: MetricSpec, subject: Subject, window: Window) -> Measurement:
        """Observe ``metric`` for ``subject`` over ``window``; never raise on I/O failure."""
        ...
