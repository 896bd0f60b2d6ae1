"""Cheap scores for the architecture search, in tiers, and the cost of one exact kappa.

A search trial needs a number that ranks architectures by their Gauss-Newton conditioning
kappa = lambda_max / lambda_min!=0 (Zhao, Singh & Lucchi 2024, Sec. 4) at a fraction of the
cost of the exact kappa on the full data. The tiers, tried in the order of :data:`TIERS`
(the first that applies scores the trial):

=============  ==============================================================================
tier           score
=============  ==============================================================================
``bound``      the tightest *valid* closed-form upper bound of :func:`gnadvisor.bounds.gn_bounds`
               (``kind == "bound"``: Lemma 1, Lemma 2 / Eq. 7, layer-wise, Lemma 4), on the
               full sample. Applies to dense networks the bounds recognise (bias-free, BN-free
               linear chains, with or without per-layer skips; one-hidden-layer Leaky-ReLU)
               and only where their assumptions hold (e.g. a full-rank input covariance
               Sigma: the bundled digits have constant pixels, so it never applies there).
               Being an upper bound, it is >= the exact kappa of the same model on the
               full sample.
``subsample``  the exact kappa from :func:`gnadvisor.gn_spectrum` on the first
               ``n_subsample`` rows of the (already seeded, shuffled) full sample.
=============  ==============================================================================

With ``objective="forecast"`` (:func:`score_architecture`) the score is instead the forecast
training-loss ratio ``L_T / L_0`` after ``T`` full-batch GD steps at ``lr = 1 / lambda_max``
(:func:`gnadvisor.gn_forecast`) on the first ``n_subsample`` rows *and their targets*
(:class:`ForecastTier`, tier label ``subsample``; its ``kappa`` is the exact kappa of the same
eigendecomposition). The bound tier cannot forecast (a bound on kappa says nothing about the
residual's projections), so under this objective every trial is scored on the subsample.

:func:`score_architecture` always returns a :class:`Score`; when ``gn_spectrum`` refuses the
model (e.g. every ReLU dead, so G = 0) the score is ``inf`` with tier ``"failed"`` and the
reason. The study (:mod:`gnadvisor.search.study`) additionally uses tier ``"skipped"`` for
trials over a budget, which are never evaluated.

Every model is built as the verification builds it: ``build_pruned_model(spec, seed, X, Y)``
with the *full* sample (identical to ``build_model(spec, seed)`` for unpruned specs), so the
search score and the verified kappa concern the same weights.

:func:`exact_cost` estimates, without building anything, the floating-point operations of one
exact kappa (``gn_spectrum(method="auto", full=False)``); the search uses it as a compute
budget, enforced like a parameter budget.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import time
from typing import Any, ClassVar, Mapping

import torch

from gnadvisor._checks import GNAdvisorError, check_choice, check_positive_int
from gnadvisor.search.models import build_pruned_model
from gnadvisor.search.spec import ArchSpec

__all__ = [
    "BoundTier",
    "ForecastTier",
    "Score",
    "SCORE_OBJECTIVES",
    "SubsampleTier",
    "TIERS",
    "TIER_NAMES",
    "Tier",
    "exact_cost",
    "score_architecture",
]

#: Tier labels a trial can carry: the scoring tiers, then ``skipped`` (over a budget, not
#: evaluated) and ``failed`` (``gn_spectrum`` refused the model).
TIER_NAMES: tuple[str, ...] = ("bound", "subsample", "skipped", "failed")
#: The search's primary objectives (:func:`score_architecture`'s ``objective``).
SCORE_OBJECTIVES: tuple[str, ...] = ("kappa", "forecast")
#: ``log10`` of a forecast loss ratio is clamped here (a ratio of exactly 0 is possible in theory).
_LOG10_FLOOR = -300.0


@dataclasses.dataclass(frozen=True)
class Score:
    """The cheap score of one architecture and how it was obtained.

    Attributes
    ----------
    kappa : float
        The score: an upper bound on kappa (tier ``bound``), an exact kappa on a subsample
        (tier ``subsample``), or ``inf`` (tiers ``skipped`` and ``failed``).
    tier : str
        One of :data:`TIER_NAMES`.
    n_samples : int
        Number of samples the score was computed on (0 when not evaluated).
    detail : str
        Which bound, which spectrum route, or why it was skipped or failed.
    time_s : float
        Wall-clock seconds spent.
    loss_ratio : float or None
        Objective ``forecast`` only: the forecast ``L_T / L_0`` after ``forecast_steps`` GD
        steps at ``lr = 1 / lambda_max`` on the same samples (``inf`` when skipped or failed);
        None for a kappa score.
    forecast_steps : int or None
        ``T`` of ``loss_ratio`` (None for a kappa score).
    """

    kappa: float
    tier: str
    n_samples: int
    detail: str = ""
    time_s: float = 0.0
    loss_ratio: float | None = None
    forecast_steps: int | None = None

    def __post_init__(self) -> None:
        if self.tier not in TIER_NAMES:
            raise GNAdvisorError(f"tier must be one of {', '.join(TIER_NAMES)}, got {self.tier!r}")
        object.__setattr__(self, "kappa", float(self.kappa))
        if self.loss_ratio is not None:
            object.__setattr__(self, "loss_ratio", float(self.loss_ratio))

    @property
    def log10_kappa(self) -> float:
        """``log10(kappa)`` (``inf`` when the score is infinite), the search objective."""
        return math.log10(self.kappa) if math.isfinite(self.kappa) and self.kappa > 0 else math.inf

    @property
    def log10_loss_ratio(self) -> float:
        """``log10(L_T / L_0)`` of the forecast, the ``forecast`` objective (lower = faster training).

        ``inf`` when there is no finite forecast (kappa score, skipped, failed, or diverged);
        clamped at -300 for a forecast that reaches exactly 0.
        """
        r = self.loss_ratio
        if r is None or not math.isfinite(r) or r < 0:
            return math.inf
        return max(_LOG10_FLOOR, math.log10(r)) if r > 0 else _LOG10_FLOOR

    def value(self, objective: str = "kappa") -> float:
        """The search objective value: ``log10_kappa`` or ``log10_loss_ratio`` (minimised).

        Parameters
        ----------
        objective : {"kappa", "forecast"}

        Returns
        -------
        float
        """
        check_choice("objective", objective, SCORE_OBJECTIVES)
        return self.log10_kappa if objective == "kappa" else self.log10_loss_ratio

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (an infinite kappa becomes None); :meth:`from_dict` inverts it.

        ``loss_ratio`` and ``forecast_steps`` appear only for forecast scores (an infinite
        ratio becomes None), so kappa scores keep their stored form.
        """
        d: dict[str, Any] = {"kappa": self.kappa if math.isfinite(self.kappa) else None, "tier": self.tier,
                             "n_samples": self.n_samples, "detail": self.detail, "time_s": self.time_s}
        if self.forecast_steps is not None:
            r = self.loss_ratio
            d["loss_ratio"] = r if r is not None and math.isfinite(r) else None
            d["forecast_steps"] = self.forecast_steps
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Score":
        """Inverse of :meth:`to_dict`."""
        kappa = data.get("kappa")
        steps = data.get("forecast_steps")
        ratio = data.get("loss_ratio")
        if steps is not None and ratio is None:
            ratio = math.inf
        return cls(kappa=math.inf if kappa is None else float(kappa), tier=data["tier"],
                   n_samples=int(data.get("n_samples", 0)), detail=data.get("detail", ""),
                   time_s=float(data.get("time_s", 0.0)), loss_ratio=None if ratio is None else float(ratio),
                   forecast_steps=None if steps is None else int(steps))


