"""The architecture search behind ``gnadvisor suggest``: Optuna study, verification, baseline, ablation.

Pipeline (:func:`suggest_architectures`)
----------------------------------------
1. **Data.** One seeded sample of ``n_samples`` rows (default 200 for digits and synthetic
   data) is *the* data: the search scores, the verification, the baseline and the ablation
   all use it (the search's subsample tier uses its first ``n_subsample`` rows).
2. **Search.** An Optuna study proposes :class:`~gnadvisor.search.ArchSpec` s of the given
   depth from a :class:`~gnadvisor.search.SearchSpace`; each trial is scored cheaply by
   :func:`~gnadvisor.search.score_architecture` (tier ``bound`` or ``subsample``, stored on the
   trial with the spec itself, so any worker or a resumed run can rebuild it). The primary
   objective is ``log10 kappa`` (``objective="kappa"``, the default) or, with
   ``objective="forecast"``, ``log10(L_T / L_0)``: the forecast training-loss ratio after
   ``T = forecast_steps`` full-batch GD steps at ``lr = 1 / lambda_max``
   (:func:`gnadvisor.gn_forecast`, minimised; equivalently the forecast ``log_decrease`` is
   maximised). The closed-form bounds cannot forecast, so under ``forecast`` every trial is
   scored by the exact subsample tier (its first ``n_subsample`` rows and their targets).
   Single objective: TPE; with ``params``/``flops`` added, ``(primary, params)`` and the like
   (multi-objective, NSGA-II, Pareto front). The space's ``max_params``/``max_flops`` and a
   compute budget (:func:`~gnadvisor.search.exact_cost` of the verification, ``max_gflop``)
   are Optuna constraints: a trial over budget is recorded as infeasible (tier ``skipped``)
   and never evaluated, it does not crash.
3. **Verification.** The best ``top_k`` distinct feasible candidates (single objective: lowest
   score; multi-objective: spread along the Pareto front) are re-measured with the exact kappa
   on the full sample for ``n_init_seeds`` initialisation seeds ``seed, seed + 1, ...``
   (kappa at initialisation is random): mean and sample standard deviation. With targets and
   ``forecast_steps > 0`` each is also forecast (:func:`forecast_architecture`: ``L_T / L_0``
   on the full sample, same seeds). They are ranked by the mean of the primary objective:
   mean kappa, or mean forecast ``L_T / L_0`` (multi-objective studies too).
4. **Baseline.** A plain MLP of the same depth and the space's median width (ReLU, Kaiming
   normal, no skips, no batch norm, no biases), measured the same way: ``improvement`` is its
   mean kappa over a row's mean kappa.
5. **Ablation.** For the winner, every design choice in which it differs from the baseline is
   reverted one at a time and re-measured exactly; the ratios, with a plain-words reason, say
   what made it well conditioned (kappa, whatever the objective).
6. **Training check** (``validate_steps > 0``). The top ``validate_top`` rows and the baseline
   are trained for ``validate_steps`` full-batch GD steps (:func:`gnadvisor.train`, the same
   loss and ``lr = 1 / lambda_max`` of each seed's GN as the forecast) from the same
   initialisations (:func:`measure_training`): the measured ``L_N / L_0`` beside the forecast
   for the same ``N`` steps shows whether the advice pays off.

Data without targets get no forecast and no training check (a note says so); nothing is
invented. Synthetic data have random one-hot labels (:func:`gnadvisor.load_data`), so their
forecast is of fitting random labels.

Every verified kappa is ``gn_spectrum(build_pruned_model(spec, seed, X, Y), X).condition_number``
(``build_pruned_model`` is ``build_model`` for unpruned specs) with ``X`` the sample above.

Storage and workers
-------------------
``storage=None`` is an in-memory study. Otherwise any Optuna storage: a SQLAlchemy URL
(``sqlite:///study.db``, ``postgresql+psycopg2://user:pw@host/db``, MySQL, ...) or a journal
file (``journal:///path/study.log``, or a path ending in ``.log``/``.jsonl``). With the same
``study_name`` a run resumes the study (trials accumulate) and several processes, on one
machine or many, can work on it at once; each finishes by verifying the best candidates of
*all* trials complete so far (``trials=0`` only verifies and reports). The settings that make
scores comparable (depth, space, data, seed, objectives, budgets) are stored on the study and
a run with different ones is refused. The sampler is reseeded from ``(seed, trial number)``
for every trial, so concurrent workers never propose identical random trials and a single
worker is reproducible; several concurrent workers are not bitwise reproducible (which trials
the sampler sees depends on timing).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gnadvisor._checks import GNAdvisorError, check_choice, check_positive_int
from gnadvisor.search.scorer import SCORE_OBJECTIVES, Score, exact_cost, score_architecture
from gnadvisor.search.space import OBJECTIVES, SearchSpace, constraint_violations, load_search_space
from gnadvisor.search.spec import ArchSpec

__all__ = [
    "Ablation",
    "AblationStep",
    "DEFAULT_FORECAST_STEPS",
    "DEFAULT_MAX_GFLOP",
    "DEFAULT_SAMPLES",
    "DEFAULT_SUBSAMPLE",
    "Recommendation",
    "SuggestResult",
    "TrainingForecast",
    "TrainingMeasurement",
    "Verification",
    "ablate_architecture",
    "baseline_architecture",
    "forecast_architecture",
    "measure_training",
    "open_storage",
    "suggest_architectures",
    "verify_architecture",
]

#: Verification sample size for digits and synthetic data (files: all rows, at most this many).
DEFAULT_SAMPLES = 200
#: Rows of the sample used by the search's ``subsample`` tier.
DEFAULT_SUBSAMPLE = 64
#: ``T`` of the training forecast shown for every verified row (and of the ``forecast`` objective).
DEFAULT_FORECAST_STEPS = 100
#: Compute budget per exact kappa on the full sample, GFLOP, by device kind.
DEFAULT_MAX_GFLOP = {"cpu": 15.0, "cuda": 20000.0}
_FORMAT = 1
_CLEAR = 1.5  # an ablation ratio counts when beyond this factor and the seed ranges do not overlap
_ABLATION_SLACK = 4.0  # ablation variants may cost up to this multiple of the compute budget


# ============================================================================ records
def _stats(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; NaN for one value, where it is undefined,
    and when a value is not finite)."""
    a = np.asarray(values, dtype=float)
    if not np.isfinite(a).all():  # e.g. a diverged run: the mean is +-inf (or NaN), the std undefined
        with np.errstate(invalid="ignore"):
            return float(a.mean()), math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else math.nan


def _stat_dict(values: Sequence[float]) -> dict[str, Any]:
    mean, std = _stats(values)
    return {"mean": _num(mean), "std": _num(std), "values": [_num(v) for v in values]}


