"""``gn_forecast``: the training-loss curve that the linearised (NTK / Gauss-Newton) dynamics predict.

From the same eigendecomposition as kappa, the forecast says how far full-batch gradient
descent will bring the loss in ``T`` steps, before any training.

Convention (the loss of :func:`gnadvisor.training.train`)::

    L(theta) = (1 / (2 n)) * sum_i || f(x_i; theta) - y_i ||^2 = ||r||^2 / (2 n),

with ``r = f(X) - Y`` flattened to ``n k`` entries in the order ``i * k + c`` (sample i, output
c). Then ``grad L = (1/n) J^T r`` and one GD step ``theta <- theta - lr * grad L`` moves the
outputs by ``-lr * J (1/n) J^T r = -lr * K r`` to first order, with ``K = (1/n) J J^T`` the
empirical NTK Gram (:func:`gnadvisor.gn_gram`). Freezing ``K`` at initialisation gives
``r_t = (I - lr K)^t r_0``, so with ``K = sum_i lambda_i u_i u_i^T`` (all ``n k`` eigenpairs)::

    L_t = sum_i (1 - lr * lambda_i)^(2 t) * (u_i^T r_0)^2 / (2 n).

For a model that is linear in its trainable parameters (``f(x) = Phi(x) theta``: one
``nn.Linear``, with or without bias; a random-features model with a frozen feature map) the
first-order step is exact and so is the forecast. Directions with ``lambda_i = 0`` never
decay: their residual energy is the loss floor GD cannot go below in the linearised model.

==================  ==========================  ===========================================
maths               code                        meaning
==================  ==========================  ===========================================
K                   ``gn_gram(model, X)``       (1/n) J J^T, n k x n k
lambda_i, u_i       ``eigenvalues``             all n k eigenpairs, descending; those below
                                                the rank cut are set to exactly 0
(u_i^T r_0)^2       ``projections``             residual energy per eigendirection
eta                 ``lr``                      GD step; default ``lr_scale / lambda_max``
L_t                 ``losses[t]``               forecast loss after t steps, t = 0..T
L_T / L_0           ``ratio``                   forecast loss ratio
log(L_0 / L_T)      ``log_decrease``            forecast training speed (higher = faster)
==================  ==========================  ===========================================

Other optimisers: :func:`linearised_forecast` runs an optimiser's exact recurrence on the
linearised model ``f_lin(theta) = f(theta_0) + J (theta - theta_0)`` (same loss, same ``J`` and
``r_0`` as above). For GD that recurrence is ``r_{t+1} = (I - lr K) r_t``, whose closed form is
the curve above; for Adam it is no longer diagonal in the eigenbasis of ``K`` (the per-parameter
normalisation by ``sqrt(v_t)`` mixes the modes), so it is iterated, matrix-free: each step is
one vector-Jacobian product ``g_t = (1/n) J^T r_t`` and one Jacobian-vector product
``r_{t+1} = r_0 + J (theta_{t+1} - theta_0)``, both at ``theta_0`` (``J`` is never stored).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ._checks import GNAdvisorError, check_positive_float, check_positive_int
from .spectrum._base import default_rtol
from .spectrum._problem import MaskOption, ParamSelector, build_problem, human_bytes, memory_budget
from .spectrum.gram import gram_matrix

__all__ = ["Forecast", "LinearisedForecast", "gn_forecast", "forecast_curve", "linearised_forecast"]

#: Most entries of the (steps x n k) power table held at once when evaluating a curve.
_CHUNK_ENTRIES = 1 << 22


@dataclass(frozen=True, eq=False)
class Forecast:
    """The linearised forecast of full-batch GD on ``L = ||f(X) - Y||^2 / (2 n)``.

    Attributes
    ----------
    losses : numpy.ndarray
        Forecast loss ``L_t`` for ``t = 0, ..., steps`` (length ``steps + 1``); ``losses[0]`` is
        the exact loss at initialisation. ``inf`` where the forecast overflows.
    ratio : float
        ``L_T / L_0`` (``T = steps``).
    log_decrease : float
        ``log(L_0 / L_T)`` (natural log), the forecast training speed: higher is faster;
        ``-inf`` when the forecast diverges to overflow.
    lr : float
        Step size used.
    lr_scale : float or None
        ``c`` when ``lr = c / lambda_max`` was derived, None when ``lr`` was given.
    steps : int
        ``T``.
    initial_loss : float
        ``L_0``.
    loss_floor : float
        ``sum over lambda_i = 0 of (u_i^T r_0)^2 / (2 n)``: the limit of the forecast as
        ``T -> inf`` when ``lr < 2 / lambda_max``.
    stable : bool
        ``lr * lambda_max < 2``: every mode contracts (else the top modes grow).
    lambda_max, lambda_min : float
        Largest and smallest non-zero eigenvalue of ``K`` (the GN's, see ``gn_spectrum``).
    condition_number : float
        ``lambda_max / lambda_min`` over the non-zero spectrum (same rank rule as
        :func:`gnadvisor.gn_spectrum`).
    rank : int
        Number of eigenvalues above the cut ``rtol * lambda_max``.
    rtol : float
        Relative rank cut used.
    eigenvalues : numpy.ndarray
        All ``n k`` eigenvalues of ``K``, descending, those at or below the cut set to 0.
    projections : numpy.ndarray
        ``(u_i^T r_0)^2`` in the same order; they sum to ``||r_0||^2 = 2 n L_0``.
    n_samples, n_outputs, n_params : int
        ``n``, ``k`` and the number of differentiated (kept) parameters.
    time_s : float
        Seconds spent (Gram, eigendecomposition and curve).
    notes : tuple of str
        How the Gram was built.
    """

    losses: np.ndarray
    ratio: float
    log_decrease: float
    lr: float
    lr_scale: float | None
    steps: int
    initial_loss: float
    loss_floor: float
    stable: bool
    lambda_max: float
    lambda_min: float
    condition_number: float
    rank: int
    rtol: float
    eigenvalues: np.ndarray = field(repr=False)
    projections: np.ndarray = field(repr=False)
    n_samples: int = 0
    n_outputs: int = 0
    n_params: int = 0
    time_s: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def final_loss(self) -> float:
        """``L_T``, the forecast loss after ``steps`` steps."""
        return float(self.losses[-1])

    def with_schedule(self, *, steps: int | None = None, lr: float | None = None,
                      lr_scale: float | None = None) -> "Forecast":
        """The same forecast for another number of steps or step size, without a new Gram.

        Parameters
        ----------
        steps : int, optional
            New ``T`` (default: unchanged).
        lr : float, optional
            New step size. Give at most one of ``lr`` and ``lr_scale``; with neither, the step
            size is unchanged.
        lr_scale : float, optional
            New ``c`` in ``lr = c / lambda_max``.

        Returns
        -------
        Forecast
            A new record; eigen information is shared.

        Raises
        ------
        GNAdvisorError
            For a bad ``steps``, ``lr`` or ``lr_scale``, or both of the last two.
        """
        steps = self.steps if steps is None else check_positive_int("steps", steps, allow_zero=True)
        lr_used, scale = _resolve_lr(lr, lr_scale, self.lambda_max, default_scale=None)
        if lr_used is None:
            lr_used, scale = self.lr, self.lr_scale
        losses = forecast_curve(self.eigenvalues, self.projections, self.n_samples, steps=steps, lr=lr_used)
        return replace(self, losses=losses, steps=steps, lr=lr_used, lr_scale=scale,
                       stable=bool(lr_used * self.lambda_max < 2.0), **_summary(losses))

    def to_dict(self, *, with_curve: bool = True, with_eigenvalues: bool = False) -> dict[str, Any]:
        """JSON-ready dict (inf as float; use ``gnadvisor.cli.options.echo_json`` to print)."""
        d: dict[str, Any] = {
            "steps": self.steps, "lr": self.lr, "lr_scale": self.lr_scale,
            "initial_loss": self.initial_loss, "final_loss": self.final_loss, "ratio": self.ratio,
            "log_decrease": self.log_decrease, "loss_floor": self.loss_floor, "stable": self.stable,
            "lambda_max": self.lambda_max, "lambda_min": self.lambda_min,
            "condition_number": self.condition_number, "rank": self.rank, "rtol": self.rtol,
            "n_samples": self.n_samples, "n_outputs": self.n_outputs, "n_params": self.n_params,
            "time_s": round(self.time_s, 4), "notes": list(self.notes),
        }
        if with_curve:
            d["losses"] = [float(v) for v in self.losses]
        if with_eigenvalues:
            d["eigenvalues"] = [float(v) for v in self.eigenvalues]
            d["projections"] = [float(v) for v in self.projections]
        return d


def forecast_curve(eigenvalues: Any, projections: Any, n_samples: int, *, steps: int, lr: float) -> np.ndarray:
    """``L_t = sum_i (1 - lr lambda_i)^(2t) p_i / (2 n)`` for ``t = 0..steps``.

    Parameters
    ----------
    eigenvalues : array-like
        ``lambda_i`` of ``K`` (any order, >= 0).
    projections : array-like
        ``p_i = (u_i^T r_0)^2``, same order.
    n_samples : int
        ``n``.
    steps : int
        ``T``.
    lr : float
        Step size.

    Returns
    -------
    numpy.ndarray
        Shape ``(steps + 1,)``; ``inf`` where it overflows.

    Examples
    --------
    >>> forecast_curve([2.0, 0.0], [4.0, 1.0], 1, steps=2, lr=0.25).tolist()  # (1/2)^(2t) * 4/2 + 1/2
    [2.5, 1.0, 0.625]
    """
    lam = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    w = np.asarray(projections, dtype=np.float64).reshape(-1) / (2.0 * n_samples)
    q = (1.0 - lr * lam) ** 2
    t = np.arange(steps + 1, dtype=np.float64)
    out = np.empty(steps + 1)
    rows = max(1, _CHUNK_ENTRIES // max(1, lam.size))
    with np.errstate(over="ignore", invalid="ignore"):
        for s in range(0, steps + 1, rows):
            out[s:s + rows] = np.power(q[None, :], t[s:s + rows, None]) @ w
    out[~np.isfinite(out)] = math.inf
    return out


def gn_forecast(
    model: nn.Module,
    X: Any,
    Y: Any,
    *,
    steps: int,
    lr: float | None = None,
    lr_scale: float | None = None,
    device: str | torch.device = "auto",
    coordinates: str = "kept",
    batchnorm: str = "train",
    params: ParamSelector = None,
    masks: MaskOption = "auto",
    rtol: float | None = None,
    max_memory: float | str | None = None,
) -> Forecast:
    """Forecast the loss curve of ``T`` full-batch GD steps from the linearised dynamics.

    ``L_t = sum_i (1 - lr lambda_i)^(2t) (u_i^T r_0)^2 / (2 n)`` with ``(lambda_i, u_i)`` all
    eigenpairs of the NTK Gram ``K = (1/n) J J^T`` at the current weights and
    ``r_0 = f(X) - Y`` (module docstring). Exact for models linear in their parameters;
    a first-order prediction otherwise (it holds while ``K`` stays close to its initial value).

    Parameters
    ----------
    model : torch.nn.Module
        Any model; evaluated on a private float64 copy, never modified. Pruned models
        (``torch.nn.utils.prune``) train their kept coordinates, as :func:`gnadvisor.train`.
    X : torch.Tensor or numpy.ndarray
        Inputs ``(n, ...)``.
    Y : torch.Tensor or numpy.ndarray
        Targets of the shape of ``model(X)``, ``(n, k)`` (e.g. one-hot labels).
    steps : int
        Number of GD steps ``T`` (>= 0).
    lr : float, optional
        Step size. Default ``lr_scale / lambda_max`` (``lr_scale`` default 1).
    lr_scale : float, optional
        ``c`` in ``lr = c / lambda_max``; not with ``lr``. ``c < 2`` keeps every mode stable.
    device, coordinates, batchnorm, params, masks, rtol, max_memory
        As :func:`gnadvisor.gn_spectrum`. ``batchnorm="train"`` (default) matches
        :func:`gnadvisor.train`, which trains in training mode.

    Returns
    -------
    Forecast
        ``losses`` (length ``T + 1``), ``ratio = L_T / L_0``, ``log_decrease``, the step size and
        the eigen information (``lambda_max``, ``lambda_min``, ``rank``, ``condition_number``).

    Raises
    ------
    GNAdvisorError
        For a bad ``steps``, ``lr`` or ``lr_scale`` (or both given), targets whose shape is not
        the model's output shape or that are not finite, and everything :func:`gnadvisor.gn_gram`
        raises (including a Gram over the memory budget, or an all-zero Gauss-Newton matrix).

    References
    ----------
    Jacot, Gabriel & Hongler (2018), neural tangent kernel; Lee et al. (2019), "Wide neural
    networks of any depth evolve as linear models under gradient descent", Eq. (9) (discrete
    GD form here). Zhao, Singh & Lucchi (2024) for the GN spectrum and its rank rule.

    Examples
    --------
    >>> import torch
    >>> from gnadvisor.forecast import gn_forecast
    >>> from gnadvisor.training import train
    >>> _ = torch.manual_seed(0)
    >>> X, Y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 2, dtype=torch.float64)
    >>> net = torch.nn.Linear(3, 2).double()  # linear in its parameters: the forecast is exact
    >>> fc = gn_forecast(net, X, Y, steps=30)
    >>> real = train(net, X, Y, steps=30, lr=fc.lr).losses
    >>> bool(abs(fc.losses - real).max() < 1e-10), fc.losses.shape
    (True, (31,))
    """
    steps = check_positive_int("steps", steps, allow_zero=True)
    if rtol is not None and not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise GNAdvisorError(f"rtol must be a number in (0, 1), got {rtol!r}")
    if lr is not None or lr_scale is not None:
        _resolve_lr(lr, lr_scale, 1.0)  # check before the expensive part
    t0 = time.perf_counter()
    K, r0, info = _gram_and_residual(model, X, Y, device=device, coordinates=coordinates, batchnorm=batchnorm,
                                     params=params, masks=masks, max_memory=max_memory)
    rtol_used = float(rtol) if rtol is not None else default_rtol(info["n_params"], K.shape[0])
    lam, proj = _eigen_projections(K, r0, rtol_used)
    del K
    return _forecast_from_eigen(lam, proj, n_samples=info["n_samples"], n_outputs=info["n_outputs"],
                               n_params=info["n_params"], steps=steps, lr=lr, lr_scale=lr_scale, rtol=rtol_used,
                               notes=tuple(info["notes"]), t0=t0)


# ---------------------------------------------------------------------------- shared pieces
def _resolve_lr(lr: float | None, lr_scale: float | None, lambda_max: float,
                default_scale: float | None = 1.0) -> tuple[float | None, float | None]:
    """(lr, lr_scale): lr given -> (lr, None); else lr_scale (or the default) / lambda_max."""
    if lr is not None and lr_scale is not None:
        raise GNAdvisorError(f"give at most one of lr and lr_scale, got lr={lr!r} and lr_scale={lr_scale!r}")
    if lr is not None:
        return check_positive_float("lr", lr), None
    scale = lr_scale if lr_scale is not None else default_scale
    if scale is None:
        return None, None
    scale = check_positive_float("lr_scale", scale)
    return scale / lambda_max, scale


def _summary(losses: np.ndarray) -> dict[str, float]:
    L0, LT = float(losses[0]), float(losses[-1])
    ratio = LT / L0 if L0 > 0 else (0.0 if LT == 0 else math.inf)
    if L0 == 0:
        logdec = 0.0
    elif LT == 0:
        logdec = math.inf
    elif math.isinf(LT):
        logdec = -math.inf
    else:
        logdec = math.log(L0 / LT)
    return {"ratio": ratio, "log_decrease": logdec, "initial_loss": L0}


def _gram_and_residual(model: nn.Module, X: Any, Y: Any, **opts: Any) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """``K`` (n k x n k, float64), ``r_0 = f(X) - Y`` flattened, and bookkeeping.

    Both come from the same private copy of the model (same batch-norm mode, same pruning
    masks, dropout off), so the residual is expressed in ``K``'s row order.
    """
    max_memory = opts.pop("max_memory", None)
    problem = build_problem(model, X, **opts)
    n, k = problem.n_samples, problem.n_outputs
    Yt = _targets(Y, n, k, problem.device)
    N = n * k
    budget = memory_budget(problem.device, max_memory)
    if 16 * N * N > budget:
        raise GNAdvisorError(
            f"the forecast needs the {N} x {N} NTK Gram and its eigenvectors, about {human_bytes(24 * N * N)}, over "
            f"the memory budget of {human_bytes(budget)}; use fewer samples or a larger max_memory"
        )
    with torch.no_grad():
        r0 = problem.f({}) - Yt.reshape(-1)
    K, notes = gram_matrix(problem, budget=budget)
    return K, r0, {"n_samples": n, "n_outputs": k, "n_params": problem.n_params, "notes": list(problem.notes) + notes}


def _targets(Y: Any, n: int, k: int, dev: torch.device) -> torch.Tensor:
    if isinstance(Y, np.ndarray):
        Y = torch.from_numpy(Y)
    if not isinstance(Y, torch.Tensor):
        raise GNAdvisorError(f"Y must be a torch.Tensor or numpy array of shape ({n}, {k}), got {type(Y).__name__}")
    if Y.ndim == 1 and k == 1:
        Y = Y.reshape(n, 1)
    if tuple(Y.shape) != (n, k):
        raise GNAdvisorError(
            f"Y must have the model's output shape ({n}, {k}) (n_samples, n_outputs), got {tuple(Y.shape)}; "
            "one-hot encode class labels, e.g. with gnadvisor.load_data"
        )
    Y = Y.detach().to(device=dev, dtype=torch.float64)
    if not torch.isfinite(Y).all():
        raise GNAdvisorError("Y must contain only finite values, got NaN or inf")
    return Y


def _eigen_projections(K: torch.Tensor, r0: torch.Tensor, rtol: float) -> tuple[np.ndarray, np.ndarray]:
    """All eigenvalues of ``K`` (descending, below ``rtol * lambda_max`` set to 0) and ``(u_i^T r_0)^2``.

    Raises
    ------
    GNAdvisorError
        If ``K`` is zero or not finite.
    """
    K = 0.5 * (K + K.T)
    ev, U = torch.linalg.eigh(K)
    proj = (U.T @ r0.reshape(-1, 1)).reshape(-1) ** 2
    lam = ev.flip(0).cpu().numpy()
    proj = proj.flip(0).cpu().numpy()
    if lam.size == 0 or not np.isfinite(lam).all() or lam[0] <= 0:
        raise GNAdvisorError(
            "the Gauss-Newton matrix is zero: every Jacobian vanishes on these inputs (e.g. all ReLUs dead, "
            "zero weights everywhere, or outputs that do not depend on the selected parameters)"
        )
    lam = np.where(lam > rtol * lam[0], lam, 0.0)
    return lam, proj


def _forecast_from_eigen(lam: np.ndarray, proj: np.ndarray, *, n_samples: int, n_outputs: int, n_params: int,
                        steps: int, lr: float | None, lr_scale: float | None, rtol: float,
                        notes: tuple[str, ...] = (), t0: float | None = None) -> Forecast:
    """Build a :class:`Forecast` from :func:`_eigen_projections` output (no Gram needed).

    Raises
    ------
    GNAdvisorError
        For a bad ``lr`` or ``lr_scale``, or both given.
    """
    t0 = time.perf_counter() if t0 is None else t0
    lam_max = float(lam[0])
    lr_used, scale = _resolve_lr(lr, lr_scale, lam_max)
    nonzero = lam[lam > 0]
    losses = forecast_curve(lam, proj, n_samples, steps=steps, lr=lr_used)
    floor = float(proj[lam == 0].sum() / (2.0 * n_samples))
    return Forecast(
        losses=losses, lr=lr_used, lr_scale=scale, steps=steps, loss_floor=floor,
        stable=bool(lr_used * lam_max < 2.0), lambda_max=lam_max, lambda_min=float(nonzero[-1]),
        condition_number=lam_max / float(nonzero[-1]), rank=int(nonzero.size), rtol=rtol,
        eigenvalues=lam, projections=proj, n_samples=n_samples, n_outputs=n_outputs, n_params=n_params,
        time_s=time.perf_counter() - t0, notes=notes, **_summary(losses),
    )


# ---------------------------------------------------------------------------- linearised optimisers
#: Optimisers :func:`linearised_forecast` simulates.
LINEARISED_OPTIMIZERS = ("gd", "adam")


@dataclass(frozen=True, eq=False)
class LinearisedForecast:
    """An optimiser's loss curve on the linearised model (:func:`linearised_forecast`).

    Attributes
    ----------
    losses : numpy.ndarray
        ``L_t = ||r_t||^2 / (2 n)`` of the linearised model for ``t = 0, ..., steps``;
        ``losses[0]`` is the exact loss at initialisation. ``inf`` from the first non-finite value.
    ratio : float
        ``L_T / L_0``.
    log_decrease : float
        ``log(L_0 / L_T)`` (natural log), the forecast training speed: higher is faster.
    optimizer : str
        ``"gd"`` or ``"adam"``.
    lr : float
        Step size.
    betas : tuple of float
        Adam's ``(beta_1, beta_2)`` (unused by GD).
    eps : float
        Adam's ``eps`` (unused by GD).
    steps : int
        ``T``.
    initial_loss : float
        ``L_0``.
    step_norm : float
        ``||theta_T - theta_0||_2``: how far the linearised run moved the (kept) parameters; the
        forecast is only as good as the linearisation over that distance.
    n_samples, n_outputs, n_params : int
        ``n``, ``k`` and the number of differentiated (kept) parameters.
    time_s : float
        Seconds spent.
    notes : tuple of str
        How the model was prepared.
    """

    losses: np.ndarray
    ratio: float
    log_decrease: float
    optimizer: str
    lr: float
    betas: tuple[float, float]
    eps: float
    steps: int
    initial_loss: float
    step_norm: float
    n_samples: int = 0
    n_outputs: int = 0
    n_params: int = 0
    time_s: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def final_loss(self) -> float:
        """``L_T``, the forecast loss after ``steps`` steps."""
        return float(self.losses[-1])

    def to_dict(self, *, with_curve: bool = True) -> dict[str, Any]:
        """JSON-ready dict (inf as float; use ``gnadvisor.cli.options.echo_json`` to print)."""
        d: dict[str, Any] = {
            "optimizer": self.optimizer, "steps": self.steps, "lr": self.lr, "betas": list(self.betas),
            "eps": self.eps, "initial_loss": self.initial_loss, "final_loss": self.final_loss, "ratio": self.ratio,
            "log_decrease": self.log_decrease, "step_norm": self.step_norm, "n_samples": self.n_samples,
            "n_outputs": self.n_outputs, "n_params": self.n_params, "time_s": round(self.time_s, 4),
            "notes": list(self.notes),
        }
        if with_curve:
            d["losses"] = [float(v) for v in self.losses]
        return d


def linearised_forecast(
    model: nn.Module,
    X: Any,
    Y: Any,
    *,
    steps: int,
    optimizer: str = "adam",
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    device: str | torch.device = "auto",
    coordinates: str = "kept",
    batchnorm: str = "train",
    params: ParamSelector = None,
    masks: MaskOption = "auto",
) -> LinearisedForecast:
    """Forecast the loss curve of ``T`` full-batch steps of an optimiser on the linearised model.

    The optimiser's exact recurrence is run on ``f_lin(theta) = f(theta_0) + J (theta - theta_0)``
    with the loss ``L = ||f_lin(X) - Y||^2 / (2 n)`` (``J`` and ``r_0 = f(X) - Y`` at the current
    weights, as :func:`gn_forecast`)::

        g_t       = (1/n) J^T r_t
        GD:       theta_{t+1} = theta_t - lr g_t
        Adam:     m_t = b1 m_{t-1} + (1 - b1) g_t,   v_t = b2 v_{t-1} + (1 - b2) g_t^2
                  theta_{t+1} = theta_t - lr (m_t / (1 - b1^t)) / (sqrt(v_t / (1 - b2^t)) + eps)
        r_{t+1}   = r_0 + J (theta_{t+1} - theta_0),   L_t = ||r_t||^2 / (2 n)

    (``torch.optim.Adam``'s update, bias-corrected, no weight decay). For GD this is the
    recurrence whose closed form :func:`gn_forecast` evaluates; for Adam it uses the same two
    quantities, ``J`` and ``r_0``, and nothing measured after initialisation. ``J`` is never
    stored: each step is one vector-Jacobian and one Jacobian-vector product at ``theta_0``
    (memory: the parameters and one forward pass), about the cost of one training step.

    Exact for models linear in their parameters (one ``nn.Linear``, random features). For a
    network it is a prediction that holds while the training trajectory stays where the
    linearisation does; Adam moves every coordinate by up to about ``lr`` per step whatever its
    gradient's size, so ``step_norm`` (``||theta_T - theta_0||``) says how far that is.

    Parameters
    ----------
    model : torch.nn.Module
        Any model; evaluated on a private float64 copy, never modified. Pruned models train
        their kept coordinates, as :func:`gnadvisor.train`.
    X : torch.Tensor or numpy.ndarray
        Inputs ``(n, ...)``.
    Y : torch.Tensor or numpy.ndarray
        Targets ``(n, k)``, the model's output shape.
    steps : int
        Number of full-batch steps ``T`` (>= 0).
    optimizer : {"adam", "gd"}, default "adam"
        Which recurrence.
    lr : float, default 1e-3
        Step size (``torch.optim.Adam``'s default).
    betas : (float, float), default (0.9, 0.999)
        Adam's ``(beta_1, beta_2)``, each in ``[0, 1)``.
    eps : float, default 1e-8
        Adam's ``eps`` (>= 0).
    device, coordinates, batchnorm, params, masks
        As :func:`gnadvisor.gn_spectrum`.

    Returns
    -------
    LinearisedForecast
        ``losses`` (length ``T + 1``), ``ratio``, ``log_decrease``, ``step_norm`` and the settings.

    Raises
    ------
    GNAdvisorError
        For a bad ``steps``, ``optimizer``, ``lr``, ``betas`` or ``eps``, targets that do not
        match the model's output or are not finite, and everything :func:`gnadvisor.gn_spectrum`
        raises about the model and inputs.

    Examples
    --------
    >>> import torch
    >>> from gnadvisor.forecast import linearised_forecast
    >>> from gnadvisor.training import train
    >>> _ = torch.manual_seed(0)
    >>> X, Y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 2, dtype=torch.float64)
    >>> net = torch.nn.Linear(3, 2).double()  # linear in its parameters: the forecast is exact
    >>> fc = linearised_forecast(net, X, Y, steps=30, optimizer="adam", lr=0.05)
    >>> real = train(net, X, Y, steps=30, optimizer="adam", lr=0.05).losses
    >>> bool(abs(fc.losses - real).max() < 1e-10), fc.losses.shape
    (True, (31,))
    """
    steps = check_positive_int("steps", steps, allow_zero=True)
    if optimizer not in LINEARISED_OPTIMIZERS:
        raise GNAdvisorError(f"optimizer must be one of {', '.join(map(repr, LINEARISED_OPTIMIZERS))}, got {optimizer!r}")
    lr = check_positive_float("lr", lr)
    try:
        b1, b2 = (float(b) for b in betas)
    except (TypeError, ValueError):
        raise GNAdvisorError(f"betas must be two numbers in [0, 1), got {betas!r}") from None
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise GNAdvisorError(f"betas must be two numbers in [0, 1), got {betas!r}")
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps) and eps >= 0):
        raise GNAdvisorError(f"eps must be a finite number >= 0, got {eps!r}")
    eps = float(eps)
    t0 = time.perf_counter()
    problem = build_problem(model, X, device=device, coordinates=coordinates, batchnorm=batchnorm, params=params,
                            masks=masks)
    n, k = problem.n_samples, problem.n_outputs
    Yt = _targets(Y, n, k, problem.device)
    theta0 = {name: problem.values[name] for name in problem.names}
    out0, vjp_fn = torch.func.vjp(problem.f, theta0)
    r0 = (out0 - Yt.reshape(-1)).detach()
    jvp = _jvp_at(problem, theta0, vjp_fn, out0)
    keep: dict[str, torch.Tensor | None] = {}
    for name in problem.names:
        idx = problem.cols[name]
        if idx is None:
            keep[name] = None
        else:
            mk = torch.zeros(theta0[name].numel(), dtype=torch.float64, device=problem.device)
            mk[idx] = 1.0
            keep[name] = mk.reshape(theta0[name].shape)

    delta = {name: torch.zeros_like(t) for name, t in theta0.items()}
    m1 = {name: torch.zeros_like(t) for name, t in theta0.items()}
    m2 = {name: torch.zeros_like(t) for name, t in theta0.items()}
    losses = np.full(steps + 1, math.inf)
    r = r0
    with torch.no_grad():
        losses[0] = float(r @ r) / (2.0 * n)
        for t in range(1, steps + 1):
            (g,) = vjp_fn(r / n)
            for name in problem.names:
                gn = g[name].detach()
                if keep[name] is not None:
                    gn = gn * keep[name]
                if optimizer == "gd":
                    delta[name].add_(gn, alpha=-lr)
                    continue
                m1[name].lerp_(gn, 1.0 - b1)
                m2[name].mul_(b2).addcmul_(gn, gn, value=1.0 - b2)
                denom = (m2[name].sqrt() / math.sqrt(1.0 - b2 ** t)).add_(eps)
                delta[name].addcdiv_(m1[name], denom, value=-lr / (1.0 - b1 ** t))
            r = r0 + jvp(delta)
            value = float(r @ r) / (2.0 * n)
            if not math.isfinite(value):
                break
            losses[t] = value
    step_norm = math.sqrt(sum(float((d * d).sum()) for d in delta.values()))
    return LinearisedForecast(
        losses=losses, optimizer=optimizer, lr=lr, betas=(b1, b2), eps=eps, steps=steps, step_norm=step_norm,
        n_samples=n, n_outputs=k, n_params=problem.n_params, time_s=time.perf_counter() - t0,
        notes=tuple(problem.notes), **_summary(losses),
    )


def _jvp_at(problem: Any, theta0: dict[str, torch.Tensor], vjp_fn: Any, out0: torch.Tensor):
    """``v -> J v`` at ``theta0``: the transpose of the (linear) ``vjp_fn``, else ``torch.func.jvp``."""
    try:
        _, transpose = torch.func.vjp(vjp_fn, torch.zeros_like(out0))

        def jvp(v: dict[str, torch.Tensor]) -> torch.Tensor:
            return transpose((v,))[0].detach()

        probe = {name: torch.ones_like(t) for name, t in theta0.items()}
        jvp(probe)
        return jvp
    except Exception:  # noqa: BLE001 - a model whose backward is not differentiable

        def jvp_direct(v: dict[str, torch.Tensor]) -> torch.Tensor:
            return torch.func.jvp(problem.f, (theta0,), (v,))[1].detach()

        return jvp_direct
