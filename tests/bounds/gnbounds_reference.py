"""Test helpers for the bounds: models, data, and the exact kappa they are checked against.

The exact kappa comes from ``gnadvisor.gn_spectrum``; :func:`brute_spectrum` is an
independent brute-force twin (autograd Jacobian, eigenvalues of J J^T / n in float64)
used to cross-check it on every case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

import gnadvisor as gna

EPS64 = float(np.finfo(np.float64).eps)


class ResidualLinear(nn.Module):
    """``h -> (W + beta * I_rect) h``, ``I_rect = eye(out, in)`` (paper Eq. 7), bias-free."""

    def __init__(self, W: np.ndarray, beta: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(np.array(W, dtype=np.float64)))
        self.register_buffer("eye", torch.eye(*W.shape, dtype=torch.float64))
        self.beta = float(beta)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h @ (self.weight + self.beta * self.eye).T


def linear_from(W: np.ndarray) -> nn.Linear:
    layer = nn.Linear(W.shape[1], W.shape[0], bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(np.asarray(W, dtype=np.float64)))
    return layer


def chain_model(Ws: list[np.ndarray], beta: float = 0.0) -> nn.Module:
    """Plain bias-free linear chain (beta = 0) or residual linear chain."""
    if beta == 0.0:
        return nn.Sequential(*[linear_from(W) for W in Ws])
    return nn.Sequential(*[ResidualLinear(W, beta) for W in Ws])


def leaky_model(V: np.ndarray, W: np.ndarray, alpha: float) -> nn.Module:
    act = nn.ReLU() if alpha == 0.0 else nn.LeakyReLU(alpha)
    return nn.Sequential(linear_from(V), act, linear_from(W))


def random_weights(rng: np.random.Generator, dims: list[int]) -> list[np.ndarray]:
    """Gaussian (Kaiming-normal) weights for the chain d = dims[0] -> ... -> k = dims[-1]."""
    return [rng.standard_normal((o, i)) / np.sqrt(i) for i, o in zip(dims[:-1], dims[1:])]


def make_data(rng: np.random.Generator, n: int, d: int, kind: str) -> np.ndarray:
    """``"raw"``: anisotropic, non-centred Gaussian; ``"whitened"``: the paper's X <- U V^T."""
    X = rng.standard_normal((n, d)) * rng.uniform(0.2, 3.0, size=d) + rng.uniform(-1, 1, size=d)
    if kind == "whitened":
        U, _, Vt = np.linalg.svd(X, full_matrices=False)
        X = U @ Vt
    return X


@dataclass(frozen=True)
class Exact:
    kappa: float
    rank: int
    lambda_max: float
    lambda_min: float


def brute_spectrum(model: nn.Module, X: np.ndarray) -> Exact:
    """Materialised Jacobian (n*k x p); rank rule lambda > lambda_max max(p, nk) eps64.

    The Jacobian comes from ``torch.autograd.functional.jacobian`` with one reverse pass per
    output (``vectorize=False``): the same numbers as ``torch.func.jacrev``, 30x faster on
    these tiny models because nothing is vmapped.
    """
    Xt = torch.from_numpy(np.asarray(X, dtype=np.float64))
    n = Xt.shape[0]
    names = [name for name, _ in model.named_parameters()]
    params = tuple(p.detach() for _, p in model.named_parameters())
    buffers = dict(model.named_buffers())

    def f(*ps: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(model, (dict(zip(names, ps)), buffers), (Xt,)).reshape(-1)

    jac = torch.autograd.functional.jacobian(f, params, vectorize=False)
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jac], dim=1)
    nk, p = J.shape
    K = (J @ J.T / n).numpy() if nk <= p else (J.T @ J / n).numpy()
    ev = np.linalg.eigvalsh(K)
    lam_max = float(ev[-1])
    nz = ev[ev > lam_max * max(p, nk) * EPS64]
    return Exact(lam_max / float(nz[0]), int(nz.size), lam_max, float(nz[0]))


def exact_spectrum(model: nn.Module, X: np.ndarray, *, cross_check: bool = True) -> Exact:
    """kappa from ``gn.gn_spectrum``, cross-checked against :func:`brute_spectrum`."""
    s = gna.gn_spectrum(model, torch.from_numpy(np.asarray(X, dtype=np.float64)))
    ex = Exact(float(s.condition_number), int(s.rank), float(s.lambda_max), float(s.lambda_min))
    if cross_check:
        ref = brute_spectrum(model, X)
        assert ex.rank == ref.rank, (ex, ref)
        tol = 1e-7 + 1e3 * EPS64 * ex.kappa
        assert abs(ex.kappa - ref.kappa) <= tol * ref.kappa, (ex, ref)
    return ex


def kappa_tolerance(kappa: float, dim: int) -> float:
    """Relative slack for 'bound >= kappa': rounding of lambda_min grows like dim * eps * kappa."""
    return 1e-9 + 100.0 * dim * EPS64 * kappa