@dataclasses.dataclass(frozen=True)
class TrainingForecast:
    """The forecast training of one architecture on the full sample, over initialisation seeds.

    For each seed, ``gn_forecast(build_pruned_model(spec, seed, X, Y), X, Y, steps=steps,
    lr_scale=lr_scale)``: the linearised (NTK / Gauss-Newton) prediction of ``steps``
    full-batch GD steps on ``L = ||f(X) - Y||^2 / (2 n)`` at ``lr = lr_scale / lambda_max``
    of that seed's GN (:mod:`gnadvisor.forecast`).

    Attributes
    ----------
    steps : int
        ``T``.
    seeds : tuple of int
        Initialisation seeds.
    lr_scale : float
        ``c`` in ``lr = c / lambda_max``.
    lrs : tuple of float
        The step size per seed.
    loss_ratios : tuple of float
        Forecast ``L_T / L_0`` per seed (lower = faster training).
    log_decreases : tuple of float
        Forecast ``log(L_0 / L_T)`` per seed.
    initial_losses : tuple of float
        ``L_0`` per seed (exact).
    n_samples : int
        Samples of ``X``.
    time_s : float
        Wall-clock seconds.
    forecasts : tuple of Forecast
        The per-seed :class:`~gnadvisor.forecast.Forecast` records (curves, eigenvalues); not
        compared, not serialised.
    """

    steps: int
    seeds: tuple[int, ...]
    lr_scale: float
    lrs: tuple[float, ...]
    loss_ratios: tuple[float, ...]
    log_decreases: tuple[float, ...]
    initial_losses: tuple[float, ...]
    n_samples: int
    time_s: float = 0.0
    forecasts: tuple[Any, ...] = dataclasses.field(default=(), repr=False, compare=False)

    @property
    def loss_ratio(self) -> float:
        """Mean forecast ``L_T / L_0`` over the seeds (what the ``forecast`` objective ranks by)."""
        return _stats(self.loss_ratios)[0]

    @property
    def loss_ratio_std(self) -> float:
        """Its sample standard deviation over the seeds."""
        return _stats(self.loss_ratios)[1]

    @property
    def log_decrease(self) -> float:
        """Mean forecast ``log(L_0 / L_T)``."""
        return _stats(self.log_decreases)[0]

    @property
    def log_decrease_std(self) -> float:
        """Its sample standard deviation."""
        return _stats(self.log_decreases)[1]

    @property
    def lr(self) -> float:
        """Mean step size over the seeds."""
        return _stats(self.lrs)[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``steps``, ``lr_scale``, ``seeds``, ``n_samples`` and, each as
        ``{"mean", "std", "values"}`` over the seeds, ``lr``, ``loss_ratio``, ``log_decrease``,
        ``initial_loss``."""
        return {"steps": self.steps, "lr_scale": self.lr_scale, "seeds": list(self.seeds),
                "n_samples": self.n_samples, "lr": _stat_dict(self.lrs), "loss_ratio": _stat_dict(self.loss_ratios),
                "log_decrease": _stat_dict(self.log_decreases), "initial_loss": _stat_dict(self.initial_losses)}


@dataclasses.dataclass(frozen=True)
class TrainingMeasurement:
    """Measured full-batch GD of one architecture from the same initialisations, beside its forecast.

    For each seed, ``gnadvisor.train(build_pruned_model(spec, seed, X, Y), X, Y, steps=steps,
    optimizer="gd", lr=lr, seed=seed)`` with ``lr = lr_scale / lambda_max`` of that seed's GN
    (the forecast's step size), and the forecast for the same ``steps``.

    Attributes
    ----------
    steps : int
        ``N``, the GD steps taken.
    seeds : tuple of int
        Initialisation seeds.
    lrs : tuple of float
        Step size per seed.
    loss_ratios : tuple of float
        Measured ``L_N / L_0`` per seed (``inf`` when training diverged).
    forecast_loss_ratios : tuple of float
        Forecast ``L_N / L_0`` per seed, same step size and steps.
    initial_losses, final_losses : tuple of float
        ``L_0`` and the measured ``L_N`` per seed.
    diverged : tuple of bool
        Whether training diverged, per seed.
    n_samples : int
        Samples of ``X``.
    time_s : float
        Wall-clock seconds.
    curves : tuple of numpy.ndarray
        Measured loss after every step per seed (length ``N + 1``); not compared, not serialised.
    """

    steps: int
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]
    loss_ratios: tuple[float, ...]
    forecast_loss_ratios: tuple[float, ...]
    initial_losses: tuple[float, ...]
    final_losses: tuple[float, ...]
    diverged: tuple[bool, ...]
    n_samples: int
    time_s: float = 0.0
    curves: tuple[Any, ...] = dataclasses.field(default=(), repr=False, compare=False)

    @property
    def loss_ratio(self) -> float:
        """Mean measured ``L_N / L_0`` over the seeds."""
        return _stats(self.loss_ratios)[0]

    @property
    def loss_ratio_std(self) -> float:
        """Its sample standard deviation."""
        return _stats(self.loss_ratios)[1]

    @property
    def forecast_loss_ratio(self) -> float:
        """Mean forecast ``L_N / L_0`` for the same steps."""
        return _stats(self.forecast_loss_ratios)[0]

    @property
    def forecast_loss_ratio_std(self) -> float:
        """Its sample standard deviation."""
        return _stats(self.forecast_loss_ratios)[1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``steps``, ``optimizer`` (``"gd"``), ``seeds``, ``n_samples``, ``diverged``
        and, each as ``{"mean", "std", "values"}``, ``lr``, ``loss_ratio`` (measured),
        ``forecast_loss_ratio``, ``initial_loss``, ``final_loss``."""
        return {"steps": self.steps, "optimizer": "gd", "seeds": list(self.seeds), "n_samples": self.n_samples,
                "lr": _stat_dict(self.lrs), "loss_ratio": _stat_dict(self.loss_ratios),
                "forecast_loss_ratio": _stat_dict(self.forecast_loss_ratios),
                "initial_loss": _stat_dict(self.initial_losses), "final_loss": _stat_dict(self.final_losses),
                "diverged": list(self.diverged)}


@dataclasses.dataclass(frozen=True)
class Verification:
    """Exact kappa of one architecture on the full sample, over initialisation seeds.

    Attributes
    ----------
    spec : ArchSpec
        The architecture.
    seeds : tuple of int
        Initialisation seeds, ``build_pruned_model(spec, seed, X, Y)``.
    kappas : tuple of float
        ``gn_spectrum(...).condition_number`` per seed.
    routes : tuple of str
        Spectrum route per seed.
    n_samples : int
        Samples of ``X``.
    time_s : float
        Wall-clock seconds (kappa only).
    forecast : TrainingForecast or None
        The training forecast on the same sample and seeds (None when not computed: no
        targets, ``forecast_steps=0``, or the forecast failed).
    measured : TrainingMeasurement or None
        Measured GD training from the same seeds (only rows trained with ``validate_steps``).
    """

    spec: ArchSpec
    seeds: tuple[int, ...]
    kappas: tuple[float, ...]
    routes: tuple[str, ...]
    n_samples: int
    time_s: float = 0.0
    forecast: TrainingForecast | None = None
    measured: TrainingMeasurement | None = None

    @property
    def mean(self) -> float:
        """Mean kappa over the seeds."""
        return float(np.mean(self.kappas))

    @property
    def std(self) -> float:
        """Sample standard deviation (``ddof=1``) over the seeds; NaN (undefined) for one seed."""
        return float(np.std(self.kappas, ddof=1)) if len(self.kappas) > 1 else math.nan


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """One row of the result table: a verified candidate, or the baseline.

    Attributes
    ----------
    rank : int or None
        1 = best verified mean of the primary objective (kappa, or the forecast ``L_T / L_0``
        under ``objective="forecast"``); None for the baseline.
    spec : ArchSpec
        The architecture (``spec.to_dict()`` is what ``ArchSpec.from_dict`` accepts).
    verification : Verification
        The exact kappa over seeds on the full sample.
    score : Score
        The cheap search score and its tier.
    improvement : float
        Baseline mean kappa / this row's mean kappa.
    trial_number : int or None
        The study trial that proposed it (None for the baseline).
    worker : str or None
        ``host:pid`` of the process that ran that trial (``"local"`` for an in-memory study).
    pareto : bool or None
        Multi-objective studies: whether the trial is on the Pareto front.
    reasons : tuple of str
        How it differs from the baseline (with the ablation ratio for the winner).
    """

    rank: int | None
    spec: ArchSpec
    verification: Verification
    score: Score
    improvement: float
    trial_number: int | None = None
    worker: str | None = None
    pareto: bool | None = None
    reasons: tuple[str, ...] = ()

    @property
    def condition_number(self) -> float:
        """Verified exact kappa, mean over seeds."""
        return self.verification.mean

    @property
    def condition_number_std(self) -> float:
        """Its sample standard deviation over seeds."""
        return self.verification.std

    @property
    def params(self) -> int:
        """Parameter count (dense)."""
        return self.spec.n_params()

    @property
    def forecast(self) -> TrainingForecast | None:
        """The verified training forecast (``verification.forecast``)."""
        return self.verification.forecast

    @property
    def measured(self) -> TrainingMeasurement | None:
        """The measured training (``verification.measured``), rows trained with ``validate_steps`` only."""
        return self.verification.measured

    def to_dict(self) -> dict[str, Any]:
        """Every field of the table row, JSON-ready (non-finite numbers become None).

        ``forecast`` (:meth:`TrainingForecast.to_dict`) and ``measured``
        (:meth:`TrainingMeasurement.to_dict`) are None when not computed; ``score_loss_ratio``
        is the search score's forecast ``L_T / L_0`` (``objective="forecast"`` only).
        """
        v = self.verification
        return {
            "rank": self.rank,
            "architecture": self.spec.describe(),
            "spec": self.spec.to_dict(),
            "params": self.params,
            "flops": self.spec.flops(),
            "condition_number": _num(v.mean),
            "condition_number_std": _num(v.std),
            "kappas": [_num(k) for k in v.kappas],
            "seeds": list(v.seeds),
            "n_samples": v.n_samples,
            "routes": list(v.routes),
            "improvement": _num(self.improvement),
            "score": _num(self.score.kappa),
            "score_tier": self.score.tier,
            "score_samples": self.score.n_samples,
            "score_detail": self.score.detail,
            "score_loss_ratio": None if self.score.loss_ratio is None else _num(self.score.loss_ratio),
            "forecast": None if v.forecast is None else v.forecast.to_dict(),
            "measured": None if v.measured is None else v.measured.to_dict(),
            "trial_number": self.trial_number,
            "worker": self.worker,
            "pareto": self.pareto,
            "reasons": list(self.reasons),
        }


@dataclasses.dataclass(frozen=True)
class AblationStep:
    """One factor of the winner reverted to the baseline's choice, re-measured exactly.

    Attributes
    ----------
    factor : str
        ``"skips"``, ``"family"``, ``"batchnorm"``, ``"activation"``, ``"init"``, ``"width"``,
        ``"bias"`` or ``"pruning"``.
    change : str
        What was changed, in words.
    spec : ArchSpec
        The modified architecture.
    verification : Verification or None
        Its exact kappa over the same seeds; None when not measured (over the compute budget).
    ratio : float
        Its mean kappa / the winner's mean kappa (> 1: the factor helps); NaN when not measured.
    clear : bool
        Whether the effect is clear: ratio beyond a factor 1.5 either way and the ranges over
        seeds do not overlap.
    explanation : str
        One plain sentence.
    """

    factor: str
    change: str
    spec: ArchSpec
    verification: Verification | None
    ratio: float
    clear: bool
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        v = self.verification
        return {"factor": self.factor, "change": self.change, "architecture": self.spec.describe(),
                "spec": self.spec.to_dict(), "params": self.spec.n_params(),
                "condition_number": None if v is None else _num(v.mean),
                "condition_number_std": None if v is None else _num(v.std),
                "kappas": None if v is None else [_num(k) for k in v.kappas],
                "seeds": None if v is None else list(v.seeds),
                "ratio": _num(self.ratio), "clear": self.clear, "explanation": self.explanation}


@dataclasses.dataclass(frozen=True)
class Ablation:
    """One-factor-at-a-time ablation of an architecture against the baseline.

    Attributes
    ----------
    spec : ArchSpec
        The architecture explained.
    reference : Verification
        Its own exact kappa over the seeds.
    steps : tuple of AblationStep
        One per factor in which it differs from the baseline, largest ratio first.
    summary : str
        The explanation in plain words.
    """

    spec: ArchSpec
    reference: Verification
    steps: tuple[AblationStep, ...]
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"architecture": self.spec.describe(), "spec": self.spec.to_dict(),
                "condition_number": _num(self.reference.mean),
                "condition_number_std": _num(self.reference.std),
                "steps": [s.to_dict() for s in self.steps], "summary": self.summary}


@dataclasses.dataclass
class SuggestResult:
    """What :func:`suggest_architectures` found.

    Attributes
    ----------
    recommendations : list of Recommendation
        Verified candidates, best first (lowest mean exact kappa, or lowest mean forecast
        ``L_T / L_0`` under ``objective="forecast"``).
    baseline : Recommendation
        The plain-MLP baseline, measured on the same data with the same seeds.
    ablation : Ablation or None
        The winner's one-factor-at-a-time ablation (None when disabled).
    trials : pandas.DataFrame
        One row per trial of the study (all workers and runs).
    settings : dict
        Depth, space, objective and objectives, forecast and training-check steps, targets,
        data, seeds, sample sizes, budgets, device.
    study_info : dict
        Study name, storage (password hidden), trial counts, per-worker and per-tier counts.
    notes : list of str
        Remarks for the report (skipped trials, budgets).
    timings : dict
        Seconds per phase (the only fields that change between identical runs).
    study : optuna.study.Study
        The study itself (not serialised).
    """

    recommendations: list[Recommendation]
    baseline: Recommendation
    ablation: Ablation | None
    trials: Any
    settings: dict[str, Any]
    study_info: dict[str, Any]
    notes: list[str]
    timings: dict[str, float]
    study: Any = dataclasses.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``gnadvisor suggest --json``: ``recommendations`` (best first),
        ``baseline``, ``ablation``, ``settings``, ``study``, ``notes``, ``timings``."""
        return {
            "recommendations": [r.to_dict() for r in self.recommendations],
            "baseline": self.baseline.to_dict(),
            "ablation": None if self.ablation is None else self.ablation.to_dict(),
            "settings": self.settings,
            "study": self.study_info,
            "notes": list(self.notes),
            "timings": dict(self.timings),
        }


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# ============================================================================ measurements
def verify_architecture(spec: ArchSpec, X: Any, *, seeds: Sequence[int], Y: Any = None,
                        device: str = "auto") -> Verification:
    """Exact kappa of ``spec`` on ``X`` for each initialisation seed.

    Each value is ``gn_spectrum(build_pruned_model(spec, seed, X, Y), X, device=device,
    full=False).condition_number`` (kappa-only mode: the same exact kappa, without returning
    every eigenvalue).

    Parameters
    ----------
    spec : ArchSpec
        The architecture.
    X : torch.Tensor
        Inputs ``(n, ...)``, float64.
    seeds : sequence of int
        Non-negative initialisation seeds.
    Y : torch.Tensor, optional
        Targets, for data-dependent pruning schemes.
    device : {"auto", "cpu", "cuda"}
        Where to compute.

    Returns
    -------
    Verification

    Raises
    ------
    GNAdvisorError
        If a seed is invalid or ``gn_spectrum`` rejects the model (e.g. G = 0).

    Examples
    --------
    >>> from gnadvisor import load_data
    >>> X = load_data("digits", n_samples=20).X
    >>> spec = ArchSpec(depth=2, width=16, input_dim=64, output_dim=10)
    >>> v = verify_architecture(spec, X, seeds=[0, 1])
    >>> len(v.kappas), v.mean > 1
    (2, True)
    """
    from gnadvisor.search.models import build_pruned_model
    from gnadvisor.spectrum import gn_spectrum

    seeds = tuple(check_positive_int("seed", s, allow_zero=True) for s in seeds)
    if not seeds:
        raise GNAdvisorError("seeds must list at least one initialisation seed, got none")
    t0 = time.perf_counter()
    kappas, routes = [], []
    for s in seeds:
        spec_model = build_pruned_model(spec, s, X, Y)
        sp = gn_spectrum(spec_model, X, device=device, full=False)
        kappas.append(float(sp.condition_number))
        routes.append(sp.method)
    return Verification(spec=spec, seeds=seeds, kappas=tuple(kappas), routes=tuple(routes),
                        n_samples=int(X.shape[0]), time_s=time.perf_counter() - t0)


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    seeds = tuple(check_positive_int("seed", s, allow_zero=True) for s in seeds)
    if not seeds:
        raise GNAdvisorError("seeds must list at least one initialisation seed, got none")
    return seeds


def forecast_architecture(spec: ArchSpec, X: Any, Y: Any, *, seeds: Sequence[int],
                          steps: int = DEFAULT_FORECAST_STEPS, lr_scale: float = 1.0,
                          device: str = "auto") -> TrainingForecast:
    """Forecast ``L_T / L_0`` of ``steps`` full-batch GD steps of ``spec`` for each initialisation seed.

    Each seed's forecast is ``gn_forecast(build_pruned_model(spec, seed, X, Y), X, Y,
    steps=steps, lr_scale=lr_scale, device=device)``: the linearised prediction of GD on
    ``L = ||f(X) - Y||^2 / (2 n)`` at ``lr = lr_scale / lambda_max`` of that seed's GN.

    Parameters
    ----------
    spec : ArchSpec
        The architecture.
    X : torch.Tensor
        Inputs ``(n, ...)``, float64.
    Y : torch.Tensor
        Targets ``(n, k)`` (e.g. one-hot labels).
    seeds : sequence of int
        Non-negative initialisation seeds.
    steps : int, default 100
        ``T`` (>= 0).
    lr_scale : float, default 1.0
        ``c`` in ``lr = c / lambda_max``.
    device : {"auto", "cpu", "cuda"}
        Where the NTK Gram and its eigendecomposition are computed.

    Returns
    -------
    TrainingForecast

    Raises
    ------
    GNAdvisorError
        For invalid seeds or steps, targets of the wrong shape, and whatever
        :func:`gnadvisor.gn_forecast` raises (e.g. a Gram over the memory budget, G = 0).

    Examples
    --------
    >>> from gnadvisor import load_data
    >>> ds = load_data("digits", n_samples=20)
    >>> spec = ArchSpec(depth=2, width=16, input_dim=64, output_dim=10)
    >>> f = forecast_architecture(spec, ds.X, ds.Y, seeds=[0, 1], steps=50)
    >>> len(f.loss_ratios), 0 < f.loss_ratio < 1
    (2, True)
    """
    from gnadvisor.forecast import gn_forecast
    from gnadvisor.search.models import build_pruned_model

    seeds = _check_seeds(seeds)
    steps = check_positive_int("steps", steps, allow_zero=True)
    t0 = time.perf_counter()
    fcs = [gn_forecast(build_pruned_model(spec, s, X, Y), X, Y, steps=steps, lr_scale=lr_scale, device=device)
           for s in seeds]
    return TrainingForecast(steps=steps, seeds=seeds, lr_scale=float(lr_scale), lrs=tuple(f.lr for f in fcs),
                            loss_ratios=tuple(f.ratio for f in fcs), log_decreases=tuple(f.log_decrease for f in fcs),
                            initial_losses=tuple(f.initial_loss for f in fcs), n_samples=int(X.shape[0]),
                            time_s=time.perf_counter() - t0, forecasts=tuple(fcs))


def measure_training(spec: ArchSpec, X: Any, Y: Any, *, seeds: Sequence[int], steps: int,
                     forecast: TrainingForecast | None = None, lr_scale: float = 1.0,
                     device: str = "auto") -> TrainingMeasurement:
    """Train ``spec`` with full-batch GD for ``steps`` steps per seed and compare with the forecast.

    Each seed trains ``gnadvisor.train(build_pruned_model(spec, seed, X, Y), X, Y,
    steps=steps, optimizer="gd", lr=lr, seed=seed)`` with ``lr = lr_scale / lambda_max`` of
    that seed's GN at initialisation (the forecast's step size, so the two are comparable),
    and records the forecast ``L_N / L_0`` for the same ``N = steps``.

    Parameters
    ----------
    spec : ArchSpec
        The architecture.
    X, Y : torch.Tensor
        Inputs ``(n, ...)`` and targets ``(n, k)``, float64.
    seeds : sequence of int
        Initialisation seeds.
    steps : int
        GD steps ``N`` (>= 1).
    forecast : TrainingForecast, optional
        ``forecast_architecture(spec, X, Y, seeds=seeds, lr_scale=lr_scale)`` if already
        computed (same seeds): its step sizes and eigendecompositions are reused.
    lr_scale : float, default 1.0
        ``c`` in ``lr = c / lambda_max`` (ignored when ``forecast`` is given: its own).
    device : {"auto", "cpu", "cuda"}
        Where a forecast not given is computed (training runs on the CPU).

    Returns
    -------
    TrainingMeasurement

    Raises
    ------
    GNAdvisorError
        For invalid arguments, a ``forecast`` of other seeds, and what
        :func:`forecast_architecture` or :func:`gnadvisor.train` raise.

    Examples
    --------
    >>> from gnadvisor import load_data
    >>> ds = load_data("digits", n_samples=20)
    >>> spec = ArchSpec(depth=2, width=16, input_dim=64, output_dim=10)
    >>> m = measure_training(spec, ds.X, ds.Y, seeds=[0], steps=20)
    >>> m.loss_ratio < 1, abs(m.loss_ratio - m.forecast_loss_ratio) < 0.2
    (True, True)
    """
    from gnadvisor.search.models import build_pruned_model
    from gnadvisor.training import train

    seeds = _check_seeds(seeds)
    steps = check_positive_int("steps", steps)
    t0 = time.perf_counter()
    if forecast is None or not forecast.forecasts:
        forecast = forecast_architecture(spec, X, Y, seeds=seeds, steps=steps, lr_scale=lr_scale, device=device)
    elif tuple(forecast.seeds) != seeds:
        raise GNAdvisorError(f"forecast must be of the same seeds {list(seeds)}, got {list(forecast.seeds)}")
    lrs, ratios, fratios, L0s, LNs, div, curves = [], [], [], [], [], [], []
    for s, fc in zip(seeds, forecast.forecasts):
        res = train(build_pruned_model(spec, s, X, Y), X, Y, steps=steps, optimizer="gd", lr=fc.lr, seed=s)
        L0, LN = float(res.losses[0]), float(res.final_loss)
        lrs.append(float(fc.lr))
        ratios.append(LN / L0 if L0 > 0 else math.nan)
        fratios.append(fc.with_schedule(steps=steps).ratio)
        L0s.append(L0)
        LNs.append(LN)
        div.append(bool(res.diverged))
        curves.append(res.losses)
    return TrainingMeasurement(steps=steps, seeds=seeds, lrs=tuple(lrs), loss_ratios=tuple(ratios),
                               forecast_loss_ratios=tuple(fratios), initial_losses=tuple(L0s),
                               final_losses=tuple(LNs), diverged=tuple(div), n_samples=int(X.shape[0]),
                               time_s=time.perf_counter() - t0, curves=tuple(curves))


def _median_value(space: SearchSpace, name: str) -> Any:
    fixed = space.fixed_values
    if name in fixed:
        return fixed[name]
    dim = space.dimension(name)
    if dim is None:
        return None
    if not dim.is_range:
        values = sorted(v for v in dim.choices if v is not None)
        return values[(len(values) - 1) // 2]
    mid = math.sqrt(dim.low * dim.high) if dim.log else (dim.low + dim.high) / 2.0
    if name == "width":
        return max(1, int(math.floor(mid + 0.5)))
    return mid


def baseline_architecture(space: SearchSpace | str, depth: int, *, input_dim: int, output_dim: int,
                          input_shape: Sequence[int] | None = None) -> ArchSpec:
    """The plain MLP that recommendations are compared with.

    Same depth, the space's median width (geometric mean of a log range, midpoint of a linear
    range, lower median of choices, or the fixed value; likewise for ``width_multiplier``),
    ReLU, Kaiming-normal init, no skips, no batch norm, no biases, no pruning: the paper's
    default network (gn-theory Sec. 8).

    Parameters
    ----------
    space : SearchSpace or str
        The search space (or a name/path for :func:`~gnadvisor.search.load_search_space`).
    depth : int
        Number of hidden layers.
    input_dim, output_dim : int
        ``d`` and ``k``.
    input_shape : sequence of int, optional
        Per-sample shape (the MLP flattens it).

    Returns
    -------
    ArchSpec

    Raises
    ------
    GNAdvisorError
        If an argument is invalid.

    Examples
    --------
    >>> baseline_architecture("default", 20, input_dim=64, output_dim=10).describe()
    'mlp d20 w91 relu kaiming_normal'
    """
    if not isinstance(space, SearchSpace):
        space = load_search_space(space)
    width = _median_value(space, "width")
    kw: dict[str, Any] = {}
    if width is not None:
        kw["width"] = width
    else:
        kw["width_multiplier"] = _median_value(space, "width_multiplier")
    return ArchSpec(family="mlp", depth=depth, activation="relu", init="kaiming_normal", bias=False,
                    batchnorm=False, input_dim=input_dim, output_dim=output_dim,
                    input_shape=None if input_shape is None or len(input_shape) < 2 else tuple(input_shape),
                    **kw)


def _act_name(spec: ArchSpec) -> str:
    return f"leaky_relu(α={spec.leaky_alpha:.3g})" if spec.activation == "leaky_relu" else spec.activation


def _width_text(spec: ArchSpec) -> str:
    if spec.width_multiplier is not None:
        return f"width {spec.width_resolved} (c={spec.width_multiplier:g})"
    return f"width {spec.width_resolved}"


def _differences(spec: ArchSpec, base: ArchSpec) -> list[tuple[str, str, ArchSpec, str]]:
    """(factor, difference, spec with that factor reverted to the baseline, change text)."""
    out = []
    d = spec.to_dict()

    def revert(**kw: Any) -> ArchSpec:
        return ArchSpec.from_dict({**d, **kw})

    if spec.family == "cnn":
        fam = "resmlp" if spec.has_skips else "mlp"
        out.append(("family", "3x3 convolutions", revert(family=fam),
                    "dense layers instead of 3x3 convolutions"))
    if spec.has_skips:
        skip = f"skips β={spec.skip_beta:g}" + (f" every {spec.skip_every}" if spec.skip_every > 1 else "")
        fam = "cnn" if spec.family == "cnn" else "mlp"
        out.append(("skips", skip, revert(family=fam, skip_beta=0.0, skip_every=1),
                    f"no skip connections (instead of β={spec.skip_beta:g})"))
    if spec.batchnorm and not base.batchnorm:
        out.append(("batchnorm", "batch norm", revert(batchnorm=False), "no batch norm"))
    if spec.activation != base.activation or (spec.activation == "leaky_relu" and spec.leaky_alpha != base.leaky_alpha):
        out.append(("activation", _act_name(spec), revert(activation=base.activation, leaky_alpha=base.leaky_alpha),
                    f"{_act_name(base)} instead of {_act_name(spec)}"))
    if spec.init != base.init:
        out.append(("init", f"{spec.init} init", revert(init=base.init), f"{base.init} init instead of {spec.init}"))
    if spec.width_resolved != base.width_resolved:
        wkw = ({"width": base.width, "width_multiplier": None} if base.width is not None
               else {"width": None, "width_multiplier": base.width_multiplier})
        out.append(("width", _width_text(spec), revert(**wkw),
                    f"{_width_text(base)} instead of {spec.width_resolved}"))
    if spec.bias and not base.bias:
        out.append(("bias", "biases", revert(bias=False), "no biases"))
    if spec.prune_scheme is not None:
        out.append(("pruning", f"{spec.prune_scheme} pruning {spec.sparsity:.0%}",
                    revert(prune_scheme=None, sparsity=0.0), "dense (no pruning)"))
    return out


_WHY = {
    "skips": "the identity paths keep each block's Jacobian close to beta*I, so its singular values do not "
             "spread multiplicatively over the layers (paper Eq. 7-8)",
    "family": "the weight sharing and spatial structure of the convolutions change the GN's spectrum "
              "(paper App. B)",
    "batchnorm": "batch norm re-centres and re-scales every hidden layer, so the signal keeps its scale at every "
                 "depth (paper Sec. 5, Fig. 7)",
    "activation": "the activation's slope around the initial pre-activations sets how much each layer stretches "
                  "or collapses directions, and that compounds with depth",
    "init": "the initialisation sets each layer's singular values, and the per-layer kappa(W_l)^2 enter kappa(G) "
            "through products over layers (paper Lemma 2)",
    "width": "wider random layers have singular values closer together (Marchenko-Pastur), which lowers kappa "
             "(paper Sec. 5, App. G)",
    "bias": "biases add Jacobian columns that do not depend on the inputs",
    "pruning": "pruning removes coordinates, and the GN on the kept ones is worse conditioned (gn-theory Sec. 7)",
}


def _explain(factor: str, change: str, ratio: float, clear: bool, ref: float, var: float,
             spec: ArchSpec | None = None, variant: ArchSpec | None = None) -> str:
    if not math.isfinite(ratio):
        return f"{change}: not measured."
    nums = f"(kappa {ref:.3g} -> {var:.3g})"
    if clear and ratio > 1:
        why = _WHY[factor]
        if factor == "activation" and variant is not None and variant.activation == "relu" and spec is not None:
            why = (f"relu's derivative is 0 on about half of the units for each sample, while {_act_name(spec)} "
                   f"keeps a non-zero slope, and these masks compound over the {spec.depth} layers")
        # directional rationales are only quoted when the measurement goes their way
        if factor == "width" and spec is not None and variant is not None and \
                variant.width_resolved > spec.width_resolved:
            why = ("here the wider layers are worse conditioned, against the random-matrix trend of linear nets "
                   "(paper Sec. 5): the activation and depth decide the width effect of a non-linear net")
        if factor == "pruning" and spec is not None and spec.prune_scheme not in (None, "none"):
            why = ("here the pruned net is better conditioned than its dense version, unlike the paper's finding for "
                   "pruning at initialisation (gn-theory Sec. 7)")
        return f"{change} raises kappa {ratio:.3g}x {nums}: {why}."
    if clear and ratio < 1:
        return f"{change} would lower kappa {1 / ratio:.3g}x {nums}: this choice does not help here."
    return f"{change} changes kappa only {ratio:.3g}x {nums}: no clear effect (within the seed spread or 1.5x)."


def ablate_architecture(spec: ArchSpec, baseline: ArchSpec, X: Any, *, seeds: Sequence[int], Y: Any = None,
                        device: str = "auto", reference: Verification | None = None,
                        max_flops: float | None = None, on_step: Callable[[], None] | None = None) -> Ablation:
    """One-factor-at-a-time ablation: what makes ``spec`` better conditioned than ``baseline``.

    Every design choice in which ``spec`` differs from ``baseline`` (skip connections,
    convolutions, batch norm, activation, init, width, biases, pruning) is reverted to the
    baseline's, alone, and the exact kappa re-measured on ``X`` with the same seeds
    (:func:`verify_architecture`). ``ratio = kappa(variant) / kappa(spec)``: above 1 the
    choice helps. Effects interact, so the ratios need not multiply to the full improvement.

    Parameters
    ----------
    spec, baseline : ArchSpec
        The architecture to explain and the reference design.
    X : torch.Tensor
        The sample.
    seeds : sequence of int
        Initialisation seeds.
    Y : torch.Tensor, optional
        Targets (data-dependent pruning).
    device : {"auto", "cpu", "cuda"}
        Where to compute.
    reference : Verification, optional
        ``spec``'s own verification on ``X`` with ``seeds``, if already measured.
    max_flops : float, optional
        The compute budget: variants whose :func:`~gnadvisor.search.exact_cost` exceeds four
        times this are not measured (reverting pruning or narrowing to the baseline can make a
        variant costlier than the candidate itself).
    on_step : callable, optional
        Called after each seed's measurement (progress bars).

    Returns
    -------
    Ablation

    Raises
    ------
    GNAdvisorError
        As :func:`verify_architecture`.
    """
    n = int(X.shape[0])
    ref = reference if reference is not None else verify_architecture(spec, X, seeds=seeds, Y=Y, device=device)
    steps = []
    for factor, _, variant, change in _differences(spec, baseline):
        if max_flops is not None and exact_cost(variant, n) > _ABLATION_SLACK * max_flops:
            steps.append(AblationStep(factor, change, variant, None, math.nan, False,
                                      f"{change}: not measured, its exact kappa would cost over "
                                      f"{_ABLATION_SLACK:g}x the compute budget."))
            continue
        try:
            ver = _verify_each(variant, X, seeds, Y, device, on_step)
        except GNAdvisorError as exc:
            steps.append(AblationStep(factor, change, variant, None, math.nan, False,
                                      f"{change}: not measured ({exc})."))
            continue
        ratio = ver.mean / ref.mean
        clear = (ratio > _CLEAR and min(ver.kappas) > max(ref.kappas)) or \
                (ratio < 1 / _CLEAR and max(ver.kappas) < min(ref.kappas))
        steps.append(AblationStep(factor, change, variant, ver, ratio, clear,
                                  _explain(factor, change, ratio, clear, ref.mean, ver.mean, spec, variant)))
    steps.sort(key=lambda s: -s.ratio if math.isfinite(s.ratio) else math.inf)
    return Ablation(spec=spec, reference=ref, steps=tuple(steps), summary=_summary(spec, steps))


def _summary(spec: ArchSpec, steps: Sequence[AblationStep]) -> str:
    helps = [s for s in steps if s.clear and s.ratio > 1]
    hurts = [s for s in steps if s.clear and s.ratio < 1]
    flat = [s for s in steps if not s.clear and math.isfinite(s.ratio)]
    if not steps:
        return "It makes the same design choices as the baseline; nothing to ablate."
    parts = []
    if helps:
        parts.append("What lowers its kappa: " + "; ".join(
            f"{_factor_words(spec, s)} ({s.ratio:.3g}x lower kappa)" for s in helps) + ".")
    else:
        parts.append("No single design choice explains its conditioning on its own: "
                     "the choices only help together.")
    if flat:
        parts.append("No clear effect alone: " + "; ".join(_factor_words(spec, s) for s in flat) + ".")
    if hurts:
        parts.append("Reverting " + "; ".join(_factor_words(spec, s) for s in hurts)
                     + " would lower kappa further.")
    parts.append("Each choice was reverted alone, so the ratios need not multiply to the total improvement.")
    return " ".join(parts)


def _factor_words(spec: ArchSpec, step: AblationStep) -> str:
    fixed = {"skips": f"the skip connections (beta={spec.skip_beta:g})", "family": "the convolutions",
             "batchnorm": "batch norm", "bias": "the biases", "pruning": "the pruning"}
    if step.factor in fixed:
        return fixed[step.factor]
    if step.factor == "activation":
        return f"{_act_name(spec)} instead of {_act_name(step.spec)}"
    if step.factor == "init":
        return f"{spec.init} instead of {step.spec.init} init"
    return f"width {spec.width_resolved} instead of {step.spec.width_resolved}"


def _verify_each(spec: ArchSpec, X: Any, seeds: Sequence[int], Y: Any, device: str,
                 on_step: Callable[[], None] | None) -> Verification:
    parts = []
    for s in seeds:
        parts.append(verify_architecture(spec, X, seeds=[s], Y=Y, device=device))
        if on_step is not None:
            on_step()
    return Verification(spec=spec, seeds=tuple(int(s) for s in seeds),
                        kappas=tuple(p.kappas[0] for p in parts), routes=tuple(p.routes[0] for p in parts),
                        n_samples=int(X.shape[0]), time_s=sum(p.time_s for p in parts))


# ============================================================================ storage
def _is_journal(storage: str) -> str | None:
    if storage.startswith("journal://"):
        return storage[len("journal://"):]
    if "://" not in storage and storage.endswith((".log", ".jsonl")):
        return storage
    return None


def open_storage(storage: Any) -> Any:
    """An Optuna storage from a URL, a journal file, an Optuna storage object, or None (in memory).

    Parameters
    ----------
    storage : str, optuna.storages.BaseStorage or None
        ``None``: in memory. ``"journal:///abs/path.log"``, ``"journal://rel.log"`` or a path
        ending in ``.log``/``.jsonl``: a journal file (file locks, fine for several processes
        on one file system). Any other string: a SQLAlchemy URL for Optuna's RDB storage, e.g.
        ``sqlite:///study.db`` or ``postgresql+psycopg2://user:pw@host:5432/db`` (with
        heartbeats, so trials of a killed worker are marked failed after two minutes).

    Returns
    -------
    optuna.storages.BaseStorage

    Raises
    ------
    GNAdvisorError
        If the URL is malformed, its database driver is missing, or the database cannot be
        reached (one line naming the storage, password hidden).
    """
    import optuna

    if storage is None:
        return optuna.storages.InMemoryStorage()
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if not isinstance(storage, str) or not storage.strip():
        raise GNAdvisorError(f"storage must be a URL such as sqlite:///study.db or a journal file, got {storage!r}")
    storage = storage.strip()
    shown = redact_url(storage)
    journal = _is_journal(storage)
    try:
        if journal is not None:
            from optuna.storages.journal import JournalFileBackend

            if not journal:
                raise GNAdvisorError(f"storage {shown!r} names no journal file; use journal:///path/to/study.log")
            Path(journal).parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(journal))
        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if storage.startswith("sqlite"):
            engine_kwargs = {"connect_args": {"timeout": 60}}
        return _rdb_storage(storage, engine_kwargs)
    except GNAdvisorError:
        raise
    except ModuleNotFoundError as exc:
        raise GNAdvisorError(f"storage {shown!r} needs the Python package {exc.name!r} (for PostgreSQL: "
                             "pip install 'gnadvisor[postgres]')") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy/driver errors, turned into one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GNAdvisorError(f"cannot open storage {shown!r}: {type(exc).__name__}: {first[:300]}") from None


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], attempts: int = 6) -> Any:
    """RDBStorage, retried when workers starting together race to create its tables."""
    import optuna

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in some Optuna versions
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=30,
                                                  grace_period=120)
        except Exception as exc:  # noqa: BLE001 - only the schema-creation race is retried
            text = str(exc).lower()
            race = type(exc).__name__ == "IntegrityError" or "already exists" in text or "database is locked" in text
            if not race or attempt == attempts - 1:
                raise
            time.sleep(0.25 * (attempt + 1) + 0.25 * np.random.default_rng().random())
    raise AssertionError("unreachable")  # pragma: no cover


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url


# ============================================================================ the search
def _per_trial_seed_sampler(factory: Callable[[int], Any], seed: int) -> Any:
    """A sampler delegating to a fresh ``factory(mixed seed)`` for every trial (public sampler API only).

    The inner sampler is reseeded from ``(seed, trial.number)``, which makes a single worker
    reproducible, lets a resumed study continue with new random draws, and keeps concurrent
    workers from drawing identical startup trials. (Defined in a function so that importing
    this module does not import Optuna.)
    """
    import optuna

    class PerTrialSeedSampler(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._inner = factory(_mix(seed, -1))

        def __str__(self) -> str:
            return type(self._inner).__name__

        def before_trial(self, study, trial):
            self._inner = factory(_mix(seed, trial.number))
            self._inner.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self._inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self._inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self._inner.reseed_rng()

    return PerTrialSeedSampler()


def _mix(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(number) + 1]).generate_state(1)[0])


def _constraints(trial) -> Sequence[float]:
    return tuple(trial.user_attrs.get("constraints", (0.0,)))


def _native_constraints() -> bool:
    """Optuna >= 5 reads constraints set with ``Trial.set_constraint``; older ones need constraints_func."""
    import optuna

    return hasattr(optuna.trial.Trial, "set_constraint")


def _make_sampler(n_objectives: int, seed: int):
    import optuna

    kw: dict[str, Any] = {} if _native_constraints() else {"constraints_func": _constraints}
    if n_objectives == 1:
        if not _native_constraints():
            kw["warn_independent_sampling"] = False

        def factory(s: int):
            return optuna.samplers.TPESampler(seed=s, multivariate=True, group=True, n_startup_trials=10, **kw)
    else:
        def factory(s: int):
            return optuna.samplers.NSGAIISampler(seed=s, population_size=20, **kw)
    return _per_trial_seed_sampler(factory, seed)


def _default_study_name(space: SearchSpace, depth: int, data_name: str) -> str:
    return f"gnadvisor-{space.name}-depth{depth}-{data_name}"


def _check_metadata(study, meta: dict[str, Any], shown: str) -> None:
    key = "gnadvisor"
    stored = study.user_attrs.get(key)
    if stored is None:
        if study.trials:
            raise GNAdvisorError(
                f"study {study.study_name!r} in {shown} already has trials that gnadvisor suggest did not make; "
                "use another --study-name")
        study.set_user_attr(key, meta)
        return
    for field, value in meta.items():
        if stored.get(field) != value:
            old, new = stored.get(field), value
            if field == "space":
                old, new = (old or {}).get("name"), f"{new.get('name')} (or a changed file)"
            raise GNAdvisorError(
                f"study {study.study_name!r} in {shown} was created with {field}={_short(old)}, this run has "
                f"{field}={_short(new)}; resume with the same settings (depth, space, data, samples, seed, "
                "objectives, budgets) or use another --study-name")


def _short(x: Any) -> str:
    text = json.dumps(x) if not isinstance(x, str) else repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def _fingerprint(X: Any) -> str:
    return hashlib.sha1(np.ascontiguousarray(X.detach().cpu().numpy()).tobytes()).hexdigest()[:16]


def _device_kind(device: str) -> str:
    import torch

    check_choice("device", device, ["auto", "cpu", "cuda"])
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise GNAdvisorError("device must be 'cpu' or 'auto' here: 'cuda' was requested but CUDA is not available")
    return device


def _resolve_objectives(space_objectives: Sequence[str], objectives: Sequence[str] | None,
                        objective: str | None) -> tuple[str, ...]:
    """The study's objectives, primary (``kappa`` or ``forecast``) first; one-line errors."""
    given = objectives is not None
    objs = tuple(space_objectives if objectives is None else objectives)
    for i, o in enumerate(objs):
        check_choice(f"objectives[{i}]", o, OBJECTIVES)
    if len(set(objs)) != len(objs):
        raise GNAdvisorError(f"objectives must not repeat, got {', '.join(objs)}")
    primaries = [o for o in objs if o in SCORE_OBJECTIVES]
    if objective is not None:
        check_choice("objective", objective, SCORE_OBJECTIVES)
        if given and primaries and primaries != [objective]:
            raise GNAdvisorError(f"objective {objective!r} conflicts with objectives {', '.join(objs)}; name the "
                                 f"primary objective (kappa or forecast) in one place")
        objs = tuple(o for o in objs if o not in SCORE_OBJECTIVES)
        primaries = [objective]
    if len(primaries) != 1:
        raise GNAdvisorError(f"objectives must include 'kappa' or 'forecast' (the primary objective) exactly once, "
                             f"got {', '.join(objs) or 'none'}")
    return (primaries[0],) + tuple(o for o in objs if o not in SCORE_OBJECTIVES)


