"""``gnadvisor score``: the exact GN spectrum of the user's own model."""

from __future__ import annotations

from pathlib import Path

import click

from .options import csv_option, data_options, device_option, echo_json, fmt, json_option, out_option, seed_option, table, write_csv


@click.command()
@click.argument("model")
@click.option("--kwargs", "kwargs_json", default=None, help='JSON keyword arguments for the factory/class, e.g. \'{"width": 128}\'.')
@data_options(default_samples=500)
@click.option("--method", type=click.Choice(["auto", "kronecker", "gram", "jacobian", "lanczos"]), default="auto",
              show_default=True, help="Spectrum route (auto: cheapest exact route that fits in memory).")
@click.option("--coordinates", type=click.Choice(["kept", "all"]), default="kept", show_default=True,
              help="Pruned models: GN on kept coordinates, or on all (the paper's convention).")
@click.option("--batchnorm", type=click.Choice(["train", "eval"]), default="train", show_default=True,
              help="Batch norm with full-batch statistics (train) or running statistics (eval).")
@click.option("--params", "param_sel", type=click.Choice(["all", "weights"]), default="all", show_default=True,
              help="Which parameters count.")
@click.option("--rtol", type=float, default=None, help="Relative rank cut (default max(p, nk) * eps64).")
@click.option("--max-memory", default=None, help="Memory budget for dense matrices, e.g. 4GB (default: half of free).")
@click.option("--weights", "checkpoints", multiple=True, type=click.Path(),
              help="State-dict checkpoint(s) to load; several show kappa over training.")
@click.option("--no-layers", is_flag=True, help="Skip the per-layer breakdown (one spectrum per layer).")
@click.option("--forecast-steps", type=click.IntRange(min=0), default=None, metavar="T",
              help="Also forecast the training loss (1/2n) sum ||f(x_i) - y_i||^2 after T steps of full-batch gradient "
                   "descent from the linearised (NTK / Gauss-Newton) dynamics, per checkpoint. Needs targets: the "
                   "digits' one-hot labels, Y in an .npz/.pt data file, a csv label column, or --targets.")
@click.option("--lr", "forecast_lr", type=float, default=None,
              help="Step size of the forecast (default 1/lambda_max of the GN on the kept coordinates).")
@click.option("--targets", "targets_path", type=click.Path(dir_okay=False), default=None,
              help="Targets for the forecast from a .npy/.npz/.pt/.csv file: one row per sample of --data, in its "
                   "order (before --samples subsampling, which keeps the matching rows), one column per model output "
                   "(integer labels are one-hot encoded).")
