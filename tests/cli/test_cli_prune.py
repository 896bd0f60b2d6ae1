"""`gnadvisor prune`: every printed number against independent brute-force references; usage errors."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import gnadvisor as gna
from gnadvisor.cli.main import cli
from gnadvisor.cli.options import fmt
from gnadvisor.pruning import prune_model
from gnadvisor.search import ArchSpec, build_model

_spec = importlib.util.spec_from_file_location(
    "pruning_reference", Path(__file__).resolve().parents[1] / "pruning" / "pruning_reference.py")
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

SCHEME_LIST = "magnitude, global-magnitude, random, snip, grasp, synflow"
FAMILY_ARGS = ["mlp", "--depth", "1", "--width", "6", "--samples", "12", "--schemes", "magnitude,random",
               "--sparsity", "0,0.5", "--seeds", "2", "--coordinates", "both", "--train-steps", "4",
               "--optimizer", "gd"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(*args):
    return CliRunner().invoke(cli, ["prune", *args])


def prune_json(*args):
    res = run(*args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _rel(kappa):
    return max(1e-8, 1e3 * kappa * ref.EPS)


def _masks_of(pruned):
    return {f"{n}.weight": m.weight_mask.bool() for n, m in pruned.named_modules() if hasattr(m, "weight_mask")}


@pytest.fixture(scope="module")
def family_json():
    return prune_json(*FAMILY_ARGS)


def test_prune_help():
    res = run("--help")
    assert res.exit_code == 0
    for flag in ("--schemes", "--sparsity", "--seeds", "--coordinates", "--train-steps", "--lr", "--optimizer",
                 "--json", "--csv", "--out", "--spec"):
        assert flag in res.output


def test_prune_family_json_matches_bruteforce(family_json):
    out = family_json
    assert out["model"] == "mlp d1 w6 relu kaiming_normal" and out["seeds"] == [0, 1]
    spec = ArchSpec(depth=1, width=6, input_dim=64, output_dim=10)
    ds = gna.load_data("digits", n_samples=12, seed=0)
    X, Y = ds.X, ds.Y
    expect = {}  # (scheme, sparsity, coordinates) -> per-seed dicts
    for seed in (0, 1):
        net = build_model(spec, seed)
        dense = ref.spectrum_from_jacobian(ref.kept_jacobian(net, {}, X), 12)
        lr = 1.0 / dense["lambda_max"]
        assert out["lrs"][seed] == pytest.approx(lr, rel=1e-9)
        cells = {("dense", 0.0): {}, ("magnitude", 0.5): ref.magnitude_masks(net, 0.5),
                 ("random", 0.5): _masks_of(prune_model(net, "random", 0.5, seed=seed))}
        for (scheme, s), masks in cells.items():
            loss = ref.gd_losses(net, masks, X, Y, lr, 4)
            for c, jac in (("kept", ref.kept_jacobian), ("all", ref.all_jacobian)):
                sp = ref.spectrum_from_jacobian(jac(net, masks, X), 12)
                expect.setdefault((scheme, s, c), []).append({**sp, "loss": loss})
    runs = {(r["scheme"], r["sparsity"], r["coordinates"], r["seed"]): r for r in out["runs"]}
    assert len(runs) == 12 and len(out["rows"]) == 6
    for row in out["rows"]:
        key = (row["scheme"], row["sparsity"], row["coordinates"])
        seeds = expect[key]
        kappas = np.array([e["kappa"] for e in seeds])
        tol = _rel(kappas.max())
        for seed, e in enumerate(seeds):
            r = runs[key + (seed,)]
            assert r["condition_number"] == pytest.approx(e["kappa"], rel=_rel(e["kappa"]))
            assert r["lambda_max"] == pytest.approx(e["lambda_max"], rel=1e-9)
            assert r["rank"] == e["rank"]
            assert r["final_loss"] == pytest.approx(e["loss"][-1], rel=1e-9)
        assert row["condition_number"] == pytest.approx(kappas.mean(), rel=tol)
        assert row["condition_number_std"] == pytest.approx(kappas.std(), rel=10 * tol, abs=tol * kappas.mean())
        assert row["lambda_max"] == pytest.approx(np.mean([e["lambda_max"] for e in seeds]), rel=1e-9)
        assert row["lambda_min"] == pytest.approx(np.mean([e["lambda_min"] for e in seeds]), rel=tol)
        assert row["rank"] == pytest.approx(np.mean([e["rank"] for e in seeds]))
        finals = [e["loss"][-1] for e in seeds]
        assert row["final_loss"] == pytest.approx(np.mean(finals), rel=1e-9)
        assert row["final_loss_std"] == pytest.approx(np.std(finals), rel=1e-6, abs=1e-12)
        if row["scheme"] == "dense":
            assert row["sparsity_achieved"] == 0
        else:
            assert row["sparsity_achieved"] == pytest.approx(0.5, abs=0.01)
        curve = next(cv for cv in out["curves"] if cv["scheme"] == row["scheme"] and cv["sparsity"] == row["sparsity"])
        np.testing.assert_allclose(curve["loss_mean"], np.mean([e["loss"] for e in seeds], axis=0), rtol=1e-9)
    for c in ("kept", "all"):
        rows = [r for r in out["rows"] if r["coordinates"] == c]
        kap = [np.mean([e["kappa"] for e in expect[(r["scheme"], r["sparsity"], c)]]) for r in rows]
        loss = [np.mean([e["loss"][-1] for e in expect[(r["scheme"], r["sparsity"], c)]]) for r in rows]
        rc = out["rank_correlation"][c]
        assert rc["n_cells"] == 3
        assert rc["spearman"] == pytest.approx(ref.spearman(kap, loss), abs=1e-12)
        assert rc["kendall"] == pytest.approx(ref.kendall_tau_b(kap, loss), abs=1e-12)


def test_prune_table_csv_and_plots_show_the_json_numbers(family_json, tmp_path):
    csv_path, out_dir = tmp_path / "rows.csv", tmp_path / "plots"
    res = run(*FAMILY_ARGS, "--csv", str(csv_path), "--out", str(out_dir))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert "data: digits, n = 12, input shape (64,)" in lines[0]
    assert f"lr per seed: {fmt(family_json['lrs'][0])}, {fmt(family_json['lrs'][1])}" in res.stdout
    sections = res.stdout.split("GN on all coordinates")
    assert len(sections) == 2 and "GN on the kept coordinates" in sections[0]
    for row in family_json["rows"]:
        text = sections[0] if row["coordinates"] == "kept" else sections[1]
        cells = [row["scheme"], fmt(row["sparsity"]), fmt(row["sparsity_achieved"]), fmt(row["condition_number"]),
                 fmt(row["condition_number_std"]), fmt(row["lambda_max"]), fmt(row["lambda_min"]), fmt(row["rank"]),
                 fmt(math.inf if row["spectral_gap_min"] == "inf" else row["spectral_gap_min"]),
                 fmt(row["final_loss"]), fmt(row["final_loss_std"])]
        line = next(ln for ln in text.splitlines() if ln.startswith(row["scheme"] + " "))
        assert line.split() == cells
        rc = family_json["rank_correlation"][row["coordinates"]]
        assert (f"over {rc['n_cells']} cells: Spearman {fmt(rc['spearman'])} (p = {fmt(rc['spearman_pvalue'])}), "
                f"Kendall {fmt(rc['kendall'])} (p = {fmt(rc['kendall_pvalue'])})") in text
    frame = pd.read_csv(csv_path)
    assert len(frame) == 6
    for row, (_, got) in zip(family_json["rows"], frame.iterrows()):
        assert (got["scheme"], got["coordinates"]) == (row["scheme"], row["coordinates"])
        assert got["condition_number"] == pytest.approx(row["condition_number"], rel=1e-12)
        assert got["final_loss"] == pytest.approx(row["final_loss"], rel=1e-12)
    for name in ("kappa_vs_sparsity.png", "loss_curves.png"):
        assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prune_auto_cell_lr_column():
    args = ["mlp", "--depth", "1", "--width", "4", "--samples", "6", "--schemes", "global-magnitude",
            "--sparsity", "0.5", "--seeds", "1", "--train-steps", "3", "--optimizer", "gd", "--lr", "auto-cell"]
    out = prune_json(*args)
    spec = ArchSpec(depth=1, width=4, input_dim=64, output_dim=10)
    ds = gna.load_data("digits", n_samples=6, seed=0)
    net = build_model(spec, 0)
    masks = ref.magnitude_masks(net, 0.5, "global")
    lam = ref.spectrum_from_jacobian(ref.kept_jacobian(net, masks, ds.X), 6)["lambda_max"]
    row = out["rows"][0]
    assert out["lr_rule"] == "auto-cell" and out["lrs"] == [None]
    assert row["lr"] == pytest.approx(1 / lam, rel=1e-9)
    assert row["final_loss"] == pytest.approx(ref.gd_losses(net, masks, ds.X, ds.Y, 1 / lam, 3)[-1], rel=1e-9)
    res = run(*args)
    assert "lr 1/lambda_max of each cell's kept GN" in res.stdout
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("global-magnitude "))
    assert line.split()[-3:] == [fmt(row["final_loss"]), fmt(row["final_loss_std"]), fmt(row["lr"])]


def test_prune_user_model_file_fixed_weights(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(
        "import torch\nfrom torch import nn\n\n"
        "def make(width=5):\n"
        "    torch.manual_seed(3)\n"
        "    return nn.Sequential(nn.Linear(64, width), nn.Tanh(), nn.Linear(width, 10)).double()\n")
    out = prune_json(f"{path}:make", "--kwargs", '{"width": 4}', "--schemes", "snip,global-magnitude",
                     "--sparsity", "0.3,0.6", "--seeds", "2", "--samples", "10")
    assert out["model_kind"] == "module" and out["coordinates"] == ["kept"]
    assert [(r["scheme"], r["sparsity"]) for r in out["rows"]] == [
        ("snip", 0.3), ("snip", 0.6), ("global-magnitude", 0.3), ("global-magnitude", 0.6)]
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(64, 4), torch.nn.Tanh(), torch.nn.Linear(4, 10)).double()
    ds = gna.load_data("digits", n_samples=10, seed=0)
    for row in out["rows"]:
        if row["scheme"] == "snip":
            masks = ref.snip_masks(net, ds.X, ds.Y, row["sparsity"])
        else:
            masks = ref.magnitude_masks(net, row["sparsity"], "global")
        e = ref.spectrum_from_jacobian(ref.kept_jacobian(net, masks, ds.X), 10)
        assert row["condition_number"] == pytest.approx(e["kappa"], rel=_rel(e["kappa"]))
        assert row["lambda_min"] == pytest.approx(e["lambda_min"], rel=_rel(e["kappa"]))
        assert row["condition_number_std"] == 0  # fixed weights, deterministic scheme
        assert row["n_params"] == sum(int(m.sum()) for m in masks.values()) + 4 + 10
        assert "final_loss" in row and row["final_loss"] is None


def test_prune_spec_and_cnn_family():
    out = prune_json("--spec", '{"depth": 1, "width": 5, "activation": "tanh", "input_dim": 64, "output_dim": 10}',
                     "--schemes", "synflow", "--sparsity", "0.5", "--seeds", "1", "--samples", "8")
    spec = ArchSpec(depth=1, width=5, activation="tanh", input_dim=64, output_dim=10)
    ds = gna.load_data("digits", n_samples=8, seed=0)
    masks = _masks_of(prune_model(build_model(spec, 0), "synflow", 0.5, X=ds.X))
    e = ref.spectrum_from_jacobian(ref.kept_jacobian(build_model(spec, 0), masks, ds.X), 8)
    assert out["rows"][0]["condition_number"] == pytest.approx(e["kappa"], rel=_rel(e["kappa"]))

    out = prune_json("cnn", "--depth", "1", "--width", "2", "--samples", "4", "--schemes", "magnitude",
                     "--sparsity", "0.5", "--seeds", "1", "--coordinates", "all")
    spec = ArchSpec(family="cnn", depth=1, width=2, input_shape=(1, 8, 8), output_dim=10)
    ds = gna.load_data("digits", n_samples=4, input_shape=(1, 8, 8), seed=0)
    net = build_model(spec, 0)
    e = ref.spectrum_from_jacobian(ref.all_jacobian(net, ref.magnitude_masks(net, 0.5), ds.X), 4)
    row = out["rows"][0]
    assert (row["scheme"], row["coordinates"]) == ("magnitude", "all")
    assert row["condition_number"] == pytest.approx(e["kappa"], rel=_rel(e["kappa"]))


@pytest.mark.parametrize(
    "args, flag, message",
    [
        (["mlp", "--schemes", "magnitude,foo"], "'--schemes'", f"unknown scheme 'foo'; valid schemes: {SCHEME_LIST}"),
        (["mlp", "--sparsity", "0,1.2"], "'--sparsity'", "every sparsity must lie in [0, 1), got 1.2"),
        (["mlp", "--sparsity", "0,a"], "'--sparsity'", "must be comma-separated numbers in [0, 1)"),
        (["mlp", "--sparsity", "0.5,0.5"], "'--sparsity'", "sparsities must be distinct"),
        (["mlp", "--lr", "0"], "'--lr'", "must be 'auto', 'auto-cell' or a finite number > 0, got '0'"),
        ([], "'MODEL'", "give MODEL"),
        (["mlp", "--spec", "{}"], "'--spec'", "give either MODEL or --spec/--spec-file, not both"),
    ],
)
def test_prune_usage_errors_name_the_flag(args, flag, message):
    res = run(*args)
    assert res.exit_code == 2
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1
    assert f"Invalid value for {flag}: {message}" in errors[0]


def test_prune_library_errors_are_one_line():
    res = run("nope_model.py:make")
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and res.output.startswith("Error: model file")
    res = run("--spec", '{"depth": 1, "width": 4, "input_dim": 64, "output_dim": 10, "colour": 1}')
    assert res.exit_code == 2 and res.output.startswith("Error: unknown key 'colour' in ArchSpec")
    res = run("mpl")  # a typo for a family
    assert res.exit_code == 2 and res.output.strip().count("\n") == 0
    assert "neither a family (mlp, resmlp, cnn)" in res.output


# ------------------------------------------------------------------ --forecast-steps

FORECAST_ARGS = ["mlp", "--depth", "1", "--width", "6", "--samples", "12", "--schemes", "magnitude,random",
                 "--sparsity", "0,0.5", "--seeds", "2", "--train-steps", "4", "--optimizer", "gd",
                 "--forecast-steps", "5"]


def test_prune_forecast_matches_gn_forecast_on_independently_pruned_models(tmp_path):
    out = prune_json(*FORECAST_ARGS)
    assert out["forecast_steps"] == 5
    spec = ArchSpec(depth=1, width=6, input_dim=64, output_dim=10)
    ds = gna.load_data("digits", n_samples=12, seed=0)
    runs = {(r["scheme"], r["sparsity"], r["seed"]): r for r in out["runs"] if r["coordinates"] == "kept"}
    expect = {}
    for seed in (0, 1):
        base = build_model(spec, seed)
        for scheme, s in (("dense", 0.0), ("magnitude", 0.5), ("random", 0.5)):
            net = base if scheme == "dense" else prune_model(base, scheme, s, seed=seed)
            fc = gna.gn_forecast(net, ds.X, ds.Y, steps=5)
            masks = {} if scheme == "dense" else _masks_of(net)
            lam = ref.spectrum_from_jacobian(ref.kept_jacobian(base, masks, ds.X), 12)["lambda_max"]
            assert fc.lr == pytest.approx(1 / lam, rel=1e-9)  # the cell's own 1/lambda_max (kept coordinates)
            at_train_lr = gna.gn_forecast(net, ds.X, ds.Y, steps=5, lr=out["lrs"][seed])
            r = runs[(scheme, s, seed)]
            assert r["forecast_lr"] == pytest.approx(fc.lr, rel=1e-9)
            assert r["forecast_loss_ratio"] == pytest.approx(fc.ratio, rel=1e-9)
            assert r["forecast_final_loss"] == pytest.approx(fc.final_loss, rel=1e-9)
            assert r["forecast_final_loss_train_lr"] == pytest.approx(at_train_lr.final_loss, rel=1e-9)
            expect.setdefault((scheme, s), []).append((fc, at_train_lr))
    rows = [r for r in out["rows"] if r["coordinates"] == "kept"]
    for row in rows:
        fcs = expect[(row["scheme"], row["sparsity"])]
        ratios = [f.ratio for f, _ in fcs]
        assert row["forecast_loss_ratio"] == pytest.approx(np.mean(ratios), rel=1e-9)
        assert row["forecast_loss_ratio_std"] == pytest.approx(np.std(ratios), rel=1e-6, abs=1e-12)
        assert row["forecast_final_loss"] == pytest.approx(np.mean([f.final_loss for f, _ in fcs]), rel=1e-9)
        assert row["forecast_final_loss_train_lr"] == pytest.approx(np.mean([t.final_loss for _, t in fcs]), rel=1e-9)
    measured = [r["final_loss"] for r in rows]
    for key, col in (("cell_lr", "forecast_final_loss"), ("train_lr", "forecast_final_loss_train_lr")):
        rc = out["forecast_rank_correlation"][key]
        assert rc["n_cells"] == 3
        assert rc["spearman"] == pytest.approx(ref.spearman([r[col] for r in rows], measured), abs=1e-12)
        assert rc["kendall"] == pytest.approx(ref.kendall_tau_b([r[col] for r in rows], measured), abs=1e-12)
    # table and CSV show the JSON numbers
    csv_path = tmp_path / "rows.csv"
    res = run(*FORECAST_ARGS, "--csv", str(csv_path))
    assert res.exit_code == 0, res.output
    assert "fc ratio@5" in res.stdout and "fc loss (train lr)" in res.stdout and "full-batch GD" in res.stdout
    for row in rows:
        line = next(ln for ln in res.stdout.splitlines() if ln.startswith(row["scheme"] + " "))
        assert line.split()[-4:] == [fmt(row["forecast_loss_ratio"]), fmt(row["forecast_loss_ratio_std"]),
                                     fmt(row["forecast_final_loss"]), fmt(row["forecast_final_loss_train_lr"])]
    rc = out["forecast_rank_correlation"]["train_lr"]
    assert f"at the training lr with the loss after 4 training steps over 3 cells: Spearman {fmt(rc['spearman'])}" in res.stdout
    frame = pd.read_csv(csv_path)
    for row, (_, got) in zip(out["rows"], frame.iterrows()):
        assert got["forecast_loss_ratio"] == pytest.approx(row["forecast_loss_ratio"], rel=1e-12)
        assert got["forecast_loss_ratio_std"] == pytest.approx(row["forecast_loss_ratio_std"], rel=1e-9, abs=1e-15)


def test_prune_forecast_help_and_errors(tmp_path):
    text = " ".join(run("--help").output.split())
    assert "--forecast-steps" in text and "FULL-BATCH gradient descent" in text and "minibatch SGD" in text
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(6, 64)))
    f = tmp_path / "m.py"
    f.write_text("import torch\ndef make():\n    return torch.nn.Sequential(torch.nn.Linear(64, 4), torch.nn.Tanh(), "
                 "torch.nn.Linear(4, 2))\n")
    res = run(f"{f}:make", "--data", str(tmp_path / "x.npy"), "--schemes", "magnitude", "--sparsity", "0.5",
              "--forecast-steps", "3")
    assert res.exit_code != 0 and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip() and not ln.startswith("prune")]
    assert len(lines) == 1 and "forecast_steps=3" in lines[0], res.output


def test_prune_flags_cells_whose_training_lr_is_unstable_for_the_forecast():
    args = ["mlp", "--samples", "40", "--schemes", "grasp,magnitude", "--sparsity", "0,0.5", "--seeds", "1",
            "--forecast-steps", "5", "--train-steps", "5"]
    text = run(*args).output
    out = prune_json(*args)
    rows = {(r["scheme"], r["sparsity"]): r for r in out["rows"] if r["coordinates"] == "kept"}
    # lr * lambda_max >= 2 <=> the linearised dynamics at the training lr diverge
    unstable = [k for k, r in rows.items() if r["lr"] is not None and r["lr"] * r["lambda_max"] >= 2]
    if unstable:
        line = next(ln for ln in text.splitlines() if "unstable for the linearised dynamics" in ln)
        for scheme, sparsity in unstable:
            assert f"{scheme} {fmt(sparsity)}" in line
    else:
        assert "unstable for the linearised dynamics" not in text
