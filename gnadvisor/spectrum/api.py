"""``gn_spectrum``: the exact Gauss-Newton spectrum of any PyTorch model on a data set."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import nn

from .._checks import GNAdvisorError, check_choice
from ._base import RANK_RULE, Route, Spectrum, default_rtol, split_spectrum, symmetric_eigvalsh
from ._problem import MaskOption, ParamSelector, Problem, build_problem, human_bytes, memory_budget
from .gram import gram_matrix
from .jacobian import jacobian_gauss_newton
from .kronecker import is_linear_in_x, kronecker_matrix
from .lanczos import lanczos_extremes

#: Matrices up to this size are always fully diagonalised (it is cheap).
_FULL_EIG_DIM = 1500


def gn_spectrum(
    model: nn.Module,
    X: Any,
    *,
    method: str = "auto",
    device: str | torch.device = "auto",
    coordinates: str = "kept",
    batchnorm: str = "train",
    params: ParamSelector = None,
    masks: MaskOption = "auto",
    full: bool = True,
    rtol: float | None = None,
    max_memory: float | str | None = None,
) -> Spectrum:
    """Exact spectrum and pseudo-condition number of the Gauss-Newton matrix of ``model`` on ``X``.

    ``G = (1/n) sum_i J_i^T J_i`` with ``J_i = d f(x_i) / d theta`` (k x p); its non-zero
    eigenvalues equal those of the NTK Gram ``K = (1/n) J J^T``. The model is evaluated on a
    private float64 copy; the caller's model is never changed.

    Parameters
    ----------
    model : torch.nn.Module
        Any module mapping a batch ``(n, ...)`` to outputs ``(n, ...)``; each sample's outputs
        are flattened to ``k = n_outputs`` values.
    X : torch.Tensor or numpy.ndarray
        Inputs, shape ``(n_samples, ...)``.
    method : {"auto", "kronecker", "gram", "jacobian", "lanczos"}
        Route (see :class:`gnadvisor.Route`). ``"auto"`` picks the exact route with the
        smallest matrix that fits in memory and reports it in ``Spectrum.method``.
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` uses CUDA when available. Accumulation is float64 on every device.
    coordinates : {"kept", "all"}
        For pruned models: ``"kept"`` (default) restricts G to the unpruned coordinates, the
        GN that governs training of the pruned net; ``"all"`` includes the Jacobian columns of
        the pruned (frozen) weights, the paper's convention (gn-theory Sec. 7).
    batchnorm : {"train", "eval"}
        ``"train"`` (default): batch norm uses the statistics of the full batch ``X`` and is
        differentiated through them (samples are coupled); ``"eval"``: running statistics.
        Dropout is always off.
    params : None, "all", "weights", list of str, or callable
        Which parameters count: all trainable ones (default), only weight matrices/filters
        (``"weights"``), the named ones, or those for which ``params(name, tensor)`` is true.
    masks : "auto", "zeros", or dict
        Where pruning masks come from. ``"auto"``: ``torch.nn.utils.prune``
        re-parametrisations, and zeroed-and-frozen weights (a weight with ndim >= 2 that has
        some, not all, entries exactly zero and a gradient hook registered on it, the usual
        way of freezing pruned entries): their zero entries are the pruned ones. ``"zeros"``:
        additionally every exactly-zero entry of any weight with ndim >= 2. Or an explicit
        ``{name: bool mask}`` (True = kept).
    full : bool
        ``True`` (default) returns every non-zero eigenvalue. ``False`` asks for kappa only:
        large full-rank Grams then get lambda_max by Lanczos and lambda_min from a Cholesky
        factorisation (inverse Lanczos), falling back to the full spectrum when the Gram is
        not clearly full rank; ``eigenvalues`` is then ``None``.
    rtol : float, optional
        Relative rank cut: eigenvalues ``<= rtol * lambda_max`` count as zero. Default
        ``max(n_params, n_samples * n_outputs) * eps64`` (see ``Spectrum.rank_rule``).
    max_memory : int or str, optional
        Memory budget for dense matrices, e.g. ``"4GB"``; default half of what is free.

    Returns
    -------
    Spectrum
        ``condition_number``, ``lambda_max``, ``lambda_min``, ``rank``, ``eigenvalues``,
        ``spectral_gap``, ``method`` and the bookkeeping of how they were computed.

    Raises
    ------
    GNAdvisorError
        For inputs that do not fit the model, non-finite weights, inputs or outputs, a model
        without trainable parameters, an all-zero G, an unknown option, or a problem too
        large for the memory budget (the message says how large and what to do).

    References
    ----------
    J. Zhao, S. P. Singh, A. Lucchi. Theoretical characterisation of the Gauss-Newton
    conditioning in neural networks. NeurIPS 2024, Sec. 3-4.

    Examples
    --------
    >>> import torch, gnadvisor as gna
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8, bias=False), torch.nn.Linear(8, 2, bias=False))
    >>> X = torch.randn(50, 4)
    >>> s = gna.gn_spectrum(net, X)
    >>> s.method, s.rank
    ('kronecker', 8)
    >>> ref = gna.gn_spectrum(net, X, method="jacobian")
    >>> bool(abs(s.condition_number - ref.condition_number) < 1e-8 * ref.condition_number)
    True
    """
    check_choice("method", method, ["auto"] + [r.value for r in Route])
    if rtol is not None and not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise GNAdvisorError(f"rtol must be a number in (0, 1), got {rtol!r}")
    t0 = time.perf_counter()
    problem = build_problem(model, X, device=device, coordinates=coordinates, batchnorm=batchnorm,
                            params=params, masks=masks)
    budget = memory_budget(problem.device, max_memory)
    route = _choose_route(problem, method, budget)
    rtol_used = float(rtol) if rtol is not None else default_rtol(problem.n_params, problem.n_rows)
    notes = list(problem.notes)

    try:
        if route is Route.LANCZOS:
            return _lanczos_spectrum(problem, rtol_used, notes, t0)
        if route is Route.KRONECKER:
            mat, route_notes = kronecker_matrix(problem, budget=budget)
        elif route is Route.GRAM:
            mat, route_notes = gram_matrix(problem, budget=budget)
        else:
            mat = jacobian_gauss_newton(problem)
            route_notes = []
    except RuntimeError as exc:
        text = str(exc)
        if "in-place" in text or "mutate" in text:
            raise GNAdvisorError(
                "the model modifies a captured tensor in place during forward (e.g. a buffer update of an exported "
                "training-mode batch norm), which torch.func cannot differentiate; use the model in eval mode "
                "or as a plain nn.Module"
            ) from None
        raise
    notes += route_notes
    dim = int(mat.shape[0])
    ev, below, lam_max, lam_min, extremes_note = _eigen(mat, rtol_used, full)
    del mat
    if extremes_note:
        notes.append(extremes_note)
    if ev is not None:
        rank = int(ev.size)
        gap = float(ev[-1] / below[0]) if below.size and below[0] > 0 else float("inf")
    else:  # kappa-only path: certified full rank
        rank, gap = dim, float("inf")
    return Spectrum(
        eigenvalues=ev, lambda_max=lam_max, lambda_min=lam_min, condition_number=lam_max / lam_min,
        rank=rank, spectral_gap=gap, method=route.value, device=str(problem.device),
        n_samples=problem.n_samples, n_outputs=problem.n_outputs, n_params=problem.n_params,
        matrix_dim=dim, rtol=rtol_used, rank_rule=RANK_RULE, coordinates=problem.coordinates,
        certified=True, time_s=time.perf_counter() - t0, below_cut=below, notes=tuple(notes),
    )


def _route_bytes(problem: Problem, route: Route) -> int:
    N, p = problem.n_rows, problem.n_params
    d = problem.X[0].numel()
    k = problem.n_outputs
    if route is Route.JACOBIAN:
        return 8 * (2 * N * p + 2 * min(N, p) ** 2)
    if route is Route.GRAM:
        return 8 * 2 * N * N
    if route is Route.KRONECKER:
        return 8 * 3 * (d * k) ** 2
    return 8 * 8 * (N + p)


def _matrix_dim(problem: Problem, route: Route) -> int:
    N, p = problem.n_rows, problem.n_params
    return {Route.JACOBIAN: min(N, p), Route.GRAM: N, Route.KRONECKER: problem.X[0].numel() * problem.n_outputs,
            Route.LANCZOS: 0}[route]


def _too_big(problem: Problem, route: Route, budget: int) -> GNAdvisorError:
    need = _route_bytes(problem, route)
    return GNAdvisorError(
        f"method={route.value!r} needs about {human_bytes(need)} for n*k = {problem.n_rows} rows and "
        f"{problem.n_params} parameters, over the memory budget of {human_bytes(budget)}; use "
        "method='lanczos' (matrix-free, extreme eigenvalues only), fewer samples, or a larger max_memory"
    )


def _choose_route(problem: Problem, method: str, budget: int) -> Route:
    if method != "auto":
        route = Route(method)
        if route is Route.KRONECKER and not is_linear_in_x(problem):
            raise GNAdvisorError(
                "method='kronecker' needs a network that is linear in its input (f(x) = Theta x: bias-free "
                "linear layers, linear skips, masks, no nonlinearity or batch-norm); use method='auto' or 'gram'"
            )
        if route is not Route.LANCZOS and _route_bytes(problem, route) > budget:
            raise _too_big(problem, route, budget)
        return route
    order = [Route.KRONECKER, Route.GRAM, Route.JACOBIAN]
    fits = [r for r in order if _route_bytes(problem, r) <= budget]
    fits.sort(key=lambda r: (_matrix_dim(problem, r), order.index(r)))
    for r in fits:
        if r is Route.KRONECKER:
            if _matrix_dim(problem, r) >= min(problem.n_rows, problem.n_params) or not is_linear_in_x(problem):
                continue
        return r
    raise GNAdvisorError(
        f"no exact route fits the memory budget of {human_bytes(budget)} (n*k = {problem.n_rows} rows, "
        f"{problem.n_params} parameters; the Gram alone needs {human_bytes(_route_bytes(problem, Route.GRAM))}); "
        "use method='lanczos' (matrix-free, extreme eigenvalues only), fewer samples, or a larger max_memory"
    )


def _all_zero() -> GNAdvisorError:
    return GNAdvisorError(
        "the Gauss-Newton matrix is zero: every Jacobian vanishes on these inputs (e.g. all ReLUs dead, "
        "zero weights everywhere, or outputs that do not depend on the selected parameters)"
    )


def _eigen(mat: torch.Tensor, rtol: float, full: bool):
    """(non-zero eigs or None, below-cut eigs, lambda_max, lambda_min, note)."""
    dim = mat.shape[0]
    if not full and dim > _FULL_EIG_DIM:
        res = _extremes_by_cholesky(mat, rtol)
        if res is not None:
            lam_max, lam_min = res
            return None, np.empty(0), lam_max, lam_min, (
                "kappa-only mode: lambda_max by Lanczos, lambda_min by inverse Lanczos on a Cholesky factor "
                "(Gram full rank, lambda_min well above the cut)"
            )
    ev = symmetric_eigvalsh(mat)
    if ev.size == 0 or not np.isfinite(ev).all() or ev[0] <= 0:
        raise _all_zero()
    nonzero, below = split_spectrum(ev, rtol)
    return nonzero, below, float(nonzero[0]), float(nonzero[-1]), ""


def _extremes_by_cholesky(mat: torch.Tensor, rtol: float) -> tuple[float, float] | None:
    mat = 0.5 * (mat + mat.T)
    L, info = torch.linalg.cholesky_ex(mat)
    if int(info) != 0:
        return None
    dim = mat.shape[0]
    dev = mat.device
    U = L.T.contiguous()  # a transposed view would be copied on every solve
    v0 = np.random.default_rng(0).standard_normal(dim)

    def mv(x: np.ndarray) -> np.ndarray:
        return (mat @ torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1)).to(dev)).cpu().numpy()

    def inv_mv(x: np.ndarray) -> np.ndarray:
        b = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1, 1)).to(dev)
        y = torch.linalg.solve_triangular(L, b, upper=False)
        return torch.linalg.solve_triangular(U, y, upper=True).reshape(-1).cpu().numpy()

    lam_max = float(eigsh(LinearOperator((dim, dim), matvec=mv, dtype=np.float64), k=1, which="LA",
                          tol=1e-11, v0=v0, return_eigenvectors=False)[0])
    if not np.isfinite(lam_max) or lam_max <= 0:
        return None
    inv_max = float(eigsh(LinearOperator((dim, dim), matvec=inv_mv, dtype=np.float64), k=1, which="LA",
                          tol=1e-11, v0=v0, return_eigenvectors=False)[0])
    if not np.isfinite(inv_max) or inv_max <= 0:
        return None
    lam_min = 1.0 / inv_max
    if lam_min <= 1e3 * rtol * lam_max:  # too close to the cut to trust: use the full spectrum
        return None
    return lam_max, lam_min


def _lanczos_spectrum(problem: Problem, rtol: float, notes: list[str], t0: float) -> Spectrum:
    res = lanczos_extremes(problem)
    notes.append(
        f"Lanczos in {res.space} space (dim {res.dim}, {res.n_products} products): lambda_max residual "
        f"{res.residual_max:.2e}; lambda_min is the smallest Ritz value (residual {res.residual_min:.2e}"
        f"{'' if res.converged_min else ', NOT converged: it is only an upper bound on the smallest eigenvalue, so kappa is a lower bound'}). "
        "It equals lambda_min != 0 only if the operator has full rank, which Lanczos cannot certify; "
        "use an exact route to be sure"
    )
    if not np.isfinite(res.lambda_max) or res.lambda_max <= 0:
        raise _all_zero()
    lam_min = res.lambda_min
    certified = False
    if lam_min <= rtol * res.lambda_max:
        notes.append("the smallest Ritz value lies below the rank cut: the operator is (numerically) rank deficient "
                     "and lambda_min != 0 is unknown")
        lam_min = float("nan")
    return Spectrum(
        eigenvalues=None, lambda_max=res.lambda_max, lambda_min=lam_min,
        condition_number=res.lambda_max / lam_min if np.isfinite(lam_min) else float("nan"),
        rank=None, spectral_gap=float("nan"), method=Route.LANCZOS.value, device=str(problem.device),
        n_samples=problem.n_samples, n_outputs=problem.n_outputs, n_params=problem.n_params,
        matrix_dim=res.dim, rtol=rtol, rank_rule=RANK_RULE, coordinates=problem.coordinates,
        certified=certified, time_s=time.perf_counter() - t0, below_cut=None, notes=tuple(notes),
    )


def gn_gram(
    model: nn.Module,
    X: Any,
    *,
    device: str | torch.device = "auto",
    coordinates: str = "kept",
    batchnorm: str = "train",
    params: ParamSelector = None,
    masks: MaskOption = "auto",
    max_memory: float | str | None = None,
) -> torch.Tensor:
    """The NTK Gram ``K = (1/n) J J^T`` itself, float64, shape ``(n*k, n*k)``.

    Rows and columns are ordered ``i * n_outputs + c`` (sample i, output c), matching
    ``model(X).reshape(-1)``. Built by the Gram route (never materialising J); options as in
    :func:`gn_spectrum`. Its non-zero eigenvalues are those of G. Needed where eigenvectors
    in output space matter, e.g. the training-loss forecast.

    Raises
    ------
    GNAdvisorError
        As :func:`gn_spectrum`, including when the Gram does not fit the memory budget.

    Examples
    --------
    >>> import torch, gnadvisor as gna
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    >>> K = gna.gn_gram(net, torch.randn(4, 3))
    >>> tuple(K.shape), bool(torch.allclose(K, K.T))
    ((8, 8), True)
    """
    problem = build_problem(model, X, device=device, coordinates=coordinates, batchnorm=batchnorm,
                            params=params, masks=masks)
    budget = memory_budget(problem.device, max_memory)
    if _route_bytes(problem, Route.GRAM) > budget:
        raise _too_big(problem, Route.GRAM, budget)
    K, _ = gram_matrix(problem, budget=budget)
    return K
