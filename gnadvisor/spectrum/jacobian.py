"""The reference route: materialise J with torch.func and eigendecompose the smaller Gram.

Obviously correct and the yardstick for every other route (tests compare to it). Memory is
``n*k * n_params`` doubles; cost is one reverse pass per output row.
"""

from __future__ import annotations

import torch
from torch.func import jacrev, vmap

from ._problem import Problem


def jacobian_matrix(problem: Problem, *, chunk_samples: int | None = None) -> torch.Tensor:
    """The stacked Jacobian J (n*k x n_params), rows ``i*k + c``, kept columns only.

    Samples that do not interact (no train-mode batch norm) are differentiated one at a time
    under ``vmap``; otherwise the full-batch output is differentiated (``jacrev`` over all
    n*k rows), which is what batch-coupled layers require.
    """
    params = {n: problem.values[n] for n in problem.names}
    n, k = problem.n_samples, problem.n_outputs
    names = list(problem.names)
    if problem.independent:
        per_sample = vmap(jacrev(problem.f_single), in_dims=(None, 0))
        step = chunk_samples or max(1, min(n, 256))
        blocks = []
        for s in range(0, n, step):
            b = min(step, n - s)
            jac = problem.jacobian_rows(names, s * k, (s + b) * k,
                                        lambda: per_sample(params, problem.X[s : s + step]))  # name -> (b, k, *shape)
            blocks.append(torch.cat([problem.select_cols(nm, jac[nm].reshape(b * k, -1)) for nm in names], dim=1))
        return torch.cat(blocks, dim=0)
    jac = problem.jacobian_rows(names, 0, n * k,
                                lambda: jacrev(problem.f, chunk_size=max(1, min(n * k, 64)))(params))
    return torch.cat([problem.select_cols(nm, jac[nm].reshape(n * k, -1)) for nm in names], dim=1)


def jacobian_gauss_newton(problem: Problem) -> torch.Tensor:
    """The smaller of ``J^T J / n`` (p x p) and ``J J^T / n`` (nk x nk); same non-zero spectrum."""
    J = jacobian_matrix(problem)
    n = problem.n_samples
    if J.shape[1] <= J.shape[0]:
        return (J.T @ J) / n
    return (J @ J.T) / n
