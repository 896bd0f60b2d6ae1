"""Every route against the reference on one model zoo (float64, 1e-8 relative)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import gnadvisor as gna
from gnadvisor import GNAdvisorError, Route

from cases import CASES, leaky_one_hidden, linear_chain, naive_gn_eigenvalues, naive_jacobian, pruned_mlp

RTOL = 1e-8
CASE_IDS = [c.name for c in CASES]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


@pytest.fixture(scope="module")
def references():
    """Reference spectrum (jacobian route) per case, computed once."""
    out = {}
    for case in CASES:
        model, X = case.build()
        out[case.name] = gna.gn_spectrum(model, X, method="jacobian")
    return out


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_jacobian_route_matches_naive_autograd(case):
    model, X = case.build()
    s = gna.gn_spectrum(model, X, method="jacobian")
    if case.name == "pruned":  # kept coordinates = derivatives w.r.t. weight_orig restricted to the mask
        model.eval()
    ev = naive_gn_eigenvalues(naive_jacobian(model, X), X.shape[0])
    ev = ev[ev > s.rtol * ev[0]]
    assert len(ev) == s.rank
    np.testing.assert_allclose(s.eigenvalues, ev, rtol=1e-9, atol=1e-12 * ev[0])
    if case.expected_rank is not None:
        assert s.rank == case.expected_rank


@pytest.mark.parametrize("route", [r for r in Route], ids=lambda r: f"route={r.value}")
@pytest.mark.parametrize("case", CASES, ids=[f"case={c}" for c in CASE_IDS])
def test_route_matches_reference(route, case, references):
    ref = references[case.name]
    model, X = case.build()
    if route is Route.KRONECKER and not case.linear:
        with pytest.raises(GNAdvisorError, match="linear in its input"):
            gna.gn_spectrum(model, X, method=route.value)
        return
    s = gna.gn_spectrum(model, X, method=route.value)
    assert s.method == route.value
    assert _rel(s.lambda_max, ref.lambda_max) < RTOL
    if route is Route.LANCZOS:
        assert not s.certified and s.rank is None
        if ref.rank == min(ref.n_params, ref.n_samples * ref.n_outputs):  # operator full rank
            assert _rel(s.lambda_min, ref.lambda_min) < 1e-6
        else:  # rank deficient: Lanczos must not report a number as lambda_min != 0
            assert np.isnan(s.lambda_min) and np.isnan(s.condition_number)
        return
    assert s.rank == ref.rank
    assert _rel(s.lambda_min, ref.lambda_min) < RTOL
    assert _rel(s.condition_number, ref.condition_number) < RTOL
    np.testing.assert_allclose(s.eigenvalues, ref.eigenvalues, rtol=RTOL, atol=RTOL * ref.lambda_min)
    if np.isfinite(ref.spectral_gap) and ref.spectral_gap < 1e6:
        assert _rel(s.spectral_gap, ref.spectral_gap) < 1e-6
    else:  # a clean cut: both see a huge gap (round-off below it differs between routes)
        assert s.spectral_gap > 1e6


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_auto_matches_reference_and_reports_route(case, references):
    model, X = case.build()
    s = gna.gn_spectrum(model, X)
    ref = references[case.name]
    assert s.method in {r.value for r in Route if r is not Route.LANCZOS}
    k = ref.n_outputs
    if case.linear and X.shape[1] * k < min(X.shape[0] * k, ref.n_params):
        assert s.method == "kronecker"
    assert s.rank == ref.rank
    assert _rel(s.condition_number, ref.condition_number) < RTOL


def test_leaky_relu_gram_matches_closed_form_with_plus_alpha():
    """gn-theory Sec. 5: J J^T = (S^T S) (x) I_k + sum_i (L_i X_c^T X_c L_i) (x) (w_i w_i^T), slope +alpha."""
    alpha = 0.3
    model, X = leaky_one_hidden(alpha=alpha, n=12)
    V, W = model[0].weight.detach().numpy(), model[2].weight.detach().numpy()
    Xc = X.numpy().T
    pre = V @ Xc
    S = np.where(pre > 0, pre, alpha * pre)
    k = W.shape[0]
    JJ = np.kron(S.T @ S, np.eye(k))
    for i in range(V.shape[0]):
        lam = np.diag(np.where(pre[i] > 0, 1.0, alpha))
        JJ += np.kron(lam @ Xc.T @ Xc @ lam, np.outer(W[:, i], W[:, i]))
    ev = np.linalg.eigvalsh(JJ / X.shape[0])[::-1]
    s = gna.gn_spectrum(model, X, method="gram")
    ev = ev[: s.rank]
    np.testing.assert_allclose(s.eigenvalues, ev, rtol=1e-9)
    # and the wrong sign (the research code's bug) gives a different spectrum
    JJ_bad = np.kron(S.T @ S, np.eye(k))
    for i in range(V.shape[0]):
        lam = np.diag(np.where(pre[i] > 0, 1.0, -alpha))
        JJ_bad += np.kron(lam @ Xc.T @ Xc @ lam, np.outer(W[:, i], W[:, i]))
    assert not np.allclose(np.linalg.eigvalsh(JJ_bad / X.shape[0])[::-1][: s.rank], s.eigenvalues, rtol=1e-6)


def test_kronecker_matches_paper_formula():
    """gn-theory Sec. 2: M = sum_l (A_l A_l^T) (x) (Sigma^1/2 B_l^T B_l Sigma^1/2), computed in numpy."""
    model, X = linear_chain(d=4, m=6, k=3, depth=3, n=25, scale_features=True, seed=21)
    Ws = [m.weight.detach().numpy() for m in model]
    Xn = X.numpy()
    Sig = Xn.T @ Xn / Xn.shape[0]
    w, Q = np.linalg.eigh(Sig)
    Sh = (Q * np.sqrt(np.clip(w, 0, None))) @ Q.T
    L = len(Ws)
    M = 0
    for l in range(L):
        A = np.eye(Ws[-1].shape[0])
        for Wi in reversed(Ws[l + 1:]):
            A = A @ Wi
        B = np.eye(Ws[0].shape[1])
        for Wi in Ws[:l]:
            B = Wi @ B
        M = M + np.kron(A @ A.T, Sh @ B.T @ B @ Sh)
    ev = np.linalg.eigvalsh(M)[::-1]
    s = gna.gn_spectrum(model, X, method="kronecker")
    np.testing.assert_allclose(s.eigenvalues, ev[: s.rank], rtol=1e-9)
    assert s.rank == 12


def test_pruned_coordinates_kept_equals_model_without_pruned_weights():
    """kept = GN of the model with the pruned weights removed from the parameter set; all = paper's."""
    model, X = pruned_mlp()
    layers = (model[0], model[2], model[4])
    s_kept = gna.gn_spectrum(model, X, coordinates="kept")
    s_all = gna.gn_spectrum(model, X, coordinates="all")
    keep = np.concatenate([
        np.concatenate([m.weight_mask.reshape(-1).bool().numpy(), np.ones(m.bias.numel(), dtype=bool)]) for m in layers
    ])
    assert s_kept.n_params == int(keep.sum())
    assert s_all.n_params == keep.size
    # independent reference: a plain copy whose weights are the effective (masked) weights
    plain, _ = pruned_mlp()
    for m in (plain[0], plain[2], plain[4]):
        prune.remove(m, "weight")
    params = [t for m in (plain[0], plain[2], plain[4]) for t in (m.weight, m.bias)]
    J = naive_jacobian(plain, X, params)
    for J_use, s in ((J[:, keep], s_kept), (J, s_all)):
        ev = naive_gn_eigenvalues(J_use, X.shape[0])
        ev = ev[ev > s.rtol * ev[0]]
        np.testing.assert_allclose(s.eigenvalues, ev, rtol=1e-9)
    assert s_kept.condition_number != pytest.approx(s_all.condition_number, rel=1e-3)
    assert model[0].weight_orig.requires_grad  # the caller's model is untouched