def _targets_text(ds: Any) -> str | None:
    """What the training targets are, in words (None without targets)."""
    if ds.Y is None:
        return None
    for note in ds.notes:
        if note.startswith("targets:"):
            return note[len("targets:"):].strip()
    k = int(ds.Y.shape[1])
    if ds.n_classes is not None:
        return f"one-hot class labels of {ds.name} (k = {k})"
    return f"the targets of {ds.name} ({k} columns)"


def _load(data: Any, *, n_samples, input_shape, input_dim, output_dim, whiten, standardize, seed):
    from gnadvisor.data import Dataset, load_data

    if isinstance(data, Dataset):
        return data
    kw = dict(input_shape=input_shape, input_dim=input_dim, output_dim=output_dim, whiten=whiten,
              standardize=standardize, seed=seed)
    if n_samples is None:
        if str(data) in ("digits", "synthetic"):
            n_samples = DEFAULT_SAMPLES
        else:
            full = load_data(data, **kw)
            if full.n_samples <= DEFAULT_SAMPLES:
                return full
            n_samples = DEFAULT_SAMPLES
    return load_data(data, n_samples=n_samples, **kw)


def suggest_architectures(
    depth: int,
    *,
    space: SearchSpace | str = "default",
    data: Any = "digits",
    n_samples: int | None = None,
    n_subsample: int = DEFAULT_SUBSAMPLE,
    input_shape: Sequence[int] | None = None,
    input_dim: int | None = None,
    output_dim: int | None = None,
    whiten: bool = False,
    standardize: bool = False,
    trials: int = 100,
    timeout: float | None = None,
    seed: int = 0,
    top_k: int = 3,
    n_init_seeds: int = 3,
    objectives: Sequence[str] | None = None,
    objective: str | None = None,
    forecast_steps: int = DEFAULT_FORECAST_STEPS,
    validate_steps: int = 0,
    validate_top: int = 1,
    storage: Any = None,
    study_name: str | None = None,
    device: str = "auto",
    max_gflop: float | None = None,
    ablation: bool = True,
    progress: bool = False,
) -> SuggestResult:
    """Search architectures of ``depth`` hidden layers for a well-conditioned Gauss-Newton matrix.

    See the module docstring for the pipeline (search, verification, baseline, ablation) and
    for storage and workers.

    Parameters
    ----------
    depth : int
        Number of hidden layers (the network has ``depth + 1`` weight layers).
    space : SearchSpace or str, default "default"
        A search space or the name/path for :func:`~gnadvisor.search.load_search_space`.
    data : str, path or Dataset, default "digits"
        ``"digits"``, ``"synthetic"``, a file (see :func:`gnadvisor.load_data`), or a Dataset,
        used as it is (``n_samples`` and the preprocessing options are then ignored).
    n_samples : int, optional
        Size of the sample every kappa is measured on (default 200; files: all rows, at most 200).
    n_subsample : int, default 64
        Rows of that sample used by the search's ``subsample`` tier.
    input_shape, input_dim, output_dim : optional
        Passed to :func:`gnadvisor.load_data` (``output_dim`` is also the network's ``k`` when
        the data have no targets).
    whiten, standardize : bool, default False
        Data preprocessing, applied to the one sample everything is measured on.
    trials : int, default 100
        Trials this call adds to the study (0: only verify and report).
    timeout : float, optional
        Stop the search after this many seconds (the number of trials then depends on the machine).
    seed : int, default 0
        Seeds the data sample, the sampler and the initialisations ``seed, ..., seed + n_init_seeds - 1``
        (the search scores use ``seed``). Same seed, same result (one worker).
    top_k : int, default 3
        Candidates verified and reported.
    n_init_seeds : int, default 3
        Initialisation seeds per verification.
    objectives : sequence of str, optional
        Default: the space's. Exactly one primary objective, ``"kappa"`` or ``"forecast"``
        (listed first whatever the order given), optionally with ``"params"``/``"flops"`` for
        a Pareto front (NSGA-II; the verified candidates are then ranked by the primary).
    objective : {"kappa", "forecast"}, optional
        The primary objective; it replaces the one of the space (or of ``objectives``, which
        must then name the same one or none). ``"kappa"``: minimise ``log10 kappa`` (cheap
        bound tier where it applies, else the exact kappa on the subsample). ``"forecast"``:
        minimise ``log10`` of the forecast loss ratio ``L_T / L_0`` after ``forecast_steps``
        GD steps at ``lr = 1 / lambda_max`` on the subsample and its targets (every trial on
        the exact subsample tier, same compute budget); the verified candidates are ranked by
        the mean forecast ``L_T / L_0`` on the full sample. Needs targets. Stored on the study:
        resuming it with another objective is refused.
    forecast_steps : int, default 100
        ``T`` of the training forecast shown for every verified row and the baseline
        (:func:`forecast_architecture`, same seeds) and of the ``forecast`` objective; 0
        disables the forecast (not allowed with ``objective="forecast"``). Data without targets
        get no forecast (a note says so).
    validate_steps : int, default 0
        ``N > 0``: also train the top ``validate_top`` rows and the baseline for ``N``
        full-batch GD steps per seed (:func:`measure_training`, ``lr = 1 / lambda_max``) and
        report the measured ``L_N / L_0`` beside the forecast for ``N`` steps.
    validate_top : int, default 1
        How many of the top rows ``validate_steps`` trains.
    storage : str or optuna storage, optional
        See :func:`open_storage`; None is in memory.
    study_name : str, optional
        Default ``gnadvisor-<space>-depth<depth>-<data>``.
    device : {"auto", "cpu", "cuda"}
        Where exact spectra run.
    max_gflop : float, optional
        Compute budget per exact kappa on the full sample (:func:`~gnadvisor.search.exact_cost`);
        default 15 on CPU (about 1 s per exact kappa on one core), 20000 on CUDA.
    ablation : bool, default True
        Run the winner's ablation.
    progress : bool, default False
        tqdm progress bars on stderr.

    Returns
    -------
    SuggestResult

    Raises
    ------
    GNAdvisorError
        For invalid arguments, an unreadable space or data, a storage that cannot be opened,
        a stored study created with other settings, or when no trial is feasible.

    Examples
    --------
    >>> res = suggest_architectures(2, trials=4, n_samples=24, n_subsample=12, n_init_seeds=1, top_k=1,
    ...                             ablation=False)
    >>> len(res.recommendations), res.recommendations[0].condition_number > 0
    (1, True)
    >>> res.recommendations[0].forecast.steps, res.baseline.forecast.loss_ratio < 1
    (100, True)
    """
    import optuna

    t_start = time.perf_counter()
    depth = check_positive_int("depth", depth)
    trials = check_positive_int("trials", trials, allow_zero=True)
    top_k = check_positive_int("top_k", top_k)
    n_init_seeds = check_positive_int("n_init_seeds", n_init_seeds)
    n_subsample = check_positive_int("n_subsample", n_subsample)
    seed = check_positive_int("seed", seed, allow_zero=True)
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise GNAdvisorError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    if max_gflop is not None and not (isinstance(max_gflop, (int, float)) and max_gflop > 0):
        raise GNAdvisorError(f"max_gflop must be a number > 0, got {max_gflop!r}")
    kind = _device_kind(device)
    if not isinstance(space, SearchSpace):
        space = load_search_space(space)
    objectives = _resolve_objectives(space.objectives, objectives, objective)
    primary = objectives[0]
    forecast_steps = check_positive_int("forecast_steps", forecast_steps, allow_zero=True)
    validate_steps = check_positive_int("validate_steps", validate_steps, allow_zero=True)
    validate_top = check_positive_int("validate_top", validate_top)
    if primary == "forecast" and forecast_steps == 0:
        raise GNAdvisorError("objective 'forecast' needs forecast_steps >= 1 (the T of the forecast L_T/L_0), got 0")
    max_gflop = float(max_gflop) if max_gflop is not None else DEFAULT_MAX_GFLOP[kind]

    ds = _load(data, n_samples=n_samples, input_shape=input_shape, input_dim=input_dim,
               output_dim=output_dim, whiten=whiten, standardize=standardize, seed=seed)
    k = ds.n_outputs if ds.n_outputs is not None else output_dim
    if k is None:
        raise GNAdvisorError(f"the data {ds.name!r} have no targets, so the number of outputs is unknown; "
                             "give output_dim (--output-dim)")
    targets = _targets_text(ds)
    if primary == "forecast" and ds.Y is None:
        raise GNAdvisorError(f"objective 'forecast' needs training targets, and the data {ds.name!r} have none "
                             "(the forecast is of the loss ||f(X) - Y||^2 / (2n)); use objective 'kappa', or data "
                             "with targets (Y or y in the file)")
    shape = tuple(ds.input_shape)
    spec_shape = shape if len(shape) > 1 else None
    space.families_for(spec_shape)  # fails early for a CNN-only space on flat data
    run = _Run(space=space, depth=depth, objectives=objectives, X=ds.X, Y=ds.Y, input_dim=int(np.prod(shape)),
               output_dim=int(k), input_shape=spec_shape, n_subsample=min(n_subsample, ds.n_samples), seed=seed,
               seeds=tuple(range(seed, seed + n_init_seeds)), device=device, max_gflop=max_gflop,
               # trials of a stored study name the process that ran them; an in-memory study has one process
               worker=f"{socket.gethostname()}:{os.getpid()}" if storage is not None else "local",
               forecast_steps=forecast_steps if ds.Y is not None else 0,
               validate_steps=validate_steps if ds.Y is not None else 0, validate_top=validate_top)
    settings = {
        "depth": depth, "space": space.name, "objective": primary, "objectives": list(objectives),
        "forecast_steps": run.forecast_steps, "forecast_lr": "1/lambda_max", "validate_steps": run.validate_steps,
        "validate_top": validate_top if run.validate_steps else 0, "targets": targets,
        "data": {"name": ds.name, "source": ds.name if hasattr(data, "X") else str(data), "n_samples": run.n,
                 "n_subsample": run.n_subsample, "input_shape": list(shape), "output_dim": run.output_dim,
                 "seed": seed, "whiten": bool(whiten), "standardize": bool(standardize), "notes": list(ds.notes),
                 "fingerprint": _fingerprint(ds.X)},
        "seeds": list(run.seeds), "max_gflop": max_gflop, "device": kind, "top_k": top_k, "trials": trials,
        "timeout": timeout, "constraints": dict(space.constraints),
    }
    meta = json.loads(json.dumps({
        "format": _FORMAT, "depth": depth, "space": space.to_dict(), "objectives": list(objectives),
        "data": ds.name, "n_samples": run.n, "n_subsample": run.n_subsample, "input_shape": list(shape),
        "output_dim": run.output_dim, "data_fingerprint": settings["data"]["fingerprint"], "seed": seed,
        "max_gflop": max_gflop,
        # the forecast objective's scores also depend on T and the targets
        **({"forecast_steps": forecast_steps, "targets_fingerprint": _fingerprint(ds.Y)}
           if primary == "forecast" else {}),
    }))

    shown = "memory" if storage is None else (redact_url(storage) if isinstance(storage, str) else type(storage).__name__)
    name = study_name or _default_study_name(space, depth, ds.name)
    old_verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = _create_study(open_storage(storage), name, len(objectives), seed, shown)
            _check_metadata(study, meta, shown)
            n_before = len(study.get_trials(deepcopy=False))
            t0 = time.perf_counter()
            if trials > 0:
                callbacks, bar = _search_bar(trials, progress, run.primary)
                try:
                    study.optimize(run.objective, n_trials=trials, timeout=timeout, callbacks=callbacks)
                finally:
                    if bar is not None:
                        bar.close()
            t_search = time.perf_counter() - t0
            all_trials = study.get_trials(deepcopy=False)
    finally:
        optuna.logging.set_verbosity(old_verbosity)

    multi = len(objectives) > 1
    candidates, pareto_ids = _candidates(all_trials, top_k, multi)
    if not candidates:
        failed = [t.user_attrs["score"]["detail"] for t in all_trials
                  if (t.user_attrs.get("score") or {}).get("tier") == "failed"]
        why = f"; {len(failed)} failed to score, e.g.: {failed[0]}" if failed else ""
        raise GNAdvisorError(
            f"study {name!r} has no completed feasible trial to verify ({len(all_trials)} trials{why}); "
            "run more trials (--trials) or relax the budgets (constraints in the space, --max-gflop)")
    base_spec = baseline_architecture(space, depth, input_dim=run.input_dim, output_dim=run.output_dim,
                                      input_shape=spec_shape)
    verified, baseline, abl, dropped, phase_s = _verify_phase(run, candidates, base_spec, ablation, progress)
    recs = _recommendations(verified, baseline, abl, pareto_ids if multi else None)

    frame = _trials_frame(all_trials)
    complete = frame[frame["state"] == "COMPLETE"]
    tiers = complete["tier"].value_counts().to_dict()
    info = {
        "name": name, "storage": shown, "sampler": "NSGAIISampler" if multi else "TPESampler (multivariate)",
        "n_trials": int(len(complete)), "n_trials_this_run": int(len(all_trials) - n_before),
        "n_feasible": int(complete["feasible"].sum()),
        "tiers": {str(a): int(b) for a, b in sorted(tiers.items())},
        "workers": {str(a): int(b) for a, b in sorted(complete["worker"].value_counts().to_dict().items())},
    }
    notes = _notes(tiers, run, kind, targets) + dropped
    timings = {"search_s": round(t_search, 3), **{k: round(v, 3) for k, v in phase_s.items()},
               "total_s": round(time.perf_counter() - t_start, 3)}
    return SuggestResult(recommendations=recs, baseline=baseline, ablation=abl, trials=frame, settings=settings,
                         study_info=info, notes=notes, timings=timings, study=study)