class Tier(abc.ABC):
    """One way of scoring an architecture cheaply (the family of :data:`TIERS`).

    Subclasses set :attr:`name` and :attr:`summary` and implement :meth:`score`, returning
    None when the tier does not apply to the spec (the next tier is then tried).
    """

    #: The label stored on trials.
    name: ClassVar[str]
    #: What the score is, in one line.
    summary: ClassVar[str]

    @abc.abstractmethod
    def score(self, spec: ArchSpec, model: torch.nn.Module, *, X: torch.Tensor,
              n_subsample: int, device: str, Y: torch.Tensor | None = None) -> Score | None:
        """Score ``model`` (built from ``spec``) or return None when the tier does not apply.

        Parameters
        ----------
        spec : ArchSpec
            The architecture.
        model : torch.nn.Module
            ``build_pruned_model(spec, seed, X, Y)``.
        X : torch.Tensor
            The full (verification) sample, already shuffled.
        n_subsample : int
            Rows of ``X`` a subsample tier may use (its first rows).
        device : str
            Where ``gn_spectrum`` runs (``"auto"``, ``"cpu"`` or ``"cuda"``).
        Y : torch.Tensor, optional
            Targets of the full sample (row-aligned with ``X``); only tiers that forecast
            training use them.

        Returns
        -------
        Score or None
        """


