"""Rank statistics against scipy and independent formulas; bootstrap reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from gnadvisor._checks import GNAdvisorError
from gnadvisor.validation import bootstrap_ci, bootstrap_diff_ci, kendall, partial_spearman, spearman


def _fixed(seed=0, n=30, ties=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = 0.6 * x + rng.standard_normal(n)
    if ties:
        x = np.round(x, 0)
        y = np.round(y * 2, 0)
    return x, y


@pytest.mark.parametrize("ties", [False, True], ids=["no-ties", "ties"])
def test_spearman_and_kendall_match_scipy(ties):
    for seed in range(4):
        x, y = _fixed(seed, ties=ties)
        assert spearman(x, y) == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
        assert kendall(x, y) == pytest.approx(sps.kendalltau(x, y).statistic, abs=1e-12)


def test_correlations_rank_infinities_and_drop_nans():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([-np.inf, 0.5, 0.7, -np.inf, 2.0, np.inf])  # diverged runs rank lowest, tied
    finite = np.array([-9.0, 0.5, 0.7, -9.0, 2.0, 9.0])
    assert spearman(x, y) == pytest.approx(sps.spearmanr(x, finite).statistic, abs=1e-12)
    assert kendall(x, y) == pytest.approx(sps.kendalltau(x, finite).statistic, abs=1e-12)
    xn = np.array([1.0, np.nan, 3.0, 4.0, 5.0, 6.0])
    keep = ~np.isnan(xn)
    assert spearman(xn, finite) == pytest.approx(sps.spearmanr(xn[keep], finite[keep]).statistic, abs=1e-12)
    assert math.isnan(spearman([1.0, 2.0], [2.0, 1.0]))
    assert math.isnan(spearman([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]))  # constant: undefined


def test_partial_spearman_equals_residual_regression_and_formula():
    rng = np.random.default_rng(3)
    z = rng.standard_normal(40)
    x = z + 0.5 * rng.standard_normal(40)
    y = z + 0.5 * rng.standard_normal(40) + 0.3 * x
    # recursive formula from three Spearman correlations
    rxy, rxz, ryz = (sps.spearmanr(a, b).statistic for a, b in ((x, y), (x, z), (y, z)))
    formula = (rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2))
    # explicit least-squares residuals of the ranks
    R = [sps.rankdata(a) for a in (x, y, z)]
    A = np.column_stack([np.ones(40), R[2]])
    ex = R[0] - A @ np.linalg.lstsq(A, R[0], rcond=None)[0]
    ey = R[1] - A @ np.linalg.lstsq(A, R[1], rcond=None)[0]
    resid = sps.pearsonr(ex, ey).statistic
    got = partial_spearman(x, y, z)
    assert got == pytest.approx(formula, abs=1e-12)
    assert got == pytest.approx(resid, abs=1e-12)
    assert 0 < got < rxy  # part of the x-y association runs through z


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    x, y = _fixed(5, n=40)
    a = bootstrap_ci("spearman", x, y, n_boot=400, seed=7)
    b = bootstrap_ci("spearman", x, y, n_boot=400, seed=7)
    c = bootstrap_ci("spearman", x, y, n_boot=400, seed=8)
    assert a == b and a[1:] != c[1:]
    est, lo, hi = a
    assert est == pytest.approx(spearman(x, y))
    assert lo < est < hi and hi - lo < 0.8


def test_bootstrap_matches_an_explicit_resampling_loop():
    """Vectorised resampling equals a plain loop over the same index draws, seeds averaged."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 15))
    y = x + rng.standard_normal((2, 15))
    z = rng.standard_normal((2, 15))
    for kind, fn in (("spearman", spearman), ("kendall", kendall)):
        _, lo, hi = bootstrap_ci(kind, x, y, n_boot=50, seed=3)
        idx = np.random.default_rng(3).integers(0, 15, size=(50, 15))
        vals = np.array([np.mean([fn(x[s, i], y[s, i]) for s in range(2)]) for i in idx])
        vals = vals[np.isfinite(vals)]
        assert (lo, hi) == pytest.approx(tuple(np.quantile(vals, [0.025, 0.975])), abs=1e-12)
    est = bootstrap_ci("partial_spearman", x, y, z, n_boot=0)[0]
    assert est == pytest.approx(np.mean([partial_spearman(x[s], y[s], z[s]) for s in range(2)]), abs=1e-12)


def test_paired_difference_uses_the_same_resamples():
    rng = np.random.default_rng(12)
    y = rng.standard_normal((2, 20))
    good = y + 0.3 * rng.standard_normal((2, 20))
    bad = rng.standard_normal((2, 20))
    d, lo, hi = bootstrap_diff_ci("spearman", good, bad, y, n_boot=60, seed=5)
    assert d == pytest.approx(np.mean([spearman(good[s], y[s]) - spearman(bad[s], y[s]) for s in (0, 1)]), abs=1e-12)
    idx = np.random.default_rng(5).integers(0, 20, size=(60, 20))
    vals = [np.mean([spearman(good[s, i], y[s, i]) - spearman(bad[s, i], y[s, i]) for s in (0, 1)]) for i in idx]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(vals, [0.025, 0.975])), abs=1e-12)
    assert lo > 0  # the informative score beats noise on every plausible resample
    assert bootstrap_diff_ci("kendall", good, good, y, n_boot=20) == (0.0, 0.0, 0.0)


def test_bootstrap_errors():
    with pytest.raises(GNAdvisorError, match="kind must be one of"):
        bootstrap_ci("pearson", [1, 2, 3, 4], [1, 2, 3, 4])
    with pytest.raises(GNAdvisorError, match="z \\(the control variable\\)"):
        bootstrap_ci("partial_spearman", [1, 2, 3, 4], [1, 2, 3, 4])
    assert all(math.isnan(v) for v in bootstrap_ci("spearman", [1, 2, 3], [3, 2, 1]))