@dataclasses.dataclass(frozen=True)
class _Run:
    """Everything a trial needs, fixed for one call of :func:`suggest_architectures`."""

    space: SearchSpace
    depth: int
    objectives: tuple[str, ...]
    X: Any
    Y: Any
    input_dim: int
    output_dim: int
    input_shape: tuple[int, ...] | None
    n_subsample: int
    seed: int
    seeds: tuple[int, ...]
    device: str
    max_gflop: float
    worker: str
    forecast_steps: int = 0
    validate_steps: int = 0
    validate_top: int = 1

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def primary(self) -> str:
        return self.objectives[0]

    @property
    def max_flops(self) -> float:
        return self.max_gflop * 1e9

    def objective(self, trial: Any) -> float | tuple[float, ...]:
        """Propose a spec, record it and its budgets on the trial, score it unless over budget."""
        space = self.space
        spec = space.suggest(trial, self.depth, self.input_dim, self.output_dim, self.input_shape)
        cost = exact_cost(spec, self.n)
        viol = [*constraint_violations(spec, space), cost / self.max_flops - 1.0]
        trial.set_user_attr("spec", spec.to_dict())
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("constraints", viol)
        if _native_constraints():
            for key, v in zip([*space.constraints, "max_gflop"], viol):
                trial.set_constraint(key, v)
        if any(v > 0 for v in viol):
            size = {"max_params": spec.n_params(), "max_flops": spec.flops()}
            reasons = [f"{c} {size[c]:,} > {lim:,}" for (c, lim), v in zip(space.constraints.items(), viol) if v > 0]
            if viol[-1] > 0:
                reasons.append(f"exact kappa on n={self.n} ~{cost / 1e9:.3g} GFLOP > {self.max_gflop:g}")
            fc = self.primary == "forecast"
            score = Score(math.inf, "skipped", 0, "over budget: " + "; ".join(reasons),
                          loss_ratio=math.inf if fc else None, forecast_steps=self.forecast_steps if fc else None)
        else:
            score = score_architecture(spec, self.X, Y=self.Y, n_subsample=self.n_subsample, seed=self.seed,
                                       device=self.device, objective=self.primary,
                                       forecast_steps=max(1, self.forecast_steps))
        trial.set_user_attr("score", score.to_dict())
        values = [score.value(self.primary)]
        values += [float(spec.n_params() if o == "params" else spec.flops()) for o in self.objectives[1:]]
        return tuple(values) if len(values) > 1 else values[0]


