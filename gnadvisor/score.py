"""Score a model: its exact GN spectrum, where the ill-conditioning comes from, the bounds that apply
and, with targets, the training-speed forecast of the linearised dynamics."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ._checks import GNAdvisorError, check_positive_float, check_positive_int
from .forecast import Forecast
from .spectrum import Spectrum, gn_spectrum
from .spectrum._problem import resolve_device


@dataclass(frozen=True)
class BlockReport:
    """kappa of the GN restricted to one layer's (block's) parameters, and its share of the trace.

    ``trace_share = tr(G_bb) / tr(G)``: the fraction of the total curvature carried by the
    block. A block with a large kappa and a large share is where the ill-conditioning lives.
    """

    name: str
    params: tuple[str, ...]
    n_params: int
    condition_number: float
    lambda_max: float
    lambda_min: float
    rank: int
    trace_share: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": list(self.params), "n_params": self.n_params,
                "condition_number": self.condition_number, "lambda_max": self.lambda_max,
                "lambda_min": self.lambda_min, "rank": self.rank, "trace_share": self.trace_share}


@dataclass(frozen=True)
class ScoreReport:
    """Everything ``gnadvisor score`` prints. See :func:`score_model`.

    ``forecast`` is the training-speed forecast (:class:`gnadvisor.Forecast`) when
    ``score_model`` was given targets and ``forecast_steps``, else ``None``.
    """

    spectrum: Spectrum
    layers: tuple[BlockReport, ...]
    data_condition_number: float
    data_rank: int
    theoretical_rank: int | None
    bounds: dict[str, Any]
    advice: tuple[str, ...]
    n_params_total: int
    time_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    forecast: Forecast | None = None

    @property
    def condition_number(self) -> float:
        return self.spectrum.condition_number

    def to_dict(self, *, with_eigenvalues: bool = False) -> dict[str, Any]:
        d = self.spectrum.to_dict(with_eigenvalues=with_eigenvalues)
        d.update({
            "params": self.spectrum.n_params,
            "n_params_total": self.n_params_total,
            "nk": self.spectrum.n_samples * self.spectrum.n_outputs,
            "theoretical_rank": self.theoretical_rank,
            "data_condition_number": self.data_condition_number,
            "data_rank": self.data_rank,
            "layers": [b.to_dict() for b in self.layers],
            "bounds": self.bounds,
            "advice": list(self.advice),
            "time_s": round(self.time_s, 4),
        })
        if self.forecast is not None:
            d["forecast"] = self.forecast.to_dict(with_curve=True)
        d.update(self.extra)
        return d


def _blocks(model: nn.Module, names: list[str]) -> list[tuple[str, list[str]]]:
    """Group parameter names by their owning module (``'0.weight', '0.bias'`` -> block ``'0'``)."""
    groups: dict[str, list[str]] = {}
    for n in names:
        owner = n.rsplit(".", 1)[0] if "." in n else "(root)"
        groups.setdefault(owner, []).append(n)
    return list(groups.items())


def data_condition(X: torch.Tensor) -> tuple[float, int]:
    """kappa(Sigma) of Sigma = X^T X / n over its non-zero spectrum, and rank(Sigma).

    Rank rule: lambda > lambda_max * d * eps64 (d = flattened input width). All-zero inputs
    give ``(nan, 0)``.
    """
    Xf = X.reshape(X.shape[0], -1).to(torch.float64)
    d = Xf.shape[1]
    sig = torch.linalg.svdvals(Xf) ** 2 / Xf.shape[0]
    if sig.numel() == 0 or not float(sig[0]) > 0:  # all-zero inputs: Sigma = 0, kappa undefined
        return math.nan, 0
    sig = sig[sig > sig[0] * max(d, Xf.shape[0]) * np.finfo(np.float64).eps]
    return float(sig[0] / sig[-1]), int(sig.numel())


def _theoretical_rank(model: nn.Module, data_rank: int, k: int) -> int | None:
    """rank(G) = q (r + k - q), q = min(r, widths, k), for linear (residual) chains (gn-theory Sec. 3)."""
    from .bounds import linear_structure

    try:
        struct = linear_structure(model)
    except Exception:  # noqa: BLE001 - not a recognised shape
        return None
    if not struct or struct.get("kind") != "linear_chain":
        return None
    widths = [int(w.shape[0]) for w in struct["weights"][:-1]]
    q = min([data_rank, k] + widths)
    return q * (data_rank + k - q)


def score_model(
    model: nn.Module,
    X: Any,
    Y: Any = None,
    *,
    forecast_steps: int | None = None,
    forecast_lr: float | None = None,
    method: str = "auto",
    device: str = "auto",
    per_layer: bool = True,
    with_bounds: bool = True,
    **spectrum_kwargs: Any,
) -> ScoreReport:
    """Exact GN spectrum of ``model`` on ``X`` plus a per-layer breakdown and the applicable bounds.

    With targets ``Y`` and ``forecast_steps=T`` the report also carries the training-speed
    forecast of :func:`gnadvisor.gn_forecast`: the loss ``L = ||f(X) - Y||^2 / (2 n)`` after
    ``0..T`` steps of full-batch gradient descent predicted by the linearised (NTK / GN)
    dynamics, ``L_t = sum_i (1 - lr lambda_i)^(2t) (u_i^T r_0)^2 / (2 n)`` with ``K = (1/n) J J^T``.

    Parameters
    ----------
    model : torch.nn.Module
    X : torch.Tensor
        Inputs ``(n_samples, ...)``.
    Y : torch.Tensor or numpy.ndarray, optional
        Targets ``(n_samples, k)`` with ``k`` the model's output width (e.g. one-hot labels), row
        ``i`` the target of ``X[i]``. Used only by the forecast.
    forecast_steps : int, optional
        ``T``: forecast the loss after ``T`` full-batch GD steps (needs ``Y``). ``None`` (default):
        no forecast.
    forecast_lr : float, optional
        Step size of the forecast; default ``1 / lambda_max`` (the forecast's own default). Only
        with ``forecast_steps``.
    method, device : str
        Passed to :func:`gnadvisor.gn_spectrum` (``method`` for the whole model; each block uses
        ``"auto"``).
    per_layer : bool
        Compute kappa of the GN restricted to each layer's parameters (one spectrum per layer).
    with_bounds : bool
        Evaluate the closed-form bounds of :mod:`gnadvisor.bounds` when the model has a shape
        they cover (linear / residual chains, one hidden Leaky-ReLU layer).
    **spectrum_kwargs
        Other options of :func:`gnadvisor.gn_spectrum` (``coordinates``, ``batchnorm``,
        ``params``, ``masks``, ``full``, ``rtol``, ``max_memory``). The forecast uses the same
        ``batchnorm``, ``params``, ``masks``, ``rtol`` and ``max_memory``, but always the kept
        coordinates of a pruned model (the ones gradient descent moves).

    Returns
    -------
    ScoreReport
        ``report.forecast`` is the :class:`gnadvisor.Forecast` (``None`` without
        ``forecast_steps``); ``to_dict()`` then has a ``"forecast"`` object.

    Raises
    ------
    GNAdvisorError
        As :func:`gnadvisor.gn_spectrum` and :func:`gnadvisor.gn_forecast`; also for
        ``forecast_steps`` without ``Y``, ``forecast_lr`` without ``forecast_steps``, and targets
        whose shape is not ``(n_samples, k)``.

    Notes
    -----
    The forecast needs all ``n k`` eigenpairs of the NTK Gram ``K``. When the spectrum's route is
    the Gram route (``method="gram"``, or ``"auto"`` choosing it) on the kept coordinates, one
    Gram and one eigendecomposition serve both (see :func:`spectrum_and_forecast`). Otherwise
    (Kronecker, Jacobian or Lanczos route, or ``coordinates="all"``) the forecast builds the Gram
    a second time; this costs one more ``n k x n k`` matrix and eigendecomposition.

    Examples
    --------
    >>> import torch, gnadvisor as gna
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> rep = gna.score_model(net, torch.randn(40, 4))
    >>> [b.name for b in rep.layers]
    ['0', '2']
    >>> round(sum(b.trace_share for b in rep.layers), 10)
    1.0
    >>> rep = gna.score_model(net, torch.randn(40, 4), torch.randn(40, 3), forecast_steps=10, per_layer=False)
    >>> rep.forecast.losses.shape, rep.forecast.lr == 1 / rep.forecast.lambda_max
    ((11,), True)
    """
    t0 = time.perf_counter()
    if forecast_steps is None:
        if forecast_lr is not None:
            raise GNAdvisorError(f"forecast_lr is the step size of the forecast and needs forecast_steps, got "
                                 f"forecast_lr={forecast_lr!r} without it")
    else:
        forecast_steps = check_positive_int("forecast_steps", forecast_steps, allow_zero=True)
        if Y is None:
            raise GNAdvisorError(
                f"forecast_steps={forecast_steps} needs targets Y of shape (n_samples, n_outputs), e.g. one-hot "
                "labels, got None"
            )
        if forecast_lr is not None:
            forecast_lr = check_positive_float("forecast_lr", forecast_lr)
    dev = resolve_device(device)
    forecast = None
    if forecast_steps is None:
        spec = gn_spectrum(model, X, method=method, device=dev, **spectrum_kwargs)
    else:
        spec, forecast = spectrum_and_forecast(model, X, Y, steps=forecast_steps, lr=forecast_lr, method=method,
                                               device=dev, **spectrum_kwargs)
    Xt = X if isinstance(X, torch.Tensor) else torch.as_tensor(X)
    kappa_sigma, data_rank = data_condition(Xt)
    layers: list[BlockReport] = []
    if per_layer:
        names = _counted_names(model, spectrum_kwargs.get("params"))
        total_trace = None
        reports = []
        kw = {k: v for k, v in spectrum_kwargs.items() if k not in ("params", "full")}
        for block, pnames in _blocks(model, names):
            s = gn_spectrum(model, X, device=dev, params=pnames, **kw)
            trace = float(np.sum(s.eigenvalues) + np.sum(s.below_cut if s.below_cut is not None else 0.0))
            reports.append((block, pnames, s, trace))
        total_trace = sum(r[3] for r in reports) or 1.0
        layers = [
            BlockReport(name=b, params=tuple(p), n_params=s.n_params, condition_number=s.condition_number,
                        lambda_max=s.lambda_max, lambda_min=s.lambda_min, rank=int(s.rank or 0),
                        trace_share=tr / total_trace)
            for b, p, s, tr in reports
        ]
    bounds: dict[str, Any] = {}
    if with_bounds:
        from .bounds import gn_bounds

        try:
            found = gn_bounds(model, Xt)
        except Exception:  # noqa: BLE001 - shapes the bounds do not cover
            found = {}
        bounds = {name: b.to_dict() for name, b in found.items()}
    theo = _theoretical_rank(model, data_rank, spec.n_outputs)
    advice = _advice(spec, layers, kappa_sigma, theo)
    n_total = sum(p.numel() for p in model.parameters())
    return ScoreReport(spectrum=spec, layers=tuple(layers), data_condition_number=kappa_sigma,
                       data_rank=data_rank, theoretical_rank=theo, bounds=bounds, advice=tuple(advice),
                       n_params_total=n_total, time_s=time.perf_counter() - t0, forecast=forecast)


def spectrum_and_forecast(
    model: nn.Module,
    X: Any,
    Y: Any,
    *,
    steps: int,
    lr: float | None = None,
    method: str = "auto",
    device: str | torch.device = "auto",
    coordinates: str = "kept",
    batchnorm: str = "train",
    params: Any = None,
    masks: Any = "auto",
    full: bool = True,
    rtol: float | None = None,
    max_memory: float | str | None = None,
) -> tuple[Spectrum, Forecast]:
    """:func:`gnadvisor.gn_spectrum` and :func:`gnadvisor.gn_forecast` of one model, sharing the Gram.

    The targets' shape is checked first (a cheap forward pass), before anything expensive.
    When ``coordinates="kept"`` and the spectrum's route is the Gram route (``method="gram"``,
    or ``"auto"`` choosing it by the same rule as :func:`gnadvisor.gn_spectrum`), the
    ``n k x n k`` NTK Gram is built once and one symmetric eigendecomposition (with
    eigenvectors) gives both: the spectrum (the same rank rule, route notes and fields as
    ``gn_spectrum``; eigenvalues agree with it to rounding, and ``full`` is moot since the
    whole spectrum is computed) and the forecast (identical to ``gn_forecast``). Otherwise
    the two functions are called one after the other and the Gram is built a second time by
    the forecast.

    Parameters
    ----------
    model, X
        As :func:`gnadvisor.gn_spectrum`.
    Y : torch.Tensor or numpy.ndarray
        Targets ``(n_samples, k)``, ``k`` the model's output width (a 1-D array when ``k = 1``).
    steps : int
        Forecast horizon ``T`` (>= 0).
    lr : float, optional
        Forecast step size; default ``1 / lambda_max`` of the forecast's GN.
    method, device, coordinates, batchnorm, params, masks, full, rtol, max_memory
        As :func:`gnadvisor.gn_spectrum`. The forecast always uses the kept coordinates (what
        training moves); ``coordinates`` applies to the spectrum.

    Returns
    -------
    (Spectrum, Forecast)

    Raises
    ------
    GNAdvisorError
        As the two functions, and for targets whose shape is not ``(n_samples, k)``.
    """
    from .forecast import _forecast_from_eigen, gn_forecast
    from .spectrum import Route
    from .spectrum._base import RANK_RULE, default_rtol, split_spectrum
    from .spectrum._problem import build_problem, memory_budget
    from .spectrum.api import _all_zero, _choose_route
    from .spectrum.gram import gram_matrix

    steps = check_positive_int("steps", steps, allow_zero=True)
    if lr is not None:
        lr = check_positive_float("lr", lr)
    if rtol is not None and not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise GNAdvisorError(f"rtol must be a number in (0, 1), got {rtol!r}")
    t0 = time.perf_counter()
    problem = build_problem(model, X, device=device, coordinates="kept", batchnorm=batchnorm, params=params,
                            masks=masks)
    Yt = _check_targets(Y, problem.n_samples, problem.n_outputs)
    route = None
    if coordinates == "kept" and method in ("auto", Route.GRAM.value):
        budget = memory_budget(problem.device, max_memory)
        try:
            route = _choose_route(problem, method, budget)
        except GNAdvisorError:
            route = None  # let gn_spectrum report it
    if route is not Route.GRAM:
        spec = gn_spectrum(model, X, method=method, device=device, coordinates=coordinates, batchnorm=batchnorm,
                           params=params, masks=masks, full=full, rtol=rtol, max_memory=max_memory)
        fc = gn_forecast(model, X, Yt, steps=steps, lr=lr, device=device, coordinates="kept", batchnorm=batchnorm,
                         params=params, masks=masks, rtol=rtol, max_memory=max_memory)
        return spec, fc

    # one Gram, one eigendecomposition (mirrors gn_spectrum's Gram route and gn_forecast)
    rtol_used = float(rtol) if rtol is not None else default_rtol(problem.n_params, problem.n_rows)
    try:
        K, route_notes = gram_matrix(problem, budget=budget)
    except RuntimeError as exc:
        text = str(exc)
        if "in-place" in text or "mutate" in text:
            raise GNAdvisorError(
                "the model modifies a captured tensor in place during forward (e.g. a buffer update of an exported "
                "training-mode batch norm), which torch.func cannot differentiate; use the model in eval mode "
                "or as a plain nn.Module"
            ) from None
        raise
    with torch.no_grad():
        r0 = problem.f({}) - Yt.to(problem.device).reshape(-1)
    K = 0.5 * (K + K.T)
    ev_t, U = torch.linalg.eigh(K)
    del K
    proj = ((U.T @ r0.reshape(-1, 1)).reshape(-1) ** 2).flip(0).cpu().numpy()
    del U
    ev = ev_t.flip(0).cpu().numpy()
    if ev.size == 0 or not np.isfinite(ev).all() or ev[0] <= 0:
        raise _all_zero()
    nonzero, below = split_spectrum(ev, rtol_used)
    notes = tuple(list(problem.notes) + list(route_notes))
    gap = float(nonzero[-1] / below[0]) if below.size and below[0] > 0 else math.inf
    spec = Spectrum(
        eigenvalues=nonzero, lambda_max=float(nonzero[0]), lambda_min=float(nonzero[-1]),
        condition_number=float(nonzero[0] / nonzero[-1]), rank=int(nonzero.size), spectral_gap=gap,
        method=Route.GRAM.value, device=str(problem.device), n_samples=problem.n_samples,
        n_outputs=problem.n_outputs, n_params=problem.n_params, matrix_dim=problem.n_rows, rtol=rtol_used,
        rank_rule=RANK_RULE, coordinates=problem.coordinates, certified=True, time_s=time.perf_counter() - t0,
        below_cut=below, notes=notes,
    )
    lam = np.where(ev > rtol_used * ev[0], ev, 0.0)
    fc = _forecast_from_eigen(lam, proj, n_samples=problem.n_samples, n_outputs=problem.n_outputs,
                              n_params=problem.n_params, steps=steps, lr=lr, lr_scale=None, rtol=rtol_used,
                              notes=notes + ("Gram and eigendecomposition shared with the spectrum",), t0=t0)
    return spec, fc


def _check_targets(Y: Any, n: int, k: int) -> torch.Tensor:
    """Targets as a float64 ``(n, k)`` CPU tensor, or a one-line error naming the expected shape."""
    if isinstance(Y, np.ndarray):
        if Y.dtype.kind not in "biuf":
            raise GNAdvisorError(f"targets Y must be numeric, got dtype {Y.dtype}")
        Y = torch.from_numpy(np.ascontiguousarray(Y))
    if not isinstance(Y, torch.Tensor):
        raise GNAdvisorError(f"targets Y must be a torch.Tensor or numpy array of shape ({n}, {k}), "
                             f"got {type(Y).__name__}")
    if Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    if Y.ndim != 2 or Y.shape[0] != n:
        raise GNAdvisorError(
            f"targets must have one row per sample: {n} rows of {k} values, got shape {tuple(Y.shape)}"
        )
    if Y.shape[1] != k:
        raise GNAdvisorError(
            f"targets must have one column per model output: the model has {k} outputs per sample, the targets "
            f"have {Y.shape[1]} columns (shape {tuple(Y.shape)}); one-hot encode class labels with {k} classes"
        )
    if Y.is_complex():
        raise GNAdvisorError(f"targets Y must be real-valued, got dtype {Y.dtype}")
    Y = Y.detach().to("cpu", torch.float64)
    if not torch.isfinite(Y).all():
        raise GNAdvisorError("targets Y must contain only finite values, got NaN or inf")
    return Y


def _counted_names(model: nn.Module, params: Any) -> list[str]:
    """Parameter names gn_spectrum will count (pruning's ``_orig`` suffix folded), same rules."""
    names = []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        base = n[: -len("_orig")] if n.endswith("_orig") else n
        names.append(base)
    if params is None or params == "all":
        return names
    if params == "weights":
        shapes = {(n[: -len("_orig")] if n.endswith("_orig") else n): p.ndim for n, p in model.named_parameters()}
        return [n for n in names if n.rsplit(".", 1)[-1] == "weight" and shapes[n] >= 2]
    if callable(params):
        tensors = dict(model.named_parameters())
        return [n for n in names if params(n, tensors.get(n, tensors.get(n + "_orig")))]
    wanted = {p[: -len("_orig")] if p.endswith("_orig") else p for p in params}
    return [n for n in names if n in wanted]


def _advice(spec: Spectrum, layers: list[BlockReport], kappa_sigma: float, theo: int | None) -> list[str]:
    out = []
    if kappa_sigma > 10 and kappa_sigma ** 2 > spec.condition_number ** 0.5:
        out.append(
            f"the input covariance is ill-conditioned (kappa(Sigma) = {kappa_sigma:.3g}); for linear and residual "
            "chains kappa(G) scales with it (paper Lemma 1/2, Remark R2): rescore with --standardize or --whiten and "
            "compare (for non-linear nets either can also raise kappa: whitening changes the input scale)"
        )
    if layers:
        worst = max(layers, key=lambda b: b.condition_number * max(b.trace_share, 1e-12))
        out.append(
            f"layer {worst.name!r} is the worst conditioned block weighted by its curvature share "
            f"(kappa {worst.condition_number:.3g}, {100 * worst.trace_share:.1f}% of the trace)"
        )
    if theo is not None and spec.rank is not None and spec.rank != theo:
        out.append(f"numerical rank {spec.rank} differs from the theoretical rank {theo}: check the rank cut (spectral gap)")
    if np.isfinite(spec.spectral_gap) and spec.spectral_gap < 100:
        out.append(
            f"the rank cut is not clean (spectral gap {spec.spectral_gap:.3g}): kappa depends on the cut; "
            "compare with a coarser --rtol"
        )
    return out
