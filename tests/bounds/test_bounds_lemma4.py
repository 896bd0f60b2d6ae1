"""Lemma 4 (one hidden layer Leaky-ReLU) against the exact kappa, and its corrected loose form."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from gnbounds_reference import exact_spectrum, kappa_tolerance, leaky_model, make_data, \
    random_weights
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gnadvisor import GNAdvisorError
from gnadvisor.bounds import lemma4, lemma4_loose


@st.composite
def leaky_cases(draw):
    n = draw(st.integers(1, 6))
    d = draw(st.integers(1, 6))
    m = draw(st.integers(1, 7))
    k = draw(st.integers(1, 4))
    alpha = draw(st.sampled_from([0.01, 0.3, 1.0]))
    kind = draw(st.sampled_from(["raw", "whitened"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return n, d, m, k, alpha, kind, seed


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(leaky_cases())
def test_lemma4_dominates_exact_kappa(case):
    n, d, m, k, alpha, kind, seed = case
    rng = np.random.default_rng(seed)
    V, W = random_weights(rng, [d, m, k])
    X = make_data(rng, n, d, kind)
    tight, loose = lemma4([V, W], X, alpha), lemma4_loose([V, W], X, alpha)
    event(f"lemma4 {'valid' if tight.valid else 'vacuous'}, "
          f"loose {'valid' if loose.valid else 'vacuous'}")
    for b in (tight, loose):
        assert b.kind == "bound" and b.valid == (b.value is not None)
        json.dumps(b.to_dict(), allow_nan=False)
    if not (tight.valid or loose.valid):
        assert n > d or m < k or n > m
        return
    exact = exact_spectrum(leaky_model(V, W, alpha), X)
    tol = kappa_tolerance(exact.kappa, n * k)
    assert exact.rank == n * k        # a positive denominator means J J^T is definite
    assert tight.valid
    assert tight.value >= exact.kappa * (1 - tol), (tight.value, exact)
    if loose.valid:
        assert loose.value >= tight.value * (1 - 1e-12)
    # generic data and weights: never spuriously vacuous inside the paper's conditions
    if n <= d and n <= m and m >= k:
        assert tight.valid and loose.valid


@pytest.mark.parametrize("n,d,m,k", [(4, 6, 3, 2), (4, 3, 6, 2), (3, 3, 5, 2)],
                         ids=["n>m", "n>d", "n<=d,m"])
def test_relu_only_the_activation_term_can_help(n, d, m, k):
    """alpha = 0: the X X^T term drops out; lemma4 needs S^T S > 0 (n <= m), loose is vacuous."""
    rng = np.random.default_rng(11)
    V, W = random_weights(rng, [d, m, k])
    X = make_data(rng, n, d, "raw")
    tight, loose = lemma4([V, W], X, 0.0), lemma4_loose([V, W], X, 0.0)
    assert loose.value is None and "(ReLU)" in loose.failed[0].detail
    if n > m:
        assert tight.value is None
        assert f"n x n with n = {n}, m = {m}" in tight.failed[0].detail
    else:
        exact = exact_spectrum(leaky_model(V, W, 0.0), X)
        assert tight.valid and tight.value >= exact.kappa * (1 - kappa_tolerance(exact.kappa, n * k))


def test_lemma4_outside_paper_conditions_but_valid():
    """n > m but n <= d, m >= k: the alpha^2 X X^T W W^T term alone keeps J J^T definite."""
    rng = np.random.default_rng(12)
    V, W = random_weights(rng, [6, 3, 2])
    X = make_data(rng, 5, 6, "raw")
    b = lemma4([V, W], X, 0.3)
    paper = b.assumptions[1]
    assert not paper.holds and not paper.required and "n = 5 > m = 3" in paper.detail
    exact = exact_spectrum(leaky_model(V, W, 0.3), X)
    assert b.valid and b.value >= exact.kappa


def test_published_loose_form_is_not_a_bound():
    """The counterexample in the lemma4_loose docstring: the paper's form is below kappa."""
    X = np.array([[0.0, 1.0], [-2.0, -2.0]])
    V = np.array([[2.0, 0.0], [-2.0, -2.0]])
    W = np.array([[0.0, 1.0]])
    exact = exact_spectrum(leaky_model(V, W, 0.3), X)
    loose = lemma4_loose([V, W], X, 0.3)
    assert math.isclose(exact.kappa, 1402.25, rel_tol=1e-4)
    assert math.isclose(loose.details["paper_value"], 823.69, rel_tol=1e-4)
    assert loose.details["paper_value"] < exact.kappa
    assert loose.valid and loose.value >= lemma4([V, W], X, 0.3).value >= exact.kappa


def test_lemma4_derivative_is_plus_alpha():
    """With the research code's -alpha the J J^T formula would differ; check the pieces."""
    rng = np.random.default_rng(13)
    V, W = random_weights(rng, [5, 6, 2])
    X = make_data(rng, 4, 5, "raw")
    b = lemma4([V, W], X, 0.3)
    Z = V @ X.T
    S = np.where(Z > 0, Z, 0.3 * Z)
    assert math.isclose(b.details["lambda_max_StS"], np.linalg.eigvalsh(S.T @ S)[-1], rel_tol=1e-12)
    assert math.isclose(b.details["lambda_min_XXt"], np.linalg.eigvalsh(X @ X.T)[0], rel_tol=1e-9)
    num = np.linalg.eigvalsh(X @ X.T)[-1] * np.linalg.eigvalsh(W @ W.T)[-1] + np.linalg.eigvalsh(S.T @ S)[-1]
    den = 0.09 * np.linalg.eigvalsh(X @ X.T)[0] * np.linalg.eigvalsh(W @ W.T)[0] + np.linalg.eigvalsh(S.T @ S)[0]
    assert math.isclose(b.value, num / den, rel_tol=1e-9)


def test_lemma4_input_errors():
    rng = np.random.default_rng(14)
    V, W = random_weights(rng, [3, 4, 2])
    X = make_data(rng, 2, 3, "raw")
    with pytest.raises(GNAdvisorError, match="exactly 2 matrices"):
        lemma4([V, W, W.T], X, 0.1)
    with pytest.raises(GNAdvisorError, match="alpha must be a finite number"):
        lemma4([V, W], X, float("nan"))
    with pytest.raises(GNAdvisorError, match="X must have d = 3 columns"):
        lemma4_loose([V, W], X[:, :2], 0.1)