@device_option
@seed_option
@json_option
@csv_option
@out_option
def score(model, kwargs_json, data, n_samples, input_shape, whiten, standardize, method, coordinates, batchnorm,
          param_sel, rtol, max_memory, checkpoints, no_layers, forecast_steps, forecast_lr, targets_path, device, seed,
          as_json, csv_path, out_dir):
    """Exact GN spectrum of MODEL and where its ill-conditioning comes from.

    MODEL is FILE.py:NAME (a factory function or nn.Module class), package.module:NAME, or a
    saved module (torch.save(model), or a torch.export .pt2 archive with --input-shape; TorchScript
    archives are refused: torch.func cannot differentiate them). Loading a Python file or a
    pickled module RUNS ITS CODE: only score models you trust.

    \b
    Examples:
      gnadvisor score examples/models/mlp_bn.py:make_model
      gnadvisor score examples/models/resnet_cifar.py:make_model --input-shape 3,32,32 --samples 200
      gnadvisor score my.py:Net --kwargs '{"width": 64}' --weights ep1.pt --weights ep9.pt --json
      gnadvisor score examples/models/mlp_bn.py:make_model --forecast-steps 100
      gnadvisor score my.py:Net --data inputs.npy --targets targets.npy --forecast-steps 500 --lr 0.01

    The forecast is L_t = sum_i (1 - lr lambda_i)^(2t) (u_i^T r_0)^2 / (2n) over all eigenpairs of
    K = (1/n) J J^T and the initial residual r_0 = f(X) - Y (gnadvisor.gn_forecast): exact for a model
    linear in its parameters, a first-order prediction otherwise.
    """
    import torch

    from .. import loading
    from .._checks import GNAdvisorError
    from ..score import score_model

    forecasting = forecast_steps is not None
    if not forecasting and (forecast_lr is not None or targets_path):
        flag = "--lr" if forecast_lr is not None else "--targets"
        raise GNAdvisorError(f"{flag} is for the training-speed forecast: give --forecast-steps T too")
    if forecasting and data == "synthetic" and not targets_path:
        raise GNAdvisorError("synthetic data has no targets (its labels would be random): pass --targets PATH for "
                             "--forecast-steps, or use --data digits or a data file with targets")
    torch.manual_seed(seed)
    net = loading.load_model(model, loading.parse_kwargs(kwargs_json))
    ds = loading.data_for_model(net, data, n_samples=n_samples, input_shape=loading.parse_shape(input_shape),
                                whiten=whiten, standardize=standardize, seed=seed,
                                targets_file=targets_path if forecasting else None)
    Y = None
    if forecasting:
        if ds.Y is None:
            raise GNAdvisorError(f"{ds.name} has no targets for --forecast-steps: pass --targets PATH (one row per "
                                 "sample, one column per model output), or save the data with targets (key Y)")
        Y = ds.Y
    opts = dict(method=method, device=device, coordinates=coordinates, batchnorm=batchnorm,
                params=None if param_sel == "all" else param_sel, rtol=rtol, max_memory=max_memory,
                forecast_steps=forecast_steps, forecast_lr=forecast_lr)
    if checkpoints:
        runs = [(str(c), score_model(loading.load_state(net, c), ds.X, Y, per_layer=not no_layers, **opts))
                for c in checkpoints]
    else:
        runs = [(None, score_model(net, ds.X, Y, per_layer=not no_layers, **opts))]
    _render(model, ds, runs, as_json, csv_path, out_dir)


_FORECAST_COLUMNS = ("steps", "lr", "initial_loss", "final_loss", "ratio", "log_decrease", "loss_floor", "stable")


def _row(c, r):
    """One CSV row: the scalar fields of the report, plus the forecast's as forecast_*."""
    row = {"checkpoint": c, **{k: v for k, v in r.to_dict().items() if not isinstance(v, (list, dict))}}
    if r.forecast is not None:
        fd = r.forecast.to_dict(with_curve=False)
        row.update({f"forecast_{k}": fd[k] for k in _FORECAST_COLUMNS})
    return row


