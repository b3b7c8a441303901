"""``run_ab_test``: the seed's A/B test of two versions, on recorded outcomes.

The data are per-unit outcomes: a DataFrame, or a CSV, JSON-lines or JSON file,
with a ``version`` column, a ``timestamp`` column (ISO 8601 or epoch seconds) and the
outcome, in a column named ``metric`` or in ``value`` (with a ``metric`` column,
only that metric's rows count). Versions match with or without the model's name
and the ``v``: ``fraud-detection-v3.1.0``, ``v3.1.0`` and ``3.1.0`` are one version.

The test window starts at the first outcome of either version and lasts
``duration_days``; later outcomes are left out, and data that stop before its last
hour are judged with the sequential test (``abtest.offline``), valid however early.
The statistics are ``abtest``'s; this module only reads and selects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from abtest.offline import OfflineResult, judge

__all__ = ["load_outcomes", "run_ab_test"]

_SEMVER = re.compile(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


def _version_key(ref: object) -> str:
    """``fraud-detection-v3.1`` -> ``3.1.0``; anything else is compared as written."""
    text = str(ref).strip()
    found = _SEMVER.search(text)
    if found is None or (found.start() > 0 and text[found.start() - 1] not in "-_/ "):
        return text
    major, minor, patch = (int(g) if g else 0 for g in found.groups())
    return f"{major}.{minor}.{patch}"


def load_outcomes(source: str | Path | pd.DataFrame | Mapping[str, Any]) -> pd.DataFrame:
    """The outcomes as a DataFrame: ``source`` itself, a mapping of columns, or a file
    (``.csv``; ``.jsonl``/``.ndjson``, one object a line; ``.json``, a list of objects).
    ``ValueError`` names the file and what is wrong with it."""
    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, Mapping):
        return pd.DataFrame(dict(source))
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"no outcomes file at {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
        if suffix == ".json":
            return pd.DataFrame(json.loads(path.read_text()))
    except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not readable as {suffix[1:]} ({exc})") from None
    raise ValueError(f"{path}: expected a .csv, .jsonl, .ndjson or .json file")


def _timestamps(column: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column):
        return pd.to_datetime(column, unit="s", utc=True)
    return pd.to_datetime(column, utc=True, format="ISO8601")


def run_ab_test(
    control: str,
    treatment: str,
    traffic_split: float = 0.5,
    duration_days: float | None = None,
    *,
    data: str | Path | pd.DataFrame | Mapping[str, Any],
    metric: str = "value",
    direction: str = "higher",
    alpha: float = 0.05,
    min_samples: int = 100,
) -> OfflineResult:
    """Judge ``treatment`` against ``control`` on the recorded outcomes ``data`` (see the
    module docstring): ``result["treatment_is_better"]``, the effect, its interval,
    the p-value, the SRM check against ``traffic_split`` and the decision.
    ``ValueError`` names what is missing or malformed."""
    frame = load_outcomes(data)
    missing = [c for c in ("version", "timestamp") if c not in frame.columns]
    if missing:
        raise ValueError(f"the outcomes have no {' or '.join(missing)} column")
    if metric in frame.columns and metric != "version":
        values = frame[metric]
    elif "value" in frame.columns:
        if "metric" in frame.columns:
            frame = frame[frame["metric"] == metric]
        values = frame["value"]
    else:
        raise ValueError(f"the outcomes have neither a {metric!r} nor a 'value' column")
    if duration_days is not None and not duration_days > 0:
        raise ValueError(f"duration_days must be positive, got {duration_days}")
    try:
        numbers = pd.to_numeric(values.astype(object).replace({True: 1, False: 0}))
        when = _timestamps(frame["timestamp"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the outcomes are malformed: {exc}") from None
    versions = frame["version"].map(_version_key)
    keys = {"control": _version_key(control), "treatment": _version_key(treatment)}
    if keys["control"] == keys["treatment"]:
        raise ValueError(f"control and treatment are the same version ({control})")
    chosen = versions.isin(keys.values())
    if not chosen.any():
        found = ", ".join(sorted(map(str, frame["version"].unique()))[:10]) or "none"
        raise ValueError(f"no outcomes of {control} or {treatment} (versions found: {found})")
    start = when[chosen].min()
    complete = True
    if duration_days is not None:
        end = start + timedelta(days=duration_days)
        # Ran its course: outcomes reach the window's last hour (its last 1 % if shorter).
        slack = min(timedelta(hours=1), timedelta(days=duration_days) / 100)
        complete = bool(when[chosen].max() >= end - slack)
        chosen &= when < end
    arms = {arm: numbers[chosen & (versions == key)].to_numpy(dtype=float)
            for arm, key in keys.items()}  # fmt: skip
    asked = {"control": control, "treatment": treatment}
    for arm, values_ in arms.items():
        if not values_.size:
            raise ValueError(f"no outcomes of the {arm} version {asked[arm]} in the window")
    return judge(
        arms["control"],
        arms["treatment"],
        metric=metric,
        traffic_split=traffic_split,
        direction=direction,
        complete=complete,
        alpha=alpha,
        min_samples=min_samples,
    )