def _verify_phase(run: _Run, candidates: list, base_spec: ArchSpec, ablation: bool, progress: bool):
    """Exact kappa (and forecast) of the candidates and the baseline over the seeds, ranked by the
    primary objective; the training check; then the winner's ablation."""
    X, Y, seeds, device = run.X, run.Y, run.seeds, run.device
    fsteps, vsteps = run.forecast_steps, run.validate_steps
    per_arch = len(seeds) * (2 if fsteps else 1)
    n_trained = (min(run.validate_top, len(candidates)) + 1) * len(seeds) if vsteps else 0
    bar = _bar(total=(len(candidates) + 1) * per_arch + n_trained, desc="verify", progress=progress)
    step = (lambda: bar.update(1)) if bar is not None else None
    t0 = time.perf_counter()
    remarks, verified = [], []

    def forecast(spec: ArchSpec, what: str) -> TrainingForecast | None:
        if not fsteps:
            return None
        try:
            return forecast_architecture(spec, X, Y, seeds=seeds, steps=fsteps, device=device)
        except GNAdvisorError as exc:
            remarks.append(f"{what} ({spec.describe()}): no training forecast ({exc})")
            return None
        finally:
            if bar is not None:
                bar.update(len(seeds))

    try:
        for t in candidates:
            try:
                v = _verify_each(_spec_of(t), X, seeds, Y, device, step)
            except GNAdvisorError as exc:
                remarks.append(f"trial {t.number} ({_spec_of(t).describe()}) dropped: its exact kappa failed ({exc})")
                continue
            fc = forecast(v.spec, f"trial {t.number}")
            if run.primary == "forecast" and fc is None:
                remarks.append(f"trial {t.number} dropped: the forecast objective needs its forecast")
                continue
            verified.append((t, dataclasses.replace(v, forecast=fc)))
        if not verified:
            raise GNAdvisorError("no candidate could be verified: " + "; ".join(remarks))
        verified.sort(key=lambda tv: (_rank_value(tv[1], run.primary), tv[0].number))
        base_ver = _verify_each(base_spec, X, seeds, Y, device, step)
        base_ver = dataclasses.replace(base_ver, forecast=forecast(base_spec, "baseline"))
        base_score = score_architecture(base_spec, X, Y=Y, n_subsample=run.n_subsample, seed=run.seed, device=device,
                                        objective=run.primary, forecast_steps=max(1, fsteps))
        t_verify = time.perf_counter() - t0

        t0 = time.perf_counter()
        if vsteps:
            def measure(v: Verification, what: str) -> Verification:
                try:
                    m = measure_training(v.spec, X, Y, seeds=seeds, steps=vsteps, forecast=v.forecast, device=device)
                    return dataclasses.replace(v, measured=m)
                except GNAdvisorError as exc:
                    remarks.append(f"{what} ({v.spec.describe()}): training check failed ({exc})")
                    return v
                finally:
                    if bar is not None:
                        bar.update(len(seeds))

            verified = [(t, measure(v, f"#{i + 1}") if i < run.validate_top else v)
                        for i, (t, v) in enumerate(verified)]
            base_ver = measure(base_ver, "baseline")
        t_validate = time.perf_counter() - t0
        baseline = Recommendation(rank=None, spec=base_spec, verification=base_ver, score=base_score,
                                  improvement=1.0, reasons=("plain MLP: relu, kaiming_normal, no skips, no batch norm",))

        t0 = time.perf_counter()
        abl = None
        if ablation:
            winner = verified[0][1]
            if bar is not None:
                bar.total += len(_differences(winner.spec, base_spec)) * len(seeds)
                bar.refresh()
            abl = ablate_architecture(winner.spec, base_spec, X, seeds=seeds, Y=Y, device=device, reference=winner,
                                      max_flops=run.max_flops, on_step=step)
        t_ablation = time.perf_counter() - t0
    finally:
        if bar is not None:
            bar.close()
    return verified, baseline, abl, remarks, {"verify_s": t_verify, "validate_s": t_validate, "ablation_s": t_ablation}


