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
@device_option
@seed_option
@json_option
@csv_option
@out_option
def score(model, kwargs_json, data, n_samples, input_shape, whiten, standardize, method, coordinates, batchnorm,
          param_sel, rtol, max_memory, checkpoints, no_layers, device, seed, as_json, csv_path, out_dir):
    """Exact GN spectrum of MODEL and where its ill-conditioning comes from.

    MODEL is FILE.py:NAME (a factory function or nn.Module class), package.module:NAME, or a
    saved module (torch.save, TorchScript, or torch.export .pt2). Loading a Python file or a
    pickled module RUNS ITS CODE: only score models you trust.

    \b
    Examples:
      gnadvisor score examples/models/mlp_bn.py:make_model
      gnadvisor score examples/models/resnet_cifar.py:make_model --input-shape 3,32,32 --samples 200
      gnadvisor score my.py:Net --kwargs '{"width": 64}' --weights ep1.pt --weights ep9.pt --json
    """
    import torch

    from .. import loading
    from ..score import score_model

    torch.manual_seed(seed)
    net = loading.load_model(model, loading.parse_kwargs(kwargs_json))
    ds = loading.data_for_model(net, data, n_samples=n_samples, input_shape=loading.parse_shape(input_shape),
                                whiten=whiten, standardize=standardize, seed=seed)
    opts = dict(method=method, device=device, coordinates=coordinates, batchnorm=batchnorm,
                params=None if param_sel == "all" else param_sel, rtol=rtol, max_memory=max_memory)
    if checkpoints:
        runs = [(str(c), score_model(loading.load_state(net, c), ds.X, per_layer=not no_layers, **opts)) for c in checkpoints]
    else:
        runs = [(None, score_model(net, ds.X, per_layer=not no_layers, **opts))]
    _render(model, ds, runs, as_json, csv_path, out_dir)


def _render(model, ds, runs, as_json, csv_path, out_dir):
    import pandas as pd

    frame = pd.DataFrame([{"checkpoint": c, **{k: v for k, v in r.to_dict().items() if not isinstance(v, (list, dict))}}
                          for c, r in runs])
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
        click.echo("\nkappa over checkpoints:")
        click.echo(table([[c, r.condition_number, r.spectrum.lambda_max, r.spectrum.lambda_min, r.spectrum.rank]
                          for c, r in runs], ["checkpoint", "kappa", "lambda_max", "lambda_min!=0", "rank"]))
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
        for a in r.advice:
            click.echo(f"advice: {a}")


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
