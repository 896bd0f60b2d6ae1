"""Compare pruning schemes and sparsities by the GN conditioning and the trainability they leave.

Zhao, Singh & Lucchi (2024, Fig. 1 and 13-17) prune at initialisation and observe that the
Gauss-Newton condition number ``kappa = lambda_max / lambda_min!=0`` grows with the sparsity and
that training slows down. :func:`compare_pruning` measures both for any model and any registered
scheme: for each scheme x sparsity x seed it installs the masks (:func:`prune_model`), computes
``kappa`` of the GN with :func:`gnadvisor.gn_spectrum` on the kept coordinates, on all coordinates
(the paper's convention), or both (gn-theory Sec. 7), optionally trains the pruned model with the
masks fixed (:func:`gnadvisor.training.train`), optionally forecasts the training loss from the
linearised dynamics (:func:`gnadvisor.gn_forecast`, full-batch GD on the kept coordinates), and
aggregates over seeds. :func:`measure_pruning` does one (scheme, sparsity, seed) cell; the
architecture search reuses it.

==================  ===============================  =========================================
paper               code                             meaning
==================  ===============================  =========================================
kappa(G)            ``condition_number``             lambda_max / lambda_min!=0 of G
lambda_max          ``lambda_max``                   largest eigenvalue of G
lambda_min!=0       ``lambda_min``                   smallest non-zero eigenvalue of G
s                   ``sparsity``                     requested fraction of pruned weights
L(theta)            ``final_loss``                   (1/(2n)) sum_i ||f(x_i) - y_i||^2
L_T / L_0           ``forecast_loss_ratio``          forecast loss ratio after T GD steps
==================  ===============================  =========================================
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from gnadvisor._checks import (
    GNAdvisorError,
    check_choice,
    check_fraction,
    check_positive_float,
    check_positive_int,
)
from gnadvisor.pruning._base import as_float64, check_unpruned, check_xy, prunable_parameters

__all__ = [
    "COORDINATES",
    "DENSE",
    "PruningComparison",
    "PruningCurve",
    "PruningRow",
    "PruningRun",
    "RankCorrelation",
    "compare_pruning",
    "measure_pruning",
]

#: Label of the unpruned reference cell (sparsity 0), shared by every scheme.
DENSE = "dense"
#: Values of the ``coordinates`` argument of :func:`compare_pruning`.
COORDINATES = ("kept", "all", "both")
#: Learning rate used by ``lr="auto"`` / ``"auto-cell"`` with Adam (PyTorch's default).
_ADAM_AUTO_LR = 1e-3
#: Learning-rate rules of :func:`compare_pruning` besides a number.
_LR_RULES = ("auto", "auto-cell")
#: Messages of :func:`gnadvisor.gn_spectrum` meaning "G has no non-zero eigenvalue".
_DEGENERATE = ("Gauss-Newton matrix is zero", "every selected coordinate is pruned")

ModelSource = Any  # nn.Module | ArchSpec | Callable[[int], nn.Module]


# ---------------------------------------------------------------------------------- records


#: A spectral gap at the rank cut below this means the cut is not clean: kappa depends on rtol.
UNCLEAR_GAP = 100.0


@dataclass(frozen=True, eq=False)
class PruningRun:
    """One (scheme, sparsity, seed) cell: masks, spectra and, optionally, training.

    Attributes
    ----------
    scheme : str
        Registered scheme name, or ``"dense"`` for the unpruned reference (sparsity 0).
    sparsity : float
        Requested sparsity ``s``.
    seed : int
        Seed of the model (when rebuilt), of random masks, of the subsample and of SGD.
    sparsity_achieved : float
        Fraction of all prunable weights that is pruned (``floor`` rounding per tensor for
        layer-wise schemes makes it slightly below ``s``).
    n_weights : int
        Number of prunable weights (pruned or not).
    collapsed_layers : tuple of str
        Prunable tensors whose every entry is pruned (layer collapse).
    spectra : dict of str to Spectrum or None
        Per coordinates convention (``"kept"``/``"all"``), the GN spectrum, or ``None`` when G
        has no non-zero eigenvalue (e.g. a collapsed layer cuts a bias-free network: the output
        no longer depends on the kept weights); kappa is then reported as ``inf``.
    lr : float or None
        Learning rate used for training (``None`` without training).
    loss_steps, losses : numpy.ndarray or None
        Loss curve of :func:`gnadvisor.training.train` (``inf`` from a divergence on).
    final_loss : float or None
        Loss after the last step.
    diverged : bool or None
        Whether training diverged.
    notes : tuple of str
        What happened, one sentence each.
    forecast : Forecast or None
        With ``forecast_steps > 0``: :func:`gnadvisor.gn_forecast` of this pruned model, full-batch
        GD on the kept coordinates at its default ``lr = 1 / lambda_max`` of the kept GN. When G is
        zero on the kept coordinates the gradient vanishes: a constant forecast ``L_t = L_0``
        (``ratio = 1``, ``lr = nan``, ``lambda_max = 0``).
    forecast_train_lr : Forecast or None
        The same forecast at the learning rate used for training (``lr``), when the cell was
        trained with SGD or GD (not Adam): ``forecast.with_schedule(lr=lr)``, no new Gram.
    """

    scheme: str
    sparsity: float
    seed: int
    sparsity_achieved: float
    n_weights: int
    collapsed_layers: tuple[str, ...]
    spectra: Mapping[str, Any]
    lr: float | None = None
    loss_steps: np.ndarray | None = None
    losses: np.ndarray | None = None
    final_loss: float | None = None
    diverged: bool | None = None
    notes: tuple[str, ...] = ()
    forecast: Any = None
    forecast_train_lr: Any = None

    def condition_number(self, coordinates: str = "kept") -> float:
        """kappa on ``coordinates``; ``inf`` when G has no non-zero eigenvalue."""
        s = self.spectra[coordinates]
        return math.inf if s is None else float(s.condition_number)

    def lambda_max(self, coordinates: str = "kept") -> float:
        """lambda_max on ``coordinates``; 0 when G is zero."""
        s = self.spectra[coordinates]
        return 0.0 if s is None else float(s.lambda_max)

    def lambda_min(self, coordinates: str = "kept") -> float:
        """lambda_min!=0 on ``coordinates``; ``nan`` when G is zero (no non-zero eigenvalue)."""
        s = self.spectra[coordinates]
        return math.nan if s is None else float(s.lambda_min)

    def spectral_gap(self, coordinates: str = "kept") -> float:
        """lambda_rank / lambda_rank+1 at the rank cut (``inf`` when nothing lies below it, ``nan``
        when G is zero or the spectrum was not computed in full)."""
        s = self.spectra[coordinates]
        return math.nan if s is None or s.spectral_gap is None else float(s.spectral_gap)

    def rank(self, coordinates: str = "kept") -> int:
        """Rank of G on ``coordinates`` (0 when G is zero)."""
        s = self.spectra[coordinates]
        return 0 if s is None else int(s.rank)

    def n_params(self, coordinates: str = "kept") -> int | None:
        """Number of coordinates G is taken over (``None`` when G is zero)."""
        s = self.spectra[coordinates]
        return None if s is None else int(s.n_params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"cells": [one dict per coordinates convention], "notes": [...]}``."""
        out = []
        for c, s in self.spectra.items():
            out.append({
                "scheme": self.scheme, "sparsity": self.sparsity, "seed": self.seed, "coordinates": c,
                "sparsity_achieved": self.sparsity_achieved, "n_weights": self.n_weights,
                "collapsed_layers": list(self.collapsed_layers),
                "condition_number": _num(self.condition_number(c)), "lambda_max": _num(self.lambda_max(c)),
                "lambda_min": _num(self.lambda_min(c)), "rank": self.rank(c), "n_params": self.n_params(c),
                "method": None if s is None else s.method,
                "degenerate": s is None, "lr": self.lr, "final_loss": _num(self.final_loss),
                "diverged": self.diverged,
            })
            out[-1].update(self._forecast_fields())
        return {"cells": out, "notes": list(self.notes)}

    def _forecast_fields(self) -> dict[str, Any]:
        """Per-seed forecast numbers (empty without a forecast)."""
        f, ft = self.forecast, self.forecast_train_lr
        if f is None:
            return {}
        return {"forecast_steps": f.steps, "forecast_lr": _num(f.lr), "forecast_initial_loss": _num(f.initial_loss),
                "forecast_final_loss": _num(f.final_loss), "forecast_loss_ratio": _num(f.ratio),
                "forecast_log_decrease": _num(f.log_decrease), "forecast_stable": f.stable,
                "forecast_final_loss_train_lr": None if ft is None else _num(ft.final_loss),
                "forecast_loss_ratio_train_lr": None if ft is None else _num(ft.ratio)}


