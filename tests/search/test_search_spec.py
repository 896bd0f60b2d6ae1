"""ArchSpec: validation messages, serialisation, derived counts (no torch needed)."""

import dataclasses
import json

import pytest

from gnadvisor import GNAdvisorError
from gnadvisor.search import ACTIVATIONS, FAMILIES, INITS, PRUNE_SCHEMES, ArchSpec

BASE = dict(depth=3, width=16, input_dim=64, output_dim=10)

SPECS = {
    "mlp": ArchSpec(**BASE),
    "resmlp-bn-bias": ArchSpec(family="resmlp", depth=20, width=128, skip_beta=0.5, skip_every=2,
                               batchnorm=True, bias=True, input_dim=64, output_dim=10),
    "multiplier-leaky-pruned": ArchSpec(depth=4, width_multiplier=2.5, activation="leaky_relu",
                                        leaky_alpha=0.2, init="orthogonal", prune_scheme="snip",
                                        sparsity=0.3, input_shape=(1, 8, 8), output_dim=10),
    "cnn": ArchSpec(family="cnn", depth=2, width=8, skip_beta=1.0, input_shape=(3, 5, 4),
                    output_dim=2, init="xavier_uniform", activation="gelu"),
}


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_archspec_dict_and_json_round_trip(spec):
    data = spec.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON types only
    assert ArchSpec.from_dict(data) == spec
    assert ArchSpec.from_json(spec.to_json(indent=2)) == spec
    assert set(data) == {f.name for f in dataclasses.fields(ArchSpec)}


