"""build_model: counts, determinism, the documented skip semantics (paper Eq. 7), init, linear_structure."""

import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gnadvisor import GNAdvisorError
from gnadvisor.search import (
    ACTIVATIONS,
    FAMILIES,
    INITS,
    ArchSpec,
    activation_gain,
    build_model,
    build_pruned_model,
)

F64 = torch.float64


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _random_specs(n, seed):
    """Small, varied specs: all families, activations, inits, odd dims, skips over >1 layer."""
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        family = FAMILIES[i % 3]
        kw = dict(family=family, depth=rng.randint(1, 4), activation=rng.choice(ACTIVATIONS),
                  leaky_alpha=rng.choice([0.01, 0.3]), bias=rng.random() < 0.5,
                  batchnorm=rng.random() < 0.5, init=rng.choice(INITS),
                  output_dim=rng.randint(1, 6))
        if rng.random() < 0.25:
            kw["width_multiplier"] = rng.choice([0.5, 1.0, 1.5])
        else:
            kw["width"] = rng.randint(2, 9)
        if family != "mlp":
            kw["skip_beta"] = rng.choice([0.0, 0.5, 1.0])
            kw["skip_every"] = rng.randint(1, 3)
        if family == "cnn" or rng.random() < 0.5:
            kw["input_shape"] = (rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 4))
        else:
            kw["input_dim"] = rng.randint(1, 12)
        specs.append(ArchSpec(**kw))
    return specs


SPECS = _random_specs(45, seed=0)


def _id(spec):
    return spec.describe().replace(" ", "_").replace("β", "beta").replace("α", "alpha")


def _input(spec, n=5, seed=1):
    return _randn(n, *(spec.input_shape or (spec.input_dim,)), seed=seed)


def _hook_macs(model, x):
    """Multiply-adds per sample counted from the actual forward pass."""
    macs = []

    def hook(module, inputs, output):
        if isinstance(module, nn.Linear):
            macs.append(module.in_features * module.out_features * output.shape[0])
        else:  # Conv2d: every output element costs in_channels * 3 * 3
            macs.append(module.weight[0].numel() * output.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.Conv2d))]
    model(x)
    for h in handles:
        h.remove()
    return sum(macs) // x.shape[0]


@pytest.mark.parametrize("spec", SPECS, ids=[_id(s) for s in SPECS])
def test_build_model_counts_and_shapes(spec):
    model = build_model(spec, seed=3)
    assert sum(p.numel() for p in model.parameters()) == spec.n_params()
    assert all(p.dtype == F64 for p in model.parameters())
    x = _input(spec)
    y = model(x)
    assert y.shape == (5, spec.output_dim) and y.dtype == F64 and torch.isfinite(y).all()
    assert _hook_macs(model, x) == spec.flops()
    if spec.input_shape is not None:  # flat and image-shaped inputs give the same outputs
        torch.testing.assert_close(model(x.reshape(5, -1)), y, rtol=1e-13, atol=1e-13)


def test_single_unbatched_sample_matches_batch():
    for spec in (ArchSpec(family="resmlp", depth=2, width=6, skip_beta=0.5, input_shape=(2, 3, 3), output_dim=4),
                 ArchSpec(family="cnn", depth=2, width=5, skip_beta=1.0, input_shape=(2, 3, 3), output_dim=4)):
        model, x = build_model(spec, 0), _input(spec)
        torch.testing.assert_close(model(x[2]), model(x)[2], rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(model(x[2].reshape(-1)), model(x)[2], rtol=1e-13, atol=1e-13)


def test_build_model_deterministic_per_seed_and_leaves_global_rng_alone():
    spec = SPECS[4]
    with torch.random.fork_rng():
        state = torch.get_rng_state()
        torch.manual_seed(1)
        a = build_model(spec, seed=7).state_dict()
        torch.manual_seed(2)
        b = build_model(spec, seed=7).state_dict()
        c = build_model(spec, seed=8).state_dict()
        torch.set_rng_state(state)
        build_model(spec, seed=7)
        assert torch.equal(torch.get_rng_state(), state)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if k.endswith("weight"))


def test_resmlp_with_beta_zero_equals_mlp():
    kw = dict(depth=3, width=7, activation="tanh", bias=True, input_dim=5, output_dim=3)
    plain = build_model(ArchSpec(family="mlp", **kw), seed=4)
    res = build_model(ArchSpec(family="resmlp", skip_beta=0.0, **kw), seed=4)
    x = _randn(6, 5)
    torch.testing.assert_close(plain(x), res(x), rtol=0, atol=0)