def _rank_value(v: Verification, primary: str) -> float:
    """What the verified rows are ranked by: mean kappa, or mean forecast L_T/L_0 (NaN last)."""
    value = v.mean if primary == "kappa" else (math.inf if v.forecast is None else v.forecast.loss_ratio)
    return value if not math.isnan(value) else math.inf


def _recommendations(verified: list, baseline: Recommendation, abl: Ablation | None,
                     pareto_ids: set[int] | None) -> list[Recommendation]:
    """The ranked rows; the winner's reasons carry its clear ablation ratios."""
    steps = {} if abl is None else {s.factor: s for s in abl.steps}
    recs = []
    for i, (t, v) in enumerate(verified):
        reasons = []
        for factor, text, _, _ in _differences(v.spec, baseline.spec):
            st = steps.get(factor) if i == 0 else None
            if st is not None and st.clear and st.ratio > 1:
                text += f" ({st.ratio:.3g}x)"
            reasons.append(text)
        recs.append(Recommendation(
            rank=i + 1, spec=v.spec, verification=v, score=Score.from_dict(t.user_attrs["score"]),
            improvement=baseline.verification.mean / v.mean, trial_number=t.number,
            worker=t.user_attrs.get("worker"), pareto=None if pareto_ids is None else t.number in pareto_ids,
            reasons=tuple(reasons)))
    return recs