class BoundTier(Tier):
    """The tightest valid closed-form bound (:func:`gnadvisor.bounds.gn_bounds`, ``kind="bound"``).

    References
    ----------
    Zhao, Singh & Lucchi (NeurIPS 2024): Lemma 1, Lemma 2 (Eq. 6), Eq. 7, Lemma 4.
    """

    name = "bound"
    summary = "tightest valid closed-form upper bound on kappa (Lemma 1/2, Eq. 7, Lemma 4), full sample"

    def score(self, spec, model, *, X, n_subsample, device, Y=None):
        if spec.needs_pruning:
            # the bounds describe the GN over all weights of the chain; a pruned net's GN is the
            # one on its kept coordinates, which they do not bound (gn-theory Sec. 7)
            return None
        if getattr(model, "linear_structure", lambda: None)() is None:
            return None
        from gnadvisor.bounds import gn_bounds

        t0 = time.perf_counter()
        valid = [b for b in gn_bounds(model, X).values() if b.kind == "bound" and b.valid]
        if not valid:
            return None
        best = min(valid, key=lambda b: b.value)
        return Score(kappa=best.value, tier=self.name, n_samples=int(X.shape[0]),
                     detail=f"{best.name} ({best.reference.split(', ')[-1] if best.reference else best.name})",
                     time_s=time.perf_counter() - t0)


class SubsampleTier(Tier):
    """Exact kappa (:func:`gnadvisor.gn_spectrum`) on the first ``n_subsample`` rows of the sample."""

    name = "subsample"
    summary = "exact kappa (gn_spectrum) on a seeded subsample"

    def score(self, spec, model, *, X, n_subsample, device, Y=None):
        from gnadvisor.spectrum import gn_spectrum

        Xs = X[:n_subsample]
        s = gn_spectrum(model, Xs, device=device, full=False)
        return Score(kappa=s.condition_number, tier=self.name, n_samples=int(Xs.shape[0]),
                     detail=f"{s.method} route on {s.device}, rank {s.rank}", time_s=s.time_s)


class ForecastTier(Tier):
    """Forecast ``L_T / L_0`` (:func:`gnadvisor.gn_forecast`) on the first ``n_subsample`` rows.

    The score's ``loss_ratio`` is ``gn_forecast(model, X[:n_subsample], Y[:n_subsample],
    steps=steps).ratio`` (``lr = 1 / lambda_max`` of that subsample's GN, the linearised
    prediction of ``steps`` full-batch GD steps on ``L = ||f(X) - Y||^2 / (2 n)``) and its
    ``kappa`` the exact kappa of the same eigendecomposition (same rank rule as
    ``gn_spectrum``). Its label is ``subsample``: it is the exact subsample tier, forecasting.

    Parameters
    ----------
    steps : int, default 100
        ``T``, at least 1.

    References
    ----------
    Lee et al. (2019), linearised training dynamics; Zhao, Singh & Lucchi (2024), GN spectrum.
    """

    name = "subsample"
    summary = "forecast loss ratio L_T/L_0 of T GD steps (gn_forecast) on a seeded subsample and its targets"

    def __init__(self, steps: int = 100) -> None:
        self.steps = check_positive_int("forecast_steps", steps)

    def __repr__(self) -> str:
        return f"ForecastTier(steps={self.steps})"

    def score(self, spec, model, *, X, n_subsample, device, Y=None):
        from gnadvisor.forecast import gn_forecast

        if Y is None:
            raise GNAdvisorError("the forecast objective needs targets Y; these data have none")
        Xs, Ys = X[:n_subsample], Y[:n_subsample]
        fc = gn_forecast(model, Xs, Ys, steps=self.steps, device=device)
        return Score(kappa=fc.condition_number, tier=self.name, n_samples=int(Xs.shape[0]),
                     detail=f"forecast of {self.steps} GD steps at lr = 1/lambda_max, rank {fc.rank}",
                     time_s=fc.time_s, loss_ratio=fc.ratio, forecast_steps=self.steps)