def _render(model, ds, runs, as_json, csv_path, out_dir):
    import pandas as pd

    frame = pd.DataFrame([_row(c, r) for c, r in runs])
    write_csv(frame, csv_path)
    if out_dir:
        _plots(runs, Path(out_dir))
    if as_json:
        payloads = []
        for c, r in runs:
            d = r.to_dict(with_eigenvalues=True)
            d.update({"model": model, "data": ds.name, "data_notes": list(ds.notes), "checkpoint": c})
            payloads.append(d)
        echo_json(payloads[0] if len(payloads) == 1 else {"checkpoints": payloads})
        return
    click.echo(f"gnadvisor score {model}   data: {ds.name}, n = {ds.n_samples}, input shape {ds.input_shape}")
    for note in ds.notes:
        click.echo(f"  data: {note}")
    if len(runs) > 1:
        fc = runs[0][1].forecast is not None
        click.echo("\nkappa over checkpoints:")
        click.echo(table([[c, r.condition_number, r.spectrum.lambda_max, r.spectrum.lambda_min, r.spectrum.rank]
                          + ([r.forecast.final_loss, r.forecast.ratio] if fc else []) for c, r in runs],
                         ["checkpoint", "kappa", "lambda_max", "lambda_min!=0", "rank"]
                         + ([f"forecast loss@{runs[0][1].forecast.steps}", "ratio"] if fc else [])))
    for c, r in runs:
        s = r.spectrum
        click.echo(f"\n{'checkpoint ' + c if c else 'model'}:")
        theo = f" (theoretical {r.theoretical_rank})" if r.theoretical_rank is not None else ""
        rows = [
            ["condition number kappa", fmt(s.condition_number)],
            ["lambda_max", fmt(s.lambda_max)],
            ["lambda_min != 0", fmt(s.lambda_min)],
            ["rank", f"{s.rank}{theo} of {min(s.n_params, s.n_samples * s.n_outputs)}"],
            ["spectral gap at the cut", fmt(s.spectral_gap)],
            ["parameters counted / total", f"{s.n_params} / {r.n_params_total}"],
            ["n*k", str(s.n_samples * s.n_outputs)],
            ["route", f"{s.method} on {s.device}, {r.time_s:.2f} s"],
            ["kappa(Sigma) of the inputs", f"{fmt(r.data_condition_number)} (rank {r.data_rank})"],
        ]
        if not s.certified:
            rows.append(["certified", "NO (Lanczos: see notes)"])
        click.echo(table(rows, ["quantity", "value"]))
        click.echo(f"rank rule: {s.rank_rule}")
        for note in s.notes:
            click.echo(f"note: {note}")
        if r.layers:
            click.echo("\nwhere it comes from (GN restricted to each layer's parameters):")
            click.echo(table([[b.name, b.n_params, b.condition_number, b.lambda_max, b.lambda_min, b.rank,
                               f"{100 * b.trace_share:.1f}%"] for b in r.layers],
                             ["layer", "params", "kappa", "lambda_max", "lambda_min!=0", "rank", "trace share"]))
        if r.bounds:
            click.echo("\nanalytic bounds (Zhao, Singh & Lucchi 2024):")
            click.echo(table([[name, b.get("kind"), fmt(b.get("value")) if b.get("value") is not None else "vacuous",
                               "yes" if b.get("valid") else "no"] for name, b in r.bounds.items()],
                             ["bound", "kind", "value", "assumptions hold"]))
        if r.forecast is not None:
            _render_forecast(r.forecast)
        for a in r.advice:
            click.echo(f"advice: {a}")


def _render_forecast(f):
    how = "lr = 1/lambda_max" if f.lr_scale == 1.0 else ("given lr" if f.lr_scale is None else f"lr = {f.lr_scale:g}/lambda_max")
    click.echo(f"\ntraining-speed forecast: full-batch GD on (1/2n) sum ||f(x_i) - y_i||^2, linearised "
               f"(NTK / Gauss-Newton) dynamics, {how}:")
    rows = [
        ["loss after 0 steps", fmt(f.initial_loss)],
        [f"loss after {f.steps} steps", fmt(f.final_loss)],
        ["ratio L_T / L_0", fmt(f.ratio)],
        ["log decrease log(L_0 / L_T)", fmt(f.log_decrease)],
        ["lr used", fmt(f.lr)],
        ["loss floor (lambda = 0 directions)", fmt(f.loss_floor)],
        ["stable (lr * lambda_max < 2)", "yes" if f.stable else "NO: the top modes grow"],
    ]
    click.echo(table(rows, ["forecast", "value"]))


def _plots(runs, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for c, r in runs:
        ev = r.spectrum.eigenvalues
        if ev is not None:
            ax.semilogy(np.arange(1, ev.size + 1), ev, label=c or "model")
    ax.set_xlabel("index (descending)")
    ax.set_ylabel("eigenvalue of G")
    ax.set_title("Gauss-Newton spectrum (non-zero part)")
    if len(runs) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "spectrum.png", dpi=120)
    plt.close(fig)
    layers = runs[-1][1].layers
    if layers:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar([b.name for b in layers], [b.condition_number for b in layers])
        ax.set_yscale("log")
        ax.set_ylabel("kappa of the layer's GN block")
        ax.set_title("Per-layer conditioning")
        fig.tight_layout()
        fig.savefig(out / "layers.png", dpi=120)
        plt.close(fig)
    if len(runs) > 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.semilogy(range(len(runs)), [r.condition_number for _, r in runs], marker="o")
        ax.set_xticks(range(len(runs)), [Path(c).name for c, _ in runs], rotation=30, fontsize=7)
        ax.set_ylabel("kappa")
        ax.set_title("kappa over checkpoints")
        fig.tight_layout()
        fig.savefig(out / "kappa_over_checkpoints.png", dpi=120)
        plt.close(fig)
