"""Tests for gnadvisor.pruning: a contract every scheme passes, brute-force score checks, errors."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from gnadvisor._checks import GNAdvisorError
from gnadvisor.pruning import (
    SCHEMES,
    clone_model,
    grasp_scores,
    prunable_parameters,
    prune_model,
    snip_scores,
    sparsity_report,
    synflow_scores,
)

F64 = torch.float64


def _mlp(dtype=F64, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)


def _cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 4, 2), nn.Flatten(),
                         nn.Linear(4 * 3 * 3, 3)).to(F64)


def _data(shape=(4,), n=10, k=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=F64), torch.randn(n, k, generator=g, dtype=F64)


def _loss(net, X, Y):
    """Independent statement of the MSE convention: (1/(2n)) sum_i ||f(x_i) - y_i||^2."""
    return 0.5 * ((net(X) - Y) ** 2).sum(dim=1).mean()


def _masks(net):
    return {name: m.weight_mask for name, m, _ in _named_masked(net)}


def _named_masked(net):
    return [(n, m, p) for n, m, p in prunable_parameters(net) if hasattr(m, "weight_mask")]


def _prune(net, scheme, s, X, Y, **kw):
    return prune_model(net, scheme, s, X=X, Y=Y, **kw)


CASES = {"mlp": (_mlp, (4,)), "cnn": (_cnn, (1, 6, 6))}


# ---------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("case", sorted(CASES), ids=lambda c: f"case={c}")
@pytest.mark.parametrize("scheme", sorted(SCHEMES), ids=lambda s: f"scheme={s}")
class TestSchemeContract:
    """What every registered scheme guarantees."""

    @pytest.mark.parametrize("s", [0.37, 0.9])
    def test_exact_counts(self, scheme, case, s):
        make, shape = CASES[case]
        X, Y = _data(shape)
        net = _prune(make(), scheme, s, X, Y)
        report = sparsity_report(net)
        sizes = [m.weight_orig.numel() for _, m, _ in prunable_parameters(net)]
        pruned = [int((m.weight_mask == 0).sum()) for _, m, _ in prunable_parameters(net)]
        if SCHEMES[scheme].scope == "layer":
            assert pruned == [math.floor(s * n) for n in sizes]
        else:
            assert sum(pruned) == math.floor(s * sum(sizes))
        assert report["pruned"] == sum(pruned) and report["numel"] == sum(sizes)

    def test_masks_installed_through_torch_prune(self, scheme, case):
        make, shape = CASES[case]
        X, Y = _data(shape)
        net = _prune(make(), scheme, 0.5, X, Y)
        for _, module, _ in prunable_parameters(net):
            names = dict(module.named_parameters(recurse=False))
            assert "weight_orig" in names and "weight" not in names and "bias" in names
            assert "weight_mask" in dict(module.named_buffers(recurse=False))
            assert set(module.weight_mask.unique().tolist()) <= {0.0, 1.0}
            assert torch.equal(module.weight, module.weight_orig * module.weight_mask)
        assert not any(hasattr(m, "bias_mask") for m in net.modules())

    def test_forward_uses_masked_weights(self, scheme, case):
        make, shape = CASES[case]
        X, Y = _data(shape)
        original = make()
        net = _prune(original, scheme, 0.6, X, Y)
        manual = copy.deepcopy(original)
        with torch.no_grad():
            for (_, m_manual, _), (_, m_pruned, _) in zip(prunable_parameters(manual), prunable_parameters(net)):
                m_manual.weight.mul_(m_pruned.weight_mask)
        assert torch.allclose(net(X), manual(X), rtol=1e-12, atol=1e-14)

    def test_deterministic_and_input_untouched(self, scheme, case):
        make, shape = CASES[case]
        X, Y = _data(shape)
        model = make()
        state = copy.deepcopy(model.state_dict())
        a, b = _prune(model, scheme, 0.5, X, Y), _prune(model, scheme, 0.5, X, Y)
        assert all(torch.equal(a_m, _masks(b)[k]) for k, a_m in _masks(a).items())
        assert a is not model and not hasattr(model[0], "weight_mask")
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
        same = _prune(model, scheme, 0.5, X, Y, inplace=True)
        assert same is model and hasattr(model[0], "weight_mask")

    def test_sparsity_zero_installs_no_masks(self, scheme, case):
        make, shape = CASES[case]
        X, Y = _data(shape)
        model = make()
        net = _prune(model, scheme, 0.0, X, Y)
        assert not _named_masked(net) and sparsity_report(net)["sparsity"] == 0.0
        assert torch.equal(net(X), model(X))

    def test_float32_model_keeps_dtype(self, scheme, case):
        make, shape = CASES[case]
        X, Y = _data(shape)
        net = _prune(make().float(), scheme, 0.5, X.float(), Y.float())
        assert all(m.weight.dtype == torch.float32 and m.weight_mask.dtype == torch.float32
                   for _, m, _ in prunable_parameters(net))
        assert net(X.float()).dtype == torch.float32


# ------------------------------------------------------------------ scheme-specific checks


def test_magnitude_prunes_smallest_per_tensor():
    net = _prune(_mlp(), "magnitude", 0.4, None, None)
    for _, m, _ in prunable_parameters(net):
        w, keep = m.weight_orig.abs(), m.weight_mask.bool()
        assert w[~keep].max() <= w[keep].min()


def test_magnitude_count_robust_to_float_rounding():
    net = prune_model(nn.Linear(10, 10, bias=False), "magnitude", 0.29)
    assert int((net.weight_mask == 0).sum()) == 29  # 0.29 * 100 = 28.999999999999996


def test_magnitude_ties_still_exact():
    net = nn.Linear(5, 4, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    assert int((prune_model(net, "magnitude", 0.5).weight_mask == 0).sum()) == 10


def test_global_magnitude_one_threshold():
    net = _prune(_mlp(), "global-magnitude", 0.6, None, None)
    w = torch.cat([m.weight_orig.abs().flatten() for _, m, _ in prunable_parameters(net)])
    keep = torch.cat([m.weight_mask.bool().flatten() for _, m, _ in prunable_parameters(net)])
    assert w[~keep].max() <= w[keep].min()
    per_layer = [r["sparsity"] for r in sparsity_report(net)["tensors"].values()]
    assert len(set(per_layer)) > 1  # not layer-wise


def test_random_depends_on_seed_only():
    a = prune_model(_mlp(seed=0), "random", 0.5, seed=1)
    b = prune_model(_mlp(seed=5), "random", 0.5, seed=1)
    c = prune_model(_mlp(seed=0), "random", 0.5, seed=2)
    assert all(torch.equal(m, _masks(b)[k]) for k, m in _masks(a).items())
    assert any(not torch.equal(m, _masks(c)[k]) for k, m in _masks(a).items())


def _flat_weights(net):
    return [m.weight for _, m, _ in prunable_parameters(net)]


def test_snip_scores_match_finite_differences():
    net = _mlp()
    X, Y = _data()
    scores = snip_scores(net, X, Y)
    h = 1e-6
    probe = copy.deepcopy(net)
    for (name, _, _), w in zip(prunable_parameters(probe), _flat_weights(probe)):
        fd = torch.empty_like(w)
        with torch.no_grad():
            for i in range(w.numel()):
                w.view(-1)[i] += h
                up = _loss(probe, X, Y)
                w.view(-1)[i] -= 2 * h
                down = _loss(probe, X, Y)
                w.view(-1)[i] += h
                fd.view(-1)[i] = (up - down) / (2 * h)
        assert torch.allclose(scores[name], (fd * w).abs().detach(), rtol=1e-6, atol=1e-10)


def test_snip_masks_prune_lowest_saliency_globally():
    net = _mlp()
    X, Y = _data()
    scores = snip_scores(net, X, Y)
    pruned = prune_model(net, "snip", 0.5, X=X, Y=Y)
    s = torch.cat([scores[k].flatten() for k in scores])
    keep = torch.cat([m.flatten().bool() for m in _masks(pruned).values()])
    assert s[~keep].max() <= s[keep].min()


def _weight_grads(net, X, Y):
    ws = _flat_weights(net)
    return [g.detach() for g in torch.autograd.grad(_loss(net, X, Y), ws)]


def test_grasp_scores_match_finite_difference_hessian_vector_product():
    net = _mlp()
    X, Y = _data()
    scores = grasp_scores(net, X, Y)
    g = _weight_grads(net, X, Y)
    eps = 1e-5
    plus, minus = copy.deepcopy(net), copy.deepcopy(net)
    with torch.no_grad():
        for wp, wm, gi in zip(_flat_weights(plus), _flat_weights(minus), g):
            wp.add_(eps * gi)
            wm.sub_(eps * gi)
    Hg = [(a - b) / (2 * eps) for a, b in zip(_weight_grads(plus, X, Y), _weight_grads(minus, X, Y))]
    for (name, _, _), w, hg in zip(prunable_parameters(net), _flat_weights(net), Hg):
        expected = -(w.detach() * hg)
        assert torch.allclose(scores[name], expected, rtol=1e-5, atol=1e-9)
    assert any(float(s.abs().max()) > 1e-4 for s in scores.values())  # not trivially zero


def test_grasp_scores_match_explicit_hessian():
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2)).to(F64)
    X, Y = _data((2,), n=5, k=2)
    names = [n for n, _, _ in prunable_parameters(net)]
    shapes = [w.shape for w in _flat_weights(net)]
    sizes = [math.prod(s) for s in shapes]
    theta = torch.cat([w.detach().flatten() for w in _flat_weights(net)])
    params = dict(net.named_parameters())

    def loss_of(vec):
        chunks = torch.split(vec, sizes)
        p = {k: v for k, v in params.items()}
        for name, c, shp in zip(names, chunks, shapes):
            p[name] = c.reshape(shp)
        return 0.5 * ((torch.func.functional_call(net, p, (X,)) - Y) ** 2).sum(dim=1).mean()

    H = torch.autograd.functional.hessian(loss_of, theta)
    g = torch.autograd.functional.jacobian(loss_of, theta)
    expected = torch.split(-(theta * (H @ g)), sizes)
    scores = grasp_scores(net, X, Y)
    for name, e, shp in zip(names, expected, shapes):
        assert torch.allclose(scores[name], e.reshape(shp), rtol=1e-10, atol=1e-14)


def test_grasp_masks_prune_highest_scores():
    net = _mlp()
    X, Y = _data()
    scores = grasp_scores(net, X, Y)
    pruned = prune_model(net, "grasp", 0.3, X=X, Y=Y)
    s = torch.cat([scores[k].flatten() for k in scores])
    keep = torch.cat([m.flatten().bool() for m in _masks(pruned).values()])
    assert s[~keep].min() >= s[keep].max()


def test_synflow_scores_match_closed_form():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to(F64)
    W1, b1, W2 = net[0].weight.detach().abs(), net[0].bias.detach().abs(), net[2].weight.detach().abs()
    h = W1 @ torch.ones(3, dtype=F64) + b1  # positive, so the ReLU is the identity
    c = W2.sum(dim=0)  # dR/dh = 1^T |W2|
    scores = synflow_scores(net, (3,))
    assert torch.allclose(scores["0.weight"], c[:, None] * W1, rtol=1e-12)
    assert torch.allclose(scores["2.weight"], h[None, :] * W2, rtol=1e-12)
    keep = {"0.weight": torch.ones(4, 3, dtype=torch.bool), "2.weight": torch.ones(2, 4, dtype=torch.bool)}
    keep["0.weight"][1] = False  # hidden unit 1 loses all inputs
    masked = synflow_scores(net, (3,), masks=keep)
    h_masked = h - W1[1].sum() * torch.eye(4, dtype=F64)[1]
    assert torch.all(masked["0.weight"][1] == 0)
    assert torch.allclose(masked["2.weight"], h_masked[None, :] * W2, rtol=1e-12)


def test_synflow_iterations_follow_exponential_schedule():
    from gnadvisor.pruning._base import global_masks

    net = _mlp()
    s, T = 0.8, 4
    total = sum(w.numel() for w in _flat_weights(net))
    keep = None
    for j in range(1, T + 1):  # independent restatement of Tanaka et al., Algorithm 1
        sc = synflow_scores(net, (4,), masks=keep)
        if keep is not None:
            sc = {k: torch.where(keep[k], v, torch.tensor(-math.inf, dtype=F64)) for k, v in sc.items()}
        keep = global_masks(sc, math.floor((1 - (1 - s) ** (j / T)) * total + 1e-9))
    pruned = prune_model(net, "synflow", s, iterations=T)
    assert all(torch.equal(_masks(pruned)[k], keep[k].to(F64)) for k in keep)
    one_shot = prune_model(net, "synflow", s, iterations=1)
    assert any(not torch.equal(_masks(one_shot)[k], keep[k].to(F64)) for k in keep)


def test_synflow_batchnorm_in_eval_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).to(F64)
    plain = nn.Sequential(copy.deepcopy(net[0]), nn.ReLU(), copy.deepcopy(net[3]))
    with_bn, without = synflow_scores(net, (3,)), synflow_scores(plain, (3,))
    scale = 1 / math.sqrt(1 + net[1].eps)  # fresh running stats: BN(x) = x / sqrt(1 + eps)
    assert torch.allclose(with_bn["0.weight"], without["0.weight"] * scale, rtol=1e-12)
    assert torch.equal(net[1].running_mean, torch.zeros(4, dtype=F64)) and net.training


def test_synflow_input_shape_resolution():
    net = _cnn()
    with pytest.raises(GNAdvisorError, match="input_shape is required"):
        prune_model(net, "synflow", 0.5)
    X, _ = _data((1, 6, 6))
    a = prune_model(net, "synflow", 0.5, input_shape=(1, 6, 6), iterations=3)
    b = prune_model(net, "synflow", 0.5, X=X, iterations=3)
    assert all(torch.equal(m, _masks(b)[k]) for k, m in _masks(a).items())
    with pytest.raises(GNAdvisorError, match="input_shape must match"):
        prune_model(net, "synflow", 0.5, X=X, input_shape=(1, 7, 7))
    with pytest.raises(GNAdvisorError, match="iterations"):
        prune_model(_mlp(), "synflow", 0.5, iterations=0)


# ------------------------------------------------------------------------------- errors etc.


def test_unknown_scheme_lists_available():
    with pytest.raises(GNAdvisorError) as info:
        prune_model(_mlp(), "lottery", 0.5)
    assert all(repr(name) in str(info.value) for name in SCHEMES)


@pytest.mark.parametrize("s", [1.0, -0.1, 1.5, float("nan"), "half"])
def test_sparsity_outside_unit_interval_raises(s):
    with pytest.raises(GNAdvisorError, match="sparsity"):
        prune_model(_mlp(), "magnitude", s)


@pytest.mark.parametrize("scheme", ["snip", "grasp"])
def test_data_schemes_need_x_and_y(scheme):
    X, Y = _data()
    with pytest.raises(GNAdvisorError, match="needs data X and targets Y"):
        prune_model(_mlp(), scheme, 0.5, X=X)
    with pytest.raises(GNAdvisorError, match="Y must have shape"):
        prune_model(_mlp(), scheme, 0.5, X=X, Y=Y[:3])
    with pytest.raises(GNAdvisorError, match="model output"):
        prune_model(_mlp(), scheme, 0.5, X=X, Y=Y[:, :2])


def test_other_errors():
    with pytest.raises(GNAdvisorError, match="options"):
        prune_model(_mlp(), "magnitude", 0.5, iterations=3)
    with pytest.raises(GNAdvisorError, match="nn.Linear or nn.Conv"):
        prune_model(nn.Sequential(nn.ReLU()), "magnitude", 0.5)
    with pytest.raises(GNAdvisorError, match="pruned already"):
        prune_model(prune_model(_mlp(), "magnitude", 0.5), "magnitude", 0.5)


def test_sparsity_report_unpruned_and_pruned():
    net = _mlp()
    r = sparsity_report(net)
    assert list(r["tensors"]) == ["0.weight", "2.weight", "4.weight"]
    assert r["pruned"] == 0 and not any(t["masked"] for t in r["tensors"].values())
    p = prune_model(net, "magnitude", 0.5)
    r = sparsity_report(p)
    assert [t["pruned"] for t in r["tensors"].values()] == [12, 15, 7]
    assert r["numel"] == 24 + 30 + 15 and r["sparsity"] == pytest.approx(34 / 69)


def test_clone_model_of_pruned_model_after_forward():
    net = prune_model(_mlp(), "random", 0.5)
    X, _ = _data()
    net(X)
    with pytest.raises(RuntimeError):
        copy.deepcopy(net)  # why clone_model exists
    clone = clone_model(net)
    assert torch.equal(clone(X), net(X))
    with torch.no_grad():
        clone[0].weight_orig.add_(1.0)
    assert not torch.equal(clone[0].weight_orig, net[0].weight_orig)
    assert torch.equal(clone(X), clone(X)) and not torch.equal(clone(X), net(X))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_random_masks_are_independent_of_weights_built_with_the_same_seed(seed):
    """build_model(spec, seed) and the random masks of the same seed must not share a stream:
    with torch's generator, normal draws are transformed uniforms, and sharing the seed kept
    mostly negative weights (23 % positive at s = 0.5)."""
    from gnadvisor import ArchSpec, build_model
    from gnadvisor.pruning.random_masks import random_masks

    spec = ArchSpec.from_dict({"family": "mlp", "depth": 2, "width": 64, "activation": "relu",
                               "input_dim": 64, "output_dim": 10, "bias": False})
    net = build_model(spec, seed)
    masks = random_masks(net, 0.5, seed=seed)
    params = dict(net.named_parameters())
    for name, keep in masks.items():
        w = params[name].detach()
        kept_positive = float((w[keep] > 0).double().mean())
        assert 0.4 < kept_positive < 0.6, (name, kept_positive)
        corr = np.corrcoef(w.flatten().numpy(), keep.flatten().double().numpy())[0, 1]
        assert abs(corr) < 0.1, (name, corr)