#: The scoring tiers, cheapest first; :func:`score_architecture` uses the first that applies.
TIERS: tuple[Tier, ...] = (BoundTier(), SubsampleTier())


def score_architecture(spec: ArchSpec, X: torch.Tensor, *, Y: torch.Tensor | None = None,
                       n_subsample: int = 64, seed: int = 0, device: str = "auto",
                       tiers: tuple[Tier, ...] | None = None, objective: str = "kappa",
                       forecast_steps: int = 100) -> Score:
    """Cheap score of ``spec`` at initialisation ``seed``: the first tier of ``tiers`` that applies.

    Parameters
    ----------
    spec : ArchSpec
        The architecture; its input size must match ``X``.
    X : torch.Tensor
        The full sample ``(n, ...)``, float64, already shuffled (as :func:`gnadvisor.load_data`
        returns it); subsample tiers use its first ``n_subsample`` rows.
    Y : torch.Tensor, optional
        Targets ``(n, k)``: used by data-dependent pruning schemes (``snip``, ``grasp``) and,
        required, by ``objective="forecast"``.
    n_subsample : int, default 64
        Rows for the ``subsample`` tier (capped at ``n``).
    seed : int, default 0
        Initialisation seed (``build_pruned_model(spec, seed, X, Y)``).
    device : {"auto", "cpu", "cuda"}
        Where exact spectra run.
    tiers : tuple of Tier, optional
        The tiers to try, in order. Default :data:`TIERS` for ``objective="kappa"`` and
        ``(ForecastTier(forecast_steps),)`` for ``objective="forecast"``.
    objective : {"kappa", "forecast"}, default "kappa"
        ``"forecast"``: the score also carries ``loss_ratio``, the forecast ``L_T / L_0``
        (:class:`ForecastTier`); the bound tier cannot forecast and is not used.
    forecast_steps : int, default 100
        ``T`` of the forecast (``objective="forecast"`` only).

    Returns
    -------
    Score
        Tier ``"failed"`` with ``kappa = inf`` (and ``loss_ratio = inf`` for a forecast) when
        the spectrum or forecast raises a :class:`~gnadvisor.GNAdvisorError` (the message is
        in ``detail``).

    Raises
    ------
    GNAdvisorError
        If ``n_subsample``, ``seed``, ``objective`` or ``forecast_steps`` is invalid,
        ``objective="forecast"`` without targets, or no tier applies.

    Examples
    --------
    >>> from gnadvisor import load_data
    >>> ds = load_data("digits", n_samples=32)
    >>> spec = ArchSpec(family="resmlp", depth=2, width=16, skip_beta=1.0, activation="tanh",
    ...                 input_dim=64, output_dim=10)
    >>> s = score_architecture(spec, ds.X, n_subsample=16)
    >>> s.tier, s.n_samples, s.kappa > 1
    ('subsample', 16, True)
    >>> f = score_architecture(spec, ds.X, Y=ds.Y, n_subsample=16, objective="forecast", forecast_steps=50)
    >>> f.forecast_steps, 0 < f.loss_ratio < 1
    (50, True)
    """
    n_subsample = check_positive_int("n_subsample", n_subsample)
    seed = check_positive_int("seed", seed, allow_zero=True)
    check_choice("objective", objective, SCORE_OBJECTIVES)
    forecast = objective == "forecast"
    if forecast:
        forecast_steps = check_positive_int("forecast_steps", forecast_steps)
        if Y is None:
            raise GNAdvisorError("objective 'forecast' needs targets Y (the forecast is of the training loss "
                                 "||f(X) - Y||^2 / (2n)); these data have none: use objective 'kappa'")
    if tiers is None:
        tiers = (ForecastTier(forecast_steps),) if forecast else TIERS
    t0 = time.perf_counter()
    try:
        model = build_pruned_model(spec, seed, X, Y)
        for tier in tiers:
            score = tier.score(spec, model, X=X, n_subsample=n_subsample, device=device, Y=Y)
            if score is not None:
                return score
    except GNAdvisorError as exc:
        return Score(kappa=math.inf, tier="failed", n_samples=0, detail=str(exc),
                     time_s=time.perf_counter() - t0, loss_ratio=math.inf if forecast else None,
                     forecast_steps=forecast_steps if forecast else None)
    raise GNAdvisorError(f"no scoring tier applies to {spec.describe()!r}; include SubsampleTier in tiers")


