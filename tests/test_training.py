"""Tests for gnadvisor.training.train: GD closed form, optimisers, determinism, masks, divergence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gnadvisor._checks import GNAdvisorError
from gnadvisor.pruning import prune_model
from gnadvisor.training import TrainResult, train


def _data(n=40, d=5, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    Y = torch.randn(n, k, generator=g, dtype=torch.float64)
    return X, Y


def _mlp(d=5, k=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 8), nn.Tanh(), nn.Linear(8, k))


def test_train_gd_matches_closed_form_least_squares_iterate():
    X, Y = _data()
    n = X.shape[0]
    net = nn.Linear(5, 3, bias=False).double()
    W0 = net.weight.detach().clone().numpy()
    lr, steps = 0.3, 60
    res = train(net, X, Y, steps=steps, optimizer="gd", lr=lr)

    Xn, Yn = X.numpy(), Y.numpy()
    Sigma = Xn.T @ Xn / n
    W_star = np.linalg.solve(Sigma, (Yn.T @ Xn / n).T).T  # W* Sigma = Y^T X / n
    lam, V = np.linalg.eigh(Sigma)
    expected = []
    for t in range(steps + 1):
        contraction = V @ np.diag((1 - lr * lam) ** t) @ V.T  # (I - lr Sigma)^t
        W_t = W_star + (W0 - W_star) @ contraction
        expected.append(0.5 * np.sum((Xn @ W_t.T - Yn) ** 2) / n)
    assert isinstance(res, TrainResult)
    assert res.losses.shape == (steps + 1,)
    assert np.allclose(res.losses, expected, rtol=1e-10, atol=0)
    assert res.final_loss == res.losses[-1] and not res.diverged and res.steps_completed == steps
    assert np.allclose(res.model.weight.detach().numpy(), W_star + (W0 - W_star) @ contraction)
    assert res.batch_size == n and res.optimizer == "gd" and res.lr == lr


def test_train_loss_convention_half_mean_squared_norm():
    X, Y = _data()
    net = _mlp()
    res = train(net, X, Y, steps=0, lr=0.1)
    with torch.no_grad():
        expected = 0.5 * ((net.double()(X) - Y) ** 2).sum(dim=1).mean()
    assert res.losses.tolist() == pytest.approx([float(expected)], rel=1e-12)


def test_train_does_not_mutate_caller_model():
    X, Y = _data()
    net = _mlp()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    dtype = next(net.parameters()).dtype
    res = train(net, X, Y, steps=5, optimizer="adam", lr=0.01)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert next(net.parameters()).dtype == dtype
    assert res.model is not net and next(res.model.parameters()).dtype == torch.float64


@pytest.mark.parametrize("optimizer", ["gd", "sgd", "adam"])
def test_train_decreases_loss_and_is_deterministic(optimizer):
    X, Y = _data(n=100)
    net = _mlp()
    kw = dict(steps=30, optimizer=optimizer, lr=0.01 if optimizer == "adam" else 0.1, seed=3)
    a, b = train(net, X, Y, **kw), train(net, X, Y, **kw)
    assert a.losses[-1] < a.losses[0]
    assert np.array_equal(a.losses, b.losses)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_train_sgd_seed_changes_batches_and_default_batch_size():
    X, Y = _data(n=100)
    net = _mlp()
    a = train(net, X, Y, steps=10, optimizer="sgd", lr=0.1, seed=0)
    b = train(net, X, Y, steps=10, optimizer="sgd", lr=0.1, seed=1)
    assert a.batch_size == 64
    assert a.losses[0] == b.losses[0] and not np.array_equal(a.losses, b.losses)
    full = train(net, X, Y, steps=10, optimizer="sgd", lr=0.1, batch_size=1000)
    gd = train(net, X, Y, steps=10, optimizer="gd", lr=0.1)
    assert full.batch_size == 100 and np.allclose(full.losses, gd.losses, rtol=1e-12)


def test_train_sgd_step_uses_minibatch_gradient():
    X, Y = _data(n=6, d=2, k=1)
    net = nn.Linear(2, 1, bias=False).double()
    res = train(net, X, Y, steps=1, optimizer="sgd", lr=0.5, batch_size=4, seed=5)
    idx = torch.randperm(6, generator=torch.Generator().manual_seed(5))[:4]
    W = net.weight.detach()
    grad = (X[idx] @ W.T - Y[idx]).T @ X[idx] / 4
    assert torch.allclose(res.model.weight.detach(), W - 0.5 * grad, rtol=1e-12)


def test_train_record_every():
    X, Y = _data()
    res = train(_mlp(), X, Y, steps=10, lr=0.1, record_every=4)
    assert res.loss_steps.tolist() == [0, 4, 8, 10] and res.losses.shape == (4,)
    every = train(_mlp(), X, Y, steps=10, lr=0.1)
    assert np.allclose(res.losses, every.losses[[0, 4, 8, 10]], rtol=1e-12)


def test_train_divergence_stops_and_pads_with_inf():
    X, Y = _data()
    res = train(nn.Linear(5, 3).double(), X, Y, steps=3000, lr=50.0)
    assert res.diverged and res.final_loss == np.inf
    assert res.losses.shape == (3001,)
    k = res.steps_completed
    assert 0 < k < 3000
    assert np.all(np.isfinite(res.losses[:k])) and np.all(res.losses[k:] == np.inf)


def test_train_masks_stay_fixed_and_pruned_weights_zero():
    X, Y = _data(n=60)
    net = prune_model(_mlp(), "magnitude", 0.5)
    for optimizer in ("gd", "adam", "sgd"):
        res = train(net, X, Y, steps=25, optimizer=optimizer, lr=0.05, batch_size=None if optimizer != "sgd" else 16)
        for m_old, m_new in ((net[0], res.model[0]), (net[2], res.model[2])):
            pruned = m_old.weight_mask == 0
            assert torch.equal(m_new.weight_mask, m_old.weight_mask.double())
            assert torch.all(m_new.weight[pruned] == 0)
            assert torch.equal(m_new.weight, m_new.weight_orig * m_new.weight_mask)  # not stale
            assert torch.equal(m_new.weight_orig[pruned], m_old.weight_orig[pruned].double())
            assert not torch.equal(m_new.weight_orig[~pruned], m_old.weight_orig[~pruned].double())
        assert res.losses[-1] < res.losses[0]


def test_train_keep_masks_false_lets_pruned_weights_grow():
    X, Y = _data(n=60)
    net = prune_model(_mlp(), "magnitude", 0.5)
    res = train(net, X, Y, steps=5, lr=0.1, keep_masks=False)
    assert not hasattr(res.model[0], "weight_mask")
    pruned = net[0].weight_mask == 0
    assert torch.any(res.model[0].weight.detach()[pruned] != 0)


def test_train_batchnorm_running_stats_not_touched_by_recording():
    X, Y = _data(n=50)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    res = train(net, X, Y, steps=0, lr=0.1)
    bn = res.model[1]
    assert torch.equal(bn.running_mean, torch.zeros(6, dtype=torch.float64))
    assert int(bn.num_batches_tracked) == 0
    res = train(net, X, Y, steps=3, lr=0.1)
    assert int(res.model[1].num_batches_tracked) == 3  # one per training forward


@pytest.mark.parametrize("kw, match", [
    (dict(optimizer="lbfgs"), "optimizer"),
    (dict(lr=0.0), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(steps=-1), "steps"),
    (dict(record_every=0), "record_every"),
    (dict(batch_size=8), "batch_size"),
    (dict(seed=-2), "seed"),
])
def test_train_bad_arguments_raise(kw, match):
    X, Y = _data()
    args = dict(steps=2, lr=0.1) | kw
    with pytest.raises(GNAdvisorError, match=match):
        train(_mlp(), X, Y, **args)


def test_train_shape_mismatch_raises():
    X, Y = _data()
    with pytest.raises(GNAdvisorError, match="model output"):
        train(_mlp(k=2), X, Y, steps=1, lr=0.1)
    with pytest.raises(GNAdvisorError, match="Y must have shape"):
        train(_mlp(), X, Y[:5], steps=1, lr=0.1)
