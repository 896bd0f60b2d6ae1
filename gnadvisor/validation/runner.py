"""``validate_architectures``: train a set of architectures and measure how well each score predicts it.

For every architecture and seed (the seed sets the initial weights, randomised pruning and the
SGD batch order) the worker

1. builds the model (:func:`gnadvisor.search.build_pruned_model`);
2. forms the NTK Gram ``K`` once and from its eigendecomposition takes kappa (default rank cut
   and coarser ones), the GD loss forecast (:func:`gnadvisor.forecast.gn_forecast`) and TE-NAS's
   summed-logit kappa; runs Adam's recurrence on the model linearised at initialisation
   (:func:`gnadvisor.forecast.linearised_forecast`, the Adam forecast); the analytic bound comes
   from :func:`gnadvisor.bounds.gn_bounds`, the other zero-cost scores from
   :mod:`gnadvisor.validation.zero_cost`;
3. trains a copy for ``steps`` steps three times: (a) full-batch GD with
   ``lr = gd_lr_scale / lambda_max`` (the forecast's own step size), (b) full-batch Adam,
   (c) minibatch SGD with one fixed ``lr`` for every architecture.

Measured targets (one definition for every score and optimiser, :data:`TARGETS`)::

    speed = log(L_0 / L_T)        the loss decrease (primary target); natural log
    final = -log(L_T)             how low the loss gets (secondary target)

with ``L_t`` the full-data loss of :func:`gnadvisor.train`; both are ``-inf`` when training
diverged. Each score is *oriented* so that higher means "predicted to train faster"
(:data:`SCORES`: kappa, TE-NAS kappa and the bound are negated), and the tables report the
correlation of the oriented score with the target: a negative value means the score points the
wrong way.

``forecast`` is *optimiser-matched* (:data:`MATCHED_FORECAST`): in each optimiser's rows it is
the linearised forecast of that optimiser with that run's own settings, i.e. ``forecast_gd``
(GD at ``c / lambda_max``) under GD, ``forecast_adam`` (Adam at ``adam_lr``, torch's default
betas and eps) under Adam and ``forecast_sgd_lr`` (GD at the SGD step size: the expected SGD
step) under SGD; the gap columns compare every score with that matched forecast. In the
records (one per architecture and seed, not per optimiser) ``scores["forecast"]`` holds the GD
forecast, as ``forecast_gd``.

``initial_loss`` (``log10 L_0``) is a control, not an advisor: ``speed`` grows with ``L_0``
whenever the extra initial loss is easy to remove, so any score that tracks the size of
the initial outputs gets part of the speed correlation for free.

Statistics (:mod:`gnadvisor.validation.stats`), over architectures:

* Spearman / Kendall tau-b / partial Spearman given ``log10(kept parameter count)``, each
  computed per seed (score at init of seed s against the run from that init) and averaged over
  seeds; percentile bootstrap intervals resample architectures (same draws for every seed).
* Within each activation family: Spearman, as above, no interval.
* Seed-to-seed stability: Spearman between a score's values under two seeds, averaged over
  seed pairs; the same for the measured speeds (how reproducible the target itself is).
* Forecast fit: per optimiser (GD and Adam, each against its matched forecast) and group
  (activation, depth, skips, batch norm, pruning, bias, init) the median error
  ``predicted - measured`` of ``log(L_0 / L_T)`` and the Spearman within the group.

Workers are separate processes (``spawn``), one torch thread each; with ``workers=1`` the work
runs in the calling process, also on one thread. Results do not depend on ``workers``.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any, Sequence

import numpy as np
import torch

from gnadvisor._checks import GNAdvisorError, check_positive_float, check_positive_int
from gnadvisor.validation import stats as _stats
from gnadvisor.validation.zero_cost import ZERO_COST_SCORES

__all__ = ["MATCHED_FORECAST", "OPTIMIZERS", "REFERENCE", "SCORES", "TARGETS", "ValidationConfig", "ValidationResult", "score_names", "validate_architectures"]

#: Optimisers trained, in table order.
OPTIMIZERS: tuple[str, ...] = ("gd", "adam", "sgd")

#: Measured targets: name -> definition.
TARGETS: dict[str, str] = {
    "speed": "log(L0/LT), natural log: the loss decrease in T steps (primary)",
    "final": "-log(LT), natural log: how low the loss gets in T steps (secondary)",
}

#: The forecast each target's "gap" columns compare every score with: the forecast of the loss
#: decrease for ``speed``, the forecast of the final loss for ``final``.
REFERENCE: dict[str, str] = {"speed": "forecast", "final": "forecast_loss"}

#: Scores that do not depend on the configuration: name -> (orientation, description).
#: Orientation +1: higher predicts faster training; -1: lower does. ``kappa@<rtol>`` entries
#: for the coarser rank cuts are added by :func:`score_names`.
SCORES: dict[str, tuple[int, str]] = {
    "forecast": (+1, "optimiser-matched linearised forecast log(L0/LT): forecast_gd under GD, forecast_adam "
                     "under Adam, forecast_sgd_lr under SGD (records: the GD value)"),
    "forecast_gd": (+1, "forecast log(L0/LT) of GD at lr = c/lambda_max (the GD run's own step), closed form"),
    "forecast_adam": (+1, "forecast log(L0/LT) of full-batch Adam at the Adam run's lr, betas and eps, run on the "
                          "model linearised at init"),
    "forecast_sgd_lr": (+1, "forecast log(L0/LT) of GD at the fixed SGD step size"),
    "forecast_loss": (+1, "-log10 of the forecast LT of GD at lr = c/lambda_max (predicts the final loss)"),
    "kappa": (-1, "log10 kappa of the GN matrix, default rank cut N*eps64"),
    "bound": (-1, "log10 of the first valid analytic bound (Lemma 1, 2 or 4); missing when none applies"),
    "params": (+1, "log10 number of trainable (kept) parameters"),
    "initial_loss": (+1, "log10 L0 at initialisation (control: more initial loss, more to remove)"),
    "grad_norm": (+1, "log10 ||grad L||_2 at initialisation"),
    "snip": (+1, "log10 SNIP: sum |dL/dw * w| over Linear/Conv weights"),
    "synflow": ZERO_COST_SCORES["synflow"],
    "naswot": ZERO_COST_SCORES["naswot"],
    "tenas_kappa": ZERO_COST_SCORES["tenas_kappa"],
}

#: Which recorded score ``forecast`` stands for in each optimiser's correlation rows.
MATCHED_FORECAST: dict[str, str] = {"gd": "forecast_gd", "adam": "forecast_adam", "sgd": "forecast_sgd_lr"}

_BOUND_ORDER = ("lemma1", "lemma2", "lemma4", "lemma4_loose", "layerwise", "lemma2_max")
_DATA: dict[str, torch.Tensor] = {}


def _kappa_name(rtol: float) -> str:
    return f"kappa@{rtol:.0e}"


def matched_score(score: str, optimizer: str) -> str:
    """The recorded score behind ``score`` in ``optimizer``'s rows (``forecast`` is optimiser-matched)."""
    return MATCHED_FORECAST[optimizer] if score == "forecast" else score


