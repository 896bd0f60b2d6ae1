"""``gnadvisor prune``: compare pruning schemes and sparsities by GN conditioning and training."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import csv_option, data_options, device_option, echo_json, fmt, json_option, out_option, seed_option, table, write_csv

_FAMILIES = ("mlp", "resmlp", "cnn")
_DEFAULT_SAMPLES = 128
_DEFAULT_SPARSITY = "0,0.2,0.4,0.6,0.8"


def _parse_schemes(ctx, param, value):
    from ..pruning import SCHEMES

    if value is None or value.strip().lower() == "all":
        return list(SCHEMES)
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter(f"give a comma-separated list of schemes ({', '.join(SCHEMES)}), got {value!r}")
    for name in names:
        if name not in SCHEMES:
            raise click.BadParameter(f"unknown scheme {name!r}; valid schemes: {', '.join(SCHEMES)}")
    if len(set(names)) != len(names):
        raise click.BadParameter(f"schemes must be distinct, got {value!r}")
    return names


def _parse_sparsity(ctx, param, value):
    try:
        values = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"must be comma-separated numbers in [0, 1) such as 0,0.5,0.9, got {value!r}") from None
    if not values:
        raise click.BadParameter(f"must be comma-separated numbers in [0, 1) such as 0,0.5,0.9, got {value!r}")
    bad = [v for v in values if not 0.0 <= v < 1.0]
    if bad:
        raise click.BadParameter(f"every sparsity must lie in [0, 1), got {', '.join(f'{b:g}' for b in bad)}")
    if len(set(values)) != len(values):
        raise click.BadParameter(f"sparsities must be distinct, got {value!r}")
    return values


def _parse_lr(ctx, param, value):
    if value.strip().lower() in ("auto", "auto-cell"):
        return value.strip().lower()
    try:
        lr = float(value)
    except ValueError:
        lr = -1.0
    if not (0.0 < lr < float("inf")):
        raise click.BadParameter(f"must be 'auto', 'auto-cell' or a finite number > 0, got {value!r}")
    return lr


@click.command()
@click.argument("model", required=False)
@click.option("--kwargs", "kwargs_json", default=None,
              help='JSON keyword arguments for a FILE.py:NAME factory/class, e.g. \'{"width": 128}\'.')
@click.option("--spec", "spec_json", default=None,
              help='An ArchSpec as JSON, e.g. \'{"depth": 3, "width": 64, "input_dim": 64, "output_dim": 10}\'.')
@click.option("--spec-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A JSON file holding an ArchSpec.")
@click.option("--depth", type=click.IntRange(min=1), default=3, show_default=True,
              help="Hidden layers, for a family name MODEL (mlp, resmlp, cnn).")
@click.option("--width", type=click.IntRange(min=1), default=64, show_default=True,
              help="Hidden width (channels for cnn), for a family name MODEL.")
@click.option("--activation", type=click.Choice(["relu", "leaky_relu", "tanh", "gelu", "linear"]), default="relu",
              show_default=True, help="Activation, for a family name MODEL.")
@data_options(default_samples=_DEFAULT_SAMPLES)
@click.option("--schemes", callback=_parse_schemes, default=None,
              help="Comma-separated pruning schemes [default: all: magnitude, global-magnitude, random, snip, grasp, "
                   "synflow].")
@click.option("--sparsity", "sparsities", callback=_parse_sparsity, default=_DEFAULT_SPARSITY, show_default=True,
              help="Comma-separated sparsities in [0, 1); 0 is the dense reference.")
@click.option("--seeds", "n_seeds", type=click.IntRange(min=1), default=2, show_default=True,
              help="Number of seeds (--seed, --seed+1, ...): a family/spec is re-initialised per seed; a fixed model "
                   "varies only random masks and SGD's batch order.")
@click.option("--coordinates", type=click.Choice(["kept", "all", "both"]), default="kept", show_default=True,
              help="GN on the kept coordinates (governs training of the pruned net), on all (the paper's), or both.")
@click.option("--train-steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also train each pruned model for this many steps (MSE on the targets, masks fixed).")
@click.option("--optimizer", type=click.Choice(["sgd", "gd", "adam"]), default="sgd", show_default=True,
              help="sgd: minibatches of 64, constant lr; gd: full batch; adam.")
@click.option("--lr", callback=_parse_lr, default="auto", show_default=True,
              help="Learning rate: a number for every cell; auto: 1/lambda_max of the dense model's GN per seed, "
                   "shared by every cell (the paper's fixed lr); auto-cell: 1/lambda_max of each cell's kept GN, so "
                   "speed reflects kappa alone. Adam: auto means 1e-3.")
@click.option("--method", type=click.Choice(["auto", "kronecker", "gram", "jacobian", "lanczos"]), default="auto",
              show_default=True, help="Spectrum route.")
@click.option("--forecast-steps", type=click.IntRange(min=0), default=0, show_default=True, metavar="T",
              help="Also forecast, per cell and without training, the loss after T steps of FULL-BATCH gradient "
                   "descent on the kept coordinates at lr = 1/lambda_max of that cell's kept GN, from the linearised "
                   "(NTK / Gauss-Newton) dynamics (columns: loss ratio L_T/L_0 and L_T). This differs from "
                   "--train-steps, which runs --optimizer (minibatch SGD by default) at --lr (by default the dense "
                   "model's 1/lambda_max, shared by every cell): with --train-steps (sgd/gd) the forecast at each "
                   "cell's training lr is shown too, and both forecasts are rank-correlated with the measured loss. "
                   "Use T = --train-steps for a like-for-like comparison.")
@device_option
@seed_option
@json_option
@csv_option
@out_option
def prune(model, kwargs_json, spec_json, spec_file, depth, width, activation, data, n_samples, input_shape, whiten,
          standardize, schemes, sparsities, n_seeds, coordinates, train_steps, optimizer, lr, method, forecast_steps,
          device, seed, as_json, csv_path, out_dir):
    """Compare pruning schemes x sparsities by the GN condition number and by training.

    MODEL is a family name (mlp, resmlp, cnn: built from --depth, --width, --activation and the
    data's shape), or anything `gnadvisor score` accepts (FILE.py:NAME, package.module:NAME, a
    saved module); or give --spec/--spec-file instead. Masks are installed at initialisation with
    torch.nn.utils.prune and kept fixed during training. Loading a Python file or a pickled
    module RUNS ITS CODE: only use models you trust.

    \b
    Examples:
      gnadvisor prune mlp --sparsity 0,0.5,0.9 --train-steps 200
      gnadvisor prune mlp --schemes magnitude,random --coordinates both --json
      gnadvisor prune mlp --sparsity 0,0.5,0.9 --forecast-steps 100 --train-steps 100 --optimizer gd
      gnadvisor prune examples/models/mlp_bn.py:make_model --kwargs '{"width": 32}' --out plots/
    """
    import torch
    from tqdm import tqdm

    from ..pruning import compare_pruning

    target, label, ds = _resolve(model, kwargs_json, spec_json, spec_file, depth, width, activation, data,
                                 n_samples, input_shape, whiten, standardize, seed)
    bar = tqdm(total=n_seeds * len(_cells(schemes, sparsities)), desc="prune", unit="cell", disable=None,
               file=sys.stderr, leave=False)

    def progress(done, total, what):
        bar.set_postfix_str(what)
        bar.update(done - bar.n)

    try:
        torch.manual_seed(seed)
        res = compare_pruning(target, ds.X, ds.Y, schemes=schemes, sparsities=sparsities,
                              seeds=[seed + i for i in range(n_seeds)], coordinates=coordinates,
                              train_steps=train_steps, optimizer=optimizer, lr=lr, device=device, method=method,
                              progress=progress, forecast_steps=forecast_steps)
    finally:
        bar.close()
    _render(label, ds, res, as_json, csv_path, out_dir)


def _cells(schemes, sparsities):
    return ([("dense", 0.0)] if 0.0 in sparsities else []) + [(s, p) for s in schemes for p in sparsities if p > 0]


def _resolve(model, kwargs_json, spec_json, spec_file, depth, width, activation, data, n_samples, input_shape,
             whiten, standardize, seed):
    """(model source for compare_pruning, a label, the Dataset)."""
    import torch

    from .. import loading
    from .._checks import GNAdvisorError
    from ..data import load_data
    from ..search import ArchSpec

    shape = loading.parse_shape(input_shape)
    if (spec_json or spec_file) and model:
        raise click.BadParameter("give either MODEL or --spec/--spec-file, not both", param_hint="'--spec'")
    if spec_json and spec_file:
        raise click.BadParameter("give --spec or --spec-file, not both", param_hint="'--spec'")
    n = n_samples if n_samples is not None or data not in ("digits", "synthetic") else _DEFAULT_SAMPLES
    opts = dict(n_samples=n, whiten=whiten, standardize=standardize, seed=seed)
    if spec_json or spec_file:
        text = spec_json if spec_json else Path(spec_file).read_text(encoding="utf-8")
        spec = ArchSpec.from_json(text)
        want = spec.input_shape or (spec.input_dim,)
        if shape is not None and tuple(shape) != tuple(want):
            raise click.BadParameter(f"the spec's input shape is {want}, got {shape}", param_hint="'--input-shape'")
        ds = load_data(data, input_shape=want, output_dim=spec.output_dim, **opts)
        if ds.Y is not None and ds.n_outputs != spec.output_dim:
            raise click.BadParameter(f"the data has {ds.n_outputs} target columns, the spec's output_dim is "
                                     f"{spec.output_dim}", param_hint="'--spec'")
        return spec, spec.describe(), ds
    if model is None:
        raise click.BadParameter("give MODEL (a family name mlp/resmlp/cnn, FILE.py:NAME, package.module:NAME or a "
                                 "saved model) or --spec", param_hint="'MODEL'")
    if model in _FAMILIES:
        if shape is None and model == "cnn" and data in ("digits", "synthetic"):
            shape = (1, 8, 8)
        ds = load_data(data, input_shape=shape, **opts)
        if ds.Y is None:
            raise click.BadParameter(f"{ds.name} has no targets; a family model needs them for its output width",
                                     param_hint="'--data'")
        if model == "cnn" and len(ds.input_shape) != 3:
            raise click.BadParameter(f"family cnn needs image inputs (C, H, W), got {ds.input_shape}",
                                     param_hint="'--input-shape'")
        spec = ArchSpec(family=model, depth=depth, width=width, activation=activation,
                        skip_beta=1.0 if model == "resmlp" else 0.0, input_shape=ds.input_shape,
                        output_dim=ds.n_outputs)
        return spec, spec.describe(), ds
    torch.manual_seed(seed)
    if ":" not in model and not Path(model).exists():
        raise GNAdvisorError(f"MODEL {model!r} is neither a family ({', '.join(_FAMILIES)}) nor a model file: give a "
                             "family, FILE.py:NAME, package.module:NAME, or a saved .pt/.pt2 file")
    net = loading.load_model(model, loading.parse_kwargs(kwargs_json))
    ds = loading.data_for_model(net, data, n_samples=n_samples, input_shape=shape, whiten=whiten,
                                standardize=standardize, seed=seed, default_samples=_DEFAULT_SAMPLES)
    return net, model, ds


def _render(label, ds, res, as_json, csv_path, out_dir):
    write_csv(res.to_frame(), csv_path)
    if out_dir:
        _plots(res, Path(out_dir))
    if as_json:
        payload = {"model": label, "data": ds.name, "input_shape": list(ds.input_shape), "data_notes": list(ds.notes)}
        payload.update(res.to_dict())
        echo_json(payload)
        return
    click.echo(f"gnadvisor prune {label}   data: {ds.name}, n = {res.n_samples}, input shape {ds.input_shape}")
    for note in ds.notes:
        click.echo(f"  data: {note}")
    click.echo(f"seeds: {', '.join(map(str, res.seeds))}")
    steps = res.train_steps
    per_cell = res.lr_rule == "auto-cell"
    if steps:
        lr_text = ("1/lambda_max of each cell's kept GN (column lr, mean over seeds)" if per_cell
                   else f"per seed: {', '.join(fmt(v) for v in res.lrs)}")
        click.echo(f"training: {steps} {res.optimizer} steps, masks fixed, lr {lr_text}")
    fsteps = res.forecast_steps
    train_lr_fc = bool(fsteps and steps and res.optimizer != "adam")
    if fsteps:
        click.echo(f"forecast (no training): loss after {fsteps} full-batch GD steps on the kept coordinates, "
                   "linearised dynamics, at lr = 1/lambda_max of each cell's kept GN (fc ratio = L_T/L_0, fc loss = L_T)"
                   + ("; 'fc loss (train lr)': the same forecast at the cell's training lr" if train_lr_fc else ""))
    titles = {"kept": "GN on the kept coordinates (the GN that governs training of the pruned net)",
              "all": "GN on all coordinates, pruned ones included (the paper's convention)"}
    for c in res.coordinates:
        click.echo(f"\n{titles[c]}, mean and spread (std) over {len(res.seeds)} seed(s):")
        header = ["scheme", "sparsity", "pruned", "kappa", "± std", "lambda_max", "lambda_min!=0", "rank", "min gap"]
        if steps:
            header += [f"loss@{steps}", "± std"] + (["lr"] if per_cell else [])
        if fsteps:
            header += [f"fc ratio@{fsteps}", "± std", f"fc loss@{fsteps}"] + (["fc loss (train lr)"] if train_lr_fc else [])
        rows = []
        for r in (r for r in res.rows if r.coordinates == c):
            row = [r.scheme, r.sparsity, r.sparsity_achieved, r.condition_number, r.condition_number_std,
                   r.lambda_max, r.lambda_min, r.rank, r.spectral_gap_min]
            if steps:
                row += [r.final_loss, r.final_loss_std] + ([r.lr] if per_cell else [])
            if fsteps:
                row += [r.forecast_loss_ratio, r.forecast_loss_ratio_std, r.forecast_final_loss]
                row += [r.forecast_final_loss_train_lr] if train_lr_fc else []
            rows.append(row)
        click.echo(table(rows, header))
        if steps:
            rc = res.rank_correlation[c]
            click.echo(f"rank correlation of kappa with the loss after {steps} steps over {rc.n_cells} cells: "
                       f"Spearman {fmt(rc.spearman)} (p = {fmt(rc.spearman_pvalue)}), "
                       f"Kendall {fmt(rc.kendall)} (p = {fmt(rc.kendall_pvalue)}); positive = kappa ranks the "
                       "schemes as training does")
    for key, what in (("cell_lr", "at lr = 1/lambda_max of each cell"), ("train_lr", "at the training lr")):
        rc = res.forecast_rank_correlation.get(key)
        if rc is not None:
            click.echo(f"rank correlation of the forecast loss after {fsteps} steps {what} with the loss after {steps} "
                       f"training steps over {rc.n_cells} cells: Spearman {fmt(rc.spearman)} "
                       f"(p = {fmt(rc.spearman_pvalue)}), Kendall {fmt(rc.kendall)} (p = {fmt(rc.kendall_pvalue)})")
    unstable = sorted({(r.scheme, r.sparsity) for r in res.runs
                       if r.forecast_train_lr is not None and not r.forecast_train_lr.stable})
    if unstable:
        cells = ", ".join(f"{sc} {fmt(sp)}" for sc, sp in unstable[:8])
        click.echo(f"\nthe training lr is unstable for the linearised dynamics (lr * lambda_max >= 2) in {len(unstable)} "
                   f"cell(s): {cells}{' ...' if len(unstable) > 8 else ''}: their 'fc loss (train lr)' grows without "
                   "bound; the real network may still settle (its curvature changes as it trains)")
    unclear = [r for r in res.rows if r.n_unclear_cut]
    if unclear:
        cells = ", ".join(f"{r.scheme} {fmt(r.sparsity)} ({r.coordinates})" for r in unclear[:8])
        click.echo(f"\nthe rank cut is not clean (min gap = lambda_rank / lambda_rank+1 below 100) in {len(unclear)} "
                   f"cell(s): {cells}{' ...' if len(unclear) > 8 else ''}: their kappa depends on the cut (rtol), "
                   "not only on the network; read it as 'at least this ill-conditioned'")
    if any(r.n_degenerate for r in res.rows):
        click.echo("\nkappa = inf: G has no non-zero eigenvalue on these coordinates (a fully pruned layer cuts the "
                   "network, so its output no longer depends on the kept weights)")
    for note in res.notes:
        click.echo(f"note: {note}")


def _plots(res, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    dense = {c: next((r for r in res.rows if r.scheme == "dense" and r.coordinates == c), None) for c in res.coordinates}
    fig, axes = plt.subplots(1, len(res.coordinates), figsize=(6 * len(res.coordinates), 4), squeeze=False)
    for ax, c in zip(axes[0], res.coordinates):
        for scheme in res.schemes:
            rows = ([dense[c]] if dense[c] else []) + [r for r in res.rows if r.scheme == scheme and r.coordinates == c]
            x = np.array([r.sparsity for r in rows])
            y = np.array([r.condition_number for r in rows])
            lo = np.array([r.condition_number_min for r in rows])
            hi = np.array([r.condition_number_max for r in rows])
            ok = np.isfinite(y)
            (line,) = ax.semilogy(x[ok], y[ok], marker="o", label=scheme)
            band = ok & np.isfinite(hi)
            if len(res.seeds) > 1 and band.any():
                ax.fill_between(x[band], lo[band], hi[band], color=line.get_color(), alpha=0.15)
        ax.set_xlabel("sparsity")
        ax.set_ylabel("kappa (mean over seeds; band: min-max)")
        ax.set_title(f"GN condition number, {c} coordinates")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "kappa_vs_sparsity.png", dpi=120)
    plt.close(fig)
    if not res.curves:
        return
    ncol = min(3, len(res.schemes))
    nrow = -(-len(res.schemes) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 3.6 * nrow), squeeze=False)
    cmap = plt.get_cmap("viridis")
    dense_curve = next((cv for cv in res.curves if cv.scheme == "dense"), None)
    for ax, scheme in zip(axes.flat, res.schemes):
        if dense_curve is not None:
            ax.semilogy(dense_curve.steps, dense_curve.loss_mean, color="black", label="dense")
        for cv in (cv for cv in res.curves if cv.scheme == scheme):
            ax.semilogy(cv.steps, cv.loss_mean, color=cmap(cv.sparsity), label=f"s = {cv.sparsity:g}")
        ax.set_title(scheme)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (mean over seeds)")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(res.schemes):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(out / "loss_curves.png", dpi=120)
    plt.close(fig)
