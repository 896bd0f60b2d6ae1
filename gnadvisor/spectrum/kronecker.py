"""The Kronecker route for networks that are linear in x: a (k*d) x (k*d) matrix, cost independent of n.

If ``f(x) = Theta(theta) x`` then the Jacobian on the data is ``J_X = (X (x) I_k) J_E`` with
``J_E`` the Jacobian on the d basis inputs, so

    G = J_E^T (Sigma (x) I_k) J_E,   Sigma = X^T X / n,

and its non-zero spectrum equals that of ``(Sigma^1/2 (x) I_k) J_E J_E^T (Sigma^1/2 (x) I_k)``
(gn-theory Sec. 2; for a chain of bias-free layers this is the paper's Eq. 4-5,
``sum_l (A_l A_l^T) (x) (Sigma^1/2 B_l^T B_l Sigma^1/2)`` up to the ordering of the factors).
``J_E J_E^T`` is built by the Gram route on the basis inputs, so residual skips, masks and
linear convolutions need no special case.
"""

from __future__ import annotations

import dataclasses

import torch

from ._problem import Problem
from .gram import gram_matrix

_LIN_RTOL = 1e-10


def is_linear_in_x(problem: Problem) -> bool:
    """True when the model computes ``f(x) = Theta(theta) x`` near the current parameters.

    Checked on the data, on random inputs and their negatives, at the current parameters and
    at a random perturbation of the counted ones (kept coordinates only): linearity at one
    point is not enough (a net whose output is identically zero at these weights, with zero
    biases behind a fully pruned layer, say, is "linear" there but its Jacobian is not).
    """
    if not problem.independent or not problem.X.is_floating_point():
        return False
    shape = tuple(problem.X.shape[1:])
    d = problem.X[0].numel()
    dev = problem.device
    E = torch.eye(d, dtype=torch.float64, device=dev).reshape(d, *shape)
    gen = torch.Generator(device="cpu").manual_seed(4321)
    R = torch.randn(4, *shape, generator=gen, dtype=torch.float64).to(dev)
    perturbed = {}
    for nm in problem.names:
        t = problem.values[nm]
        scale = max(float(t.pow(2).mean().sqrt()), 1e-2)
        delta = (0.3 * scale * torch.randn(t.shape, generator=gen, dtype=torch.float64)).to(dev)
        idx = problem.cols[nm]
        if idx is not None:  # pruned coordinates stay pruned
            keep = torch.zeros(t.numel(), dtype=torch.float64, device=dev)
            keep[idx] = 1.0
            delta = delta * keep.view_as(t)
        perturbed[nm] = t + delta
    with torch.no_grad():
        for params in ({}, perturbed):
            theta_t = problem.f(params, E).reshape(d, -1)  # (d, k) = Theta^T
            for inputs in (problem.X, R, -2.5 * R):
                got = problem.f(params, inputs).reshape(inputs.shape[0], -1)
                want = inputs.reshape(inputs.shape[0], -1) @ theta_t
                scale = float(want.abs().max()) + float(got.abs().max()) + 1e-300
                if float((got - want).abs().max()) > _LIN_RTOL * scale:
                    return False
    return True


def psd_sqrt(S: torch.Tensor) -> torch.Tensor:
    """Symmetric PSD square root via eigh (negative round-off eigenvalues clipped to 0)."""
    w, V = torch.linalg.eigh(0.5 * (S + S.T))
    return (V * w.clamp_min(0).sqrt()) @ V.T


def _chain_weights(problem: Problem) -> tuple[list[torch.Tensor], float] | None:
    """The weights W_1..W_L (and beta) when the counted parameters are exactly a linear chain's.

    Recognised through :func:`gnadvisor.bounds.linear_structure` (plain ``nn.Sequential`` of
    bias-free ``nn.Linear``, or gnadvisor-built models), and only used when every counted
    parameter is one of the chain's weights, all coordinates counted (no masks on kept ones).
    """
    from ..bounds import linear_structure

    try:
        struct = linear_structure(problem.model)
    except Exception:  # noqa: BLE001 - any doubt: use the general construction
        return None
    if not struct or struct.get("kind") != "linear_chain":
        return None
    weights = list(struct["weights"])
    counted = [problem.values[nm] for nm in problem.names]
    if any(problem.cols[nm] is not None for nm in problem.names) or len(counted) != len(weights):
        return None
    ptrs = {(t.data_ptr(), tuple(t.shape)) for t in counted}
    if {(w.data_ptr(), tuple(w.shape)) for w in weights} != ptrs or len(ptrs) != len(weights):
        return None
    return [w.detach().to(torch.float64) for w in weights], float(struct.get("beta", 0.0))


def kronecker_matrix(problem: Problem, *, budget: int) -> tuple[torch.Tensor, list[str]]:
    """The (k*d) x (k*d) matrix whose non-zero spectrum is that of G (model must be linear in x)."""
    n, k = problem.n_samples, problem.n_outputs
    shape = tuple(problem.X.shape[1:])
    d = problem.X[0].numel()
    chain = _chain_weights(problem)
    if chain is not None:
        # paper Eq. 4-5: M = sum_l (Sigma^1/2 B_l^T B_l Sigma^1/2) (x) (A_l A_l^T), O(L) products
        weights, beta = chain
        if beta:
            weights = [W + beta * torch.eye(*W.shape, dtype=W.dtype, device=W.device) for W in weights]
        Xf = problem.X.reshape(n, d)
        S = psd_sqrt((Xf.T @ Xf) / n)
        L = len(weights)
        A = [None] * L
        A[L - 1] = torch.eye(k, dtype=torch.float64, device=S.device)
        for l in range(L - 2, -1, -1):
            A[l] = A[l + 1] @ weights[l + 1]
        M = torch.zeros(d * k, d * k, dtype=torch.float64, device=S.device)
        BS = S  # B_1 Sigma^1/2 with B_1 = I_d
        for l in range(L):
            M += torch.kron(BS.T @ BS, A[l] @ A[l].T)
            BS = weights[l] @ BS
        return 0.5 * (M + M.T), [f"linear chain of {L} layers: the paper's Kronecker sum (Eq. 4-5)"]
    E = torch.eye(d, dtype=torch.float64, device=problem.device).reshape(d, *shape)
    basis = dataclasses.replace(problem, X=E, n_samples=d, notes=[], _independent=True)
    KE, notes = gram_matrix(basis, budget=budget)
    JJ = (KE * d).view(d, k, d, k)  # J_E J_E^T, rows (j, c)
    Xf = problem.X.reshape(n, d)
    S = psd_sqrt((Xf.T @ Xf) / n)
    M = torch.einsum("ab,bkcl,cd->akdl", S, JJ, S).reshape(d * k, d * k)
    return 0.5 * (M + M.T), notes
