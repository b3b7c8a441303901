"""Argument checks that raise ``ValueError`` naming the offending argument."""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import numpy.typing as npt

from abtest.results import Alternative, Direction

_ALTERNATIVES = ("two-sided", "less", "greater")
_DIRECTIONS = ("higher", "lower")


def finite(name: str, value: float) -> float:
    """Return ``value`` as a float; reject NaN and infinities."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def count(name: str, value: float) -> int:
    """Return a non-negative integer count; reject fractions, NaN and negatives."""
    out = finite(name, value)
    if out < 0:
        raise ValueError(f"{name} must be non-negative, got {value!r}")
    if out != int(out):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(out)


def trials(name_x: str, x: float, name_n: str, n: float) -> tuple[int, int]:
    """Return ``(x, n)`` with ``0 <= x <= n`` and ``n > 0``."""
    xi = count(name_x, x)
    ni = count(name_n, n)
    if ni == 0:
        raise ValueError(f"{name_n} must be positive, got {n!r}")
    if xi > ni:
        raise ValueError(f"{name_x} must not exceed {name_n}, got {x!r} > {n!r}")
    return xi, ni


def positive(name: str, value: float) -> float:
    """Return a finite, strictly positive float."""
    out = finite(name, value)
    if out <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return out


def nonnegative(name: str, value: float) -> float:
    """Return a finite float that is at least zero."""
    out = finite(name, value)
    if out < 0:
        raise ValueError(f"{name} must be non-negative, got {value!r}")
    return out


def open_unit(name: str, value: float) -> float:
    """Return a float strictly inside (0, 1), e.g. alpha, power or a confidence."""
    out = finite(name, value)
    if not 0.0 < out < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return out


def closed_unit(name: str, value: float) -> float:
    """Return a float in [0, 1], e.g. a quantile level or a traffic weight."""
    out = finite(name, value)
    if not 0.0 <= out <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return out


def alternative(value: str) -> Alternative:
    """Return ``value`` if it is one of scipy's alternative names."""
    if value not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {value!r}")
    return cast(Alternative, value)


def direction(value: str) -> Direction:
    """Return ``value`` if it is ``higher`` or ``lower`` (which side is better)."""
    if value not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS}, got {value!r}")
    return cast(Direction, value)


def sample(name: str, values: npt.ArrayLike, *, min_size: int = 1) -> npt.NDArray[np.float64]:
    """Return a 1-d float64 array of at least ``min_size`` finite values.

    No copy is made when ``values`` already is a contiguous float64 array, which
    keeps the checks cheap on a million observations.
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} values, got {arr.size}")
    # sum is one pass and propagates NaN/inf, cheaper than isfinite().all().
    # A finite sum proves every value finite in one cheap pass; only when the sum
    # is not finite (NaN, inf, or a finite overflow) do we look value by value.
    if not math.isfinite(float(np.add.reduce(arr))) and not bool(np.isfinite(arr).all()):
        raise ValueError(f"{name} must not contain NaN or infinite values")
    return arr


def counts_vector(name: str, values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Return a 1-d array of non-negative whole counts."""
    arr = sample(name, values)
    if (arr < 0).any():
        raise ValueError(f"{name} must not contain negative counts")
    if (arr != np.floor(arr)).any():
        raise ValueError(f"{name} must contain whole numbers")
    return arr.astype(np.int64)
