"""Matrix-free extreme eigenvalues by Lanczos (scipy ARPACK) on products with J and J^T.

No dense matrix is formed: each product costs one jvp and one vjp of the full batch. The
operator acts in the smaller of parameter space (``G w = J^T J w / n``) and output space
(``K u = J J^T u / n``). lambda_max converges reliably. The smallest eigenvalue found is
lambda_min != 0 only if that operator has full rank, which Lanczos cannot certify, and
Lanczos can miss an isolated small eigenvalue: the result says so (``certified=False``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ._problem import Problem


@dataclass(frozen=True)
class LanczosResult:
    lambda_max: float
    lambda_min: float
    space: str
    dim: int
    residual_max: float
    residual_min: float
    converged_min: bool
    n_products: int


def lanczos_extremes(problem: Problem, *, max_steps: int = 300) -> LanczosResult:
    """Extreme eigenvalues of the GN operator in the smaller of parameter and output space."""
    n = problem.n_samples
    params = {nm: problem.values[nm] for nm in problem.names}
    f = lambda p: problem.f(p)  # noqa: E731
    jvp_fn = _checked_linearize(f, params, problem.notes)
    _, vjp_fn = torch.func.vjp(f, params)
    dev = problem.device
    sizes = [problem.n_cols(nm) for nm in problem.names]
    counter = {"n": 0}

    def embed(w: torch.Tensor) -> dict[str, torch.Tensor]:
        out, pos = {}, 0
        for nm, sz in zip(problem.names, sizes):
            full = torch.zeros(problem.values[nm].numel(), dtype=torch.float64, device=dev)
            idx = problem.cols[nm]
            if idx is None:
                full = w[pos : pos + sz].clone()
            else:
                full[idx] = w[pos : pos + sz]
            out[nm] = full.view_as(problem.values[nm])
            pos += sz
        return out

    def flatten(g: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for nm in problem.names:
            flat = g[nm].reshape(-1)
            idx = problem.cols[nm]
            parts.append(flat if idx is None else flat.index_select(0, idx))
        return torch.cat(parts)

    p, N = problem.n_params, problem.n_rows
    if p <= N:
        space, dim = "parameters", p

        def matvec(x: np.ndarray) -> np.ndarray:
            counter["n"] += 1
            w = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1)).to(dev)
            (g,) = vjp_fn(jvp_fn(embed(w)))
            return (flatten(g) / n).cpu().numpy().copy()
    else:
        space, dim = "outputs", N

        def matvec(x: np.ndarray) -> np.ndarray:
            counter["n"] += 1
            u = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1)).to(dev)
            (g,) = vjp_fn(u)
            # copy: on the CPU .numpy() shares memory, and linearize's compiled graph may hand back
            # the same output buffer on every call (seen with nn.LSTM), overwriting earlier vectors
            return (jvp_fn(embed(flatten(g))) / n).cpu().numpy().copy()

    res = _lanczos(matvec, dim, max_steps=min(dim, max_steps))
    return LanczosResult(res[0], res[1], space, dim, res[2], res[3], res[4], counter["n"])


def _checked_linearize(f, params: dict[str, torch.Tensor], notes: list[str]):
    """``torch.func.linearize``'s jvp, if it reproduces plain ``torch.func.jvp``; else plain jvp.

    linearize traces the forward once and replays the trace for every tangent. For some modules
    the replay is wrong after its first call (seen with ``nn.LSTM``: only the first product was
    right), which would make the operator silently not the GN matrix. Two replays on random
    tangents are compared with ``torch.func.jvp``; on any disagreement every product uses
    ``torch.func.jvp`` (one forward pass more per product).
    """
    def plain(t):
        return torch.func.jvp(f, (params,), (t,))[1]

    try:
        with warnings.catch_warnings():  # linearize's constant folding warns about internal get_attr nodes
            warnings.simplefilter("ignore", UserWarning)
            _, jvp_fn = torch.func.linearize(f, params)
        gen = torch.Generator(device="cpu").manual_seed(0)
        for _ in range(3):
            t = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype).to(v.device) for k, v in params.items()}
            a, b = jvp_fn(t), plain(t)
            if not torch.allclose(a, b, rtol=1e-10, atol=1e-12 * float(b.abs().max()) + 1e-300):
                raise RuntimeError("replayed linearization disagrees with jvp")
        return jvp_fn
    except (RuntimeError, NotImplementedError) as exc:
        if isinstance(exc, torch.OutOfMemoryError):
            raise
        notes.append("torch.func.linearize is not reliable for this model; each product recomputes the forward pass")
        return plain


def _lanczos(matvec, dim: int, *, max_steps: int, check_every: int = 10):
    """Lanczos with full re-orthogonalisation; returns (theta_max, theta_min, r_max, r_min, converged_min).

    Ritz values always lie inside the spectrum, so theta_min >= the operator's smallest
    eigenvalue; the residual r bounds the distance to the nearest true eigenvalue.
    """
    from scipy.linalg import eigh_tridiagonal

    rng = np.random.default_rng(0)
    Q = np.zeros((max_steps + 1, dim))
    q = rng.standard_normal(dim)
    Q[0] = q / np.linalg.norm(q)
    alphas: list[float] = []
    betas: list[float] = []
    result = None
    for j in range(max_steps):
        w = matvec(Q[j])
        alpha = float(w @ Q[j])
        alphas.append(alpha)
        for _ in range(2):  # full re-orthogonalisation, twice is enough
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        beta = float(np.linalg.norm(w))
        last = j == max_steps - 1 or beta <= 1e-13 * max(abs(a) for a in alphas)
        if last or (j + 1) % check_every == 0:
            theta, S = eigh_tridiagonal(np.array(alphas), np.array(betas)) if j else (np.array(alphas), np.ones((1, 1)))
            resid = np.abs(beta * S[-1, :]) if not beta <= 1e-13 * max(abs(a) for a in alphas) else np.zeros(len(theta))
            conv_min = resid[0] <= 1e-10 * max(abs(theta[0]), 1e-300) or resid[0] <= 1e-14 * abs(theta[-1])
            result = (float(theta[-1]), float(theta[0]), float(resid[-1]), float(resid[0]), bool(conv_min))
            if last or (conv_min and resid[-1] <= 1e-12 * abs(theta[-1])):
                break
        betas.append(beta)
        Q[j + 1] = w / beta
    return result
