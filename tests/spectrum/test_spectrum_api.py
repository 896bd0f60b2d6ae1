"""gn_spectrum's options, its kappa-only mode, and its one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import gnadvisor as gna
from gnadvisor import GNAdvisorError

from cases import batchnorm_mlp, mlp, naive_gn_eigenvalues, naive_jacobian


def _mlp(d=8, m=64, k=10, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, m), nn.Tanh(), nn.Linear(m, k)).double()


def test_kappa_only_mode_matches_full_spectrum():
    net = _mlp()
    X = torch.randn(160, 8)  # n*k = 1600 > the full-eig threshold, p = 5386: Gram full rank
    full = gna.gn_spectrum(net, X, method="gram")
    fast = gna.gn_spectrum(net, X, method="gram", full=False)
    assert fast.eigenvalues is None and any("kappa-only" in n for n in fast.notes)
    assert fast.rank == full.rank == 1600 and math.isinf(fast.spectral_gap)
    assert fast.condition_number == pytest.approx(full.condition_number, rel=1e-8)
    assert fast.lambda_min == pytest.approx(full.lambda_min, rel=1e-8)


def test_kappa_only_mode_falls_back_when_gram_is_rank_deficient():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 10)).double()  # p = 238 < n*k
    X = torch.randn(160, 8)
    fast = gna.gn_spectrum(net, X, method="gram", full=False)
    ref = gna.gn_spectrum(net, X, method="jacobian")
    assert fast.eigenvalues is not None and fast.rank == ref.rank < 1600
    assert fast.condition_number == pytest.approx(ref.condition_number, rel=1e-8)


def test_batchnorm_train_and_eval_modes_match_naive_and_leave_model_untouched():
    net, X = batchnorm_mlp()
    stats = net[1].running_mean.clone()
    s_train = gna.gn_spectrum(net, X, batchnorm="train")
    s_eval = gna.gn_spectrum(net, X, batchnorm="eval")
    assert torch.equal(net[1].running_mean, stats) and net.training
    ev = naive_gn_eigenvalues(naive_jacobian(net, X), X.shape[0])  # train mode: full-batch statistics
    np.testing.assert_allclose(s_train.eigenvalues, ev[: s_train.rank], rtol=1e-9)
    fresh, _ = batchnorm_mlp()  # the naive train-mode pass above updated net's running stats
    fresh.eval()
    ev = naive_gn_eigenvalues(naive_jacobian(fresh, X), X.shape[0])
    np.testing.assert_allclose(s_eval.eigenvalues, ev[: s_eval.rank], rtol=1e-9)
    assert s_train.condition_number != pytest.approx(s_eval.condition_number, rel=1e-3)


def test_params_selection_weights_only_and_by_name():
    net, X = mlp(nn.GELU)
    s = gna.gn_spectrum(net, X, params="weights")
    weights = [net[0].weight, net[2].weight, net[4].weight]
    ev = naive_gn_eigenvalues(naive_jacobian(net, X, weights), X.shape[0])
    np.testing.assert_allclose(s.eigenvalues, ev[: s.rank], rtol=1e-9)
    assert s.n_params == sum(w.numel() for w in weights)
    s2 = gna.gn_spectrum(net, X, params=["0.weight", "2.weight", "4.weight"])
    assert s2.condition_number == pytest.approx(s.condition_number, rel=1e-10)
    s3 = gna.gn_spectrum(net, X, params=lambda name, t: name.endswith("weight"))
    assert s3.condition_number == pytest.approx(s.condition_number, rel=1e-10)


def test_zeroed_weights_as_masks():
    net, X = mlp(nn.Tanh)
    with torch.no_grad():
        net[2].weight[:, :3] = 0.0
    s_zeros = gna.gn_spectrum(net, X, masks="zeros")
    s_dict = gna.gn_spectrum(net, X, masks={"2.weight": net[2].weight != 0})
    s_plain = gna.gn_spectrum(net, X)
    assert s_zeros.n_params == s_plain.n_params - net[2].weight.shape[0] * 3
    assert s_zeros.condition_number == pytest.approx(s_dict.condition_number, rel=1e-10)


def test_spectrum_to_dict_is_json_safe_and_coarser_cut():
    import json

    net, X = mlp(nn.ReLU)
    s = gna.gn_spectrum(net, X)
    d = json.loads(json.dumps(s.to_dict(with_eigenvalues=True)))
    assert d["condition_number"] == pytest.approx(s.condition_number)
    assert len(d["eigenvalues"]) == s.rank
    coarse = s.condition_number_at(1e-3)
    assert coarse <= s.condition_number
    assert coarse == pytest.approx(s.lambda_max / s.eigenvalues[s.eigenvalues > 1e-3 * s.lambda_max][-1])


def test_input_does_not_fit_model():
    with pytest.raises(GNAdvisorError, match=r"could not be applied to inputs of shape \(10, 4\)"):
        gna.gn_spectrum(_mlp(d=5), torch.randn(10, 4))


def test_non_finite_weights_and_inputs_and_outputs():
    net = _mlp()
    with torch.no_grad():
        net[2].weight[0, 0] = float("nan")
    with pytest.raises(GNAdvisorError, match=r"'2.weight' contains NaN"):
        gna.gn_spectrum(net, torch.randn(10, 8))
    with pytest.raises(GNAdvisorError, match="X contains NaN"):
        gna.gn_spectrum(_mlp(), torch.full((10, 8), float("inf")))

    class Blowup(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            return self.lin(x) / 0.0

    with pytest.raises(GNAdvisorError, match="output contains NaN or infinite"):
        gna.gn_spectrum(Blowup(), torch.randn(5, 3))


def test_no_trainable_parameters():
    net = _mlp().requires_grad_(False)
    with pytest.raises(GNAdvisorError, match="no trainable parameters"):
        gna.gn_spectrum(net, torch.randn(10, 8))


def test_all_zero_gauss_newton():
    net = nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 2, bias=False)).double()
    nn.init.zeros_(net[0].weight)
    nn.init.zeros_(net[2].weight)
    for method in ("auto", "gram", "jacobian", "lanczos"):
        with pytest.raises(GNAdvisorError, match="Gauss-Newton matrix is zero"):
            gna.gn_spectrum(net, torch.randn(10, 4), method=method)


def test_too_large_for_memory_says_how_big_and_what_to_do():
    with pytest.raises(GNAdvisorError, match=r"needs about .* over the memory budget of 1\.0 KB.*lanczos"):
        gna.gn_spectrum(_mlp(), torch.randn(50, 8), method="gram", max_memory="1KB")
    with pytest.raises(GNAdvisorError, match="no exact route fits.*lanczos"):
        gna.gn_spectrum(_mlp(), torch.randn(50, 8), max_memory=1024)
    s = gna.gn_spectrum(_mlp(), torch.randn(50, 8), method="lanczos", max_memory=1024)
    assert s.lambda_max > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "svd"}, "method must be one of"),
        ({"coordinates": "some"}, "coordinates must be one of"),
        ({"batchnorm": "frozen"}, "batchnorm must be one of"),
        ({"params": "biases"}, "params must be"),
        ({"params": ["nope.weight"]}, "not a trainable parameter"),
        ({"masks": "magic"}, "masks must be one of"),
        ({"rtol": 2.0}, "rtol must be"),
        ({"max_memory": "lots"}, "max_memory must be"),
        ({"device": "tpu"}, "device must be"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs, match):
    with pytest.raises(GNAdvisorError, match=match) as info:
        gna.gn_spectrum(_mlp(), torch.randn(10, 8), **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_requested_without_gpu():
    with pytest.raises(GNAdvisorError, match="no CUDA GPU"):
        gna.gn_spectrum(_mlp(), torch.randn(10, 8), device="cuda")


def test_bad_model_and_data_types():
    with pytest.raises(GNAdvisorError, match="model must be a torch.nn.Module"):
        gna.gn_spectrum(lambda x: x, torch.randn(3, 2))
    with pytest.raises(GNAdvisorError, match="X must be a torch.Tensor or numpy array"):
        gna.gn_spectrum(_mlp(), [[1.0] * 8])

    class TupleOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            return self.lin(x), x

    with pytest.raises(GNAdvisorError, match="must return a tensor"):
        gna.gn_spectrum(TupleOut(), torch.randn(4, 3))


def test_numpy_and_float32_inputs_are_accepted():
    net = _mlp().float()
    X = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    s = gna.gn_spectrum(net, X)
    ref = gna.gn_spectrum(net.double(), torch.from_numpy(X).double(), method="jacobian")
    assert s.condition_number == pytest.approx(ref.condition_number, rel=1e-8)


def test_gn_gram_equals_naive_j_jt():
    net, X = mlp(nn.Tanh)
    K = gna.gn_gram(net, X).numpy()
    J = naive_jacobian(net, X)
    np.testing.assert_allclose(K, J @ J.T / X.shape[0], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("batchnorm", ["eval", "train"])
def test_gram_route_under_a_tight_memory_budget_splits_columns(batchnorm):
    """A conv weight whose Jacobian block exceeds the budget is built a slice of columns at a time."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 40, 3), nn.BatchNorm2d(40), nn.Tanh(), nn.Flatten(), nn.Linear(40 * 4, 4)).double()
    X = torch.randn(50, 4, 4, 4)
    tight = gna.gn_spectrum(net, X, method="gram", max_memory="700KB", batchnorm=batchnorm)
    ref = gna.gn_spectrum(net, X, method="jacobian", batchnorm=batchnorm)
    assert tight.rank == ref.rank
    np.testing.assert_allclose(tight.eigenvalues, ref.eigenvalues, rtol=1e-8, atol=1e-10 * ref.lambda_max)