def score_names(coarse_rtols: Sequence[float] = (1e-8, 1e-4)) -> dict[str, tuple[int, str]]:
    """All scores of a run with these coarser rank cuts, in table order: name -> (orientation, text)."""
    out: dict[str, tuple[int, str]] = {}
    for name, v in SCORES.items():
        out[name] = v
        if name == "kappa":
            for rt in coarse_rtols:
                out[_kappa_name(rt)] = (-1, f"log10 kappa with rank cut {rt:.0e} * lambda_max")
    return out


@dataclass(frozen=True)
class ValidationConfig:
    """Settings of a validation run (see :func:`validate_architectures`)."""

    steps: int = 200
    seeds: tuple[int, ...] = (0, 1)
    gd_lr_scale: float = 1.0
    adam_lr: float = 1e-3
    sgd_lr: float = 3e-3
    sgd_batch_size: int = 32
    coarse_rtols: tuple[float, ...] = (1e-8, 1e-4)
    n_boot: int = 1000
    boot_seed: int = 0
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        d["coarse_rtols"] = list(self.coarse_rtols)
        return d


@dataclass(frozen=True, eq=False)
class ValidationResult:
    """Outcome of :func:`validate_architectures`.

    Attributes
    ----------
    specs : tuple of ArchSpec
        The architectures, in input order (``arch`` index in the records).
    records : list of dict
        One per (architecture, seed): ``arch``, ``seed``, ``name``, group fields, ``scores``
        (raw values, not oriented), ``measured`` (per optimiser: ``lr``, ``initial_loss``,
        ``final_loss``, ``speed``, ``final``, ``diverged``, ``losses``, ``loss_steps``),
        ``forecast_losses`` (GD forecast curve), ``forecast_adam_losses`` (Adam forecast curve),
        ``forecast_adam_step_norm``, ``lambda_max``, ``bound_name``, ``errors`` and ``time_s``.
        ``scores["forecast"]`` is the GD forecast; the correlation rows of ``forecast`` are
        optimiser-matched (:data:`MATCHED_FORECAST`).
    correlations : list of dict
        Per (score, target, optimiser): ``n`` and ``spearman``, ``kendall``,
        ``partial_spearman`` with ``_low``/``_high`` bootstrap bounds, and the paired gaps
        ``spearman_gap`` and ``partial_spearman_gap`` (with bounds): the reference forecast's
        correlation minus this score's, on the same resamples (:data:`REFERENCE`; > 0 means the
        forecast predicts better).
    by_activation : list of dict
        Per (score, target, optimiser, activation): ``n`` and ``spearman``.
    stability : list of dict
        Per score and per measured target (``"measured <target>: <opt>"``): seed-to-seed
        Spearman.
    forecast_fit : list of dict
        Per optimiser (``gd``, ``adam``: its matched forecast) and group: ``optimizer``, ``n_runs``,
        ``median_error``, ``median_abs_error`` (predicted minus measured ``log(L0/LT)``) and
        ``spearman`` within the group.
    scores : dict
        name -> (orientation, description).
    config : ValidationConfig
    data : dict
        Name, ``n_samples``, shapes and notes of the data.
    workers : int
    runtime_s : float
        Wall-clock time of the whole run.
    """

    specs: tuple[Any, ...]
    records: list[dict[str, Any]]
    correlations: list[dict[str, Any]]
    by_activation: list[dict[str, Any]]
    stability: list[dict[str, Any]]
    forecast_fit: list[dict[str, Any]]
    scores: dict[str, tuple[int, str]]
    config: ValidationConfig
    data: dict[str, Any]
    workers: int
    runtime_s: float
    notes: tuple[str, ...] = field(default=())

    def correlation(self, score: str, optimizer: str, target: str = "speed") -> dict[str, Any]:
        """The correlation row of one score, optimiser and target.

        Raises
        ------
        GNAdvisorError
            For an unknown score, optimiser or target.
        """
        for row in self.correlations:
            if row["score"] == score and row["optimizer"] == optimizer and row["target"] == target:
                return row
        raise GNAdvisorError(f"no correlation for score={score!r}, optimizer={optimizer!r}, target={target!r}; "
                             f"scores: {', '.join(self.scores)}; optimizers: {', '.join(OPTIMIZERS)}; "
                             f"targets: {', '.join(TARGETS)}")

    def to_dict(self, *, with_curves: bool = False) -> dict[str, Any]:
        """JSON-ready dict; loss curves only with ``with_curves``."""
        recs = []
        for r in self.records:
            r = dict(r)
            if not with_curves:
                r.pop("forecast_losses", None)
                r.pop("forecast_adam_losses", None)
                r["measured"] = {o: {k: v for k, v in m.items() if k not in ("losses", "loss_steps")}
                                 for o, m in r["measured"].items()}
            recs.append(r)
        return {
            "config": self.config.to_dict(), "data": self.data, "workers": self.workers,
            "runtime_s": round(self.runtime_s, 2), "n_architectures": len(self.specs),
            "scores": {k: {"orientation": o, "description": d} for k, (o, d) in self.scores.items()},
            "targets": dict(TARGETS),
            "correlations": self.correlations, "by_activation": self.by_activation,
            "stability": self.stability, "forecast_fit": self.forecast_fit, "records": recs,
            "notes": list(self.notes),
        }

    def optimizer_label(self, opt: str) -> str:
        """``"GD, lr = 1/lambda_max"`` and so on."""
        cfg = self.config
        return {"gd": f"GD, lr = {cfg.gd_lr_scale:g}/lambda_max", "adam": f"Adam, lr = {cfg.adam_lr:g}",
                "sgd": f"SGD, lr = {cfg.sgd_lr:g}, batch {cfg.sgd_batch_size}"}[opt]

    def to_markdown(self, *, targets: Sequence[str] = tuple(TARGETS)) -> str:
        """The tables of the README results section, as markdown."""
        lines: list[str] = [
            "`forecast` is optimiser-matched: " + ", ".join(f"{o}: `{MATCHED_FORECAST[o]}`" for o in OPTIMIZERS)
            + "; the gap columns compare each score with the matched forecast.", ""]
        cfg = self.config
        lvl = f"{100 * cfg.level:.0f}%"
        for target in targets:
            for opt in OPTIMIZERS:
                lines += [f"**{self.optimizer_label(opt)}**, {cfg.steps} steps, target {target} = "
                          f"{TARGETS[target].split(':')[0]}: correlation of each oriented score, mean over "
                          f"{len(cfg.seeds)} seeds [{lvl} bootstrap CI over architectures]", "",
                          "| score | better | Spearman | partial Spearman given log(params) | Kendall "
                          f"| {REFERENCE[target]} minus score: Spearman | ... partial Spearman | n |",
                          "|---|---|---|---|---|---|---|---|"]
                for row in self.correlations:
                    if row["optimizer"] != opt or row["target"] != target:
                        continue
                    better = "higher" if self.scores[row["score"]][0] > 0 else "lower"
                    lines.append(f"| {row['score']} | {better} | {_ci(row, 'spearman')} | "
                                 f"{_ci(row, 'partial_spearman')} | {_ci(row, 'kendall')} | "
                                 f"{_ci(row, 'spearman_gap')} | {_ci(row, 'partial_spearman_gap')} | {row['n']} |")
                lines.append("")
        acts = sorted({r["activation"] for r in self.by_activation})
        for opt in OPTIMIZERS:
            lines += [f"**Within each activation family** ({self.optimizer_label(opt)}, target speed): Spearman, "
                      "mean over seeds (n architectures)", "",
                      "| score | " + " | ".join(acts) + " |", "|---|" + "---|" * len(acts)]
            for score in self.scores:
                cells = []
                for a in acts:
                    row = next((r for r in self.by_activation if r["score"] == score and r["optimizer"] == opt
                                and r["activation"] == a and r["target"] == "speed"), None)
                    cells.append("-" if row is None else f"{_f(row['spearman'])} ({row['n']})")
                lines.append(f"| {score} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += ["**Seed-to-seed stability**: Spearman between values under different seeds (mean over seed pairs)",
                  "", "| quantity | stability | n |", "|---|---|---|"]
        lines += [f"| {r['quantity']} | {_f(r['spearman'])} | {r['n']} |" for r in self.stability]
        lines += ["", "**Forecast fit** (matched forecast of each optimiser; error = predicted - measured "
                  "log(L0/LT) = log(LT measured / LT predicted); Spearman of forecast and measured speed within "
                  "the group)", "",
                  "| optimiser | group | runs | median error | median abs error | Spearman |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['optimizer']} | {r['group']} | {r['n_runs']} | {_f(r['median_error'])} "
                  f"| {_f(r['median_abs_error'])} | {_f(r['spearman'])} |" for r in self.forecast_fit]
        return "\n".join(lines) + "\n"