@dataclass(frozen=True)
class PruningRow:
    """One (scheme, sparsity, coordinates) cell aggregated over seeds.

    ``*_std`` are population standard deviations over seeds (``ddof=0``; 0 with one seed).
    Means over seeds that include an ``inf`` are ``inf`` with a ``nan`` spread.

    ``spectral_gap_min``: the smallest spectral gap lambda_rank / lambda_rank+1 at the rank cut
    over the seeds (``inf``: nothing below the cut); ``n_unclear_cut``: seeds whose gap is below
    :data:`UNCLEAR_GAP`, where kappa depends on the cut (rtol) rather than on the network.

    ``forecast_*`` (``None`` without ``forecast_steps``): the linearised forecast of full-batch GD
    on the kept coordinates after ``forecast_steps`` steps, at ``lr = 1 / lambda_max`` of each
    seed's kept GN (``forecast_lr``, mean over seeds): ``forecast_loss_ratio = L_T / L_0`` and
    ``forecast_final_loss = L_T``; ``*_train_lr``: the same forecast at the learning rate each seed
    was trained with (SGD/GD only).
    """

    scheme: str
    sparsity: float
    coordinates: str
    n_seeds: int
    sparsity_achieved: float
    condition_number: float
    condition_number_std: float
    condition_number_min: float
    condition_number_max: float
    lambda_max: float
    lambda_min: float
    rank: float
    n_params: float
    n_degenerate: int
    n_collapsed: int
    final_loss: float | None = None
    final_loss_std: float | None = None
    n_diverged: int | None = None
    lr: float | None = None
    forecast_loss_ratio: float | None = None
    forecast_loss_ratio_std: float | None = None
    forecast_final_loss: float | None = None
    forecast_final_loss_std: float | None = None
    forecast_lr: float | None = None
    forecast_loss_ratio_train_lr: float | None = None
    forecast_final_loss_train_lr: float | None = None
    spectral_gap_min: float = math.inf
    n_unclear_cut: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``inf`` as the string ``"inf"``, ``nan`` as ``None``)."""
        return {f.name: _num(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True, eq=False)
class PruningCurve:
    """Training loss curve of one (scheme, sparsity) cell over seeds.

    Attributes
    ----------
    scheme, sparsity : str, float
        The cell.
    steps : numpy.ndarray
        Step index of every recorded loss.
    losses : numpy.ndarray
        ``(n_seeds, len(steps))`` full-data losses, one row per seed.
    loss_mean, loss_std : numpy.ndarray
        Mean and population standard deviation over seeds.
    """

    scheme: str
    sparsity: float
    steps: np.ndarray
    losses: np.ndarray
    loss_mean: np.ndarray
    loss_std: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"scheme": self.scheme, "sparsity": self.sparsity, "steps": self.steps.tolist(),
                "loss_mean": [_num(v) for v in self.loss_mean], "loss_std": [_num(v) for v in self.loss_std],
                "losses": [[_num(v) for v in row] for row in self.losses]}


@dataclass(frozen=True)
class RankCorrelation:
    """Rank correlation between kappa (or the forecast loss) and the loss after training, over the cells.

    Positive values mean that cells with a larger kappa train to a larger loss, as the paper's
    theory predicts (for the forecast: that the forecast ranks the cells as training does).
    ``nan`` when fewer than 3 cells have both numbers, or when one of the two is constant over
    the cells.

    Attributes
    ----------
    coordinates : str
        Which kappa (``"kept"`` or ``"all"``); ``"kept"`` for the forecast.
    n_cells : int
        Number of (scheme, sparsity) cells used (the dense cell counts once).
    spearman, spearman_pvalue : float
        ``scipy.stats.spearmanr`` of (mean kappa, mean final loss) over the cells.
    kendall, kendall_pvalue : float
        ``scipy.stats.kendalltau`` (tau-b) of the same pairs.
    """

    coordinates: str
    n_cells: int
    spearman: float
    spearman_pvalue: float
    kendall: float
    kendall_pvalue: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {f.name: _num(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True, eq=False)
class PruningComparison:
    """Result of :func:`compare_pruning`.

    Attributes
    ----------
    rows : tuple of PruningRow
        One per (scheme, sparsity, coordinates): the dense reference (``scheme="dense"``,
        sparsity 0, when 0 was requested) first, then schemes in the requested order and
        sparsities ascending; with ``coordinates="both"`` the ``"kept"`` row precedes ``"all"``.
    runs : tuple of PruningRun
        Every (scheme, sparsity, seed) cell.
    curves : tuple of PruningCurve
        One per (scheme, sparsity) when ``train_steps > 0``, else empty.
    rank_correlation : dict of str to RankCorrelation
        Per coordinates convention, when ``train_steps > 0``; else empty.
    schemes, sparsities, seeds, coordinates : tuple, tuple, tuple, tuple of str
        What was compared (``coordinates`` resolved: ``("kept",)``, ``("all",)`` or both).
    train_steps : int
        Optimiser steps per pruned model (0: no training).
    optimizer : str
        ``"sgd"``, ``"gd"`` or ``"adam"``.
    lrs : tuple of float
        Learning rate used for each seed (all equal unless ``lr="auto"``); ``nan`` without training
        and with ``lr="auto-cell"`` (then see ``PruningRow.lr`` / ``PruningRun.lr``).
    lr_rule : str or None
        ``"given"``, ``"auto"``, ``"auto-cell"`` or ``"adam-default"``; ``None`` without training.
    n_samples : int
        Samples used per seed.
    model_kind : str
        ``"module"`` (fixed weights), ``"spec"`` or ``"factory"`` (re-initialised per seed).
    notes : tuple of str
        Conventions and anything worth knowing, one sentence each.
    forecast_steps : int
        Forecast horizon ``T`` (0: no forecast).
    forecast_rank_correlation : dict of str to RankCorrelation
        With a forecast and training: ``"cell_lr"`` (forecast at ``1 / lambda_max`` of each cell)
        and, for SGD/GD, ``"train_lr"`` (forecast at the training lr): rank correlation of the
        forecast loss ``L_T`` (mean over seeds) with the measured loss after training (mean over
        seeds) over the cells; else empty.
    """

    rows: tuple[PruningRow, ...]
    runs: tuple[PruningRun, ...]
    curves: tuple[PruningCurve, ...]
    rank_correlation: Mapping[str, RankCorrelation]
    schemes: tuple[str, ...]
    sparsities: tuple[float, ...]
    seeds: tuple[int, ...]
    coordinates: tuple[str, ...]
    train_steps: int
    optimizer: str
    lrs: tuple[float, ...]
    lr_rule: str | None
    n_samples: int
    model_kind: str
    notes: tuple[str, ...] = ()
    forecast_steps: int = 0
    forecast_rank_correlation: Mapping[str, RankCorrelation] = dataclasses.field(default_factory=dict)

    def row(self, scheme: str, sparsity: float, coordinates: str = "kept") -> PruningRow:
        """The row of one cell (``scheme="dense"`` for sparsity 0).

        Raises
        ------
        KeyError
            If there is no such row.
        """
        for r in self.rows:
            if r.scheme == scheme and r.coordinates == coordinates and math.isclose(r.sparsity, sparsity):
                return r
        raise KeyError((scheme, sparsity, coordinates))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``rows``, ``runs`` (per seed), ``curves``, ``rank_correlation``, settings.

        With a forecast, rows and runs carry ``forecast_*`` keys and the dict has
        ``forecast_rank_correlation``; without one (``forecast_steps == 0``) rows have no
        ``forecast_*`` keys.
        """
        rows = [r.to_dict() for r in self.rows]
        if not self.forecast_steps:
            rows = [{k: v for k, v in r.items() if not k.startswith("forecast_")} for r in rows]
        return {
            "rows": rows,
            "runs": [c for run in self.runs for c in run.to_dict()["cells"]],
            "curves": [c.to_dict() for c in self.curves],
            "rank_correlation": {k: v.to_dict() for k, v in self.rank_correlation.items()},
            "forecast_steps": self.forecast_steps,
            "forecast_rank_correlation": {k: v.to_dict() for k, v in self.forecast_rank_correlation.items()},
            "schemes": list(self.schemes),
            "sparsities": list(self.sparsities),
            "seeds": list(self.seeds),
            "coordinates": list(self.coordinates),
            "train_steps": self.train_steps,
            "optimizer": self.optimizer,
            "lrs": [_num(v) for v in self.lrs],
            "lr_rule": self.lr_rule,
            "n_samples": self.n_samples,
            "model_kind": self.model_kind,
            "notes": list(self.notes),
        }

    def to_frame(self, level: str = "rows"):
        """A pandas DataFrame of the ``rows`` (default) or of the per-seed ``runs``.

        Raises
        ------
        GNAdvisorError
            If ``level`` is not ``"rows"`` or ``"runs"``.
        """
        import pandas as pd

        check_choice("level", level, ("rows", "runs"))
        if level == "rows":
            frame = pd.DataFrame([dataclasses.asdict(r) for r in self.rows])
            if not self.forecast_steps:
                frame = frame.drop(columns=[c for c in frame.columns if c.startswith("forecast_")])
            return frame
        records = []
        for run in self.runs:
            for c in run.spectra:
                records.append({
                    "scheme": run.scheme, "sparsity": run.sparsity, "seed": run.seed, "coordinates": c,
                    "sparsity_achieved": run.sparsity_achieved, "condition_number": run.condition_number(c),
                    "lambda_max": run.lambda_max(c), "lambda_min": run.lambda_min(c), "rank": run.rank(c),
                    "n_params": run.n_params(c), "collapsed_layers": ",".join(run.collapsed_layers),
                    "lr": run.lr, "final_loss": run.final_loss, "diverged": run.diverged,
                    **run._forecast_fields(),
                })
        return pd.DataFrame(records)