@pytest.mark.parametrize("d, m, k", [(5, 8, 3), (8, 5, 3), (3, 4, 6), (6, 6, 6)])
def test_linear_residual_is_product_of_w_plus_beta_i_rect(d, m, k):
    """Paper Eq. 7: with skip_every=1 each layer is h -> (W_l + beta I_rect) h, I_rect = eye(out, in)."""
    beta = 0.7
    spec = ArchSpec(family="resmlp", depth=3, width=m, activation="linear", skip_beta=beta,
                    input_dim=d, output_dim=k)
    model = build_model(spec, seed=0)
    theta = torch.eye(d, dtype=F64)
    for layer in model.layers:
        W = layer.weight.detach()
        theta = (W + beta * torch.eye(*W.shape, dtype=F64)) @ theta
    x = _randn(7, d)
    torch.testing.assert_close(model(x), x @ theta.T, rtol=1e-12, atol=1e-12)


def test_skip_every_two_spans_two_layers():
    """skip_every=2: blocks of two weight layers, h -> F2(F1(h)) + beta I_rect h, from the input."""
    beta, d, m, k = 0.5, 4, 6, 3
    lin = ArchSpec(family="resmlp", depth=3, width=m, activation="linear", skip_beta=beta,
                   skip_every=2, input_dim=d, output_dim=k)
    W = [layer.weight.detach() for layer in build_model(lin, 1).layers]
    theta = (W[3] @ W[2] + beta * torch.eye(k, m, dtype=F64)) @ (W[1] @ W[0] + beta * torch.eye(m, d, dtype=F64))
    x = _randn(5, d)
    torch.testing.assert_close(build_model(lin, 1)(x), x @ theta.T, rtol=1e-12, atol=1e-12)

    # relu, depth 2 (L = 3): blocks {1, 2} and {3}; the output layer has no activation
    relu = ArchSpec(family="resmlp", depth=2, width=m, skip_beta=beta, skip_every=2,
                    input_dim=d, output_dim=k)
    model = build_model(relu, 2)
    W = [layer.weight.detach() for layer in model.layers]
    h = torch.relu(torch.relu(x @ W[0].T) @ W[1].T) + beta * x @ torch.eye(m, d, dtype=F64).T
    out = h @ W[2].T + beta * h @ torch.eye(k, m, dtype=F64).T
    torch.testing.assert_close(model(x), out, rtol=1e-12, atol=1e-12)


_ACT = {"linear": lambda z, a: z, "relu": lambda z, a: torch.relu(z),
        "leaky_relu": lambda z, a: torch.where(z > 0, z, a * z), "tanh": lambda z, a: torch.tanh(z),
        "gelu": lambda z, a: 0.5 * z * (1 + torch.erf(z / math.sqrt(2)))}


@pytest.mark.parametrize("spec", [s for s in SPECS if s.family != "cnn"][:12],
                         ids=_id)
def test_mlp_matches_documented_block_formula(spec):
    """h -> act(BN(W h + b)) per hidden layer, skips over blocks of skip_every layers, explicit maths."""
    model = build_model(spec, seed=5)
    x = _input(spec, n=6)
    L, beta = spec.depth + 1, spec.skip_beta
    s = spec.skip_every if beta > 0 else L
    h = x.reshape(6, -1)
    for start in range(0, L, s):
        h_in = h
        for i in range(start, min(start + s, L)):
            layer = model.layers[i]
            h = h @ layer.weight.detach().T + (layer.bias.detach() if spec.bias else 0)
            if i < L - 1:
                if spec.batchnorm:  # train mode: batch statistics, biased variance, eps 1e-5
                    h = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5)
                h = _ACT[spec.activation](h, spec.leaky_alpha)
        if beta > 0:
            h = h + beta * h_in @ torch.eye(h.shape[1], h_in.shape[1], dtype=F64).T
    torch.testing.assert_close(model(x), h, rtol=1e-10, atol=1e-12)


