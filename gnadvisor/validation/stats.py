"""Rank correlations, partial Spearman and bootstrap intervals over architectures.

All functions are vectorised over rows so that a bootstrap evaluates every resample at once.
Values may be ``+-inf`` (e.g. a diverged run has speed ``-inf``): they are ranked like any
number. ``NaN`` marks a missing value; the public one-shot functions drop such pairs.

Definitions (``rank`` = average ranks for ties, as ``scipy.stats.rankdata``):

* Spearman ``rho(x, y)`` = Pearson correlation of ``rank(x)`` and ``rank(y)``
  (equals ``scipy.stats.spearmanr``).
* Kendall ``tau_b(x, y) = sum_(i<j) sgn(x_i - x_j) sgn(y_i - y_j) /
  sqrt(sum_(i<j) sgn(x_i - x_j)^2 * sum_(i<j) sgn(y_i - y_j)^2)`` (equals
  ``scipy.stats.kendalltau``, variant "b").
* Partial Spearman given ``z``: rank-transform ``x``, ``y`` and ``z``, regress ``rank(x)`` and
  ``rank(y)`` on ``rank(z)`` (least squares with intercept), Pearson-correlate the residuals.
  Equivalently ``(r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2))`` with Spearman ``r``.
* Bootstrap: ``n_boot`` resamples of the architectures with replacement (``numpy`` generator
  seeded with ``seed``), the statistic recomputed on each, and the percentile interval
  ``[q_(alpha/2), q_(1-alpha/2)]``, ``alpha = 1 - level``. Resamples on which the statistic is
  undefined (a constant resample) are skipped.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.stats import rankdata

from gnadvisor._checks import GNAdvisorError

__all__ = ["CORRELATIONS", "bootstrap_ci", "bootstrap_diff_ci", "correlate", "kendall", "partial_spearman", "spearman"]

_KENDALL_CHUNK = 1 << 22


def _rows(a: Any) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    return arr.reshape(1, -1) if arr.ndim == 1 else arr


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a * b).sum(axis=1) / den
    out[~(den > 1e-300)] = np.nan
    return np.clip(out, -1.0, 1.0)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Spearman of ``(B, n)`` arrays (no NaN)."""
    return _pearson_rows(rankdata(x, axis=1), rankdata(y, axis=1))


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Kendall tau-b of ``(B, n)`` arrays (no NaN)."""
    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)  # ranks: inf - inf would be NaN
    B, n = rx.shape
    iu = np.triu_indices(n, 1)
    out = np.empty(B)
    step = max(1, _KENDALL_CHUNK // max(1, n * n))
    for s in range(0, B, step):
        a = np.sign(rx[s:s + step, :, None] - rx[s:s + step, None, :])[:, iu[0], iu[1]]
        b = np.sign(ry[s:s + step, :, None] - ry[s:s + step, None, :])[:, iu[0], iu[1]]
        den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s:s + step] = np.where(den > 0, (a * b).sum(axis=1) / den, np.nan)
    return out


def partial_spearman_rows(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Row-wise partial Spearman of ``x`` and ``y`` given ``z`` (``(B, n)`` arrays, no NaN)."""
    rx, ry, rz = (rankdata(a, axis=1) for a in (x, y, z))
    rz = rz - rz.mean(axis=1, keepdims=True)
    vz = (rz * rz).sum(axis=1, keepdims=True)
    safe = np.where(vz > 0, vz, 1.0)

    def resid(r: np.ndarray) -> np.ndarray:
        r = r - r.mean(axis=1, keepdims=True)
        return r - np.where(vz > 0, (r * rz).sum(axis=1, keepdims=True) / safe, 0.0) * rz

    return _pearson_rows(resid(rx), resid(ry))


#: Correlation name -> row-wise function; ``partial_spearman`` takes a third array.
CORRELATIONS: dict[str, Callable[..., np.ndarray]] = {
    "spearman": spearman_rows,
    "kendall": kendall_rows,
    "partial_spearman": partial_spearman_rows,
}


def _finite_pairs(*arrays: Any) -> list[np.ndarray]:
    arrs = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]
    n = arrs[0].size
    if any(a.size != n for a in arrs):
        raise GNAdvisorError(f"inputs must have the same length, got {[a.size for a in arrs]}")
    keep = ~np.any([np.isnan(a) for a in arrs], axis=0)
    return [a[keep] for a in arrs]


def spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation; pairs with a NaN are dropped; NaN if fewer than 3 remain.

    Raises
    ------
    GNAdvisorError
        If ``x`` and ``y`` differ in length.

    Examples
    --------
    >>> spearman([1, 2, 3, 4], [10, 30, 20, 40])
    0.8
    """
    x, y = _finite_pairs(x, y)
    return float(spearman_rows(x[None], y[None])[0]) if x.size >= 3 else float("nan")


def kendall(x: Any, y: Any) -> float:
    """Kendall tau-b; pairs with a NaN are dropped; NaN if fewer than 3 remain.

    Raises
    ------
    GNAdvisorError
        If ``x`` and ``y`` differ in length.

    Examples
    --------
    >>> round(kendall([1, 2, 3, 4], [10, 30, 20, 40]), 6)
    0.666667
    """
    x, y = _finite_pairs(x, y)
    return float(kendall_rows(x[None], y[None])[0]) if x.size >= 3 else float("nan")


def partial_spearman(x: Any, y: Any, z: Any) -> float:
    """Partial Spearman correlation of ``x`` and ``y`` given ``z`` (module docstring).

    Raises
    ------
    GNAdvisorError
        If the inputs differ in length.

    Examples
    --------
    >>> round(partial_spearman([1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 6, 5], [3, 1, 2, 6, 5, 4]), 6)
    0.821429
    """
    x, y, z = _finite_pairs(x, y, z)
    return float(partial_spearman_rows(x[None], y[None], z[None])[0]) if x.size >= 4 else float("nan")


def bootstrap_ci(kind: str, x: Any, y: Any, z: Any = None, *, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """Correlation and its percentile bootstrap interval, resampling columns (architectures).

    ``x``, ``y`` (and ``z``) are ``(n,)`` or ``(S, n)``: ``S`` paired replicates (seeds) of the
    same ``n`` architectures. The statistic is the mean over the ``S`` rows of the row-wise
    correlation; a resample draws ``n`` architecture indices with replacement and applies them
    to every row. Architectures with a NaN in any row are dropped first.

    Parameters
    ----------
    kind : {"spearman", "kendall", "partial_spearman"}
        The correlation (``partial_spearman`` needs ``z``).
    x, y, z : array-like
        Values; ``z`` is the control variable.
    n_boot : int, default 1000
        Number of resamples (0: no interval, NaN bounds).
    seed : int, default 0
        Seed of the resampling generator; same inputs and seed give the same interval.
    level : float, default 0.95
        Coverage of the percentile interval.

    Returns
    -------
    (float, float, float)
        ``(estimate, low, high)``; all NaN when fewer than 4 architectures remain.

    Raises
    ------
    GNAdvisorError
        For an unknown ``kind``, a missing ``z`` or inconsistent shapes.

    Examples
    --------
    >>> est, lo, hi = bootstrap_ci("spearman", [1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 6, 5], n_boot=200)
    >>> round(est, 4), lo <= est <= hi
    (0.8857, True)
    """
    arrays = _prepare(kind, (x, y), z)
    return _boot(CORRELATIONS[kind], [arrays], n_boot, seed, level)


def bootstrap_diff_ci(kind: str, x_a: Any, x_b: Any, y: Any, z: Any = None, *, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """Paired difference ``corr(x_a, y) - corr(x_b, y)`` and its percentile bootstrap interval.

    Both correlations are recomputed on the same resamples of the architectures (columns with a
    NaN in any input are dropped first), so the interval accounts for their dependence: an
    interval above 0 says ``x_a`` predicts ``y`` better than ``x_b`` does. Arguments as
    :func:`bootstrap_ci`.

    Returns
    -------
    (float, float, float)
        ``(difference, low, high)``.

    Raises
    ------
    GNAdvisorError
        As :func:`bootstrap_ci`.

    Examples
    --------
    >>> d, lo, hi = bootstrap_diff_ci("spearman", [1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5], [1, 2, 3, 4, 5, 6], n_boot=100)
    >>> round(d, 4)  # 1 - 0.8286
    0.1714
    """
    arrays = _prepare(kind, (x_a, x_b, y), z)
    xa, xb, yy = arrays[:3]
    rest = arrays[3:]
    return _boot(CORRELATIONS[kind], [[xa, yy, *rest], [xb, yy, *rest]], n_boot, seed, level)


def _prepare(kind: str, arrays: tuple[Any, ...], z: Any) -> list[np.ndarray]:
    if kind not in CORRELATIONS:
        raise GNAdvisorError(f"kind must be one of {', '.join(map(repr, CORRELATIONS))}; got {kind!r}")
    if (kind == "partial_spearman") != (z is not None):
        raise GNAdvisorError("z (the control variable) must be given for kind='partial_spearman' and only then")
    rows = [_rows(a) for a in (arrays if z is None else (*arrays, z))]
    if len({a.shape for a in rows}) != 1:
        raise GNAdvisorError(f"x, y and z must have the same shape, got {[a.shape for a in rows]}")
    keep = ~np.any([np.isnan(a).any(axis=0) for a in rows], axis=0)
    return [a[:, keep] for a in rows]


def _boot(fn: Callable[..., np.ndarray], groups: list[list[np.ndarray]], n_boot: int, seed: int,
          level: float) -> tuple[float, float, float]:
    """Statistic = mean over rows of fn(group 0) [minus the same for group 1]; percentile interval."""
    S, n = groups[0][0].shape
    if n < 4:
        return (float("nan"),) * 3
    sign = [1.0, -1.0]

    def stat(index: np.ndarray | None) -> np.ndarray:
        total = 0.0
        for g, arrays in enumerate(groups):
            vals = np.zeros(1 if index is None else index.shape[0])
            for s in range(S):
                vals = vals + fn(*((a[s][None] if index is None else a[s][index]) for a in arrays))
            total = total + sign[g] * vals / S
        return np.asarray(total)

    with np.errstate(invalid="ignore"):
        point = stat(None)
    est = float(point[0])
    if n_boot <= 0:
        return est, float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    with np.errstate(invalid="ignore"):
        stats = stat(idx)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return est, float("nan"), float("nan")
    alpha = 1.0 - level
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return est, float(lo), float(hi)


def correlate(kind: str, x: Any, y: Any, z: Any = None) -> float:
    """Mean over rows of the row-wise correlation (no interval); NaN columns dropped.

    Raises
    ------
    GNAdvisorError
        As :func:`bootstrap_ci`.
    """
    return bootstrap_ci(kind, x, y, z, n_boot=0)[0]