# ---------------------------------------------------------------------------------- one cell


def measure_pruning(
    model: nn.Module,
    scheme: str | None,
    sparsity: float,
    X: Any,
    Y: Any = None,
    *,
    seed: int = 0,
    coordinates: str = "kept",
    train_steps: int = 0,
    optimizer: str = "sgd",
    lr: float | str | None = None,
    batch_size: int | None = None,
    record_every: int = 1,
    device: str = "auto",
    method: str = "auto",
    scheme_options: Mapping[str, Any] | None = None,
    forecast_steps: int = 0,
) -> PruningRun:
    """Prune ``model`` with one scheme, measure the GN conditioning, optionally train.

    Parameters
    ----------
    model : torch.nn.Module
        Unpruned model; not modified.
    scheme : str or None
        A key of :data:`gnadvisor.pruning.SCHEMES`, or ``None`` for the dense reference
        (then ``sparsity`` must be 0 and the run is labelled ``"dense"``).
    sparsity : float
        Fraction in [0, 1) pruned as the scheme defines (per tensor or globally).
    X : torch.Tensor or array
        Inputs ``(n, ...)``: the scores of data-dependent schemes, the GN, and training.
    Y : torch.Tensor or array, optional
        Targets ``(n, k)``; needed by ``"snip"``, ``"grasp"`` and for training.
    seed : int, default 0
        Seed of random masks and of SGD's batch order.
    coordinates : {"kept", "all", "both"}, default "kept"
        GN on the kept coordinates (the one that governs training of the pruned net), on all
        coordinates including the frozen pruned ones (the paper's convention), or both.
    train_steps : int, default 0
        Optimiser steps on the MSE loss ``(1/(2n)) sum ||f - y||^2`` with the masks fixed.
    optimizer : {"sgd", "gd", "adam"}, default "sgd"
        See :func:`gnadvisor.training.train` (SGD: constant ``lr``, batches of 64).
    lr : float or "auto-cell", optional
        Learning rate; required when ``train_steps > 0``. ``"auto-cell"``: ``1 / lambda_max`` of
        this cell's GN on the kept coordinates (1 when that GN is zero: the gradient vanishes).
    batch_size : int, optional
        Minibatch size for SGD/Adam (default: that of :func:`~gnadvisor.training.train`).
    record_every : int, default 1
        Record the full-data loss every this many steps.
    device : {"auto", "cpu", "cuda"}, default "auto"
        Where the spectrum is computed (pruning and training run on the CPU).
    method : str, default "auto"
        Spectrum route, see :func:`gnadvisor.gn_spectrum`.
    scheme_options : dict, optional
        Extra options of the scheme, e.g. ``{"iterations": 10}`` for ``"synflow"``.
    forecast_steps : int, default 0
        Also forecast the loss after this many steps of full-batch GD on the kept coordinates
        at ``lr = 1 / lambda_max`` of the kept GN (:func:`gnadvisor.gn_forecast`; needs ``Y``);
        with training by SGD/GD, also at the training lr. 0: no forecast.

    Returns
    -------
    PruningRun
        kappa is ``inf`` (and the spectrum ``None``) when G has no non-zero eigenvalue.

    Raises
    ------
    GNAdvisorError
        For an unknown scheme or option, a bad sparsity, missing targets, or any error of
        :func:`~gnadvisor.pruning.prune_model`, :func:`~gnadvisor.gn_spectrum` or
        :func:`~gnadvisor.training.train` other than a zero GN.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = nn.Sequential(nn.Linear(4, 8, bias=False), nn.ReLU(), nn.Linear(8, 2, bias=False))
    >>> X = torch.randn(10, 4)
    >>> run = measure_pruning(net, "magnitude", 0.5, X)
    >>> run.sparsity_achieved, run.n_params("kept")
    (0.5, 24)
    """
    if not isinstance(model, nn.Module):
        raise GNAdvisorError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    coords = _check_coordinates(coordinates)
    if scheme is None:
        if check_fraction("sparsity", sparsity) != 0.0:
            raise GNAdvisorError(f"sparsity must be 0 for the dense reference (scheme=None), got {sparsity!r}")
    else:
        _check_scheme(scheme)
    sparsity = check_fraction("sparsity", sparsity)
    seed = check_positive_int("seed", seed, allow_zero=True)
    train_steps = check_positive_int("train_steps", train_steps, allow_zero=True)
    forecast_steps = check_positive_int("forecast_steps", forecast_steps, allow_zero=True)
    Xt, Yt = _check_data(X, Y, [scheme] if scheme else [], train_steps, forecast_steps)
    if train_steps:
        if lr is None:
            raise GNAdvisorError("lr must be given when train_steps > 0, got None; e.g. lr=0.01 or 'auto-cell'")
        if lr != "auto-cell":
            lr = check_positive_float("lr", lr)
    check_unpruned(model)
    return _measure(model, scheme, sparsity, Xt, Yt, seed=seed, coords=coords, train_steps=train_steps,
                    optimizer=optimizer, lr=lr, batch_size=batch_size, record_every=record_every, device=device,
                    method=method, options=dict(scheme_options or {}), cache={}, forecast_steps=forecast_steps)


