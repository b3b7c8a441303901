"""Group-sequential efficacy boundaries by alpha spending (Lan & DeMets, 1983).

A one-sided test of ``H0: theta <= 0`` looked at repeatedly, at information
levels ``I_1 < I_2 < ...`` that need not be planned in advance. At look ``k``
the statistic ``Z_k = theta_hat_k * sqrt(I_k)`` is compared with a boundary
``c_k`` chosen so that the probability under ``H0`` of crossing *first* at look
``k`` is exactly the alpha the spending function releases between the previous
look's progress ``t_{k-1}`` and this one's ``t_k``::

    P0(Z_1 < c_1, ..., Z_{k-1} < c_{k-1}, Z_k >= c_k) = f(t_k) - f(t_{k-1})

so the chance of ever crossing is ``f(1) = alpha`` however many looks there are
and whenever they come. ``t`` is the fraction of the planned horizon reached (by
a clock that does not depend on the estimates); the joint law of the ``Z_k``
uses the *observed* information ratios ``corr(Z_j, Z_k) = sqrt(I_j / I_k)``.

The default spending function is the O'Brien-Fleming type
``f(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))``: almost nothing is spent early,
so the last look's boundary is close to the fixed-horizon critical value and the
power is nearly that of a single test at the end. ``pocock`` spends evenly.

Computation (Armitage, McPherson & Rowe, 1969; Jennison & Turnbull, 2000, ch.
19): the sub-density of ``Z_k`` on the paths that have not crossed yet is kept on
a grid as the state between looks. It is treated as piecewise linear, so both the
next crossing probability and the next sub-density are integrals of a linear
function against a normal kernel, in closed form. That keeps each look exact
for any information increment, however small, at ``O(G^2)`` work for a grid of
``G`` points, and makes the state a few hundred numbers that can be stored.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from abtest import _validate as v
from abtest._lazy import LazyModule

special = LazyModule("scipy.special")

__all__ = [
    "SPENDING",
    "EfficacyBoundary",
    "obrien_fleming",
    "pocock",
]

Arr = npt.NDArray[np.float64]

_LOW = -8.0  # P0(Z < -8) ~ 6e-16: the sub-density below is dropped
_TOP = 8.5  # above this the sub-density is negligible whatever the boundary
_BULK = 0.2  # grid spacing far from the boundary, where h is small and smooth
_SQRT2PI = math.sqrt(2.0 * math.pi)


def obrien_fleming(t: float, alpha: float) -> float:
    """Lan-DeMets O'Brien-Fleming-type spending: ``2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``."""
    if t <= 0:
        return 0.0
    if t >= 1:
        return alpha
    z = float(special.ndtri(1.0 - alpha / 2.0))
    return float(2.0 * special.ndtr(-z / math.sqrt(t)))


def pocock(t: float, alpha: float) -> float:
    """Lan-DeMets Pocock-type spending: ``alpha * log(1 + (e - 1) t)``."""
    if t <= 0:
        return 0.0
    if t >= 1:
        return alpha
    return alpha * math.log1p((math.e - 1.0) * t)


SPENDING: Mapping[str, Callable[[float, float], float]] = {
    "obrien_fleming": obrien_fleming,
    "pocock": pocock,
}


@functools.lru_cache(maxsize=256)
def _gaps(fine: float) -> Arr:
    """Distances below the boundary: steps of ``fine`` while they are under 15% of the
    distance, then 15% of it, then ``_BULK``, out to 17 (past any ``_TOP - _LOW``)."""
    gaps = [0.0]
    while gaps[-1] < _TOP - _LOW:
        d = gaps[-1]
        gaps.append(d + max(fine, min(_BULK, 0.15 * d)))
    return np.asarray(gaps, dtype=np.float64)


def _nodes(top: float, sigma: float) -> Arr:
    """Grid below ``top``: spacing ``sigma / 4`` at the boundary, where the newest
    crossings leave features as narrow as the last increment, widening
    geometrically to ``_BULK`` further down, to ``_LOW``."""
    top = min(top, _TOP)
    # quantised to four grids per octave of sigma, so that few distinct grids are built
    fine = 2.0 ** (math.floor(4.0 * math.log2(max(min(sigma, 1.0) / 4.0, 1e-4))) / 4.0)
    gaps = _gaps(fine)
    used = gaps[: int(np.searchsorted(gaps, top - _LOW)) + 1]
    out: Arr = top - used[::-1]
    out[0] = min(out[0], _LOW)
    return out


def _bvn(h: float, k: Arr, rho: float) -> Arr:
    """``P(X < h, Y < k)`` for standard normals with correlation ``rho`` (Owen's T)."""
    if not math.isfinite(h):
        out: Arr = special.ndtr(k) if h > 0 else np.zeros_like(k)
        return out
    h = h if abs(h) > 1e-12 else 1e-12
    k = np.where(np.abs(k) > 1e-12, k, 1e-12)
    s = math.sqrt(1.0 - rho * rho)
    beta = np.where(h * k > 0, 0.0, 0.5)
    out = (
        0.5 * (special.ndtr(h) + special.ndtr(k))
        - special.owens_t(h, (k - rho * h) / (h * s))
        - special.owens_t(k, (h - rho * k) / (k * s))
        - beta
    )
    return out


