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
@click.option("--objectives", default=None,
              help="Comma-separated, from kappa, params, flops; kappa,params gives a Pareto front "
                   "(NSGA-II). Default: the space's (kappa).")
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
def suggest(depth, space, trials, timeout, top_k, n_init_seeds, n_subsample, objectives, storage, study_name,
            max_gflop, no_ablation, data, n_samples, input_shape, whiten, standardize, input_dim, output_dim,
            device, seed, as_json, csv_path, out_dir):
    """Search architectures of --depth hidden layers for a well-conditioned Gauss-Newton matrix.

    An Optuna study scores each proposed architecture cheaply (a valid closed-form bound, or the
    exact kappa on a small subsample), then the best --top candidates are verified with the exact
    kappa on the full sample over --init-seeds initialisations, compared with a plain MLP
    baseline, and the winner is explained by a one-factor-at-a-time ablation. Depth is always the
    number of hidden layers.

    \b
    Examples:
      gnadvisor suggest --depth 20
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
    result = suggest_architectures(
        depth, space=space, data=data, n_samples=n_samples, n_subsample=n_subsample,
        input_shape=parse_shape(input_shape), input_dim=input_dim, output_dim=output_dim, whiten=whiten,
        standardize=standardize, trials=trials, timeout=timeout, seed=seed, top_k=top_k,
        n_init_seeds=n_init_seeds, objectives=objs, storage=storage, study_name=study_name, device=device,
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
            "trial_number": d["trial_number"], "worker": d["worker"], "pareto": d["pareto"],
            "reasons": "; ".join(d["reasons"]), "spec": json.dumps(d["spec"], sort_keys=True),
        })
    return pd.DataFrame(rows)


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
    return f"{fmt(mean, 3)} ± {fmt(std, 2)}"


def _text(result, out_dir: str | None) -> str:
    s, st, data = result.settings, result.study_info, result.settings["data"]
    lines = [
        f"gnadvisor suggest: depth {s['depth']} (hidden layers), search space {s['space']!r}, "
        f"objectives {', '.join(s['objectives'])}",
        f"data: {data['name']}, n = {data['n_samples']} samples for every kappa below (search scores on the first "
        f"{data['n_subsample']}), input shape {tuple(data['input_shape'])}, k = {data['output_dim']}, seed {data['seed']}",
        f"study {st['name']!r} ({st['storage']}): {st['n_trials']} trials "
        f"({st['n_trials_this_run']} this run, {st['n_feasible']} feasible; tiers "
        + ", ".join(f"{k} {v}" for k, v in st["tiers"].items()) + ")"
        + (f", {len(st['workers'])} workers" if len(st["workers"]) > 1 else ""),
        "",
    ]
    multi = len(s["objectives"]) > 1
    header = ["rank", "architecture", "params", "kappa (mean ± std)", "vs baseline", "search score (tier, n)"]
    if multi:
        header.append("Pareto")
    header.append("why (differences from the baseline)")
    rows = []
    for r in [*result.recommendations, result.baseline]:
        score = (f"{fmt(r.score.kappa, 3)} ({r.score.tier}, {r.score.n_samples})"
                 if math.isfinite(r.score.kappa) else f"- ({r.score.tier})")
        row = [str(r.rank) if r.rank is not None else "baseline", r.spec.describe(), f"{r.params:,}",
               _kappa(r.condition_number, r.condition_number_std),
               f"{r.improvement:.3g}x" if r.rank is not None else "1x", score]
        if multi:
            row.append("yes" if r.pareto else ("-" if r.rank is None else "no"))
        row.append("; ".join(r.reasons))
        rows.append(row)
    lines.append(table(rows, header, left=(0, 1, len(header) - 1)))
    best = result.recommendations[0]
    lines.append("")
    lines.append(f"#1 is {best.improvement:.3g}x better conditioned than the baseline "
                 f"(kappa {fmt(best.condition_number, 3)} vs {fmt(result.baseline.condition_number, 3)}).")
    abl = result.ablation
    if abl is not None and abl.steps:
        lines += ["", f"Why #1 is well conditioned (one change at a time, each re-measured exactly on the same "
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
                 "(build_pruned_model(spec, s, X, Y) for pruned specs)")
    if out_dir:
        lines.append(f"plots and result files written to {out_dir}")
    t = result.timings
    lines.append(f"time: search {t['search_s']:.1f} s, verification {t['verify_s']:.1f} s, ablation "
                 f"{t['ablation_s']:.1f} s, total {t['total_s']:.1f} s")
    return "\n".join(lines)