def _measure(model, scheme, sparsity, X, Y, *, seed, coords, train_steps, optimizer, lr, batch_size,
             record_every, device, method, options, cache, forecast_steps=0) -> PruningRun:
    from gnadvisor.pruning import prune_model, sparsity_report
    from gnadvisor.training import train

    if scheme is None or sparsity == 0.0:
        net = model
        label = DENSE if scheme is None else scheme
    else:
        net = prune_model(model, scheme, sparsity, X=X, Y=Y, seed=seed, **options)
        label = scheme
    report = sparsity_report(net)
    collapsed = tuple(name for name, t in report["tensors"].items() if t["numel"] and t["pruned"] == t["numel"])
    notes = []
    if collapsed:
        notes.append(f"{label} at sparsity {sparsity:g} (seed {seed}) prunes every weight of {', '.join(collapsed)}")
    key_masks = _mask_key(net)
    route = method
    if collapsed and method == "auto":
        # A collapsed layer can make f(x) identically 0, which passes the Kronecker route's probe for
        # "linear in x" although the net is not linear around these weights: use the Gram route.
        route = "gram"
    forecast = None
    if forecast_steps:  # first: shares its Gram with the kept spectrum (cached for _spectrum)
        forecast = _forecast(net, X, Y, key_masks, cache, device, route, label, sparsity, seed, notes,
                             forecast_steps)
    spectra = {c: _spectrum(net, X, c, key_masks, cache, device, route, label, sparsity, seed, notes)
               for c in coords}
    if train_steps and lr == "auto-cell":
        kept = spectra["kept"] if "kept" in spectra else _spectrum(net, X, "kept", key_masks, cache, device, route,
                                                                    label, sparsity, seed, notes)
        # G = 0 means J = 0: the gradient J^T r / n vanishes and no lr changes anything
        lr = 1.0 / kept.lambda_max if kept is not None else 1.0
    run = dict(scheme=label, sparsity=sparsity, seed=seed, sparsity_achieved=float(report["sparsity"]),
               n_weights=int(report["numel"]), collapsed_layers=collapsed, spectra=spectra, notes=tuple(notes),
               forecast=forecast)
    if train_steps:
        res = train(net, X, Y, steps=train_steps, optimizer=optimizer, lr=lr, batch_size=batch_size, seed=seed,
                    record_every=record_every)
        run.update(lr=res.lr, loss_steps=res.loss_steps, losses=res.losses, final_loss=res.final_loss,
                   diverged=res.diverged)
        if forecast is not None and optimizer != "adam":
            run.update(forecast_train_lr=forecast.with_schedule(lr=res.lr))
    return PruningRun(**run)


def _forecast(net, X, Y, key_masks, cache, device, route, label, sparsity, seed, notes, steps):
    """The kept-coordinate forecast through the cache, computed with the kept spectrum when possible.

    G = 0 on the kept coordinates (a collapsed layer) means a zero gradient: the forecast is the
    constant initial loss (see :func:`_static_forecast`), and the kept spectrum is cached as ``None``.
    """
    from gnadvisor.forecast import gn_forecast
    from gnadvisor.score import spectrum_and_forecast

    skey = (None, None) if key_masks is None else ("kept", key_masks)
    fkey = ("forecast", steps, skey)
    if fkey in cache:
        return cache[fkey]
    try:
        if skey in cache:  # spectrum known already (e.g. another seed): one more Gram for the forecast
            if cache[skey] is None:
                raise GNAdvisorError(_DEGENERATE[0])
            fc = gn_forecast(net, X, Y, steps=steps, device=device, coordinates="kept")
        else:
            spec, fc = spectrum_and_forecast(net, X, Y, steps=steps, method=route, device=device, coordinates="kept")
            cache[skey] = spec
    except GNAdvisorError as exc:
        if not any(msg in str(exc) for msg in _DEGENERATE):
            raise
        if skey not in cache:
            cache[skey] = None
            notes.append(f"{label} at sparsity {sparsity:g} (seed {seed}), coordinates=kept: G has no non-zero "
                         f"eigenvalue ({exc}); kappa reported as inf")
        fc = _static_forecast(net, X, Y, steps, device)
        notes.append(f"{label} at sparsity {sparsity:g} (seed {seed}): G = 0 on the kept coordinates, so the gradient "
                     "vanishes and the forecast loss stays at its initial value (ratio 1)")
    cache[fkey] = fc
    return fc