def test_cnn_matches_explicit_convolutions():
    beta, c, m, k = 0.5, 2, 3, 4
    spec = ArchSpec(family="cnn", depth=2, width=m, activation="tanh", skip_beta=beta,
                    input_shape=(c, 4, 5), output_dim=k, bias=True)
    model = build_model(spec, 6)
    x = _input(spec, n=3)
    conv = [(cv.weight.detach(), cv.bias.detach()) for cv in model.convs]
    embed = torch.eye(m, c, dtype=F64)  # I_rect on channels
    h = torch.tanh(F.conv2d(x, *conv[0], padding=1)) + beta * torch.einsum("oc,nchw->nohw", embed, x)
    h = torch.tanh(F.conv2d(h, *conv[1], padding=1)) + beta * h
    out = h.mean(dim=(2, 3)) @ model.head.weight.detach().T + model.head.bias.detach()
    torch.testing.assert_close(model(x), out, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------- init
def test_activation_gain_matches_torch_and_gelu_second_moment():
    for act, alpha in [("linear", 0.01), ("relu", 0.01), ("leaky_relu", 0.2), ("tanh", 0.01)]:
        want = nn.init.calculate_gain(act, alpha if act == "leaky_relu" else None)
        assert activation_gain(act, alpha) == pytest.approx(want, rel=1e-12)
    z = torch.linspace(-14, 14, 400_001, dtype=F64)
    pdf = torch.exp(-z**2 / 2) / math.sqrt(2 * math.pi)
    second_moment = torch.trapezoid(F.gelu(z) ** 2 * pdf, z)
    assert activation_gain("gelu") == pytest.approx(float(second_moment) ** -0.5, rel=1e-8)
    with pytest.raises(GNAdvisorError, match="activation must be one of"):
        activation_gain("swish")


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("activation", ["linear", "relu", "leaky_relu", "gelu"])
def test_init_distribution(init, activation):
    """First layer 300 x 100 (fan_in 100, fan_out 300): scale of each init times the gain."""
    spec = ArchSpec(depth=1, width=300, activation=activation, leaky_alpha=0.2, init=init,
                    input_dim=100, output_dim=10)
    model = build_model(spec, seed=0)
    g = activation_gain(activation, 0.2)
    W = model.layers[0].weight.detach()
    if init == "orthogonal":
        torch.testing.assert_close(W.T @ W, g**2 * torch.eye(100, dtype=F64), rtol=0, atol=1e-12)
        V = model.layers[1].weight.detach()  # 10 x 300: orthonormal rows
        torch.testing.assert_close(V @ V.T, g**2 * torch.eye(10, dtype=F64), rtol=0, atol=1e-12)
        return
    std = g / math.sqrt(100) if init.startswith("kaiming") else g * math.sqrt(2 / 400)
    assert float(W.std()) == pytest.approx(std, rel=0.03)
    assert abs(float(W.mean())) < 0.03 * std
    if init.endswith("uniform"):
        assert float(W.abs().max()) <= std * math.sqrt(3)


def test_init_conv_fan_in_includes_kernel_and_biases_bn_start_neutral():
    spec = ArchSpec(family="cnn", depth=2, width=64, bias=True, batchnorm=True,
                    input_shape=(32, 4, 4), output_dim=3)
    model = build_model(spec, seed=0)
    W = model.convs[0].weight.detach()  # 64 x 32 x 3 x 3
    assert float(W.std()) == pytest.approx(math.sqrt(2) / math.sqrt(32 * 9), rel=0.03)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.all(p == 0), name
    for bn in model.norms:
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


# ---------------------------------------------------------------------------------- linear_structure
def _end_to_end(model, d):
    """Theta (k x d) with f(x) = Theta x, read off the model on the basis inputs."""
    return model(torch.eye(d, dtype=F64)).T


@pytest.mark.parametrize("family, beta, shape", [("mlp", 0.0, None), ("resmlp", 0.0, None),
                                                  ("resmlp", 0.3, None), ("resmlp", 1.0, (1, 3, 3))])
def test_linear_structure_chain_reproduces_end_to_end_map(family, beta, shape):
    spec = ArchSpec(family=family, depth=3, width=6, activation="linear", skip_beta=beta,
                    input_dim=None if shape else 7, input_shape=shape, output_dim=4)
    model = build_model(spec, seed=2)
    structure = model.linear_structure()
    assert structure["kind"] == "linear_chain" and structure["beta"] == beta
    assert [tuple(w.shape) for w in structure["weights"]] == \
        [(6, spec.input_dim), (6, 6), (6, 6), (4, 6)]
    theta = torch.eye(spec.input_dim, dtype=F64)
    for W in structure["weights"]:
        theta = (W + structure["beta"] * torch.eye(*W.shape, dtype=F64)) @ theta
    torch.testing.assert_close(theta, _end_to_end(model, spec.input_dim), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation, alpha", [("leaky_relu", 0.2), ("relu", 0.0)])
def test_linear_structure_leaky_one_hidden(activation, alpha):
    spec = ArchSpec(depth=1, width=9, activation=activation, leaky_alpha=0.2, input_dim=5,
                    output_dim=3)
    model = build_model(spec, seed=1)
    structure = model.linear_structure()
    assert structure["kind"] == "leaky_one_hidden" and structure["alpha"] == alpha
    V, W = structure["weights"]
    assert V.shape == (9, 5) and W.shape == (3, 9)
    x = _randn(8, 5)
    z = x @ V.T  # sigma(z) = max(z, alpha z): slope +alpha for negative z (gn-theory Sec. 9.1)
    torch.testing.assert_close(model(x), torch.where(z > 0, z, alpha * z) @ W.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs", [
    dict(activation="linear", bias=True),
    dict(activation="linear", batchnorm=True),
    dict(activation="relu"),
    dict(activation="tanh", depth=1),
    dict(activation="leaky_relu", depth=2),
    dict(activation="leaky_relu", depth=1, bias=True),
    dict(activation="leaky_relu", depth=1, family="resmlp", skip_beta=0.5),
    dict(activation="linear", family="resmlp", skip_beta=0.5, skip_every=2),
    dict(activation="linear", family="cnn", input_dim=None, input_shape=(1, 2, 2)),
], ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_linear_structure_none_without_closed_form(kwargs):
    spec = ArchSpec(**{"depth": 2, "width": 4, "input_dim": 4, "output_dim": 2, **kwargs})
    assert build_model(spec, 0).linear_structure() is None


def test_build_model_rejects_bad_arguments():
    with pytest.raises(GNAdvisorError, match="spec must be an ArchSpec, got dict"):
        build_model({"depth": 2}, 0)
    with pytest.raises(GNAdvisorError, match="seed must be a non-negative integer, got -1"):
        build_model(SPECS[0], -1)


# ---------------------------------------------------------------------------------- pruning
def test_build_pruned_model_dense_spec_is_build_model():
    spec = SPECS[0]
    dense, plain = build_pruned_model(spec, 3), build_model(spec, 3)
    assert all(torch.equal(a, b) for a, b in zip(dense.state_dict().values(), plain.state_dict().values()))
    assert not any(name.endswith("_mask") for name, _ in dense.named_buffers())


def _pruning():
    pruning = pytest.importorskip("gnadvisor.pruning")
    if not hasattr(pruning, "prune_model"):
        pytest.skip("gnadvisor.pruning.prune_model is not available yet")
    return pruning


def test_build_pruned_model_masks_weights_and_keeps_linear_structure():
    _pruning()
    spec = ArchSpec(family="resmlp", depth=2, width=8, activation="linear", skip_beta=0.5,
                    prune_scheme="magnitude", sparsity=0.5, input_dim=6, output_dim=3)
    model = build_pruned_model(spec, seed=1)
    again = build_pruned_model(spec, seed=1)
    assert sum(p.numel() for p in model.parameters()) == spec.n_params()
    for layer, other in zip(model.layers, again.layers):
        assert int((layer.weight == 0).sum()) == math.floor(0.5 * layer.weight.numel())
        assert torch.equal(layer.weight, other.weight)
    structure = model.linear_structure()
    theta = torch.eye(6, dtype=F64)
    for W in structure["weights"]:
        theta = (W + 0.5 * torch.eye(*W.shape, dtype=F64)) @ theta
    torch.testing.assert_close(theta, _end_to_end(model, 6), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scheme", ["snip", "synflow", "random"])
def test_build_pruned_model_schemes_with_and_without_data(scheme):
    _pruning()
    spec = ArchSpec(family="cnn", depth=2, width=4, batchnorm=True, prune_scheme=scheme,
                    sparsity=0.4, input_shape=(1, 4, 4), output_dim=2)
    X, Y = _input(spec, n=6), _randn(6, 2, seed=3)
    model = build_pruned_model(spec, 0, X=X, Y=Y) if scheme == "snip" else build_pruned_model(spec, 0)
    weights = [cv.weight for cv in model.convs] + [model.head.weight]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.4, abs=0.05)
    assert model(X).shape == (6, 2)
