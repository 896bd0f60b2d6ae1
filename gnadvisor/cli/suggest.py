"""``gnadvisor suggest``: search architectures of a given depth for well-conditioned ones."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from .options import (
    csv_option,
    data_options,
    device_option,
    echo_json,
    fmt,
    input_dim_option,
    json_option,
    out_option,
    output_dim_option,
    seed_option,
    storage_option,
    table,
    write_csv,
)


@click.command()
@click.option("--depth", type=click.IntRange(min=1), required=True,
              help="Number of hidden layers (the network has depth + 1 weight layers).")
@click.option("--space", default="default", show_default=True,
              help="Search space: a bundled name (default, mlp, resmlp, cnn) or a YAML file.")
@click.option("--trials", type=click.IntRange(min=0), default=100, show_default=True,
              help="Trials this run adds to the study (0: only verify and report the stored trials).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop the search after this many seconds (the trial count then depends on the machine).")
@click.option("--top", "top_k", type=click.IntRange(min=1), default=3, show_default=True,
              help="Number of candidates verified and reported.")
@click.option("--init-seeds", "n_init_seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Initialisation seeds per verified kappa (kappa at init is random: mean and std).")
@click.option("--subsample", "n_subsample", type=click.IntRange(min=1), default=64, show_default=True,
              help="Samples for the search scores (the first rows of the sample).")
@click.option("--objective", type=click.Choice(["kappa", "forecast"]), default=None,
              help="What the search minimises: kappa (log10 kappa), or forecast (log10 of the forecast loss ratio "
                   "L_T/L_0 after --forecast-steps GD steps at lr = 1/lambda_max; every trial on the exact subsample "
                   "tier; rows ranked by the verified forecast; needs targets) [default: kappa, or the space's].")
@click.option("--objectives", default=None,
              help="Comma-separated, from kappa, forecast, params, flops, with exactly one of kappa and forecast; "
                   "kappa,params gives a Pareto front (NSGA-II). Default: the space's (kappa).")
@click.option("--forecast-steps", type=click.IntRange(min=0), default=100, show_default=True,
              help="T of the training forecast L_T/L_0 shown for every row and the baseline (T full-batch GD steps "
                   "at lr = 1/lambda_max, same data, targets and seeds); 0 disables it.")
@click.option("--validate-steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="N > 0: also train #1 and the baseline for N full-batch GD steps (lr = 1/lambda_max, same seeds) "
                   "and show the measured L_N/L_0 beside the forecast for N steps.")
@storage_option
@click.option("--study-name", default=None,
              help="Study to create or resume in --storage [default: gnadvisor-SPACE-depthN-DATA].")
@click.option("--max-gflop", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Compute budget per exact kappa on the full sample; costlier architectures (batch norm "
                   "and pruning are the expensive ones) are infeasible trials [default: 15 on CPU, about 1 s each; 20000 on CUDA].")
@click.option("--no-ablation", is_flag=True, help="Skip the winner's one-factor-at-a-time ablation.")
@data_options(default_samples=200, file_default="at most 200 rows of a file",
              shape_default="the data's; 1,8,8 makes digits images, which enables CNNs")
@input_dim_option
@output_dim_option
@device_option
@seed_option
@json_option
@csv_option
@out_option
def suggest(depth, space, trials, timeout, top_k, n_init_seeds, n_subsample, objective, objectives, forecast_steps,
            validate_steps, storage, study_name, max_gflop, no_ablation, data, n_samples, input_shape, whiten,
            standardize, input_dim, output_dim, device, seed, as_json, csv_path, out_dir):
    """Search architectures of --depth hidden layers for a well-conditioned Gauss-Newton matrix.

    An Optuna study scores each proposed architecture cheaply (a valid closed-form bound, or the
    exact kappa on a small subsample), then the best --top candidates are verified with the exact
    kappa on the full sample over --init-seeds initialisations, compared with a plain MLP
    baseline, and the winner is explained by a one-factor-at-a-time ablation. Depth is always the
    number of hidden layers. Every row also shows the forecast training-loss ratio L_T/L_0 after
    --forecast-steps GD steps (when the data have targets); --validate-steps N trains #1 and the
    baseline to check it.

    \b
    Examples:
      gnadvisor suggest --depth 20
      gnadvisor suggest --depth 20 --validate-steps 200
      gnadvisor suggest --depth 20 --objective forecast --forecast-steps 200
      gnadvisor suggest --depth 20 --objectives kappa,params --out results/
      gnadvisor suggest --depth 10 --data synthetic --input-dim 32 --output-dim 5
    \b
    Several workers, one study (any machines that reach the database):
      gnadvisor suggest --depth 20 --storage postgresql+psycopg2://u:pw@db/gn --study-name d20 --trials 50
      gnadvisor suggest --depth 20 --storage postgresql+psycopg2://u:pw@db/gn --study-name d20 --trials 0
    """
    from ..loading import parse_shape
    from ..search.study import suggest_architectures

    if as_json and csv_path == "-":
        raise click.BadParameter("--csv - and --json both write to stdout; give --csv a file name", param_hint="--csv")
    objs = None
    if objectives is not None:
        objs = [o.strip() for o in objectives.split(",") if o.strip()]
        if not objs:
            raise click.BadParameter("give at least one objective, e.g. kappa or kappa,params",
                                     param_hint="--objectives")
    if objective == "forecast" and forecast_steps == 0:
        raise click.BadParameter("--objective forecast needs --forecast-steps >= 1", param_hint="--forecast-steps")
    result = suggest_architectures(
        depth, space=space, data=data, n_samples=n_samples, n_subsample=n_subsample,
        input_shape=parse_shape(input_shape), input_dim=input_dim, output_dim=output_dim, whiten=whiten,
        standardize=standardize, trials=trials, timeout=timeout, seed=seed, top_k=top_k,
        n_init_seeds=n_init_seeds, objectives=objs, objective=objective, forecast_steps=forecast_steps,
        validate_steps=validate_steps, storage=storage, study_name=study_name, device=device,
        max_gflop=max_gflop, ablation=not no_ablation, progress=True)
    _render(result, as_json, csv_path, out_dir)


def _rows_frame(result):
    import pandas as pd

    rows = []
    for r in [*result.recommendations, result.baseline]:
        d = r.to_dict()
        rows.append({
            "rank": d["rank"] if d["rank"] is not None else "baseline",
            "architecture": d["architecture"], "params": d["params"], "flops": d["flops"],
            "condition_number": d["condition_number"], "condition_number_std": d["condition_number_std"],
            "kappas": " ".join(repr(k) for k in d["kappas"]), "seeds": " ".join(map(str, d["seeds"])),
            "n_samples": d["n_samples"], "improvement": d["improvement"], "score": d["score"],
            "score_tier": d["score_tier"], "score_samples": d["score_samples"], "score_detail": d["score_detail"],
            "score_loss_ratio": d["score_loss_ratio"], **_training_columns(d),
            "trial_number": d["trial_number"], "worker": d["worker"], "pareto": d["pareto"],
            "reasons": "; ".join(d["reasons"]), "spec": json.dumps(d["spec"], sort_keys=True),
        })
    return pd.DataFrame(rows)


def _training_columns(d: dict) -> dict:
    """CSV columns of the forecast and the measured training (empty when not computed)."""
    f, m = d["forecast"] or {}, d["measured"] or {}

    def get(obj, key, part):
        return (obj.get(key) or {}).get(part) if obj else None

    def values(obj, key):
        vals = get(obj, key, "values")
        return None if vals is None else " ".join(repr(v) for v in vals)

    return {
        "forecast_steps": f.get("steps"), "forecast_lr": get(f, "lr", "mean"),
        "forecast_loss_ratio": get(f, "loss_ratio", "mean"), "forecast_loss_ratio_std": get(f, "loss_ratio", "std"),
        "forecast_loss_ratios": values(f, "loss_ratio"),
        "forecast_log_decrease": get(f, "log_decrease", "mean"),
        "forecast_log_decrease_std": get(f, "log_decrease", "std"),
        "measured_steps": m.get("steps"), "measured_loss_ratio": get(m, "loss_ratio", "mean"),
        "measured_loss_ratio_std": get(m, "loss_ratio", "std"), "measured_loss_ratios": values(m, "loss_ratio"),
        "measured_forecast_loss_ratio": get(m, "forecast_loss_ratio", "mean"),
        "measured_forecast_loss_ratio_std": get(m, "forecast_loss_ratio", "std"),
    }


def _render(result, as_json: bool, csv_path: str | None, out_dir: str | None) -> None:
    frame = _rows_frame(result)
    write_csv(frame, csv_path)
    if out_dir:
        from ..search.plots import write_plots

        out = Path(out_dir)
        write_plots(result, out)
        (out / "suggest.json").write_text(json.dumps(_jsonable(result.to_dict()), indent=2))
        result.trials.to_csv(out / "trials.csv", index=False)
    if as_json:
        echo_json(result.to_dict())
        return
    if csv_path == "-":
        return
    click.echo(_text(result, out_dir))


def _jsonable(obj):
    from .options import _clean

    return _clean(obj)


def _kappa(mean: float, std: float) -> str:
    """mean ± std; the mean alone where the spread is undefined (one seed)."""
    return f"{fmt(mean, 3)}" if math.isnan(std) and math.isfinite(mean) else f"{fmt(mean, 3)} ± {fmt(std, 2)}"


def _ratio(mean: float, std: float) -> str:
    if math.isinf(mean):
        return "inf (diverged)"
    return f"{fmt(mean, 3)}" if math.isnan(std) else f"{fmt(mean, 3)} ± {fmt(std, 1)}"


def _faster(a, b) -> tuple[str, bool]:
    """('faster'/'slower'/'as fast', whether the seed ranges separate) for loss ratios a (#1) vs b (baseline)."""
    if a.loss_ratio == b.loss_ratio:
        return "as fast as", False
    word = "faster than" if a.loss_ratio < b.loss_ratio else "slower than"
    lo, hi = (a, b) if a.loss_ratio < b.loss_ratio else (b, a)
    return word, max(lo.loss_ratios) < min(hi.loss_ratios)


def _training_lines(result) -> list[str]:
    """The forecast and measured comparison of #1 with the baseline, in words."""
    best, base = result.recommendations[0], result.baseline
    lines = []
    fb, fbase = best.forecast, base.forecast
    if fb is not None and fbase is not None:
        word, sep = _faster(fb, fbase)
        lines.append(f"Forecast after {fb.steps} GD steps at lr = 1/lambda_max: L_T/L_0 = "
                     f"{_ratio(fb.loss_ratio, fb.loss_ratio_std)} for #1 vs {_ratio(fbase.loss_ratio, fbase.loss_ratio_std)} "
                     f"for the baseline: #1 is predicted to train {word} the baseline"
                     + ("" if sep or word == "as fast as" else " (within the seed spread)")
                     + (" (--objective forecast searches for fast training directly)."
                        if word == "slower than" and result.settings.get("objective") != "forecast" else "."))
    mb, mbase = best.measured, base.measured
    if mb is not None and mbase is not None:
        word, sep = _faster(mb, mbase)
        predicted = (mb.forecast_loss_ratio < mbase.forecast_loss_ratio) == (mb.loss_ratio < mbase.loss_ratio)
        lines.append(f"Measured after {mb.steps} GD steps (same lr and seeds): L_N/L_0 = "
                     f"{_ratio(mb.loss_ratio, mb.loss_ratio_std)} for #1 vs {_ratio(mbase.loss_ratio, mbase.loss_ratio_std)} "
                     f"for the baseline (forecast {fmt(mb.forecast_loss_ratio, 3)} vs {fmt(mbase.forecast_loss_ratio, 3)}): "
                     f"#1 trains {word} the baseline" + ("" if sep or word == "as fast as" else " (within the seed spread)")
                     + (f", as the forecast for {mb.steps} steps predicts." if predicted
                        else f", contrary to the forecast for {mb.steps} steps."))
        if word == "slower than":
            lines.append(f"So here better conditioning does not pay off within {mb.steps} steps: at lr = 1/lambda_max, "
                         f"N steps reduce the residual only along GN directions with lambda above about lambda_max/N, "
                         f"while kappa = lambda_max/lambda_min concerns the slowest direction, which matters only over "
                         f"about kappa steps; --objective forecast searches for fast training directly.")
    return lines


def _text(result, out_dir: str | None) -> str:
    s, st, data = result.settings, result.study_info, result.settings["data"]
    lines = [
        f"gnadvisor suggest: depth {s['depth']} (hidden layers), search space {s['space']!r}, "
        f"objectives {', '.join(s['objectives'])}"
        + (f" (forecast: L_T/L_0 after T = {s['forecast_steps']} GD steps)" if s.get("objective") == "forecast" else ""),
        f"data: {data['name']}, n = {data['n_samples']} samples for every kappa below (search scores on the first "
        f"{data['n_subsample']}), input shape {tuple(data['input_shape'])}, k = {data['output_dim']}, seed {data['seed']}",
        f"study {st['name']!r} ({st['storage']}): {st['n_trials']} trials "
        f"({st['n_trials_this_run']} this run, {st['n_feasible']} feasible; tiers "
        + ", ".join(f"{k} {v}" for k, v in st["tiers"].items()) + ")"
        + (f", {len(st['workers'])} workers" if len(st["workers"]) > 1 else ""),
        "",
    ]
    multi = len(s["objectives"]) > 1
    by_forecast = s.get("objective") == "forecast"
    rows_all = [*result.recommendations, result.baseline]
    T, N = s.get("forecast_steps") or 0, s.get("validate_steps") or 0
    show_fc = any(r.forecast is not None for r in rows_all)
    show_meas = any(r.measured is not None for r in rows_all)
    header = ["rank", "architecture", "params", "kappa (mean ± std)", "vs baseline"]
    if show_fc:
        header.append(f"forecast L{T}/L0")
    if show_meas:
        header.append(f"L{N}/L0 measured (forecast)")
    header.append("search L_T/L_0 (tier, n)" if by_forecast else "search score (tier, n)")
    if multi:
        header.append("Pareto")
    header.append("why (differences from the baseline)")
    rows = []
    for r in rows_all:
        sv = r.score.loss_ratio if by_forecast else r.score.kappa
        score = (f"{fmt(sv, 3)} ({r.score.tier}, {r.score.n_samples})"
                 if sv is not None and math.isfinite(sv) else f"- ({r.score.tier})")
        row = [str(r.rank) if r.rank is not None else "baseline", r.spec.describe(), f"{r.params:,}",
               _kappa(r.condition_number, r.condition_number_std),
               (f"{r.improvement:.3g}x" + (" (worse)" if 0 < r.improvement < 1 else "")) if r.rank is not None
               else "1x"]
        if show_fc:
            f = r.forecast
            row.append("-" if f is None else _ratio(f.loss_ratio, f.loss_ratio_std))
        if show_meas:
            m = r.measured
            row.append("-" if m is None else f"{_ratio(m.loss_ratio, m.loss_ratio_std)} ({fmt(m.forecast_loss_ratio, 3)})")
        row.append(score)
        if multi:
            row.append("yes" if r.pareto else ("-" if r.rank is None else "no"))
        row.append("; ".join(r.reasons))
        rows.append(row)
    lines.append(table(rows, header, left=(0, 1, len(header) - 1)))
    best = result.recommendations[0]
    lines.append("")
    better = not (0 < best.improvement < 1)
    lines.append(f"#1 is {best.improvement if better else 1 / best.improvement:.3g}x "
                 f"{'better' if better else 'worse'} conditioned than the baseline "
                 f"(kappa {fmt(best.condition_number, 3)} vs {fmt(result.baseline.condition_number, 3)})."
                 + ("" if better or s.get("objective") != "forecast" else
                    " The forecast objective ranks by training speed, not by kappa."))
    top_k = s.get("top_k")
    if top_k and len(result.recommendations) < top_k:
        lines.append(f"Only {len(result.recommendations)} of --top {top_k} rows: the study has only "
                     f"{len(result.recommendations)} feasible distinct design(s) (raise --trials or --max-gflop).")
    worse = [r.rank for r in result.recommendations if 0 < r.improvement < 1]
    if worse and s.get("objective") != "forecast":
        lines.append(f"{'Rows' if len(worse) > 1 else 'Row'} {', '.join(f'#{k}' for k in worse)} "
                     f"{'are' if len(worse) > 1 else 'is'} worse conditioned than the baseline: the search found "
                     "too few better designs (raise --trials, or --max-gflop if many trials were skipped).")
    explain_kappa = not better
    lines += _training_lines(result)
    abl = result.ablation
    if abl is not None and abl.steps:
        lines += ["", f"{'What sets the kappa of #1' if explain_kappa else 'Why #1 is well conditioned'} (one change at a "
                      f"time, each re-measured exactly on the same "
                      f"{data['n_samples']} samples and seeds {', '.join(map(str, s['seeds']))}):"]
        arows = []
        for step in abl.steps:
            v = step.verification
            arows.append([step.change, "-" if v is None else _kappa(v.mean, v.std),
                          "-" if v is None else f"{step.ratio:.3g}x", "yes" if step.clear else "no"])
        lines.append(table(arows, ["change to #1", "kappa (mean ± std)", "vs #1", "clear effect"]))
        lines.append("")
        for step in abl.steps:
            lines.append(f"- {step.explanation}")
        lines.append(abl.summary)
    elif abl is not None:
        lines += ["", abl.summary]
    lines.append("")
    for note in result.notes:
        lines.append(f"note: {note}")
    extra = "".join(f", {k}=True" for k in ("whiten", "standardize") if data.get(k))
    lines.append(f"reproduce a row (--json gives its spec and seeds): X = load_data({data['source']!r}, "
                 f"n_samples={data['n_samples']}, input_shape={tuple(data['input_shape'])}, seed={data['seed']}{extra}).X; "
                 "kappa = gn_spectrum(build_model(ArchSpec.from_dict(spec), s), X).condition_number for s in seeds "
                 "(build_pruned_model(spec, s, X, Y) for pruned specs)"
                 + ("; forecast: fc = gn_forecast(model, X, Y, steps=T) (lr = 1/lambda_max), fc.ratio; measured: "
                    "train(model, X, Y, steps=N, lr=fc.lr), losses[-1] / losses[0]" if show_fc or show_meas else ""))
    if out_dir:
        lines.append(f"plots and result files written to {out_dir}")
    t = result.timings
    lines.append(f"time: search {t['search_s']:.1f} s, verification {t['verify_s']:.1f} s"
                 + (f", training check {t['validate_s']:.1f} s" if show_meas else "")
                 + f", ablation {t['ablation_s']:.1f} s, total {t['total_s']:.1f} s")
    return "\n".join(lines)