def _static_forecast(net, X, Y, steps, device):
    """The forecast of a model whose kept coordinates do not move the output: ``L_t = L_0``."""
    from gnadvisor.forecast import Forecast, _summary
    from gnadvisor.spectrum._problem import build_problem

    from gnadvisor.score import _check_targets

    problem = build_problem(net, X, device=device, coordinates="all")
    Yt = _check_targets(Y, problem.n_samples, problem.n_outputs)
    with torch.no_grad():
        r0 = (problem.f({}) - Yt.to(problem.device).reshape(-1)).cpu().numpy()
    n = problem.n_samples
    L0 = float(r0 @ r0) / (2.0 * n)
    n = problem.n_samples
    losses = np.full(steps + 1, L0)
    return Forecast(
        losses=losses, lr=math.nan, lr_scale=None, steps=steps, loss_floor=L0, stable=True, lambda_max=0.0,
        lambda_min=math.nan, condition_number=math.inf, rank=0, rtol=math.nan, eigenvalues=np.zeros(r0.size),
        projections=r0 ** 2, n_samples=n, n_outputs=problem.n_outputs, n_params=0,
        notes=("G = 0 on the kept coordinates: zero gradient, the loss stays at L_0",), **_summary(losses),
    )


def _spectrum(net, X, c, key_masks, cache, device, route, label, sparsity, seed, notes):
    """gn_spectrum through the cache; ``None`` (and a note) when G has no non-zero eigenvalue."""
    from gnadvisor.spectrum import gn_spectrum

    key = (None, None) if key_masks is None else (c, key_masks)  # no masks: kept == all
    if key not in cache:
        try:
            cache[key] = gn_spectrum(net, X, coordinates=c, device=device, method=route)
        except GNAdvisorError as exc:
            if not any(msg in str(exc) for msg in _DEGENERATE):
                raise
            cache[key] = None
            notes.append(f"{label} at sparsity {sparsity:g} (seed {seed}), coordinates={c}: G has no non-zero "
                         f"eigenvalue ({exc}); kappa reported as inf")
    return cache[key]


def _mask_key(net: nn.Module) -> str | None:
    """A fingerprint of the installed masks (``None`` when there are none)."""
    h = hashlib.sha1()
    found = False
    for name, module, pname in prunable_parameters(net):
        mask = getattr(module, f"{pname}_mask", None)
        if mask is not None:
            found = True
            h.update(name.encode())
            h.update(mask.detach().to("cpu", torch.bool).numpy().tobytes())
    return h.hexdigest() if found else None


# ---------------------------------------------------------------------------------- comparison


