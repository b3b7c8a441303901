"""The one shape every benchmark's headline figures take, for ``bench/run_all.py``.

A benchmark keeps printing its own detailed JSON; beside it, under the key
``figures``, it lists its headline results built with :func:`figure`. Each one
carries the baseline measured in the same run, the ratio to it and the target, so
that one document compares across machines (the ratio) and against the issue's
promise (``met``). ``run_all.py`` gathers them and adds the load average.

A target is a comparison written as text, ``"<= 1.3"`` or ``">= 0.6"``, against
the ratio when ``target_on`` is ``"ratio"`` (the default) or the value otherwise.
"""

from __future__ import annotations

import os
import re
from typing import Any

_TARGET = re.compile(r"^\s*(<=|>=|<|>)\s*([0-9.eE+-]+)\s*$")


def _met(target: str | None, measured: float | None) -> bool | None:
    if target is None or measured is None:
        return None
    match = _TARGET.match(target)
    if match is None:
        raise ValueError(f"target {target!r} is not a comparison like '<= 1.3'")
    op, bound = match.group(1), float(match.group(2))
    return {
        "<=": measured <= bound,
        ">=": measured >= bound,
        "<": measured < bound,
        ">": measured > bound,
    }[op]


def figure(
    key: str,
    what: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_what: str | None = None,
    ratio: float | None = None,
    target: str | None = None,
    target_on: str = "ratio",
    note: str | None = None,
    met: bool | None = None,
) -> dict[str, Any]:
    """One headline figure; ``ratio`` defaults to value / baseline when both exist.

    ``met`` is computed from ``target`` unless given (a figure judged on several
    checks at once, as the decision rule's cells are)."""
    if ratio is None and baseline:
        ratio = value / baseline
    measured = ratio if target_on == "ratio" else value
    return {
        "key": key,
        "what": what,
        "value": round(value, 4),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 4),
        "baseline_what": baseline_what,
        "ratio": None if ratio is None else round(ratio, 3),
        "target": target,
        "target_on": target_on if target else None,
        "met": _met(target, measured) if met is None else met,
        "note": note,
    }


def slug(text: str) -> str:
    """A figure key from free text: ``mann_whitney (ties)`` -> ``mann_whitney_ties``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, to print beside absolute figures."""
    return [round(x, 2) for x in os.getloadavg()]
