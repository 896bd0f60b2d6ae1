"""init_estimate: the App. G formula, its proven high-probability form, and the deep estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gnbounds_reference import chain_model, exact_spectrum, make_data, random_weights

from gnadvisor import GNAdvisorError
from gnadvisor.bounds import init_estimate, lemma2


def _app_g(d, m, k, sv2, sw2, t, kappa_sigma=1.0):
    """The reference formula of gn-theory Sec. 4 (one hidden layer)."""
    up = sw2 * (math.sqrt(m) + math.sqrt(k) + t) ** 2 + sv2 * (math.sqrt(m) + math.sqrt(d) + t) ** 2
    lo = (sw2 * max(0.0, math.sqrt(m) - math.sqrt(k) - t) ** 2
          + sv2 * max(0.0, math.sqrt(m) - math.sqrt(d) - t) ** 2)
    return kappa_sigma * up / lo


@pytest.mark.parametrize("init,sv2,sw2", [("kaiming", 1 / 16, 1 / 100), ("xavier", 2 / 116, 2 / 103),
                                          (0.5, 0.25, 0.25)], ids=["kaiming", "xavier", "std"])
@pytest.mark.parametrize("t", [0.0, 2.5])
def test_init_one_hidden_layer_is_app_g(init, sv2, sw2, t):
    b = init_estimate(16, 100, 3, depth=1, init=init, kappa_sigma=2.0, t=t)
    assert math.isclose(b.value, _app_g(16, 100, 3, sv2, sw2, t, 2.0), rel_tol=1e-12)
    assert b.kind == ("bound" if t > 0 else "estimate")
    if t > 0:
        assert math.isclose(b.details["probability"], 1 - 4 * math.exp(-t * t / 2))


@pytest.mark.parametrize("depth", [1, 2])
def test_init_proven_bound_holds_on_sampled_nets(depth):
    d, m, k, t = 6, 48, 3, 3.0
    b = init_estimate(d, m, k, depth=depth, t=t)
    assert b.valid and b.kind == "bound" and b.details["probability"] > 0.9
    rng = np.random.default_rng(20 + depth)
    X = make_data(rng, 40, d, "whitened")
    for _ in range(5):
        Ws = random_weights(rng, [d] + [m] * depth + [k])   # kaiming_normal_, gain 1
        exact = exact_spectrum(chain_model(Ws), X, cross_check=False)
        assert exact.kappa <= b.value


def test_init_proven_bound_vacuous_when_deep_or_t_small():
    deep = init_estimate(8, 64, 4, depth=3, t=3.0)
    assert deep.value is None and not deep.valid
    assert "square hidden layers" in deep.failed[0].detail
    small_t = init_estimate(8, 64, 4, depth=1, t=1.0)     # 1 - 4 exp(-1/2) < 0
    assert small_t.value is None and "increase t" in small_t.failed[0].detail


@pytest.mark.parametrize("d,m,k", [(16, 128, 8), (32, 64, 10)])
def test_init_estimate_tracks_sampled_lemma2(d, m, k):
    """Measured: the asymptotic estimate sits 1.1-1.7x above the median Lemma 2 value for
    depth <= 4 (more above for deep nets, see the module docstring)."""
    rng = np.random.default_rng(30)
    X = make_data(rng, 4 * d, d, "whitened")
    previous = 0.0
    for depth in (1, 2, 4):
        est = init_estimate(d, m, k, depth=depth)
        assert est.kind == "estimate" and est.valid
        sampled = np.median([lemma2(random_weights(rng, [d] + [m] * depth + [k]), X).value
                             for _ in range(5)])
        assert 0.9 <= est.value / sampled <= 2.0, (depth, est.value, sampled)
        assert est.value > previous                      # grows with depth
        previous = est.value
    assert init_estimate(d, 2 * m, k, depth=4).value < init_estimate(d, m, k, depth=4).value


def test_init_free_edges_reduce_to_marchenko_pastur():
    e = init_estimate(4, 100, 9, depth=1, init=1.0)
    t1, t2 = e.terms
    assert math.isclose(t1.lambda_max_A, (10 + 3) ** 2) and math.isclose(t1.lambda_min_A, (10 - 3) ** 2)
    assert math.isclose(t2.lambda_max_B, (10 + 2) ** 2) and math.isclose(t2.lambda_min_B, (10 - 2) ** 2)
    narrow = init_estimate(50, 20, 30, depth=1)            # m < k and m < d
    assert narrow.value is None and not narrow.valid


def test_init_estimate_scales_with_kappa_sigma():
    a = init_estimate(8, 64, 4, depth=3, kappa_sigma=1.0).value
    assert math.isclose(init_estimate(8, 64, 4, depth=3, kappa_sigma=7.0).value, 7 * a)


@pytest.mark.parametrize("kwargs,match", [
    ({"d": 0, "m": 4, "k": 2}, "d must be a positive integer"),
    ({"d": 3, "m": 4, "k": 2, "depth": 0}, "depth must be a positive integer"),
    ({"d": 3, "m": 4, "k": 2, "init": "he"}, "init must be one of"),
    ({"d": 3, "m": 4, "k": 2, "kappa_sigma": 0.5}, "kappa_sigma must be a finite number in"),
    ({"d": 3, "m": 4, "k": 2, "t": -1.0}, "t must be a finite number in"),
])
def test_init_input_errors(kwargs, match):
    with pytest.raises(GNAdvisorError, match=match):
        init_estimate(**kwargs)