def test_archspec_is_frozen_and_hashable():
    spec = SPECS["cnn"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.width = 3
    assert {spec: 1}[ArchSpec.from_json(spec.to_json())] == 1
    assert spec.input_shape == (3, 5, 4) and spec.input_dim == 60


def test_archspec_normalises_types():
    spec = ArchSpec(family="resmlp", depth=2, width=4, skip_beta=1, input_shape=[1, 2, 2],
                    output_dim=1)
    assert isinstance(spec.skip_beta, float) and spec.input_shape == (1, 2, 2)
    assert spec.input_dim == 4


BAD_SPECS = [
    ({"width": 0}, "width must be a positive integer, got 0"),
    ({"depth": 0}, "depth must be a positive integer, got 0"),
    ({"depth": True}, "depth must be a positive integer, got True"),
    ({"output_dim": 2.5}, "output_dim must be a positive integer, got 2.5"),
    ({"family": "transformer"}, "family must be one of 'mlp', 'resmlp', 'cnn'; got 'transformer'"),
    ({"activation": "swish"}, "activation must be one of 'linear', 'relu', 'leaky_relu', 'tanh', 'gelu'; got 'swish'"),
    ({"init": "he"}, "init must be one of 'kaiming_normal'"),
    ({"leaky_alpha": 0}, "leaky_alpha must be a number in (0, 1), got 0"),
    ({"leaky_alpha": 1.5}, "leaky_alpha must be a number in (0, 1), got 1.5"),
    ({"family": "resmlp", "skip_beta": -1}, "skip_beta must be a number >= 0, got -1"),
    ({"family": "resmlp", "skip_beta": float("nan")}, "skip_beta must be a number >= 0, got nan"),
    ({"skip_beta": 0.5}, "skip_beta must be 0 for family 'mlp' (use family 'resmlp' for skip connections), got 0.5"),
    ({"skip_every": 0}, "skip_every must be a positive integer, got 0"),
    ({"bias": "yes"}, "bias must be true or false, got 'yes'"),
    ({"batchnorm": 1}, "batchnorm must be true or false, got 1"),
    ({"prune_scheme": "lottery", "sparsity": 0.5}, "prune_scheme must be one of 'magnitude'"),
    ({"sparsity": 0.5}, "sparsity must be 0 when prune_scheme is None"),
    ({"prune_scheme": "random", "sparsity": 1.0}, "sparsity must lie in [0.0, 1.0), got 1.0"),
    ({"width_multiplier": 2.0}, "give exactly one of width and width_multiplier, got both (width=16, width_multiplier=2)"),
    ({"width": None}, "give exactly one of width and width_multiplier, got neither"),
    ({"width": None, "width_multiplier": 0.1}, "width_multiplier * (depth + 1) must be >= 0.5 (the width is its rounded value), got 0.1 * 4 = 0.4"),
    ({"width": None, "width_multiplier": -1}, "width_multiplier must be a number > 0, got -1"),
    ({"input_dim": None}, "give input_dim or input_shape, got neither"),
    ({"input_shape": (1, 8, 8), "input_dim": 63}, "input_dim must equal the product of input_shape (1*8*8 = 64), got 63"),
    ({"input_dim": None, "input_shape": (1, 0)}, "input_shape[1] must be a positive integer, got 0"),
    ({"input_dim": None, "input_shape": ()}, "input_shape must be a non-empty list of positive integers"),
    ({"family": "cnn"}, "family 'cnn' needs input_shape = (channels, height, width), got None"),
    ({"family": "cnn", "input_dim": None, "input_shape": (8, 8)}, "family 'cnn' needs input_shape = (channels, height, width), got (8, 8)"),
]


@pytest.mark.parametrize("kwargs, message", BAD_SPECS,
                         ids=["-".join(f"{k}={v}" for k, v in kw.items()) for kw, _ in BAD_SPECS])
def test_archspec_validation_message(kwargs, message):
    with pytest.raises(GNAdvisorError) as info:
        ArchSpec(**{**BASE, **kwargs})
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_archspec_from_dict_rejects_unknown_and_missing_keys():
    data = {**SPECS["mlp"].to_dict(), "widht": 3, "droput": 0.1}
    with pytest.raises(GNAdvisorError, match=r"unknown keys 'widht', 'droput' in ArchSpec; "
                                             r"allowed keys: family, depth, width, width_multiplier"):
        ArchSpec.from_dict(data)
    data = SPECS["mlp"].to_dict()
    del data["depth"]
    with pytest.raises(GNAdvisorError, match="missing required key.*'depth'"):
        ArchSpec.from_dict(data)
    with pytest.raises(GNAdvisorError, match="must be a mapping, got list"):
        ArchSpec.from_dict([1, 2])


def test_archspec_from_json_rejects_bad_json():
    with pytest.raises(GNAdvisorError, match="ArchSpec JSON is not valid"):
        ArchSpec.from_json("{depth: 3")
    with pytest.raises(GNAdvisorError, match="must be a mapping"):
        ArchSpec.from_json("[3]")


@pytest.mark.parametrize("multiplier, depth, width", [(2.5, 2, 8), (3.0, 20, 63), (0.5, 1, 1), (1.25, 1, 3)])
def test_width_multiplier_resolves_to_rounded_c_times_L(multiplier, depth, width):
    spec = ArchSpec(depth=depth, width_multiplier=multiplier, input_dim=4, output_dim=2)
    assert spec.width_resolved == width  # round half up of c * (depth + 1)
    assert spec.n_weight_layers == depth + 1


def test_describe():
    assert SPECS["resmlp-bn-bias"].describe() == "resmlp d20 w128 relu β=0.5 every 2 BN bias kaiming_normal"
    assert SPECS["multiplier-leaky-pruned"].describe() == \
        "mlp d4 w13(c=2.5) leaky_relu(α=0.2) orthogonal snip 30%"
    assert ArchSpec(family="resmlp", depth=20, width=128, skip_beta=1.0, batchnorm=True,
                    input_dim=64, output_dim=10).describe() == "resmlp d20 w128 relu β=1 BN kaiming_normal"


def test_n_params_and_flops_hand_counts():
    # mlp 64 -> 16 -> 16 -> 16 -> 10, no bias
    assert SPECS["mlp"].n_params() == 64 * 16 + 2 * 16 * 16 + 16 * 10
    assert SPECS["mlp"].flops() == SPECS["mlp"].n_params()
    spec = ArchSpec(**{**BASE, "bias": True, "batchnorm": True})
    assert spec.n_params() == SPECS["mlp"].n_params() + (3 * 16 + 10) + 3 * 2 * 16
    assert spec.flops() == SPECS["mlp"].flops()
    # cnn: conv 3->8, conv 8->8 (3x3, 5x4 image), head 8->2
    cnn = SPECS["cnn"]
    assert cnn.n_params() == 9 * 3 * 8 + 9 * 8 * 8 + 8 * 2
    assert cnn.flops() == (9 * 3 * 8 + 9 * 8 * 8) * 20 + 8 * 2


def test_needs_pruning():
    assert not SPECS["mlp"].needs_pruning
    assert SPECS["multiplier-leaky-pruned"].needs_pruning
    assert not ArchSpec(**BASE, prune_scheme="random", sparsity=0.0).needs_pruning


def test_public_choice_lists():
    assert FAMILIES == ("mlp", "resmlp", "cnn")
    assert set(ACTIVATIONS) == {"linear", "relu", "leaky_relu", "tanh", "gelu"}
    assert len(INITS) == 5
    assert set(PRUNE_SCHEMES) == {"magnitude", "global-magnitude", "random", "snip", "grasp", "synflow"}


def test_prune_schemes_match_pruning_registry():
    pruning = pytest.importorskip("gnadvisor.pruning")
    if not hasattr(pruning, "SCHEMES"):
        pytest.skip("gnadvisor.pruning has no SCHEMES registry yet")
    assert set(PRUNE_SCHEMES) == set(pruning.SCHEMES)
