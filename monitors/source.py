"""The source protocol: one question, one method; and the base of a kind's options.

A source answers: for this metric, this subject (model, version or arm) and this
window, what was observed? It never raises for a failed observation; it returns a
``Measurement`` with status ``error`` or ``nodata`` and a message.

Each source kind is configured by a ``SourceOptions`` model (``monitors.kinds``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from monitors.errors import OptionError
from monitors.measurement import Measurement, MetricSpec, Subject, Window

__all__ = ["MetricSource", "SourceOptions"]


class SourceOptions(BaseModel):
    """Base of every source kind's options model.

    Unknown keys are refused (a typo must not silently fall back to a default) and
    types are strict (``"5"`` for a timeout is a mistake to name, not to coerce);
    infinities and NaN are refused; values are frozen.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    def environment_problems(self) -> list[OptionError]:
        """What this process's environment lacks for these options (an unreadable
        file); the factory fails with the first. None by default."""
        return []


@runtime_checkable
class MetricSource(Protocol):
    """Anything that can measure a metric for a subject over a window."""

    def measure(self, metric: MetricSpec, subject: Subject, window: Window) -> Measurement:
        """Observe ``metric`` for ``subject`` over ``window``; never raise on I/O failure."""
        ...
