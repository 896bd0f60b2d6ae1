"""Zero-cost baselines against brute-force or closed-form values on tiny models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

import gnadvisor as gna
from gnadvisor.search import ArchSpec, build_model
from gnadvisor.validation import grad_norm, naswot, snip, synflow, tenas_kappa


def _data(n=10, d=4, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, k, generator=g)


def test_grad_norm_and_snip_closed_form_linear():
    X, Y = _data()
    torch.manual_seed(0)
    net = nn.Linear(4, 3, bias=False)
    W = net.weight.detach()
    G = (X @ W.T - Y).T @ X / X.shape[0]  # dL/dW for L = ||XW^T - Y||^2 / (2n)
    assert grad_norm(net, X, Y) == pytest.approx(float(G.norm()), rel=1e-12)
    assert snip(net, X, Y) == pytest.approx(float((G * W).abs().sum()), rel=1e-12)


def test_grad_norm_counts_only_kept_coordinates_of_pruned_models():
    X, Y = _data()
    torch.manual_seed(1)
    dense = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    pruned = gna.prune_model(dense, "random", 0.5, seed=0)
    # reference: dense model with the pruned weights zeroed, gradients masked
    ref = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    masks = {0: pruned[0].weight_mask, 2: pruned[2].weight_mask}
    with torch.no_grad():
        for i in (0, 2):
            ref[i].weight.copy_(dense[i].weight * masks[i])
            ref[i].bias.copy_(dense[i].bias)
    loss = 0.5 * (ref(X) - Y).pow(2).sum() / X.shape[0]
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    sq = sum(float(((g * masks[i]) ** 2).sum()) for g, i in ((grads[0], 0), (grads[2], 2)))
    sq += float((grads[1] ** 2).sum() + (grads[3] ** 2).sum())
    assert grad_norm(pruned, X, Y) == pytest.approx(math.sqrt(sq), rel=1e-12)
    sn = sum(float((grads[j] * ref[i].weight.detach()).abs().sum()) for j, i in ((0, 0), (2, 2)))
    assert snip(pruned, X, Y) == pytest.approx(sn, rel=1e-12)


def test_synflow_equals_depth_times_R_for_bias_free_nets():
    """R = 1^T |W_L| ... |W_1| 1 is degree-1 homogeneous in each layer: sum |w dR/dw| = L R."""
    torch.manual_seed(2)
    for depth in (1, 3):
        spec = ArchSpec(depth=depth, width=5, activation="relu", input_dim=4, output_dim=3)
        net = build_model(spec, seed=3)
        Ws = [layer.weight.detach().abs() for layer in net.layers]
        R = torch.ones(1, 4)
        for W in Ws:
            R = R @ W.T
        assert math.exp(synflow(net, (4,))) == pytest.approx((depth + 1) * float(R.sum()), rel=1e-10)


def test_synflow_pruned_model_uses_masked_weights():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(4, 5, bias=False), nn.Linear(5, 2, bias=False))
    pruned = gna.prune_model(net, "random", 0.5, seed=1)
    masked = nn.Sequential(nn.Linear(4, 5, bias=False), nn.Linear(5, 2, bias=False))
    with torch.no_grad():
        masked[0].weight.copy_(pruned[0].weight)
        masked[1].weight.copy_(pruned[1].weight)
    assert synflow(pruned, (4,)) == pytest.approx(synflow(masked, (4,)), rel=1e-12)


def test_naswot_brute_force_hamming():
    X, _ = _data(n=7, d=3)
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    with torch.no_grad():
        z1 = net[0](X)
        z2 = net[2](torch.relu(z1))
    codes = torch.cat([z1 > 0, z2 > 0], dim=1).numpy()
    NA = codes.shape[1]
    K = np.array([[NA - int((codes[i] != codes[j]).sum()) for j in range(7)] for i in range(7)], dtype=float)
    assert abs(np.linalg.det(K)) > 1.0
    assert naswot(net, X) == pytest.approx(math.log(abs(np.linalg.det(K))), rel=1e-10)
    # identical samples -> singular kernel
    assert naswot(net, torch.cat([X[:3], X[:1]])) == -math.inf


def test_tenas_kappa_matches_jacobian_of_summed_logits():
    X, _ = _data(n=6, d=4)
    for spec in (ArchSpec(depth=2, width=7, activation="tanh", bias=True, input_dim=4, output_dim=3),
                 ArchSpec(depth=1, width=5, activation="relu", batchnorm=True, input_dim=4, output_dim=3)):
        net = build_model(spec, seed=0)
        torch.func.replace_all_batch_norm_modules_(net)  # batch statistics, no running-stat updates
        params = {k: v.detach() for k, v in net.named_parameters()}

        def summed(p):  # full batch: batch norm couples the samples
            return functional_call(net, p, (X,)).sum(dim=1)

        jac = jacrev(summed)(params)
        J = torch.cat([j.reshape(6, -1) for j in jac.values()], dim=1)
        ev = torch.linalg.eigvalsh(J @ J.T)
        expect = math.log10(float(ev[-1] / ev[0]))
        assert tenas_kappa(net, X, device="cpu") == pytest.approx(expect, rel=1e-8)
