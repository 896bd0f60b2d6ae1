"""PNG plots of a :class:`~gnadvisor.search.study.SuggestResult` (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["write_plots"]

_TIER_COLOURS = {"bound": "tab:green", "subsample": "tab:blue", "skipped": "tab:gray", "failed": "tab:red"}


def write_plots(result: Any, out_dir: str | Path) -> list[Path]:
    """Write ``kappa_per_trial.png``, ``pareto_front.png``, ``param_importances.png`` and,
    when #1 and the baseline have a training forecast, ``training_forecast.png``.

    * kappa per trial: each trial's search score (log scale) by trial number, coloured by tier,
      with the verified recommendations (mean and range over seeds) and the baseline.
    * Pareto front: search score against parameter count; the non-dominated feasible trials are
      joined (for a single-objective study too, as a trade-off view), verified rows marked.
    * parameter importances: Optuna's fANOVA importances of the searched dimensions for the
      primary objective (``log10 kappa`` or ``log10 L_T/L_0``; feasible, finite trials; skipped
      when fewer than 4 or none vary).
    * training forecast: ``L_t / L_0`` of #1 and the baseline, forecast (solid, one line per
      seed) and, with ``validate_steps``, measured by GD (dashed), on a log scale.

    Parameters
    ----------
    result : SuggestResult
        The search result (its ``study`` is needed for the importances).
    out_dir : str or Path
        Created if needed.

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = result.trials
    done = frame[(frame["state"] == "COMPLETE") & frame["score"].notna()]
    written = []

    fig, ax = plt.subplots(figsize=(7, 4))
    for tier, colour in _TIER_COLOURS.items():
        sel = done[(done["tier"] == tier) & done["score"].map(lambda v: math.isfinite(v))]
        if len(sel):
            ax.scatter(sel["number"], sel["score"], s=14, color=colour, label=f"{tier} score")
    for r in result.recommendations:
        v = r.verification
        ax.errorbar([r.trial_number], [v.mean], yerr=[[v.mean - min(v.kappas)], [max(v.kappas) - v.mean]],
                    fmt="*", color="black", markersize=10, capsize=3)
    ax.scatter([], [], marker="*", color="black", label="verified (mean, range over seeds)")
    ax.axhline(result.baseline.condition_number, color="tab:red", linestyle="--", label="baseline (verified)")
    ax.set_yscale("log")
    ax.set_xlabel("trial")
    ax.set_ylabel("kappa")
    ax.set_title("Search scores per trial")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(_save(fig, out / "kappa_per_trial.png"))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    feas = done[done["feasible"] & done["score"].map(lambda v: math.isfinite(v))]
    if len(feas):
        ax.scatter(feas["params"], feas["score"], s=14, color="tab:blue", alpha=0.6, label="trial score")
        pts = sorted(zip(feas["params"], feas["score"]))
        front, best = [], math.inf
        for p, k in pts:
            if k < best:
                front.append((p, k))
                best = k
        ax.plot([p for p, _ in front], [k for _, k in front], "-o", color="tab:orange", markersize=4,
                label="Pareto front (params, score)")
    ax.scatter([r.params for r in result.recommendations], [r.condition_number for r in result.recommendations],
               marker="*", s=120, color="black", label="verified")
    ax.scatter([result.baseline.params], [result.baseline.condition_number], marker="X", s=80, color="tab:red",
               label="baseline")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("kappa")
    ax.set_title("kappa vs parameter count")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(_save(fig, out / "pareto_front.png"))
    plt.close(fig)

    importances = _importances(result)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color="tab:blue")
        target = "log10 L_T/L_0" if result.settings.get("objective") == "forecast" else "log10 kappa"
        ax.set_xlabel(f"importance for {target} (fANOVA)")
    else:
        ax.text(0.5, 0.5, "not enough varied feasible trials", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title("Parameter importances")
    fig.tight_layout()
    written.append(_save(fig, out / "param_importances.png"))
    plt.close(fig)

    best, base = result.recommendations[0], result.baseline
    if best.forecast is not None and base.forecast is not None:
        fig, ax = plt.subplots(figsize=(7, 4))
        for row, colour, label in ((best, "tab:blue", "#1"), (base, "tab:red", "baseline")):
            m = row.measured
            horizon = max(row.forecast.steps, m.steps if m is not None else 0)
            for i, fc in enumerate(row.forecast.forecasts):
                curve = fc.with_schedule(steps=horizon).losses
                ax.plot(curve / curve[0], color=colour, linewidth=1.2,
                        label=f"{label}: forecast" if i == 0 else None)
            if m is not None:
                for i, curve in enumerate(m.curves):
                    ax.plot(curve / curve[0], color=colour, linestyle="--", linewidth=1.0,
                            label=f"{label}: measured GD" if i == 0 else None)
        ax.set_yscale("log")
        ax.set_xlabel("full-batch GD step (lr = 1/lambda_max)")
        ax.set_ylabel("L_t / L_0")
        ax.set_title("Training forecast vs measured (one line per init seed)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(_save(fig, out / "training_forecast.png"))
        plt.close(fig)
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _importances(result: Any) -> dict[str, float]:
    import optuna

    study = result.study
    if study is None:
        return {}
    trials = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
              if math.isfinite(t.values[0]) and all(v <= 0 for v in t.user_attrs.get("constraints", ()))]
    if len(trials) < 4:
        return {}
    seed = int(result.settings.get("data", {}).get("seed", 0))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        copy = optuna.create_study(directions=study.directions)
        copy.add_trials(trials)
        return optuna.importance.get_param_importances(
            copy, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed), target=lambda t: t.values[0])
    except (RuntimeError, ValueError):  # e.g. no parameter varies across the trials
        return {}
    finally:
        optuna.logging.set_verbosity(verbosity)