def _create_study(storage, name: str, n_obj: int, seed: int, shown: str):
    import optuna

    try:
        return optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                   directions=["minimize"] * n_obj, sampler=_make_sampler(n_obj, seed))
    except GNAdvisorError:
        raise
    except Exception as exc:  # noqa: BLE001 - database errors, one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GNAdvisorError(f"cannot open study {name!r} in {shown}: {type(exc).__name__}: {first[:300]}") from None


def _spec_of(trial) -> ArchSpec:
    return ArchSpec.from_dict(trial.user_attrs["spec"])


def _feasible(trial) -> bool:
    return all(v <= 0 for v in trial.user_attrs.get("constraints", ()))


def _candidates(trials, top_k: int, multi: bool):
    import optuna

    ok = []
    for t in trials:
        if t.state != optuna.trial.TrialState.COMPLETE or "spec" not in t.user_attrs or "score" not in t.user_attrs:
            continue
        if not _feasible(t) or not math.isfinite(t.values[0]):
            continue
        ok.append(t)
    best: dict[str, Any] = {}
    for t in sorted(ok, key=lambda t: (t.values[0], t.number)):
        best.setdefault(json.dumps(t.user_attrs["spec"], sort_keys=True), t)
    unique = sorted(best.values(), key=lambda t: (t.values[0], t.number))
    if not multi:
        return unique[:top_k], set()
    vals = np.array([t.values for t in unique], dtype=float)
    front = [t for i, t in enumerate(unique)
             if not any(np.all(vals[j] <= vals[i]) and np.any(vals[j] < vals[i]) for j in range(len(unique)))]
    front.sort(key=lambda t: (t.values[1], t.values[0], t.number))
    if len(front) > top_k:
        idx = sorted({int(round(x)) for x in np.linspace(0, len(front) - 1, top_k)})
        chosen = [front[i] for i in idx]
    else:
        chosen = front
    return chosen, {t.number for t in front}