@pytest.mark.parametrize("beta", [0.0, 0.7])
def test_kronecker_chain_shortcut_on_gnadvisor_models(beta):
    """gnadvisor-built linear (residual) chains take the Eq. 4-5 shortcut; it must equal the reference."""
    from gnadvisor import ArchSpec, build_model

    spec = ArchSpec(family="resmlp" if beta else "mlp", depth=3, width=7, activation="linear", bias=False,
                    skip_beta=beta, input_dim=5, output_dim=3)
    model = build_model(spec, seed=3)
    X = torch.randn(40, 5) * torch.linspace(0.5, 3.0, 5)
    s = gna.gn_spectrum(model, X, method="kronecker")
    assert any("Kronecker sum" in note for note in s.notes)
    ref = gna.gn_spectrum(model, X, method="jacobian")
    np.testing.assert_allclose(s.eigenvalues, ref.eigenvalues, rtol=1e-8)
    # a parameter subset or masks take the general construction, which agrees too
    s_sub = gna.gn_spectrum(model, X, method="kronecker", params=lambda name, t: not name.endswith(".0.weight"))
    assert not any("Kronecker sum" in note for note in s_sub.notes)
    ref_sub = gna.gn_spectrum(model, X, method="jacobian", params=lambda name, t: not name.endswith(".0.weight"))
    assert s_sub.condition_number == pytest.approx(ref_sub.condition_number, rel=1e-8)


def test_zero_output_at_init_is_not_mistaken_for_a_linear_net():
    """A fully pruned layer with zero biases behind it: f == 0 here, yet J != 0 (biases)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    for m in (net[0], net[2], net[4]):
        nn.init.zeros_(m.bias)
    prune.l1_unstructured(net[2], "weight", amount=1.0)
    X = torch.randn(12, 4)
    s = gna.gn_spectrum(net, X)
    ref = gna.gn_spectrum(net, X, method="jacobian")
    assert s.method != "kronecker"
    assert s.rank == ref.rank and s.condition_number == pytest.approx(ref.condition_number, rel=1e-8)
    with pytest.raises(GNAdvisorError, match="linear in its input"):
        gna.gn_spectrum(net, X, method="kronecker")