def compare_pruning(
    model: ModelSource,
    X: Any,
    Y: Any = None,
    *,
    schemes: Sequence[str] | None = None,
    sparsities: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8),
    seeds: int | Sequence[int] = 2,
    coordinates: str = "kept",
    train_steps: int = 0,
    optimizer: str = "sgd",
    lr: float | str = "auto",
    batch_size: int | None = None,
    record_every: int | None = None,
    subsample: int | None = None,
    device: str = "auto",
    method: str = "auto",
    scheme_options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    forecast_steps: int = 0,
) -> PruningComparison:
    """Compare pruning schemes x sparsities by GN conditioning (and training), over seeds.

    For every seed, scheme and sparsity: prune the unpruned model with
    :func:`~gnadvisor.pruning.prune_model` (masks through ``torch.nn.utils.prune``, per tensor or
    global as the scheme defines; SNIP and GraSP scored on ``(X, Y)``), compute kappa of the
    Gauss-Newton matrix with :func:`~gnadvisor.gn_spectrum` and, with ``train_steps > 0``, train
    the pruned model with the masks fixed; then aggregate over seeds and rank-correlate kappa
    with the loss after training. With ``forecast_steps = T > 0`` each cell also gets the
    training-loss forecast of :func:`gnadvisor.gn_forecast` (no training needed).

    Parameters
    ----------
    model : torch.nn.Module, ArchSpec or callable
        * ``nn.Module``: a user's model with **fixed weights**; seeds vary only the randomness
          of the procedure: random masks (``"random"``), the data subsample (``subsample``) and
          SGD's batch order. Deterministic schemes then give the same kappa for every seed
          (computed once).
        * :class:`~gnadvisor.search.ArchSpec` (dense, ``prune_scheme=None``): seed ``s`` builds
          ``build_model(spec, s)``, so seeds re-initialise the model **and** re-draw random masks.
        * callable ``seed -> nn.Module``: as a spec, with your own factory.
    X : torch.Tensor or array
        Inputs ``(n, ...)``.
    Y : torch.Tensor or array, optional
        Targets ``(n, k)`` (one-hot for classification); required by ``"snip"``, ``"grasp"``
        and by training.
    schemes : sequence of str, optional
        Keys of :data:`gnadvisor.pruning.SCHEMES`; default all of them.
    sparsities : sequence of float, default (0, 0.2, 0.4, 0.6, 0.8)
        Distinct values in [0, 1). Sparsity 0 gives one dense reference cell (``"dense"``),
        shared by all schemes (it is the same model).
    seeds : int or sequence of int, default 2
        ``n`` means seeds ``0, ..., n - 1``.
    coordinates : {"kept", "all", "both"}, default "kept"
        GN on the kept coordinates (governs training of the pruned net; gn-theory Sec. 7), on all
        coordinates (the paper's convention: the Jacobian columns of the frozen pruned weights
        are included), or both.
    train_steps : int, default 0
        Steps of :func:`gnadvisor.training.train` (MSE ``(1/(2n)) sum ||f - y||^2`` on ``(X, Y)``,
        masks fixed) per cell; 0 skips training.
    optimizer : {"sgd", "gd", "adam"}, default "sgd"
        Minibatch SGD (constant lr, batches of 64), full-batch GD or Adam.
    lr : float, "auto" or "auto-cell", default "auto"
        A number: the same learning rate for every cell. ``"auto"``: for SGD/GD one rate per seed,
        ``1 / lambda_max(G)`` of that seed's *dense* model, shared by every cell so cells are
        comparable as in the paper (stable for the dense net and for pruned nets whose lambda_max
        is not above the dense one; pruned nets with a smaller lambda_max then take relatively
        smaller steps). ``"auto-cell"``: ``1 / lambda_max`` of each cell's own GN on the kept
        coordinates, so that on the quadratic model the slowest direction contracts by
        ``1 - 1/kappa`` per step and speed differences reflect kappa alone (a cell whose G is zero
        has a zero gradient: its lr is irrelevant and set to 1). With Adam both mean 1e-3.
    batch_size : int, optional
        Minibatch size for SGD/Adam (default 64 for SGD, full batch for Adam).
    record_every : int, optional
        Record the full-data loss every this many steps; default ``max(1, train_steps // 200)``.
    subsample : int, optional
        With a value ``m < n``, each seed uses its own random ``m`` rows of ``(X, Y)`` (drawn with
        that seed) for the scores, the GN and training; default: all rows for every seed.
    device : {"auto", "cpu", "cuda"}, default "auto"
        Where spectra are computed (pruning and training run on the CPU).
    method : str, default "auto"
        Spectrum route (see :func:`gnadvisor.gn_spectrum`).
    scheme_options : dict of str to dict, optional
        Extra options per scheme, e.g. ``{"synflow": {"iterations": 10}}``.
    progress : callable, optional
        Called as ``progress(done, total, label)`` after each (seed, scheme, sparsity) cell.
    forecast_steps : int, default 0
        ``T > 0``: per cell, forecast the loss ``(1/(2n)) sum ||f - y||^2`` after ``T`` steps of
        **full-batch gradient descent** on the kept coordinates (what training of the pruned
        net moves) at ``lr = 1 / lambda_max`` of that cell's kept GN (the forecast's default),
        from the linearised dynamics ``L_t = sum_i (1 - lr lambda_i)^(2t) (u_i^T r_0)^2 / (2n)``;
        rows get ``forecast_loss_ratio = L_T / L_0`` and ``forecast_final_loss = L_T`` (mean and
        std over seeds). This is *not* the training run: ``train_steps`` uses ``optimizer``
        (minibatch SGD by default) at ``lr`` (by default one rate per seed from the *dense* GN,
        shared by every cell). So when training with SGD or GD, each cell also gets the forecast
        at its own training lr (``forecast_*_train_lr``; for SGD the full-batch prediction at the
        same lr and number of steps, an approximation of the minibatch run; for ``optimizer="gd"``
        the linearisation of exactly that run when ``T = train_steps``), and with training,
        ``forecast_rank_correlation`` rank-correlates both forecasts with the measured final loss.
        The Gram of the kept GN is shared with the kept spectrum where the route allows
        (:func:`gnadvisor.score.spectrum_and_forecast`). Needs ``Y``.

    Returns
    -------
    PruningComparison
        Rows (mean and spread over seeds), per-seed runs, loss curves, rank correlations.

    Raises
    ------
    GNAdvisorError
        For an unknown scheme (the message lists the valid ones), a bad or repeated sparsity,
        an empty list, a bad seed, coordinates, optimizer, lr or subsample, a pruned or
        mis-typed model, missing or mis-shaped data, or any error of the pruning, spectrum or
        training functions other than a zero GN (reported as kappa = inf).

    References
    ----------
    J. Zhao, S. P. Singh, A. Lucchi. Theoretical characterisation of the Gauss-Newton
    conditioning in neural networks. NeurIPS 2024, Fig. 1 and App. (Fig. 13-17): pruning at
    initialisation worsens kappa and slows training. gn-theory Sec. 7 (coordinates).

    Examples
    --------
    >>> import torch
    >>> from gnadvisor.search import ArchSpec
    >>> spec = ArchSpec(depth=2, width=8, input_dim=4, output_dim=3)
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(12, 4, generator=g, dtype=torch.float64)
    >>> Y = torch.eye(3, dtype=torch.float64)[torch.arange(12) % 3]
    >>> res = compare_pruning(spec, X, Y, schemes=["magnitude", "random"], sparsities=[0, 0.5],
    ...                       seeds=2, train_steps=5)
    >>> [(r.scheme, r.sparsity) for r in res.rows]
    [('dense', 0.0), ('magnitude', 0.5), ('random', 0.5)]
    >>> res.row("magnitude", 0.5).n_seeds, len(res.curves[0].steps)
    (2, 6)
    >>> res.lr_rule, len(res.lrs)
    ('auto', 2)
    """
    kind, build = _model_source(model)
    scheme_list = _check_schemes(schemes)
    sparsity_list = _check_sparsities(sparsities)
    seed_list = _check_seeds(seeds)
    coords = _check_coordinates(coordinates)
    train_steps = check_positive_int("train_steps", train_steps, allow_zero=True)
    forecast_steps = check_positive_int("forecast_steps", forecast_steps, allow_zero=True)
    from gnadvisor.training import OPTIMIZERS

    check_choice("optimizer", optimizer, OPTIMIZERS)
    lr_rule = lr if isinstance(lr, str) and lr in _LR_RULES else "given"
    if lr_rule == "given":
        if isinstance(lr, str):
            raise GNAdvisorError(f"lr must be a finite number > 0, 'auto' or 'auto-cell', got {lr!r}")
        lr = check_positive_float("lr", lr)
    elif optimizer == "adam":
        lr_rule, lr = "adam-default", _ADAM_AUTO_LR
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    record_every = (max(1, train_steps // 200) if record_every is None
                    else check_positive_int("record_every", record_every))
    options = _check_scheme_options(scheme_options, scheme_list)
    Xt, Yt = _check_data(X, Y, scheme_list, train_steps, forecast_steps)
    n = int(Xt.shape[0])
    if subsample is not None:
        subsample = check_positive_int("subsample", subsample)
        if subsample > n:
            raise GNAdvisorError(f"subsample must be at most the {n} samples of X, got {subsample}")
    if kind == "module":
        check_unpruned(model)

    cells: list[tuple[str | None, float]] = []
    if 0.0 in sparsity_list:
        cells.append((None, 0.0))
    cells += [(s, p) for s in scheme_list for p in sparsity_list if p > 0.0]
    notes: list[str] = [
        "kappa = lambda_max / lambda_min!=0 of G = (1/n) sum_i J_i^T J_i; coordinates 'kept' restricts G to the "
        "unpruned weights, 'all' includes the frozen pruned ones (the paper's convention)",
        {"module": "fixed weights: seeds vary only random masks, the data subsample and SGD's batch order",
         "spec": "seeds re-initialise the model (build_model(spec, seed)) and re-draw random masks",
         "factory": "seeds re-initialise the model (factory(seed)) and re-draw random masks"}[kind],
    ]
    shared_cache: dict = {}  # fixed weights and data: equal masks give equal spectra across seeds
    runs: list[PruningRun] = []
    lrs: list[float] = []
    total, done = len(seed_list) * len(cells), 0
    for seed in seed_list:
        base = build(seed)
        Xs, Ys = Xt, Yt
        if subsample is not None and subsample < n:
            idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:subsample].sort().values
            Xs, Ys = Xt[idx], (None if Yt is None else Yt[idx])
        cache = shared_cache if (kind == "module" and Xs is Xt) else {}
        seed_lr = lr
        if train_steps and lr_rule == "auto":
            dense = _measure(base, None, 0.0, Xs, Ys, seed=seed, coords=("kept",), train_steps=0,
                             optimizer=optimizer, lr=None, batch_size=None, record_every=1, device=device,
                             method=method, options={}, cache=cache, forecast_steps=forecast_steps)
            lam = dense.lambda_max("kept")
            if not lam > 0:
                raise GNAdvisorError("lr='auto' needs a non-zero GN of the dense model, got G = 0; pass lr explicitly")
            seed_lr = 1.0 / lam
        lrs.append(float(seed_lr) if train_steps and lr_rule != "auto-cell" else math.nan)
        for scheme, sparsity in cells:
            runs.append(_measure(
                base, scheme, sparsity, Xs, Ys, seed=seed, coords=coords, train_steps=train_steps,
                optimizer=optimizer, lr=seed_lr if train_steps else None, batch_size=batch_size,
                record_every=record_every, device=device, method=method,
                options=options.get(scheme, {}) if scheme else {}, cache=cache, forecast_steps=forecast_steps))
            done += 1
            if progress is not None:
                progress(done, total, f"seed {seed} {scheme or DENSE} {sparsity:g}")
    if train_steps:
        how = {"auto": "1/lambda_max(G) of the dense model per seed, the same for every cell",
               "auto-cell": "1/lambda_max(G on the kept coordinates) of each cell",
               "adam-default": f"{_ADAM_AUTO_LR:g} (Adam default)",
               "given": f"{lr} for every cell"}[lr_rule]
        notes.append(f"training: {train_steps} {optimizer} steps on (1/(2n)) sum ||f - y||^2 with masks fixed, "
                     f"lr {how}")
    if forecast_steps:
        notes.append(
            f"forecast: loss after {forecast_steps} steps of full-batch GD on the kept coordinates at lr = 1/lambda_max "
            "of each cell's kept GN, from the linearised (NTK / Gauss-Newton) dynamics, no training"
            + (f"; *_train_lr: the same forecast at each cell's training lr ({optimizer} "
               f"{'is full-batch GD' if optimizer == 'gd' else 'uses minibatches: the forecast is its full-batch counterpart'})"
               if train_steps and optimizer != "adam" else "")
        )
    for run in runs:
        notes.extend(run.notes)

    rows = _aggregate(runs, cells, coords, len(seed_list), bool(train_steps), bool(forecast_steps))
    curves = _curves(runs, cells) if train_steps else ()
    corr = {c: _rank_correlation([r for r in rows if r.coordinates == c], c) for c in coords} if train_steps else {}
    fcorr: dict[str, RankCorrelation] = {}
    if train_steps and forecast_steps:
        first = [r for r in rows if r.coordinates == coords[0]]  # forecast numbers are equal across coordinates
        fcorr["cell_lr"] = _correlate([(r.forecast_final_loss, r.final_loss) for r in first], "kept")
        if optimizer != "adam":
            fcorr["train_lr"] = _correlate([(r.forecast_final_loss_train_lr, r.final_loss) for r in first], "kept")
    return PruningComparison(
        rows=tuple(rows), runs=tuple(runs), curves=tuple(curves), rank_correlation=corr,
        schemes=tuple(scheme_list), sparsities=tuple(sparsity_list), seeds=tuple(seed_list),
        coordinates=coords, train_steps=train_steps, optimizer=optimizer,
        lrs=tuple(lrs), lr_rule=lr_rule if train_steps else None, n_samples=subsample or n, model_kind=kind,
        notes=tuple(dict.fromkeys(notes)), forecast_steps=forecast_steps, forecast_rank_correlation=fcorr,
    )


