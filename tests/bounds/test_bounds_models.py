"""gn_bounds / linear_structure: which models are recognised and what they get."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gnbounds_reference import ResidualLinear, chain_model, exact_spectrum, leaky_model, \
    make_data, random_weights
from torch import nn

from gnadvisor import GNAdvisorError
from gnadvisor.bounds import gn_bounds, layerwise, lemma2, lemma4, linear_structure, \
    residual_aligned


@pytest.fixture
def data():
    rng = np.random.default_rng(40)
    return rng, make_data(rng, 30, 4, "raw")


def test_gn_bounds_plain_linear_chain(data):
    rng, X = data
    Ws = random_weights(rng, [4, 6, 6, 3])
    net = chain_model(Ws)
    bounds = gn_bounds(net, torch.from_numpy(X))
    assert sorted(bounds) == ["layerwise", "lemma2", "lemma2_max"]
    assert bounds["lemma2"].value == lemma2(Ws, X).value
    exact = exact_spectrum(net, X, cross_check=False)
    assert all(b.value >= exact.kappa for b in bounds.values())


def test_gn_bounds_one_hidden_layer_adds_lemma1_and_accepts_identity_flatten(data):
    rng, X = data
    V, W = random_weights(rng, [4, 6, 3])
    net = nn.Sequential(nn.Flatten(), chain_model([V]), nn.Identity(), chain_model([W]))
    bounds = gn_bounds(net, X.reshape(30, 2, 2))        # flattened to (n, 4)
    assert sorted(bounds) == ["layerwise", "lemma1", "lemma2", "lemma2_max"]
    assert bounds["lemma1"].value == bounds["lemma2"].value


@pytest.mark.parametrize("act,alpha", [(nn.LeakyReLU(0.2), 0.2), (nn.ReLU(), 0.0)],
                         ids=["leaky", "relu"])
def test_gn_bounds_leaky_one_hidden(act, alpha):
    rng = np.random.default_rng(41)
    V, W = random_weights(rng, [5, 6, 2])
    X = make_data(rng, 4, 5, "raw")
    net = leaky_model(V, W, 0.1)
    net[1] = act
    bounds = gn_bounds(net, X)
    assert sorted(bounds) == ["lemma4", "lemma4_loose"]
    assert bounds["lemma4"].details["alpha"] == alpha
    assert bounds["lemma4"].value == lemma4([V, W], X, alpha).value


@pytest.mark.parametrize("net", [
    nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 3)),                           # biases
    nn.Sequential(nn.Linear(4, 6, bias=False), nn.Tanh(), nn.Linear(6, 3, bias=False)),
    nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 6, bias=False),
                  nn.ReLU(), nn.Linear(6, 3, bias=False)),                     # deep ReLU
    nn.Linear(4, 3, bias=False),                                               # not a Sequential
    nn.Sequential(),
], ids=["bias", "tanh", "deep-relu", "bare-linear", "empty"])
def test_gn_bounds_unsupported_models_get_nothing(net, data):
    assert gn_bounds(net.double(), data[1]) == {}
    assert linear_structure(net) is None


class _Built(nn.Module):
    """A gnadvisor-built model as seen through the duck-typed protocol."""

    def __init__(self, structure):
        super().__init__()
        self._structure = structure

    def linear_structure(self):
        return self._structure


def test_gn_bounds_duck_typed_residual_chain(data):
    rng, X = data
    Ws = random_weights(rng, [4, 6, 6, 3])
    built = _Built({"kind": "linear_chain", "weights": [torch.from_numpy(W) for W in Ws],
                    "beta": 0.5})
    bounds = gn_bounds(built, X)
    assert sorted(bounds) == ["layerwise", "lemma2", "lemma2_max", "residual_aligned"]
    assert bounds["lemma2"].value == lemma2(Ws, X, beta=0.5).value
    assert bounds["layerwise"].value == layerwise(Ws, X, beta=0.5).value
    assert bounds["residual_aligned"].value == residual_aligned(Ws, X, 0.5).value
    exact = exact_spectrum(nn.Sequential(*[ResidualLinear(W, 0.5) for W in Ws]), X,
                           cross_check=False)
    assert bounds["lemma2"].value >= exact.kappa


def test_gn_bounds_duck_typed_leaky_and_none(data):
    rng, _ = data
    V, W = random_weights(rng, [5, 6, 2])
    X = make_data(rng, 3, 5, "raw")
    built = _Built({"kind": "leaky_one_hidden", "weights": [V, W], "alpha": 0.3})
    assert gn_bounds(built, X)["lemma4"].value == lemma4([V, W], X, 0.3).value
    assert gn_bounds(_Built(None), X) == {}


@pytest.mark.parametrize("structure,match", [
    ({"kind": "conv"}, "kind 'linear_chain' or 'leaky_one_hidden'"),
    ({"kind": "linear_chain"}, "must include 'weights'"),
    ([1, 2], "must return None or a dict"),
])
def test_gn_bounds_malformed_protocol_raises(structure, match, data):
    with pytest.raises(GNAdvisorError, match=match):
        gn_bounds(_Built(structure), data[1])


def test_gn_bounds_input_mismatch_raises(data):
    rng, X = data
    net = chain_model(random_weights(rng, [5, 6, 3]))
    with pytest.raises(GNAdvisorError, match="X must have d = 5 columns"):
        gn_bounds(net, X)


def test_gn_bounds_vacuous_bounds_are_still_listed():
    rng = np.random.default_rng(42)
    net = chain_model(random_weights(rng, [4, 2, 3]))                # m < d and m < k
    bounds = gn_bounds(net, make_data(rng, 10, 4, "raw"))
    assert all(b.value is None and not b.valid for b in bounds.values())
    assert math.isfinite(bounds["lemma2"].kappa_sigma)