def _f(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:+.2f}" if isinstance(x, float) else str(x)


def _ci(row: dict[str, Any], key: str) -> str:
    v, lo, hi = row[key], row[f"{key}_low"], row[f"{key}_high"]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return f"{v:+.2f}"
    return f"{v:+.2f} [{lo:+.2f}, {hi:+.2f}]"


# ---------------------------------------------------------------------------- public entry
def validate_architectures(
    specs: Sequence[Any],
    data: Any,
    *,
    steps: int = 200,
    seeds: Sequence[int] = (0, 1),
    gd_lr_scale: float = 1.0,
    adam_lr: float = 1e-3,
    sgd_lr: float = 3e-3,
    sgd_batch_size: int = 32,
    coarse_rtols: Sequence[float] = (1e-8, 1e-4),
    n_boot: int = 1000,
    boot_seed: int = 0,
    level: float = 0.95,
    workers: int = 1,
    progress: bool = False,
) -> ValidationResult:
    """Train ``specs`` on ``data`` and correlate every score with the measured training speed.

    Parameters
    ----------
    specs : sequence of ArchSpec
        The architectures (at least 4 for correlations); their ``input_dim`` and ``output_dim``
        must match the data.
    data : gnadvisor.Dataset
        Inputs and targets (``data.Y`` must not be None: e.g. one-hot digits labels, or the
        targets of a data file).
    steps : int, default 200
        Training steps ``T`` for every optimiser, and the forecast horizon.
    seeds : sequence of int, default (0, 1)
        Initialisation seeds (at least 2 for the stability figures).
    gd_lr_scale : float, default 1.0
        ``c`` in the GD step ``lr = c / lambda_max`` (per architecture and seed).
    adam_lr : float, default 1e-3
        Adam's step size (full batch).
    sgd_lr : float, default 3e-3
        SGD's fixed step size (the same for every architecture).
    sgd_batch_size : int, default 32
        SGD minibatch size.
    coarse_rtols : sequence of float, default (1e-8, 1e-4)
        Coarser relative rank cuts at which kappa is also reported.
    n_boot : int, default 1000
        Bootstrap resamples for the intervals (0: none).
    boot_seed : int, default 0
        Seed of the bootstrap.
    level : float, default 0.95
        Coverage of the intervals.
    workers : int, default 1
        Worker processes (one torch thread each); 1 runs in this process.
    progress : bool, default False
        Show a progress bar on stderr.

    Returns
    -------
    ValidationResult

    Raises
    ------
    GNAdvisorError
        For an empty spec list, specs that do not fit the data, data without targets, or bad
        settings.

    Notes
    -----
    With ``workers > 1`` the workers are started with ``spawn``, which re-imports the calling
    script: as for any ``multiprocessing`` code, call this under ``if __name__ == "__main__":``
    in a script (the ``gnadvisor`` command does).

    Examples
    --------
    >>> from gnadvisor import load_data
    >>> from gnadvisor.search import ArchSpec
    >>> ds = load_data("digits", n_samples=16)
    >>> specs = [ArchSpec(depth=d, width=8, activation="tanh", input_dim=64, output_dim=10) for d in (1, 2, 3, 4)]
    >>> res = validate_architectures(specs, ds, steps=5, seeds=(0,), n_boot=0)
    >>> len(res.records), res.correlation("forecast", "gd")["n"]
    (4, 4)
    """
    from gnadvisor.data import Dataset
    from gnadvisor.search import ArchSpec

    specs = list(specs)
    if not specs:
        raise GNAdvisorError("specs must list at least one architecture, got none")
    for i, s in enumerate(specs):
        if not isinstance(s, ArchSpec):
            raise GNAdvisorError(f"specs[{i}] must be an ArchSpec, got {type(s).__name__}")
    if not isinstance(data, Dataset):
        raise GNAdvisorError(f"data must be a gnadvisor Dataset (gnadvisor.load_data), got {type(data).__name__}")
    if data.Y is None:
        raise GNAdvisorError(
            "data must have targets to train on, got none; use labelled data (digits, or a file with a Y/label "
            "column) or load_data(..., targets='onehot')"
        )
    for i, s in enumerate(specs):
        if s.input_dim != data.n_features or s.output_dim != data.n_outputs:
            raise GNAdvisorError(
                f"specs[{i}] ({s.describe()}) has input_dim={s.input_dim}, output_dim={s.output_dim}; the data have "
                f"{data.n_features} features and {data.n_outputs} outputs"
            )
        if s.family == "cnn" and tuple(data.input_shape) != tuple(s.input_shape):
            raise GNAdvisorError(f"specs[{i}] is a cnn for input_shape={s.input_shape}, the data have {data.input_shape}")
    seeds = tuple(check_positive_int("seed", s, allow_zero=True) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise GNAdvisorError(f"seeds must be a non-empty list of distinct integers, got {list(seeds)}")
    rtols = tuple(float(r) for r in coarse_rtols)
    if any(not (0 < r < 1) for r in rtols):
        raise GNAdvisorError(f"coarse_rtols must lie in (0, 1), got {list(coarse_rtols)}")
    if not (isinstance(level, float) and 0 < level < 1):
        raise GNAdvisorError(f"level must be a number in (0, 1), got {level!r}")
    cfg = ValidationConfig(
        steps=check_positive_int("steps", steps), seeds=seeds,
        gd_lr_scale=check_positive_float("gd_lr_scale", gd_lr_scale),
        adam_lr=check_positive_float("adam_lr", adam_lr), sgd_lr=check_positive_float("sgd_lr", sgd_lr),
        sgd_batch_size=check_positive_int("sgd_batch_size", sgd_batch_size), coarse_rtols=rtols,
        n_boot=check_positive_int("n_boot", n_boot, allow_zero=True),
        boot_seed=check_positive_int("boot_seed", boot_seed, allow_zero=True), level=level,
    )
    workers = min(check_positive_int("workers", workers), len(specs) * len(seeds))

    t0 = time.perf_counter()
    jobs = [(i, s.to_dict(), seed) for i, s in enumerate(specs) for seed in seeds]
    jobs.sort(key=lambda j: -_cost(specs[j[0]]))  # longest first: better load balance
    records = _run_jobs(jobs, data, cfg, workers, progress)
    records.sort(key=lambda r: (r["arch"], r["seed"]))
    names = score_names(rtols)
    notes = []
    for r in records:
        for e in r["errors"]:
            notes.append(f"{r['name']} (seed {r['seed']}): {e}")
    summary = _summarise(records, len(specs), names, cfg)
    return ValidationResult(
        specs=tuple(specs), records=records, scores=names, config=cfg, workers=workers,
        data={"name": data.name, "n_samples": data.n_samples, "input_shape": list(data.input_shape),
              "n_outputs": data.n_outputs, "notes": list(data.notes)},
        runtime_s=time.perf_counter() - t0, notes=tuple(notes), **summary,
    )


def _cost(spec: Any) -> float:
    c = float(spec.n_params()) + 2000.0 * spec.depth
    if spec.batchnorm:
        c *= 20
    if spec.needs_pruning:
        c *= 3
    return c


# ---------------------------------------------------------------------------- workers
def _init_worker(X: np.ndarray, Y: np.ndarray) -> None:
    torch.set_num_threads(1)
    _DATA["X"] = torch.from_numpy(X)
    _DATA["Y"] = torch.from_numpy(Y)


def _run_jobs(jobs, data, cfg: ValidationConfig, workers: int, progress: bool) -> list[dict[str, Any]]:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="validate", unit="run", leave=False)
    X, Y = data.X.numpy(), data.Y.numpy()
    out: list[dict[str, Any]] = []
    try:
        if workers == 1:
            saved_threads, saved = torch.get_num_threads(), dict(_DATA)
            try:
                _init_worker(X, Y)
                for job in jobs:
                    out.append(_evaluate(*job, cfg))
                    if bar is not None:
                        bar.update(1)
            finally:
                torch.set_num_threads(saved_threads)
                _DATA.clear()
                _DATA.update(saved)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(X, Y)) as pool:
                futures = [pool.submit(_evaluate, *job, cfg) for job in jobs]
                for fut in as_completed(futures):
                    out.append(fut.result())
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out