def _aggregate(runs: list[PruningRun], cells, coords, n_seeds: int, trained: bool,
               forecast: bool = False) -> list[PruningRow]:
    rows = []
    for scheme, sparsity in cells:
        label = scheme or DENSE
        group = [r for r in runs if r.scheme == label and r.sparsity == sparsity]
        for c in coords:
            kappa = np.array([r.condition_number(c) for r in group])
            extra: dict[str, Any] = {}
            if trained:
                loss = np.array([r.final_loss for r in group], dtype=np.float64)
                extra = dict(final_loss=_mean(loss), final_loss_std=_std(loss),
                             n_diverged=int(sum(bool(r.diverged) for r in group)),
                             lr=float(np.mean([r.lr for r in group])))
            if forecast:
                ratio = np.array([r.forecast.ratio for r in group], dtype=np.float64)
                fin = np.array([r.forecast.final_loss for r in group], dtype=np.float64)
                flr = np.array([r.forecast.lr for r in group], dtype=np.float64)
                extra.update(forecast_loss_ratio=_mean(ratio), forecast_loss_ratio_std=_std(ratio),
                             forecast_final_loss=_mean(fin), forecast_final_loss_std=_std(fin),
                             forecast_lr=float(np.mean(flr[np.isfinite(flr)])) if np.isfinite(flr).any() else math.nan)
                if all(r.forecast_train_lr is not None for r in group):
                    extra.update(
                        forecast_loss_ratio_train_lr=_mean(np.array([r.forecast_train_lr.ratio for r in group])),
                        forecast_final_loss_train_lr=_mean(np.array([r.forecast_train_lr.final_loss for r in group])))
            n_params = [r.n_params(c) for r in group]
            gaps = [g for g in (r.spectral_gap(c) for r in group) if not math.isnan(g)]
            extra.update(spectral_gap_min=min(gaps) if gaps else math.nan,
                         n_unclear_cut=int(sum(g < UNCLEAR_GAP for g in gaps)))
            rows.append(PruningRow(
                scheme=label, sparsity=sparsity, coordinates=c, n_seeds=len(group),
                sparsity_achieved=float(np.mean([r.sparsity_achieved for r in group])),
                condition_number=_mean(kappa), condition_number_std=_std(kappa),
                condition_number_min=float(kappa.min()), condition_number_max=float(kappa.max()),
                lambda_max=_mean(np.array([r.lambda_max(c) for r in group])),
                lambda_min=_mean(np.array([r.lambda_min(c) for r in group])),
                rank=float(np.mean([r.rank(c) for r in group])),
                n_params=float(np.mean([p for p in n_params if p is not None])) if any(
                    p is not None for p in n_params) else math.nan,
                n_degenerate=int(sum(r.spectra[c] is None for r in group)),
                n_collapsed=int(sum(bool(r.collapsed_layers) for r in group)),
                **extra,
            ))
    return rows


