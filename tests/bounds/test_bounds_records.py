"""The Bound record, input validation, and the residual / layer-wise specifics."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from gnbounds_reference import chain_model, exact_spectrum, make_data, random_weights

from gnadvisor import GNAdvisorError
from gnadvisor.bounds import Assumption, Bound, layerwise, lemma1, lemma2, lemma2_max, \
    residual_aligned


def _bound(**kw):
    base = dict(name="x", value=2.0, valid=True, kind="bound", assumptions=(), reference="r")
    base.update(kw)
    return Bound(**base)


def test_bound_record_is_frozen_and_json_safe():
    rng = np.random.default_rng(50)
    b = lemma2(random_weights(rng, [3, 5, 2]), make_data(rng, 2, 3, "raw"))   # n < d: vacuous
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.value = 1.0
    with pytest.raises(TypeError):
        b.details["x"] = 1
    d = json.loads(json.dumps(b.to_dict(), allow_nan=False))
    assert d["value"] is None and d["valid"] is False and d["kappa_sigma"] is None
    assert d["assumptions"][0]["holds"] is False
    assert set(d["terms"][0]) >= {"kappa2_A", "kappa2_B", "gamma", "lambda_min_A"}
    assert "vacuous" in str(b) and b.vacuous
    hash(b)


def test_bound_invariants_are_enforced():
    with pytest.raises(GNAdvisorError, match="value exactly when it is valid"):
        _bound(valid=False)
    with pytest.raises(GNAdvisorError, match="value exactly when it is valid"):
        _bound(value=None)
    with pytest.raises(GNAdvisorError, match="kind must be one of"):
        _bound(kind="guess")
    with pytest.raises(GNAdvisorError, match="finite or None"):
        _bound(value=math.inf)
    est = _bound(kind="estimate", valid=False)            # an estimate may carry a number
    assert est.value == 2.0 and not est.vacuous
    assert str(Assumption("s", False, "why")) == "[FAILS] s: why"


def test_torch_and_numpy_inputs_agree():
    rng = np.random.default_rng(51)
    Ws = random_weights(rng, [3, 5, 5, 2])
    X = make_data(rng, 20, 3, "raw")
    a = lemma2(Ws, X)
    b = lemma2([torch.from_numpy(W).float().requires_grad_() for W in Ws],
               torch.from_numpy(X).float())
    assert math.isclose(a.value, b.value, rel_tol=1e-4)


@pytest.mark.parametrize("call,match", [
    (lambda Ws, X: lemma2(Ws[0], X), "weights must be a non-empty list"),
    (lambda Ws, X: lemma2([Ws[0], Ws[0]], X), r"weights\[1\] must have 5 columns"),
    (lambda Ws, X: lemma2(Ws, X[:, :2]), "X must have d = 3 columns"),
    (lambda Ws, X: lemma2(Ws, X, beta=-0.1), "beta must be a finite number in"),
    (lambda Ws, X: lemma2_max([np.ones(3)], X), r"weights\[0\] must be a non-empty 2-D array"),
    (lambda Ws, X: layerwise(Ws, np.full_like(X, np.nan)), "X must contain only finite"),
    (lambda Ws, X: lemma1(Ws, X), "exactly 2 matrices"),
    (lambda Ws, X: residual_aligned(Ws, X, "big"), "beta must be a finite number"),
], ids=["not-list", "not-chain", "x-cols", "beta<0", "1d-weight", "nan", "lemma1-depth", "beta-str"])
def test_input_errors_name_the_parameter(call, match):
    rng = np.random.default_rng(52)
    Ws = random_weights(rng, [3, 5, 5, 2])
    with pytest.raises(GNAdvisorError, match=match):
        call(Ws, make_data(rng, 10, 3, "raw"))


def test_residual_aligned_equals_layerwise_for_symmetric_psd_layers():
    rng = np.random.default_rng(53)
    Ws = []
    for _ in range(4):
        Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
        Ws.append(Q @ np.diag(rng.uniform(0.1, 2.0, 4)) @ Q.T)     # symmetric PSD
    X = make_data(rng, 30, 4, "raw")
    for beta in (0.0, 0.5, 1.0):
        e = residual_aligned(Ws, X, beta)
        lw = layerwise(Ws, X, beta)
        assert e.kind == "estimate" and e.valid
        assert math.isclose(e.value, lw.value, rel_tol=1e-9)
        exact = exact_spectrum(chain_model([W + beta * np.eye(4) for W in Ws]), X,
                               cross_check=False)
        assert e.value >= exact.kappa


def test_residual_aligned_is_flagged_when_not_aligned_and_beta_helps():
    rng = np.random.default_rng(54)
    Ws = random_weights(rng, [6] * 6)
    X = make_data(rng, 40, 6, "whitened")
    est = [residual_aligned(Ws, X, beta) for beta in (0.0, 0.5, 1.0)]
    assert est[0].valid                     # beta = 0: trivially aligned, equals layerwise
    assert not est[1].valid and not est[2].valid
    assert "not a bound" in est[1].failed[0].detail
    assert est[0].value > est[1].value > est[2].value        # the trend Eq. 8 explains
    assert lemma2(Ws, X, 0.0).value > lemma2(Ws, X, 1.0).value


def test_layerwise_orientation_of_rectangular_layers():
    """A wide first layer (m < d) kills every term that needs lambda_min(W_1^T W_1)."""
    rng = np.random.default_rng(55)
    Ws = random_weights(rng, [5, 3, 3, 2])
    X = make_data(rng, 30, 5, "raw")
    b = layerwise(Ws, X)
    assert b.valid and [t.gamma > 0 for t in b.terms] == [True, False, False]
    assert b.value >= lemma2(Ws, X).value
    narrow = layerwise(random_weights(rng, [5, 3, 4]), X)    # m=3 < k=4 and < d=5
    assert narrow.value is None
    assert "out > in" in narrow.failed[0].detail or "in > out" in narrow.failed[0].detail