def _solve(crossing: Callable[[Arr], Arr], release: float, sigma: float) -> float:
    """The ``c`` with ``crossing(c) == release``.

    ``crossing`` falls as ``c`` rises and never exceeds the normal tail ``1 - Phi(c)``,
    so the root lies below ``c_max = Phi^-1(1 - release)``. Vectorised scans of
    ``log crossing`` bracket it ever more finely until the bracket is below
    ``sigma / 20`` (the increment's sd sets how sharply the crossing chance bends near
    the last boundary), then linear interpolation lands within ~3e-4 of the target in
    log terms: two to four evaluations of the crossing integral per look.
    """
    c_max = float(special.ndtri(1.0 - release))
    target = math.log(release)
    lo, hi, points = c_max - 4.0, c_max, 9
    for _ in range(12):
        scan = np.linspace(lo, hi, points)  # steps of 1/2, then 1/32, 1/512 ...
        with np.errstate(divide="ignore"):
            gap = np.log(np.maximum(crossing(scan), 1e-300)) - target
        above = np.nonzero(gap > 0)[0]
        if len(above) == 0:  # further down than the scan reaches: look below it
            lo, hi = lo - 8.0, lo
            continue
        i = int(above[-1])
        if i == len(scan) - 1:
            return float(scan[-1])
        lo, hi, points = float(scan[i]), float(scan[i + 1]), 17
        if hi - lo <= min(sigma, 1.0) / 20.0:
            return lo + (hi - lo) * float(gap[i] / (gap[i] - gap[i + 1]))
    return 0.5 * (lo + hi)


def _linear(nodes: Arr, values: Arr) -> tuple[Arr, Arr]:
    """``(a, b)`` of a piecewise-linear function: ``a + b z`` on each interval."""
    b = (values[1:] - values[:-1]) / (nodes[1:] - nodes[:-1])
    return values[:-1] - b * nodes[:-1], b


def _moved_up(nodes: Arr, lin: tuple[Arr, Arr], rho: float, sigma: float, c: Arr) -> Arr:
    """``int h(z) P(Z' >= c | z) dz`` for piecewise-linear ``h``, ``Z' | z ~ N(rho z,
    sigma^2)``, at each ``c``: ``A1(u) = u Phi(u) + phi(u)`` and ``A2(u) = ((u^2 - 1)
    Phi(u) + u phi(u)) / 2`` integrate ``Phi`` and ``u Phi(u)``."""
    a, b = lin
    cc = c[:, None]
    u = (rho * nodes[None, :] - cc) / sigma
    cdf, pdf = special.ndtr(u), np.exp(-0.5 * u * u) / _SQRT2PI
    a1 = u * cdf + pdf
    a2 = 0.5 * ((u * u - 1.0) * cdf + u * pdf)
    part = (a + b * cc / rho) * np.diff(a1, axis=1) + (b * sigma / rho) * np.diff(a2, axis=1)
    out: Arr = part.sum(axis=1) * sigma / rho
    return out


def _smoothed(nodes: Arr, lin: tuple[Arr, Arr], rho: float, sigma: float, new: Arr) -> Arr:
    """``int h(z) phi((y - rho z) / sigma) / sigma dz`` at each ``y`` in ``new``."""
    a, b = lin
    y = new[:, None]
    u = (rho * nodes[None, :] - y) / sigma
    mass = np.diff(special.ndtr(u), axis=1)
    bump = -np.diff(np.exp(-0.5 * u * u), axis=1) / _SQRT2PI
    out: Arr = ((a + b * y / rho) * mass + (b * sigma / rho) * bump).sum(axis=1) / rho
    return out


