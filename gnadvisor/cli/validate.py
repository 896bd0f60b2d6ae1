"""``gnadvisor validate``: train architectures and measure how well each score predicts their training."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .options import _clean, csv_option, data_options, echo_json, fmt, json_option, out_option, seed_option, table, write_csv


def _int_list(ctx, param, value):
    if value is None:
        return None
    try:
        out = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"must be comma-separated integers such as 1,4,16, got {value!r}") from None
    if not out or any(v < 1 for v in out):
        raise click.BadParameter(f"must list positive integers, got {value!r}")
    return out


@click.command()
@click.option("--specs", "specs_path", type=click.Path(dir_okay=False), default=None,
              help="JSON file of architecture specs: a list of spec objects, or e.g. the --json output of "
                   "`gnadvisor suggest` (its top-K specs and baseline, found under 'spec'/'specs'/'baseline').")
@click.option("--space", default=None,
              help="Sample architectures from a search space instead (bundled name or YAML file); see --depths, --per-depth.")
@click.option("--set", "set_name", default="digits-v1", show_default=True,
              help="Built-in architecture set, used when neither --specs nor --space is given.")
@click.option("--depths", callback=_int_list, default="1,2,4,8,16", show_default=True,
              help="Depths (hidden layers) to sample with --space.")
@click.option("--per-depth", type=click.IntRange(min=1), default=4, show_default=True,
              help="Architectures per depth with --space.")
@data_options(default_samples=128)
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True,
              help="Training steps T for every optimiser (and the forecast horizon).")
@click.option("--seeds", "n_seeds", type=click.IntRange(min=1), default=2, show_default=True,
              help="Initialisation seeds per architecture (0, 1, ...).")
@click.option("--gd-lr-scale", type=float, default=1.0, show_default=True, help="GD step lr = c / lambda_max: this is c.")
@click.option("--adam-lr", type=float, default=1e-3, show_default=True, help="Adam step size (full batch).")
@click.option("--sgd-lr", type=float, default=3e-3, show_default=True, help="SGD fixed step size.")
@click.option("--sgd-batch", type=click.IntRange(min=1), default=32, show_default=True, help="SGD minibatch size.")
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap resamples of the architectures for the confidence intervals (0: none).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes, one thread each [default: number of CPUs].")
@seed_option
@json_option
@csv_option
@out_option
def validate(specs_path, space, set_name, depths, per_depth, data, n_samples, input_shape, whiten, standardize, steps,
             n_seeds, gd_lr_scale, adam_lr, sgd_lr, sgd_batch, n_boot, workers, seed, as_json, csv_path, out_dir):
    """Train architectures and report how well each score predicts their training speed.

    Every architecture is trained for T full-batch steps with GD (lr = c/lambda_max), Adam and
    SGD (fixed lr), from several initialisations. For each score (the loss forecast, matched to
    each optimiser: the GD forecast under GD, Adam run on the linearised model under Adam, GD at
    the SGD step under SGD; kappa at
    several rank cuts, the analytic bound, parameter count, the initial loss, grad-norm, SNIP,
    SynFlow, NASWOT, TE-NAS) it reports Spearman and Kendall correlations with the measured
    loss decrease log(L0/LT) and with -log(LT), bootstrap confidence intervals over
    architectures, the partial Spearman given log(parameter count), correlations within each
    activation family and seed-to-seed stability.

    \b
    Examples:
      gnadvisor validate --workers 2 --out results/      # the README run: 73 built-in nets on digits
      gnadvisor validate --space resmlp --depths 2,8 --per-depth 5 --steps 100
      gnadvisor validate --specs top.json --data mydata.npz --json
    """
    from ..data import load_data
    from ..loading import parse_shape
    from ..validation import load_specs, sample_space_specs, validate_architectures, validation_specs

    if specs_path and space:
        raise click.BadParameter("give at most one of --specs and --space", param_hint="--specs")
    if n_samples is None and data in ("digits", "synthetic"):
        n_samples = 128
    ds = load_data(data, n_samples=n_samples, input_shape=parse_shape(input_shape), whiten=whiten, standardize=standardize, seed=seed)
    if ds.Y is None:
        raise click.BadParameter(
            f"{ds.name} has no targets to train on; use a .npz/.pt with Y, or a .csv with a 'label' column",
            param_hint="--data")
    shape = ds.input_shape if len(ds.input_shape) == 3 else None
    if specs_path:
        specs = load_specs(specs_path, input_dim=ds.n_features, output_dim=ds.n_outputs, input_shape=shape)
        source = f"specs from {specs_path}"
    elif space:
        specs = sample_space_specs(space, depths=depths, n_per_depth=per_depth, seed=seed, input_dim=ds.n_features,
                                   output_dim=ds.n_outputs, input_shape=shape)
        source = f"{len(specs)} specs sampled from search space {space!r} at depths {depths}"
    else:
        specs = validation_specs(set_name, input_dim=ds.n_features, output_dim=ds.n_outputs)
        source = f"built-in set {set_name!r}"
    workers = workers or os.cpu_count() or 1
    res = validate_architectures(
        specs, ds, steps=steps, seeds=tuple(range(n_seeds)), gd_lr_scale=gd_lr_scale, adam_lr=adam_lr,
        sgd_lr=sgd_lr, sgd_batch_size=sgd_batch, n_boot=n_boot, boot_seed=seed, workers=workers,
        progress=not as_json,
    )
    _render(res, source, as_json, csv_path, out_dir)


def _frames(res):
    import pandas as pd

    corr = pd.DataFrame(res.correlations)
    rows = []
    for r in res.records:
        row = {"arch": r["arch"], "seed": r["seed"], "name": r["name"], "lambda_max": r.get("lambda_max"),
               "bound_name": r.get("bound_name"), "time_s": r["time_s"]}
        row.update({f"score:{k}": v for k, v in r["scores"].items()})
        for o, m in r["measured"].items():
            row.update({f"{o}:lr": m["lr"], f"{o}:initial_loss": m["initial_loss"], f"{o}:final_loss": m["final_loss"],
                        f"{o}:speed": m["speed"], f"{o}:diverged": m["diverged"]})
        rows.append(row)
    return corr, pd.DataFrame(rows)


def _render(res, source, as_json, csv_path, out_dir):
    from ..validation import REFERENCE

    corr, records = _frames(res)
    write_csv(corr, csv_path)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(_clean(res.to_dict(with_curves=True))))
        (out / "results.md").write_text(_header(res, source) + "\n" + res.to_markdown())
        corr.to_csv(out / "correlations.csv", index=False)
        records.to_csv(out / "records.csv", index=False)
        _plots(res, out)
    if as_json:
        d = res.to_dict()
        d["source"] = source
        echo_json(d)
        return
    click.echo(_header(res, source))
    for target in ("speed", "final"):
        for opt in ("gd", "adam", "sgd"):
            click.echo(f"\n{res.optimizer_label(opt)}, target {target}: oriented score vs measured "
                       f"(mean over seeds, [{100 * res.config.level:.0f}% bootstrap CI])")
            rows = [[r["score"], "higher" if res.scores[r["score"]][0] > 0 else "lower", _ci(r, "spearman"),
                     _ci(r, "partial_spearman"), _ci(r, "kendall"), _ci(r, "spearman_gap"),
                     _ci(r, "partial_spearman_gap"), r["n"]]
                    for r in res.correlations if r["optimizer"] == opt and r["target"] == target]
            ref = REFERENCE[target]
            click.echo(table(rows, ["score", "better", "Spearman", "partial | log params", "Kendall",
                                    f"{ref} - score", f"{ref} - score (partial)", "n"]))
    click.echo("\nseed-to-seed stability (Spearman between seeds):")
    click.echo(table([[r["quantity"], r["spearman"], r["n"]] for r in res.stability], ["quantity", "Spearman", "n"]))
    click.echo("\nforecast fit, matched forecast per optimiser (error = predicted - measured log(L0/LT)):")
    click.echo(table([[r["optimizer"], r["group"], r["n_runs"], r["median_error"], r["median_abs_error"], r["spearman"]]
                      for r in res.forecast_fit],
                     ["optimiser", "group", "runs", "median error", "median |error|", "Spearman"]))
    for note in res.notes:
        click.echo(f"note: {note}")
    if out_dir:
        click.echo(f"\nwrote results.json, results.md, correlations.csv, records.csv and plots to {out_dir}")


def _header(res, source):
    cfg = res.config
    d = res.data
    return (f"gnadvisor validate: {len(res.specs)} architectures ({source}) x {len(cfg.seeds)} seeds x 3 optimisers, "
            f"{cfg.steps} steps; data {d['name']}, n = {d['n_samples']}; {res.workers} worker(s), "
            f"{res.runtime_s:.0f} s\nspeed = log(L0/LT), final = -log(LT); scores oriented so that higher = predicted "
            "faster; partial Spearman controls for log10(kept parameter count)")


def _ci(row, key):
    v, lo, hi = row[key], row[f"{key}_low"], row[f"{key}_high"]
    if v is None or v != v:
        return "-"
    if lo is None or lo != lo:
        return f"{v:+.2f}"
    return f"{v:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _plots(res, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..validation.runner import matched_score

    acts = sorted({r["activation"] for r in res.records})
    colors = {a: plt.cm.tab10(i) for i, a in enumerate(acts)}
    names = list(res.scores)
    cols = 4
    rows_n = -(-len(names) // cols)
    for opt in ("gd", "adam", "sgd"):
        fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3.2 * rows_n), squeeze=False)
        for ax, name in zip(axes.flat, names):
            sign = res.scores[name][0]
            for a in acts:
                key = matched_score(name, opt)
                pts = [(sign * r["scores"][key], r["measured"][opt]["speed"]) for r in res.records if r["activation"] == a]
                pts = [(x, y) for x, y in pts if np.isfinite(x) and np.isfinite(y)]
                if pts:
                    x, y = zip(*pts)
                    ax.scatter(x, y, s=10, color=colors[a], label=a)
            if not ax.collections:
                ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
            row = res.correlation(name, opt)
            ax.set_title(f"{name}: rho = {fmt(row['spearman'], 2)}", fontsize=9)
            ax.set_xlabel(("" if sign > 0 else "-") + name, fontsize=8)
            ax.set_ylabel("log(L0/LT)", fontsize=8)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"score vs measured speed, {res.optimizer_label(opt)}, {res.config.steps} steps")
        fig.tight_layout()
        fig.savefig(out / f"scores_vs_speed_{opt}.png", dpi=110)
        plt.close(fig)

    for opt, ylabel in (("gd", "GD at lr = c/lambda_max"), ("adam", f"Adam at lr = {res.config.adam_lr:g}")):
        key = matched_score("forecast", opt)
        fig, ax = plt.subplots(figsize=(5, 5))
        for a in acts:
            pts = [(r["scores"][key], r["measured"][opt]["speed"]) for r in res.records if r["activation"] == a]
            pts = [(x, y) for x, y in pts if np.isfinite(x) and np.isfinite(y)]
            if pts:
                x, y = zip(*pts)
                ax.scatter(x, y, s=12, color=colors[a], label=a)
        lim = ax.get_xlim()
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_xlabel(f"{key} log(L0/LT)")
        ax.set_ylabel(f"measured log(L0/LT), {ylabel}")
        ax.legend(fontsize=7)
        ax.set_title(f"linearised forecast vs measured ({opt})")
        fig.tight_layout()
        fig.savefig(out / f"forecast_vs_measured_{opt}.png", dpi=110)
        plt.close(fig)

    picks = [r for r in res.records if r["seed"] == res.config.seeds[0] and r.get("forecast_losses")]
    picks = picks[:: max(1, len(picks) // 9)][:9]
    if picks:
        fig, axes = plt.subplots(3, 3, figsize=(12, 9), squeeze=False)
        for ax, r in zip(axes.flat, picks):
            m = r["measured"]["gd"]
            ax.semilogy(m["loss_steps"], m["losses"], label="GD measured")
            ax.semilogy(np.arange(len(r["forecast_losses"])), r["forecast_losses"], "--", label="forecast")
            ax.set_title(r["name"], fontsize=7)
        for ax in list(axes.flat)[len(picks):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "forecast_curves_gd.png", dpi=110)
        plt.close(fig)
