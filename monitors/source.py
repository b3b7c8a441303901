"""The source protocol: one question, one method; and the base of a kind's options.

A source answers: for this metric, this subject (model, version or arm) and this
window, what was observed? It never raises for a failed observation; it returns a
``Measurement`` with status ``error`` or ``nodata`` and a message.

Each source kind is configured by a ``SourceOptions`` model (``monitors.kinds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from monitors.errors import ConfigError, OptionError
from monitors.measurement import Measurement, MetricSpec, Subject, Window

__all__ = ["MetricSource", "SourceOptions", "validate_options"]

ModelT = TypeVar("ModelT", bound=BaseModel)


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


def validate_options(model: type[ModelT], options: Mapping[str, Any], *, what: str) -> ModelT:
    """``options`` validated with a kind's options ``model`` (source and router kinds
    alike); a ``ConfigError`` names the first bad key, e.g. ``prometheus source:
    basic_auth.username: Field required (and 1 more)``."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        problems = [_problem(e["loc"], e["msg"]) for e in exc.errors()]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{what}: {problems[0]}{more}") from None


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    """``basic_auth.username: message`` (just the message for the options as a whole)."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return f"{path}: {message}" if path else message


@runtime_checkable
class MetricSource(Protocol):
    """Anything that can measure a metric for a subject over a window."""

    def measure(self, metric: MetricSpec, subject: Subject, window: Window) -> Measurement:
        """Observe ``metric`` for ``subject`` over ``window``; never raise on I/O failure."""
        ...