@dataclass(frozen=True, slots=True)
class EfficacyBoundary:
    """The state of one group-sequential test between looks.

    ``alpha`` is the one-sided level spent over the whole horizon by ``spending``;
    ``looks`` counts looks that released alpha; ``information`` and ``progress`` are
    the last such look's; ``spent`` is the alpha released so far; ``boundary`` is
    the last look's critical value; ``crossed`` says a look has crossed (the test
    has rejected, and later looks change nothing). ``removed`` is ``h`` on the grid
    ``_nodes(boundary, sigma)``, ``sigma`` the last increment's conditional sd.
    """

    alpha: float
    spending: str = "obrien_fleming"
    looks: int = 0
    information: float = 0.0
    progress: float = 0.0
    spent: float = 0.0
    boundary: float = math.inf
    sigma: float = 1.0
    crossed: bool = False
    removed: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        v.open_unit("alpha", self.alpha)
        if self.spending not in SPENDING:
            raise ValueError(f"spending must be one of {sorted(SPENDING)}, got {self.spending!r}")

    def look(self, z: float, information: float, progress: float) -> EfficacyBoundary:
        """Fold in one look: ``z`` at ``information``, ``progress`` of the horizon reached.

        The new state's ``boundary`` is this look's critical value (``inf`` when the
        look releases no alpha) and ``crossed`` says whether ``z`` reached it. A look
        with no new information, or at which the clock has not moved, releases
        nothing and returns the state unchanged; so does a crossed test.
        """
        if self.crossed:
            return self
        info = v.positive("information", information)
        t = min(1.0, v.nonnegative("progress", progress))
        z = v.finite("z", z)
        if self.looks and info <= self.information:
            return self
        target = SPENDING[self.spending](t, self.alpha)
        release = target - self.spent
        if release <= 1e-15:
            return self
        c_max = float(special.ndtri(1.0 - release))  # the boundary ignoring earlier looks
        quiet = self.boundary >= _TOP and not any(self.removed)  # nothing has crossed yet
        if not self.looks or (quiet and c_max >= _TOP):
            # First look, or so little released that the boundary lies where no path can
            # be (P0(Z >= 8.5) ~ 1e-17) after looks that were the same: c_max is exact far
            # below anything spent, and nothing on the grid has crossed.
            sigma = 1.0 if not self.looks else math.sqrt(1.0 - self.information / info)
            c, removed = c_max, np.zeros(len(_nodes(c_max, sigma)))
        else:
            c, sigma, removed = self._next(info, release)
        return EfficacyBoundary(
            alpha=self.alpha,
            spending=self.spending,
            looks=self.looks + 1,
            information=info,
            progress=t,
            spent=target,
            boundary=c,
            sigma=sigma,
            crossed=z >= c,
            removed=tuple(float(x) for x in removed),
        )

    def _next(self, info: float, release: float) -> tuple[float, float, Arr]:
        """This look's boundary, the increment's sd and the new ``h`` on its grid.

        With ``f = phi - h`` below the last boundary ``b`` and 0 above it, the chance
        of crossing ``c`` now is ``P(Z < b, Z' >= c) - int h(z) P(Z' >= c | z) dz``,
        and the new ``h(y) = phi(y) P(Z >= b | Z' = y) + int h(z) phi_sigma(y - rho z) dz``.
        """
        old_nodes = _nodes(self.boundary, self.sigma)
        old = np.asarray(self.removed, dtype=np.float64)
        rho = math.sqrt(self.information / info)
        sigma = math.sqrt(max(1.0 - rho * rho, 1e-300))
        b = self.boundary
        below_b = float(special.ndtr(b)) if math.isfinite(b) else 1.0

        # Only the stretch of the grid where h is not 0 contributes to either integral
        # (early on, h lives next to the boundary only; before any crossing, nowhere).
        alive = np.nonzero(old)[0]
        if len(alive):
            keep = slice(max(int(alive[0]) - 1, 0), min(int(alive[-1]) + 2, len(old)))
            old_nodes, old = old_nodes[keep], old[keep]
        lin = _linear(old_nodes, old) if len(alive) and len(old) > 1 else None

        def crossing(c: Arr) -> Arr:
            fresh: Arr = below_b - _bvn(b, c, rho)
            if lin is None:
                return fresh
            out: Arr = fresh - _moved_up(old_nodes, lin, rho, sigma, c)
            return out

        c = _solve(crossing, release, sigma)
        nodes = _nodes(c, sigma)
        phi = np.exp(-0.5 * nodes * nodes) / _SQRT2PI
        came_down = phi * special.ndtr((rho * nodes - b) / sigma) if math.isfinite(b) else 0.0
        moved = _smoothed(old_nodes, lin, rho, sigma, nodes) if lin is not None else 0.0
        removed = np.maximum(came_down + moved, 0.0)
        return c, sigma, removed

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for storage (``removed`` rounded to 10 significant digits)."""
        return {
            "alpha": self.alpha,
            "spending": self.spending,
            "looks": self.looks,
            "information": self.information,
            "progress": self.progress,
            "spent": self.spent,
            "boundary": self.boundary if math.isfinite(self.boundary) else None,
            "sigma": self.sigma,
            "crossed": self.crossed,
            "removed": [float(f"{x:.10g}") for x in self.removed],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EfficacyBoundary:
        """Inverse of :meth:`to_dict`; a grid that does not fit its boundary is refused."""
        boundary = data.get("boundary")
        out = cls(
            alpha=float(data["alpha"]),
            spending=str(data.get("spending", "obrien_fleming")),
            looks=v.count("looks", data.get("looks", 0)),
            information=v.nonnegative("information", data.get("information", 0.0)),
            progress=v.nonnegative("progress", data.get("progress", 0.0)),
            spent=v.nonnegative("spent", data.get("spent", 0.0)),
            boundary=math.inf if boundary is None else v.finite("boundary", boundary),
            sigma=v.positive("sigma", data.get("sigma", 1.0)),
            crossed=bool(data.get("crossed", False)),
            removed=tuple(v.nonnegative("removed", x) for x in data.get("removed", ())),
        )
        if out.looks and len(out.removed) != len(_nodes(out.boundary, out.sigma)):
            raise ValueError("removed does not match the boundary's grid")
        return out