def _trials_frame(trials):
    import pandas as pd

    rows = []
    for t in trials:
        attrs = t.user_attrs
        spec = attrs.get("spec")
        score = attrs.get("score") or {}
        kappa = score.get("kappa")
        rows.append({
            "number": t.number, "state": t.state.name, "worker": attrs.get("worker"),
            "architecture": ArchSpec.from_dict(spec).describe() if spec else None,
            "params": ArchSpec.from_dict(spec).n_params() if spec else None,
            "feasible": _feasible(t) if "constraints" in attrs else False,
            "tier": score.get("tier", "none"), "score": math.inf if kappa is None and score else kappa,
            "loss_ratio": (None if "forecast_steps" not in score
                           else math.inf if score.get("loss_ratio") is None else score["loss_ratio"]),
            "score_samples": score.get("n_samples"), "score_detail": score.get("detail"),
            "score_time_s": score.get("time_s"),
            "values": list(t.values) if t.values is not None else None,
        })
    cols = ["number", "state", "worker", "architecture", "params", "feasible", "tier", "score", "loss_ratio",
            "score_samples", "score_detail", "score_time_s", "values"]
    return pd.DataFrame(rows, columns=cols)


def _notes(tiers: Mapping[str, int], run: _Run, kind: str, targets: str | None) -> list[str]:
    n = run.n
    if run.primary == "forecast":
        scores = (f"search scores: tier 'subsample' = forecast L_T/L_0 (T = {run.forecast_steps}) and exact kappa on "
                  f"the first {run.n_subsample} of them and their targets (the closed-form bounds cannot forecast); "
                  "rows ranked by the mean forecast L_T/L_0")
    else:
        scores = (f"search scores: tier 'subsample' = exact kappa on the first {run.n_subsample} of them, tier 'bound' "
                  "= tightest valid closed-form upper bound (Zhao, Singh & Lucchi 2024)")
    notes = [f"kappa = exact lambda_max / lambda_min!=0 of the Gauss-Newton matrix at initialisation on the same "
             f"{n} samples for every row, mean over init seeds {', '.join(map(str, run.seeds))} (std: sample "
             f"standard deviation); {scores}"]
    if targets is None:
        notes.append("the data have no targets: no training forecast and no training check (nothing to fit; give a "
                     "file with Y or y to get them)")
    elif run.forecast_steps or run.validate_steps:
        text = (f"forecast = L_T/L_0 that the linearised (Gauss-Newton/NTK) dynamics predict for T full-batch GD "
                f"steps at lr = 1/lambda_max of each seed's GN, L = ||f(X) - Y||^2 / (2n) on the same {n} samples, "
                f"targets: {targets}; same init seeds as kappa (gnadvisor.gn_forecast)")
        if run.validate_steps:
            text += (f"; measured = L_N/L_0 after N = {run.validate_steps} steps of that GD (gnadvisor.train, same lr and "
                     "seeds), beside the forecast for the same N")
        notes.append(text)
    skipped = int(tiers.get("skipped", 0))
    if skipped:
        notes.append(f"{skipped} trial(s) skipped as over budget (the space's constraints, or an exact kappa on n={n} "
                     f"estimated above {run.max_gflop:g} GFLOP on {kind}: batch norm couples the samples and pruning "
                     "needs explicit Jacobian columns, which makes their exact kappa far costlier); "
                     "raise --max-gflop or use --device cuda to include them")
    failed = int(tiers.get("failed", 0))
    if failed:
        notes.append(f"{failed} trial(s) could not be scored (gn_spectrum refused the model, e.g. a zero GN matrix)")
    return notes


# ============================================================================ progress
def _bar(total: int | None, desc: str, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True, disable=None)


def _search_bar(trials: int, progress: bool, primary: str = "kappa"):
    bar = _bar(trials, "search", progress)
    if bar is None:
        return [], None
    best = [math.inf]
    key, label = ("kappa", "kappa") if primary == "kappa" else ("loss_ratio", "L_T/L_0")

    def callback(study, trial):
        score = trial.user_attrs.get("score") or {}
        value = score.get(key)
        if value is not None and _feasible(trial):
            best[0] = min(best[0], value)
        bar.set_postfix_str(f"best {label} {best[0]:.3g}" if math.isfinite(best[0]) else "")
        bar.update(1)

    return [callback], bar