def _curves(runs: list[PruningRun], cells) -> list[PruningCurve]:
    out = []
    for scheme, sparsity in cells:
        label = scheme or DENSE
        group = [r for r in runs if r.scheme == label and r.sparsity == sparsity]
        losses = np.stack([r.losses for r in group])
        with np.errstate(invalid="ignore"):
            out.append(PruningCurve(scheme=label, sparsity=sparsity, steps=group[0].loss_steps, losses=losses,
                                    loss_mean=np.array([_mean(col) for col in losses.T]),
                                    loss_std=np.array([_std(col) for col in losses.T])))
    return out


def _rank_correlation(rows: list[PruningRow], coordinates: str) -> RankCorrelation:
    return _correlate([(r.condition_number, r.final_loss) for r in rows], coordinates)


def _correlate(values: list[tuple[Any, Any]], coordinates: str) -> RankCorrelation:
    """Spearman and Kendall over the pairs where both numbers exist and are not nan."""
    from scipy import stats

    pairs = [(x, y) for x, y in values if x is not None and y is not None and not (math.isnan(x) or math.isnan(y))]
    nan = math.nan
    if len(pairs) < 3:
        return RankCorrelation(coordinates, len(pairs), nan, nan, nan, nan)
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns nan
        # ranks first: inf (collapsed / diverged) is simply the largest value
        rx, ry = stats.rankdata(x), stats.rankdata(y)
        sp = stats.spearmanr(rx, ry)
        kt = stats.kendalltau(rx, ry)
    return RankCorrelation(coordinates, len(pairs), float(sp.statistic), float(sp.pvalue),
                           float(kt.statistic), float(kt.pvalue))


# ---------------------------------------------------------------------------------- checks


def _model_source(model: Any) -> tuple[str, Callable[[int], nn.Module]]:
    from gnadvisor.search import ArchSpec, build_model

    if isinstance(model, nn.Module):
        return "module", lambda seed: model
    if isinstance(model, ArchSpec):
        if model.prune_scheme is not None:
            raise GNAdvisorError(
                f"model spec must be dense (prune_scheme=None): compare_pruning applies the schemes itself, got "
                f"prune_scheme={model.prune_scheme!r}; pass dataclasses.replace(spec, prune_scheme=None, sparsity=0.0)"
            )
        return "spec", lambda seed: build_model(model, seed)
    if callable(model):
        def build(seed: int) -> nn.Module:
            net = model(seed)
            if not isinstance(net, nn.Module):
                raise GNAdvisorError(f"model factory must return a torch.nn.Module, got {type(net).__name__}")
            check_unpruned(net)
            return net

        return "factory", build
    raise GNAdvisorError(
        f"model must be a torch.nn.Module, an ArchSpec or a callable seed -> nn.Module, got {type(model).__name__}"
    )


def _check_scheme(name: Any) -> str:
    from gnadvisor.pruning import SCHEMES

    return check_choice("scheme", name, list(SCHEMES))


def _check_schemes(schemes: Any) -> list[str]:
    from gnadvisor.pruning import SCHEMES

    if schemes is None:
        return list(SCHEMES)
    if isinstance(schemes, str):
        schemes = [schemes]
    out = [_check_scheme(s) for s in _as_list(schemes, "schemes")]
    if not out:
        raise GNAdvisorError(f"schemes must not be empty, got []; choose from {', '.join(SCHEMES)}")
    dup = sorted({s for s in out if out.count(s) > 1})
    if dup:
        raise GNAdvisorError(f"schemes must be distinct, got {', '.join(dup)} more than once")
    return out


def _check_sparsities(sparsities: Any) -> list[float]:
    values = _as_list(sparsities if not isinstance(sparsities, (int, float)) else [sparsities], "sparsities")
    if not values:
        raise GNAdvisorError("sparsities must not be empty, got []; e.g. [0, 0.2, 0.4, 0.6, 0.8]")
    out = []
    for v in values:
        if isinstance(v, bool):
            raise GNAdvisorError(f"sparsities must be numbers in [0, 1), got {v!r}")
        out.append(check_fraction("sparsities", v))
    if len(set(out)) != len(out):
        raise GNAdvisorError(f"sparsities must be distinct, got {values}")
    return sorted(out)


def _check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        return list(range(check_positive_int("seeds", seeds)))
    values = [check_positive_int("seeds", s, allow_zero=True) for s in _as_list(seeds, "seeds")]
    if not values:
        raise GNAdvisorError("seeds must be a positive count or a non-empty list of seeds, got []")
    if len(set(values)) != len(values):
        raise GNAdvisorError(f"seeds must be distinct, got {values}")
    return values


def _check_coordinates(coordinates: Any) -> tuple[str, ...]:
    check_choice("coordinates", coordinates, COORDINATES)
    return ("kept", "all") if coordinates == "both" else (coordinates,)


def _check_scheme_options(options: Any, schemes: list[str]) -> dict[str, dict[str, Any]]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise GNAdvisorError(f"scheme_options must be a dict scheme -> dict of options, got {type(options).__name__}")
    out = {}
    for name, opts in options.items():
        _check_scheme(name)
        if not isinstance(opts, Mapping):
            raise GNAdvisorError(f"scheme_options[{name!r}] must be a dict of options, got {type(opts).__name__}")
        out[name] = dict(opts)
    return out


def _check_data(X: Any, Y: Any, schemes: Iterable[str | None], train_steps: int, forecast_steps: int = 0):
    from gnadvisor.pruning import SCHEMES

    needs = sorted({s for s in schemes if s and SCHEMES[s].needs_data})
    if Y is None:
        if needs or train_steps or forecast_steps:
            why = (f"scheme(s) {', '.join(needs)}" if needs else
                   f"train_steps={train_steps}" if train_steps else f"forecast_steps={forecast_steps}")
            raise GNAdvisorError(f"Y must be given (targets (n, k), e.g. one-hot labels) for {why}, got None")
        Xt = as_float64(X, "X")
        if Xt.ndim < 2 or Xt.shape[0] == 0:
            raise GNAdvisorError(f"X must have shape (n_samples, ...) with n_samples >= 1, got {tuple(Xt.shape)}")
        return Xt, None
    return check_xy(X, Y)


def _as_list(value: Any, name: str) -> list:
    try:
        return list(value)
    except TypeError:
        raise GNAdvisorError(f"{name} must be a list, got {type(value).__name__}") from None


# ---------------------------------------------------------------------------------- numbers


def _mean(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    if np.isnan(a).any():
        return math.nan
    if np.isinf(a).any():  # kappa and losses are >= 0: one infinite seed makes the mean infinite
        return math.inf
    return float(a.mean())


def _std(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        return 0.0 if (a.size and (a == a[0]).all()) else math.nan
    return float(a.std())


def _num(x: Any) -> Any:
    """inf -> "inf", nan -> None, numpy scalars -> Python."""
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        x = x.item()
    if isinstance(x, float):
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
    return x