def exact_cost(spec: ArchSpec, n_samples: int) -> float:
    """Estimated floating-point operations of one exact kappa of ``spec`` on ``n_samples`` samples.

    Mirrors the route ``gn_spectrum(method="auto", full=False)`` takes, with ``N = n k``
    Gram rows, ``p`` parameters (kept ones when pruned) and ``macs`` multiply-adds per sample:

    ==========================================  =============================================
    network                                     dominant cost
    ==========================================  =============================================
    linear in x, ``k d < min(N, p)``            Kronecker route: ``2 L (k d)^2 + (k d)^3``
    dense MLP, no batch norm                    structured Gram: ``N^2 * sum of layer widths``
    pruned, CNN (per-sample Jacobians)          ``2 N^2 p + 4 N macs``
    batch norm (samples coupled)                full-batch Jacobian rows: ``2 N^2 p + 4 N n macs``
    ==========================================  =============================================

    plus the eigen-solve of the ``N x N`` Gram (``4/3 N^3`` up to 1500 rows, a Cholesky
    ``N^3 / 3`` above). Train-mode batch norm couples the samples, so its exact kappa costs
    about ``n`` times more than the same network without it. The estimate is within a small
    factor of the measured time on CPU (about 10 GFLOP/s per core).

    Parameters
    ----------
    spec : ArchSpec
        The architecture.
    n_samples : int
        Number of samples ``n``.

    Returns
    -------
    float
        FLOPs.

    Raises
    ------
    GNAdvisorError
        If ``n_samples`` is not a positive integer.

    Examples
    --------
    >>> plain = ArchSpec(depth=20, width=91, input_dim=64, output_dim=10)
    >>> bn = ArchSpec(depth=20, width=91, batchnorm=True, input_dim=64, output_dim=10)
    >>> exact_cost(bn, 256) / exact_cost(plain, 256) > 100
    True
    """
    n = check_positive_int("n_samples", n_samples)
    k = spec.output_dim
    N = n * k
    p = spec.n_params()
    macs = spec.flops()
    eig = 4.0 / 3.0 * N**3 if N <= 1500 else N**3 / 3.0 + 400.0 * N**2
    kd = spec.input_dim * k
    m = spec.width_resolved
    L = spec.n_weight_layers
    kept = p * (1.0 - spec.sparsity) if spec.needs_pruning else float(p)
    if spec.activation == "linear" and not spec.bias and not spec.batchnorm and kd < min(N, p):
        if spec.needs_pruning or spec.family == "cnn":  # Gram on the d basis inputs
            return 2.0 * kd**2 * kept + 4.0 * kd * macs + 4.0 / 3.0 * kd**3
        return 2.0 * L * kd**2 + 2.0 * L * m * m * (k + spec.input_dim) + 4.0 / 3.0 * kd**3
    if spec.batchnorm:
        return 2.0 * N**2 * kept + 4.0 * N * n * macs + eig
    if spec.family == "cnn" or spec.needs_pruning:
        return 2.0 * N**2 * kept + 4.0 * N * macs + eig
    return float(N**2 * (spec.depth * m + k) + n**2 * (spec.input_dim + spec.depth * m)
                 + 4.0 * N * macs + eig)
