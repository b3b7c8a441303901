"""Frozen inputs and results shared by the statistics modules.

Every effect is *treatment minus control*. Confidence intervals follow scipy's
convention for one-sided alternatives: ``greater`` gives ``(low, inf)`` and
``less`` gives ``(-inf, high)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Alternative = Literal["two-sided", "less", "greater"]
Direction = Literal["higher", "lower"]


@dataclass(frozen=True, slots=True)
class Counts:
    """Successes out of trials for one arm (a proportion metric)."""

    x: int
    n: int


@dataclass(frozen=True, slots=True)
class Summary:
    """Sufficient statistics for one arm: mean, sample variance (ddof=1), size."""

    mean: float
    var: float
    n: int

    @classmethod
    def from_sums(cls, n: int, total: float, total_squares: float) -> Summary:
        """Build from a count, a sum and a sum of squares (what exporters accumulate).

        The variance is clipped at 0 because rounding in ``total_squares -
        total**2 / n`` can make a constant series look slightly negative.
        """
        if not n >= 2:
            raise ValueError(f"n must be at least 2, got {n!r}")
        mean = total / n
        return cls(mean, max(0.0, (total_squares - total * mean) / (n - 1)), n)


@dataclass(frozen=True, slots=True)
class StatResult:
    """The outcome of one two-sample test.

    ``ci`` is ``None`` where the method defines no interval for ``effect``;
    ``se`` is ``nan`` where no standard error is defined; ``df`` is ``nan``
    for tests that are not t tests.
    """

    method: str
    statistic: float
    p_value: float
    effect: float
    se: float
    ci: tuple[float, float] | None
    n_control: int
    n_treatment: int
    alternative: Alternative
    confidence: float
    df: float = float("nan")


@dataclass(frozen=True, slots=True)
class HistogramResult:
    """Comparison of two latency distributions given as histogram buckets.

    ``statistic``/``p_value``/``effect`` are the tie-corrected Mann-Whitney test
    on the bucketed data (the treatment's U; the effect is the rank-biserial
    correlation, positive when treatment is larger). ``chi2``/``chi2_p_value``
    test homogeneity of the bucket frequencies. ``quantile_*`` estimate the
    ``q`` quantile per arm by linear interpolation inside the bucket, as
    Prometheus' ``histogram_quantile`` does.
    """

    method: str
    statistic: float
    p_value: float
    effect: float
    se: float
    chi2: float
    chi2_df: int
    chi2_p_value: float
    q: float
    quantile_control: float
    quantile_treatment: float
    n_control: int
    n_treatment: int
    alternative: Alternative


@dataclass(frozen=True, slots=True)
class SRMResult:
    """Sample ratio mismatch check; ``mismatch`` is ``p_value < threshold``."""

    method: str
    statistic: float
    p_value: float
    df: int
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    threshold: float
    mismatch: bool


@dataclass(frozen=True, slots=True)
class NoninferiorityResult:
    """One-sided test of H0: treatment worse than control by at least ``margin``.

    ``margin`` is absolute (a relative margin is already multiplied by the
    control's value). ``bound`` is the one-sided ``1 - alpha`` confidence limit
    of the effect on the "worse" side; ``noninferior`` is ``p_value < alpha``.
    """

    method: str
    statistic: float
    p_value: float
    effect: float
    se: float
    bound: float
    margin: float
    direction: Direction
    alpha: float
    noninferior: bool
    n_control: int
    n_treatment: int
    df: float = float("nan")