def test_embedding_model_with_integer_inputs():
    torch.manual_seed(0)

    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(11, 4)
            self.out = nn.Linear(4, 3)

        def forward(self, tokens):
            return self.out(torch.tanh(self.emb(tokens).mean(1)))

    net = Bag().double()
    tokens = torch.randint(0, 11, (9, 5))
    s = gna.gn_spectrum(net, tokens)
    ev = naive_gn_eigenvalues(naive_jacobian(net, tokens), 9)
    np.testing.assert_allclose(s.eigenvalues, ev[: s.rank], rtol=1e-9)
    for method in ("gram", "jacobian", "lanczos"):
        assert gna.gn_spectrum(net, tokens, method=method).lambda_max == pytest.approx(s.lambda_max, rel=1e-8)


def test_zeroed_and_frozen_weights_are_detected_as_pruned():
    net, X = mlp(nn.Tanh)
    mask = torch.rand(net[2].weight.shape) > 0.4
    with torch.no_grad():
        net[2].weight.mul_(mask)
    net[2].weight.register_hook(lambda g: g * mask)  # the research code's way of freezing pruned entries
    kept = gna.gn_spectrum(net, X)
    explicit = gna.gn_spectrum(net, X, masks={"2.weight": mask})
    everything = gna.gn_spectrum(net, X, coordinates="all")
    assert kept.n_params == everything.n_params - int((~mask).sum())
    assert kept.condition_number == pytest.approx(explicit.condition_number, rel=1e-10)
    assert kept.condition_number != pytest.approx(everything.condition_number, rel=1e-3)