def _speed(L0: float, LT: float) -> float:
    if not math.isfinite(LT) or not math.isfinite(L0):
        return -math.inf
    if LT <= 0:
        return math.inf
    return math.log(L0 / LT)


def _log10(x: float) -> float:
    if x == 0:
        return -math.inf
    return math.log10(x) if math.isfinite(x) else math.inf


def _kept_params(model: torch.nn.Module) -> int:
    total = 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith("_orig"):
            owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            mask = getattr(owner, name.rsplit(".", 1)[-1][: -len("_orig")] + "_mask", None)
            if mask is not None:
                total += int(mask.count_nonzero())
                continue
        total += p.numel()
    return total


def _evaluate(arch: int, spec_dict: dict[str, Any], seed: int, cfg: ValidationConfig) -> dict[str, Any]:
    """One (architecture, seed): scores at initialisation, then the three training runs."""
    from gnadvisor.bounds import gn_bounds
    from gnadvisor.forecast import _eigen_projections, _forecast_from_eigen, _gram_and_residual, linearised_forecast
    from gnadvisor.search import ArchSpec, build_pruned_model
    from gnadvisor.spectrum._base import default_rtol
    from gnadvisor.training import train
    from gnadvisor.validation import zero_cost

    t0 = time.perf_counter()
    spec = ArchSpec.from_dict(spec_dict)
    X, Y = _DATA["X"], _DATA["Y"]
    if spec.family != "cnn":
        X = X.reshape(X.shape[0], -1)
    n = X.shape[0]
    model = build_pruned_model(spec, seed, X, Y)
    scores: dict[str, float] = {name: math.nan for name in score_names(cfg.coarse_rtols)}
    errors: list[str] = []
    rec: dict[str, Any] = {
        "arch": arch, "seed": seed, "name": spec.describe(), "spec": spec.to_dict(),
        "family": spec.family, "activation": spec.activation, "depth": spec.depth, "width": spec.width_resolved,
        "batchnorm": spec.batchnorm, "skips": spec.has_skips, "bias": spec.bias, "init": spec.init,
        "pruning": f"{spec.prune_scheme} {spec.sparsity:g}" if spec.needs_pruning else None,
    }
    scores["params"] = math.log10(_kept_params(model))

    gd_lr = None
    try:
        K, r0, info = _gram_and_residual(model, X, Y, device="cpu")
        scores["tenas_kappa"] = zero_cost.tenas_kappa_from_gram(K, n)
        rtol = default_rtol(info["n_params"], K.shape[0])
        lam, proj = _eigen_projections(K, r0, rtol)
        del K
        fc = _forecast_from_eigen(lam, proj, n_samples=n, n_outputs=info["n_outputs"], n_params=info["n_params"],
                                  steps=cfg.steps, lr=None, lr_scale=cfg.gd_lr_scale, rtol=rtol)
        scores["forecast"] = scores["forecast_gd"] = fc.log_decrease
        scores["forecast_sgd_lr"] = fc.with_schedule(lr=cfg.sgd_lr).log_decrease
        scores["forecast_loss"] = -_log10(fc.final_loss)
        scores["kappa"] = math.log10(fc.condition_number)
        for rt in cfg.coarse_rtols:
            ev = lam[lam > rt * lam[0]]
            scores[_kappa_name(rt)] = math.log10(ev[0] / ev[-1])
        rec.update(lambda_max=fc.lambda_max, rank=fc.rank, forecast_losses=[float(v) for v in fc.losses],
                   forecast_lr=fc.lr)
        gd_lr = fc.lr
    except GNAdvisorError as exc:
        errors.append(f"spectrum: {exc}")

    try:
        fa = linearised_forecast(model, X, Y, steps=cfg.steps, optimizer="adam", lr=cfg.adam_lr, device="cpu")
        scores["forecast_adam"] = fa.log_decrease
        rec.update(forecast_adam_losses=[float(v) for v in fa.losses], forecast_adam_step_norm=fa.step_norm)
    except GNAdvisorError as exc:
        errors.append(f"adam forecast: {exc}")

    rec["bound_name"] = None
    if not spec.needs_pruning:
        try:
            bounds = gn_bounds(model, X)
            for name in _BOUND_ORDER:
                b = bounds.get(name)
                if b is not None and b.kind == "bound" and b.value is not None and math.isfinite(b.value):
                    scores["bound"] = math.log10(b.value)
                    rec["bound_name"] = name
                    break
        except GNAdvisorError as exc:
            errors.append(f"bound: {exc}")

    for name, fn in (("grad_norm", lambda: _log10(zero_cost.grad_norm(model, X, Y))),
                     ("snip", lambda: _log10(zero_cost.snip(model, X, Y))),
                     ("synflow", lambda: zero_cost.synflow(model, tuple(X.shape[1:]))),
                     ("naswot", lambda: zero_cost.naswot(model, X))):
        try:
            scores[name] = float(fn())
        except GNAdvisorError as exc:
            errors.append(f"{name}: {exc}")

    measured: dict[str, dict[str, Any]] = {}
    runs = (("gd", gd_lr, None, 1), ("adam", cfg.adam_lr, None, 1),
            ("sgd", cfg.sgd_lr, cfg.sgd_batch_size, max(1, cfg.steps // 50)))
    for opt, lr, bs, every in runs:
        if lr is None:
            measured[opt] = {"lr": None, "initial_loss": math.nan, "final_loss": math.nan, "speed": math.nan,
                             "final": math.nan, "diverged": None, "losses": [], "loss_steps": []}
            continue
        res = train(model, X, Y, steps=cfg.steps, optimizer=opt, lr=lr, batch_size=bs, seed=seed, record_every=every)
        measured[opt] = {"lr": lr, "initial_loss": float(res.losses[0]), "final_loss": res.final_loss,
                         "speed": _speed(float(res.losses[0]), res.final_loss),
                         "final": -math.log(res.final_loss) if res.final_loss > 0 else math.inf, "diverged": res.diverged,
                         "losses": [float(v) for v in res.losses], "loss_steps": [int(s) for s in res.loss_steps]}
    scores["initial_loss"] = _log10(measured["adam"]["initial_loss"])
    rec.update(scores=scores, measured=measured, errors=errors, time_s=time.perf_counter() - t0)
    return rec


# ---------------------------------------------------------------------------- statistics
def _matrix(records: list[dict[str, Any]], n_arch: int, seeds: Sequence[int], get) -> np.ndarray:
    out = np.full((len(seeds), n_arch), np.nan)
    pos = {s: i for i, s in enumerate(seeds)}
    for r in records:
        v = get(r)
        out[pos[r["seed"]], r["arch"]] = np.nan if v is None else v
    return out


def _summarise(records, n_arch: int, names: dict[str, tuple[int, str]], cfg: ValidationConfig) -> dict[str, Any]:
    seeds = cfg.seeds
    score_mat = {s: o * _matrix(records, n_arch, seeds, lambda r, s=s: r["scores"][s]) for s, (o, _) in names.items()}
    measured = {(t, o): _matrix(records, n_arch, seeds, lambda r, o=o, t=t: r["measured"][o][t])
                for t in TARGETS for o in OPTIMIZERS}
    logp = _matrix(records, n_arch, seeds, lambda r: r["scores"]["params"])
    arch_act = [None] * n_arch
    for r in records:
        arch_act[r["arch"]] = r["activation"]

    correlations, by_act = [], []
    for target in TARGETS:
        for opt in OPTIMIZERS:
            y = measured[(target, opt)]
            for s in names:
                x = score_mat[matched_score(s, opt)]
                row: dict[str, Any] = {"score": s, "target": target, "optimizer": opt}
                keep = ~(np.isnan(x).any(axis=0) | np.isnan(y).any(axis=0))
                row["n"] = int(keep.sum())
                for kind in ("spearman", "partial_spearman", "kendall"):
                    z = logp if kind == "partial_spearman" else None
                    est, lo, hi = _stats.bootstrap_ci(kind, x, y, z, n_boot=cfg.n_boot, seed=cfg.boot_seed,
                                                      level=cfg.level)
                    row.update({kind: est, f"{kind}_low": lo, f"{kind}_high": hi})
                ref = REFERENCE[target]
                row["reference"] = ref
                for kind in ("spearman", "partial_spearman"):
                    z = logp if kind == "partial_spearman" else None
                    gap = ((math.nan,) * 3 if s == ref else _stats.bootstrap_diff_ci(
                        kind, score_mat[matched_score(ref, opt)], x, y, z, n_boot=cfg.n_boot, seed=cfg.boot_seed, level=cfg.level))
                    row.update({f"{kind}_gap": gap[0], f"{kind}_gap_low": gap[1], f"{kind}_gap_high": gap[2]})
                correlations.append(row)
                for act in sorted(set(arch_act)):
                    cols = np.array([a == act for a in arch_act])
                    by_act.append({"score": s, "target": target, "optimizer": opt, "activation": act,
                                   "n": int((keep & cols).sum()),
                                   "spearman": _stats.correlate("spearman", x[:, cols], y[:, cols])})

    stability = []
    rows = [(s, score_mat[s]) for s in names] + [(f"measured {t}: {o}", measured[(t, o)])
                                                 for t in TARGETS for o in OPTIMIZERS]
    for label, mat in rows:
        pairs = [_stats.spearman(mat[a], mat[b]) for a, b in combinations(range(len(seeds)), 2)]
        keep = ~np.isnan(mat).any(axis=0)
        stability.append({"quantity": label, "n": int(keep.sum()),
                          "spearman": float(np.nanmean(pairs)) if pairs and not np.all(np.isnan(pairs)) else math.nan})

    fit = [dict(row, optimizer=opt) for opt in ("gd", "adam")
           for row in _forecast_fit(records, score_mat[MATCHED_FORECAST[opt]], measured[("speed", opt)], seeds)]
    return {"correlations": correlations, "by_activation": by_act, "stability": stability, "forecast_fit": fit}


def _depth_group(d: int) -> str:
    return "depth 1-2" if d <= 2 else ("depth 4" if d <= 4 else ("depth 8" if d <= 8 else "depth 16"))


def _forecast_fit(records, pred: np.ndarray, meas: np.ndarray, seeds) -> list[dict[str, Any]]:
    n_arch = pred.shape[1]
    info: list[dict[str, Any]] = [{} for _ in range(n_arch)]
    for r in records:
        info[r["arch"]] = r
    groupings = {
        "all": lambda r: "all",
        "activation": lambda r: r["activation"],
        "depth": lambda r: _depth_group(r["depth"]),
        "skips": lambda r: "skips" if r["skips"] else "no skips",
        "batchnorm": lambda r: "BN" if r["batchnorm"] else "no BN",
        "pruning": lambda r: "pruned" if r["pruning"] else "dense",
        "bias": lambda r: "bias" if r["bias"] else "no bias",
        "init": lambda r: r["init"],
    }
    out = []
    for gname, key in groupings.items():
        labels = [key(info[a]) for a in range(n_arch)]
        for label in sorted(set(labels), key=str):
            cols = np.array([lab == label for lab in labels])
            p, m = pred[:, cols].reshape(-1), meas[:, cols].reshape(-1)
            ok = np.isfinite(p) & np.isfinite(m)
            err = p[ok] - m[ok]
            out.append({
                "group": label if gname == "all" else f"{gname}: {label}", "n_runs": int(ok.sum()),
                "median_error": float(np.median(err)) if err.size else math.nan,
                "median_abs_error": float(np.median(np.abs(err))) if err.size else math.nan,
                "spearman": _stats.correlate("spearman", pred[:, cols], meas[:, cols]),
            })
    return out
