"""gn_forecast: exact for models linear in their parameters, consistent with gn_spectrum otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import gnadvisor as gna
from gnadvisor._checks import GNAdvisorError
from gnadvisor.forecast import Forecast, LinearisedForecast, forecast_curve, gn_forecast, linearised_forecast
from gnadvisor.search import ArchSpec, build_model


def _data(n=24, d=5, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, k, generator=g)


class RandomFeatures(nn.Module):
    """f(x) = W tanh(V x) + b with V frozen: linear in the trainable (W, b)."""

    def __init__(self, d, m, k):
        super().__init__()
        self.V = nn.Linear(d, m, bias=False)
        self.V.weight.requires_grad_(False)
        self.out = nn.Linear(m, k)

    def forward(self, x):
        return self.out(torch.tanh(self.V(x)))


@pytest.mark.parametrize("lr_scale", [0.5, 1.0, 1.9], ids=lambda c: f"c={c}")
@pytest.mark.parametrize("case", ["linear-bias", "linear-nobias-rankdeficient", "random-features"])
def test_forecast_equals_gd_on_models_linear_in_parameters(case, lr_scale):
    torch.manual_seed(1)
    if case == "linear-bias":
        X, Y = _data(n=24, d=5, k=3)
        net = nn.Linear(5, 3)
    elif case == "linear-nobias-rankdeficient":  # n k = 60 > p = 15: zero modes never decay
        X, Y = _data(n=20, d=5, k=3)
        net = nn.Linear(5, 3, bias=False)
    else:
        X, Y = _data(n=16, d=4, k=2)
        net = RandomFeatures(4, 40, 2)
    fc = gn_forecast(net, X, Y, steps=60, lr_scale=lr_scale, device="cpu")
    real = gna.train(net, X, Y, steps=60, lr=fc.lr, optimizer="gd")
    np.testing.assert_allclose(fc.losses, real.losses, rtol=1e-8, atol=1e-12)
    assert fc.lr == pytest.approx(lr_scale / fc.lambda_max, rel=1e-14)
    assert fc.ratio == pytest.approx(real.final_loss / real.losses[0], rel=1e-8)
    assert fc.log_decrease == pytest.approx(math.log(real.losses[0] / real.final_loss), abs=1e-8)
    if case == "linear-nobias-rankdeficient":
        assert fc.rank == 15 and fc.loss_floor > 0
        assert real.final_loss > fc.loss_floor  # GD approaches but never passes the floor


def test_forecast_explicit_lr_matches_gd_and_flags_instability():
    X, Y = _data()
    torch.manual_seed(2)
    net = nn.Linear(5, 3)
    base = gn_forecast(net, X, Y, steps=10, device="cpu")
    lr = 2.2 / base.lambda_max
    fc = gn_forecast(net, X, Y, steps=10, lr=lr, device="cpu")
    assert not fc.stable and fc.lr_scale is None
    real = gna.train(net, X, Y, steps=10, lr=lr)
    np.testing.assert_allclose(fc.losses, real.losses, rtol=1e-8)
    assert fc.losses[-1] > fc.losses[0]  # unstable: the top mode grows
    # with_schedule reuses the eigendecomposition
    again = base.with_schedule(lr=lr)
    np.testing.assert_allclose(again.losses, fc.losses, rtol=1e-12)
    longer = base.with_schedule(steps=25)
    assert longer.losses.shape == (26,) and longer.lr == base.lr
    np.testing.assert_allclose(longer.losses[:11], base.losses, rtol=1e-12)


def test_forecast_curve_closed_form():
    lam = np.array([4.0, 1.0, 0.0])
    p = np.array([2.0, 3.0, 5.0])
    out = forecast_curve(lam, p, 2, steps=3, lr=0.25)
    expect = [sum((1 - 0.25 * l) ** (2 * t) * pi for l, pi in zip(lam, p)) / 4 for t in range(4)]
    np.testing.assert_allclose(out, expect, rtol=1e-15)


def test_forecast_spectrum_matches_gn_spectrum_on_nonlinear_nets():
    ds = gna.load_data("digits", n_samples=30, seed=0)
    for spec in (ArchSpec(depth=2, width=16, activation="tanh", bias=True, input_dim=64, output_dim=10),
                 ArchSpec(depth=2, width=8, activation="relu", batchnorm=True, input_dim=64, output_dim=10)):
        net = build_model(spec, 0)
        fc = gn_forecast(net, ds.X, ds.Y, steps=5, device="cpu")
        ref = gna.gn_spectrum(net, ds.X, method="jacobian", device="cpu")
        assert fc.lambda_max == pytest.approx(ref.lambda_max, rel=1e-9)
        assert fc.rank == ref.rank
        assert fc.condition_number == pytest.approx(ref.condition_number, rel=1e-6)
        # projections decompose the initial residual energy: sum = 2 n L0
        assert fc.projections.sum() == pytest.approx(2 * 30 * fc.initial_loss, rel=1e-10)
        assert fc.initial_loss == pytest.approx(gna.train(net, ds.X, ds.Y, steps=0, lr=1.0).losses[0], rel=1e-12)


def test_forecast_is_first_order_accurate_for_small_steps():
    """Nonlinear net, tiny steps: forecast and GD agree to O(lr^2)."""
    ds = gna.load_data("digits", n_samples=20, seed=1)
    net = build_model(ArchSpec(depth=2, width=32, activation="gelu", bias=True, input_dim=64, output_dim=10), 0)
    errs = []
    for scale in (0.02, 0.01):
        fc = gn_forecast(net, ds.X, ds.Y, steps=3, lr_scale=scale, device="cpu")
        real = gna.train(net, ds.X, ds.Y, steps=3, lr=fc.lr).losses
        errs.append(abs(fc.losses[-1] - real[-1]) / real[0])
    assert errs[1] < errs[0] / 3  # second order: halving lr divides the error by ~4


def test_forecast_pruned_model_trains_kept_coordinates_exactly():
    """A pruned single Linear layer is still linear in its kept parameters."""
    X, Y = _data(n=12, d=6, k=2)
    net = gna.prune_model(nn.Linear(6, 2), "random", 0.5, seed=0)
    fc = gn_forecast(net, X, Y, steps=20, device="cpu")
    real = gna.train(net, X, Y, steps=20, lr=fc.lr)
    assert fc.n_params == 6 + 2  # 12 weights, half pruned, plus 2 biases
    np.testing.assert_allclose(fc.losses, real.losses, rtol=1e-8)


def test_forecast_record_and_errors():
    X, Y = _data()
    net = nn.Linear(5, 3)
    fc = gn_forecast(net, X, Y, steps=4, device="cpu")
    assert isinstance(fc, Forecast)
    d = fc.to_dict()
    assert len(d["losses"]) == 5 and d["steps"] == 4 and "eigenvalues" not in d
    assert len(fc.to_dict(with_eigenvalues=True)["eigenvalues"]) == 24 * 3
    with pytest.raises(GNAdvisorError, match=r"Y must have the model's output shape \(24, 3\)"):
        gn_forecast(net, X, Y[:, :2], steps=3)
    with pytest.raises(GNAdvisorError, match="at most one of lr and lr_scale"):
        gn_forecast(net, X, Y, steps=3, lr=0.1, lr_scale=1.0)
    with pytest.raises(GNAdvisorError, match="steps must be a non-negative integer"):
        gn_forecast(net, X, Y, steps=-1)
    with pytest.raises(GNAdvisorError, match="lr must be a finite number > 0"):
        gn_forecast(net, X, Y, steps=3, lr=0.0)
    bad = Y.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(GNAdvisorError, match="Y must contain only finite values"):
        gn_forecast(net, X, bad, steps=3)


# ---------------------------------------------------------------------------- linearised_forecast
def _torch_adam(net, X, Y, *, steps, lr, betas, eps):
    """Reference: torch.optim.Adam, full batch, float64, loss ||f(X) - Y||^2 / (2 n)."""
    import copy

    net = copy.deepcopy(net).double()
    X, Y = X.double(), Y.double()
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=betas, eps=eps)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((net(X) - Y) ** 2).sum() / (2 * X.shape[0])
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
    with torch.no_grad():
        losses.append(float(((net(X) - Y) ** 2).sum() / (2 * X.shape[0])))
    return np.array(losses)


@pytest.mark.parametrize("lr,betas,eps", [(1e-3, (0.9, 0.999), 1e-8), (0.05, (0.9, 0.999), 1e-8),
                                          (0.2, (0.8, 0.99), 1e-3), (0.01, (0.0, 0.5), 0.0)],
                         ids=["default", "lr0.05", "betas-eps", "no-momentum"])
def test_linearised_adam_equals_torch_adam_on_linear_model(lr, betas, eps):
    X, Y = _data(n=24, d=5, k=3, seed=3)
    torch.manual_seed(4)
    net = nn.Linear(5, 3)  # with bias: linear in its parameters, so the linearisation is exact
    fc = linearised_forecast(net, X, Y, steps=80, optimizer="adam", lr=lr, betas=betas, eps=eps, device="cpu")
    real = _torch_adam(net, X, Y, steps=80, lr=lr, betas=betas, eps=eps)
    assert isinstance(fc, LinearisedForecast) and fc.losses.shape == (81,)
    np.testing.assert_allclose(fc.losses, real, rtol=1e-8, atol=1e-8 * real[0])
    assert fc.log_decrease == pytest.approx(math.log(real[0] / real[-1]), abs=1e-8)
    assert fc.n_params == 18 and fc.step_norm > 0


def test_linearised_adam_matches_train_on_random_features_and_pruned_linear():
    X, Y = _data(n=16, d=4, k=2, seed=5)
    torch.manual_seed(6)
    for net in (RandomFeatures(4, 40, 2), gna.prune_model(nn.Linear(4, 2), "random", 0.5, seed=0)):
        fc = linearised_forecast(net, X, Y, steps=40, lr=0.03, device="cpu")
        real = gna.train(net, X, Y, steps=40, optimizer="adam", lr=0.03)  # torch's default betas and eps
        np.testing.assert_allclose(fc.losses, real.losses, rtol=1e-8, atol=1e-8 * real.losses[0])
    assert fc.n_params == 4 + 2  # pruned: kept weights and biases only


def test_linearised_gd_is_the_gn_forecast_recurrence_on_nonlinear_nets():
    """optimizer="gd" iterates r <- (I - lr K) r: the closed form of gn_forecast, any model."""
    ds = gna.load_data("digits", n_samples=24, seed=0)
    nets = [build_model(ArchSpec(depth=2, width=16, activation="tanh", bias=True, input_dim=64, output_dim=10), 0),
            build_model(ArchSpec(depth=2, width=8, activation="relu", batchnorm=True, input_dim=64, output_dim=10), 1),
            gna.prune_model(build_model(ArchSpec(depth=2, width=12, activation="gelu", bias=True, input_dim=64,
                                                 output_dim=10), 2), "magnitude", 0.5)]
    for net in nets:
        gd = gn_forecast(net, ds.X, ds.Y, steps=40, lr_scale=1.5, device="cpu")
        lin = linearised_forecast(net, ds.X, ds.Y, steps=40, optimizer="gd", lr=gd.lr, device="cpu")
        np.testing.assert_allclose(lin.losses, gd.losses, rtol=1e-9, atol=1e-12 * gd.losses[0])
        assert lin.n_params == gd.n_params


def test_linearised_adam_is_first_order_accurate_for_small_steps():
    """Nonlinear net: the linearised Adam run and real Adam agree to O(lr^2) over a few steps."""
    ds = gna.load_data("digits", n_samples=32, seed=2)
    net = build_model(ArchSpec(depth=2, width=32, activation="tanh", bias=True, input_dim=64, output_dim=10), 0)
    errs = []
    for lr in (2e-4, 1e-4):
        fc = linearised_forecast(net, ds.X, ds.Y, steps=3, lr=lr, device="cpu")
        real = gna.train(net, ds.X, ds.Y, steps=3, optimizer="adam", lr=lr).losses
        assert fc.losses[0] == pytest.approx(real[0], rel=1e-12)
        errs.append(abs(fc.losses[-1] - real[-1]) / real[0])
    assert errs[1] < errs[0] / 3  # second order: halving lr divides the error by ~4


def test_linearised_forecast_record_and_errors():
    X, Y = _data()
    net = nn.Linear(5, 3)
    fc = linearised_forecast(net, X, Y, steps=3, device="cpu")
    d = fc.to_dict()
    assert d["optimizer"] == "adam" and d["lr"] == 1e-3 and d["betas"] == [0.9, 0.999] and len(d["losses"]) == 4
    assert "losses" not in fc.to_dict(with_curve=False) and fc.final_loss == fc.losses[-1]
    assert linearised_forecast(net, X, Y, steps=0, device="cpu").log_decrease == 0.0
    with pytest.raises(GNAdvisorError, match="optimizer must be one of 'gd', 'adam'"):
        linearised_forecast(net, X, Y, steps=3, optimizer="sgd")
    with pytest.raises(GNAdvisorError, match=r"betas must be two numbers in \[0, 1\)"):
        linearised_forecast(net, X, Y, steps=3, betas=(0.9, 1.0))
    with pytest.raises(GNAdvisorError, match="eps must be a finite number >= 0"):
        linearised_forecast(net, X, Y, steps=3, eps=-1.0)
    with pytest.raises(GNAdvisorError, match="lr must be a finite number > 0"):
        linearised_forecast(net, X, Y, steps=3, lr=0.0)
    with pytest.raises(GNAdvisorError, match=r"Y must have the model's output shape \(24, 3\)"):
        linearised_forecast(net, X, Y[:, :2], steps=3)
