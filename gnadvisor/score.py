"""Score a model: its exact GN spectrum, where the ill-conditioning comes from, and the bounds that apply."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

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
    """Everything ``gnadvisor score`` prints. See :func:`score_model`."""

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

    Rank rule: lambda > lambda_max * d * eps64 (d = flattened input width).
    """
    Xf = X.reshape(X.shape[0], -1).to(torch.float64)
    d = Xf.shape[1]
    sig = torch.linalg.svdvals(Xf) ** 2 / Xf.shape[0]
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
    *,
    method: str = "auto",
    device: str = "auto",
    per_layer: bool = True,
    with_bounds: bool = True,
    **spectrum_kwargs: Any,
) -> ScoreReport:
    """Exact GN spectrum of ``model`` on ``X`` plus a per-layer breakdown and the applicable bounds.

    Parameters
    ----------
    model : torch.nn.Module
    X : torch.Tensor
        Inputs ``(n_samples, ...)``.
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
        ``params``, ``masks``, ``full``, ``rtol``, ``max_memory``).

    Returns
    -------
    ScoreReport

    Raises
    ------
    GNAdvisorError
        As :func:`gnadvisor.gn_spectrum`.

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
    """
    t0 = time.perf_counter()
    dev = resolve_device(device)
    spec = gn_spectrum(model, X, method=method, device=dev, **spectrum_kwargs)
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
                       n_params_total=n_total, time_s=time.perf_counter() - t0)


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
            f"the input covariance is ill-conditioned (kappa(Sigma) = {kappa_sigma:.3g}) and kappa(G) scales with it "
            "(paper Lemma 1/2, Remark R2): whiten or standardise the inputs (--whiten / --standardize)"
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
