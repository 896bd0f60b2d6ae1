"""compare_pruning / measure_pruning against independent references (pruning_reference.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import gnadvisor as gna
from gnadvisor._checks import GNAdvisorError
from gnadvisor.pruning import SCHEMES, PruningComparison, compare_pruning, measure_pruning, prune_model
from gnadvisor.search import ArchSpec, build_model

import pruning_reference as ref

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tanh_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3)).to(F64)


def _data(n=10, d=5, k=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=F64)
    Y = torch.eye(k, dtype=F64)[torch.randint(0, k, (n,), generator=g)]
    return X, Y


def _rel(kappa):
    """lambda_min is only known to ~ eps * lambda_max: its relative error is ~ kappa * eps."""
    return max(1e-8, 1e3 * kappa * ref.EPS)


def _check_row(row, spec_ref):
    assert row.condition_number == pytest.approx(spec_ref["kappa"], rel=_rel(spec_ref["kappa"]))
    assert row.lambda_max == pytest.approx(spec_ref["lambda_max"], rel=1e-9)
    assert row.lambda_min == pytest.approx(spec_ref["lambda_min"], rel=_rel(spec_ref["kappa"]))
    assert row.rank == spec_ref["rank"]


# ------------------------------------------------------------------ kappa against brute force


@pytest.mark.parametrize("scheme, scope", [("magnitude", "layer"), ("global-magnitude", "global")],
                         ids=["scheme=magnitude", "scheme=global-magnitude"])
def test_compare_kappa_matches_bruteforce_jacobian_of_kept_and_all_entries(scheme, scope):
    net = _tanh_mlp()
    X, Y = _data()
    res = compare_pruning(net, X, Y, schemes=[scheme], sparsities=[0.0, 0.3, 0.7], seeds=1, coordinates="both")
    assert [(r.scheme, r.sparsity, r.coordinates) for r in res.rows] == [
        ("dense", 0.0, "kept"), ("dense", 0.0, "all"), (scheme, 0.3, "kept"), (scheme, 0.3, "all"),
        (scheme, 0.7, "kept"), (scheme, 0.7, "all")]
    n_weights = sum(net[i].weight.numel() for i in (0, 2, 4))
    for s in (0.0, 0.3, 0.7):
        masks = ref.magnitude_masks(net, s, scope)
        label = "dense" if s == 0 else scheme
        kept = ref.spectrum_from_jacobian(ref.kept_jacobian(net, masks, X), X.shape[0])
        full = ref.spectrum_from_jacobian(ref.all_jacobian(net, masks, X), X.shape[0])
        _check_row(res.row(label, s, "kept"), kept)
        _check_row(res.row(label, s, "all"), full)
        n_pruned = sum(int((~m).sum()) for m in masks.values())
        assert res.row(label, s).sparsity_achieved == pytest.approx(n_pruned / n_weights)
        assert res.row(label, s).n_params == sum(p.numel() for p in net.parameters()) - n_pruned
        assert res.row(label, s, "all").n_params == sum(p.numel() for p in net.parameters())
    # the paper's finding on this toy: pruned coordinates hide ill-conditioning from the 'all' GN
    assert res.row(scheme, 0.7, "kept").condition_number != pytest.approx(res.row(scheme, 0.7, "all").condition_number)


def test_kept_kappa_equals_gn_spectrum_of_model_without_pruned_parameters():
    """The GN on kept coordinates is the GN of a model whose parameters are only the kept entries."""
    net = _tanh_mlp(seed=3)
    X, Y = _data(seed=4)
    res = compare_pruning(net, X, Y, schemes=["snip"], sparsities=[0.5], seeds=1)
    masks = ref.snip_masks(net, X, Y, 0.5)
    reduced = ref.KeptOnly(net, masks)
    assert sum(p.numel() for p in reduced.parameters()) == res.row("snip", 0.5).n_params
    spec = gna.gn_spectrum(reduced, X, method="jacobian")
    row = res.row("snip", 0.5)
    assert row.condition_number == pytest.approx(spec.condition_number, rel=_rel(spec.condition_number))
    assert row.rank == spec.rank
    np.testing.assert_allclose(res.runs[0].spectra["kept"].eigenvalues, spec.eigenvalues, rtol=1e-7,
                               atol=1e-9 * spec.lambda_max)


def test_spec_seeds_reinitialise_and_redraw_random_masks():
    spec = ArchSpec(depth=2, width=6, activation="tanh", bias=True, input_dim=5, output_dim=3)
    X, Y = _data(n=8)
    res = compare_pruning(spec, X, Y, schemes=["random", "magnitude"], sparsities=[0.5], seeds=[3, 7])
    assert res.model_kind == "spec" and res.seeds == (3, 7)
    for scheme in ("random", "magnitude"):
        kappas = []
        for seed in (3, 7):
            pruned = prune_model(build_model(spec, seed), scheme, 0.5, seed=seed)
            masks = {f"{n}.weight": m.weight_mask.bool() for n, m in pruned.named_modules() if hasattr(m, "weight_mask")}
            if scheme == "magnitude":  # hand-made masks agree
                for name, mk in ref.magnitude_masks(build_model(spec, seed), 0.5).items():
                    assert torch.equal(masks[name], mk)
            kappas.append(ref.spectrum_from_jacobian(ref.kept_jacobian(build_model(spec, seed), masks, X), 8)["kappa"])
            run = next(r for r in res.runs if r.scheme == scheme and r.seed == seed)
            assert run.condition_number() == pytest.approx(kappas[-1], rel=_rel(kappas[-1]))
        row = res.row(scheme, 0.5)
        assert row.n_seeds == 2
        tol = _rel(max(kappas))
        assert row.condition_number == pytest.approx(np.mean(kappas), rel=tol)
        assert row.condition_number_std == pytest.approx(np.std(kappas), rel=10 * tol)
        assert (row.condition_number_min, row.condition_number_max) == pytest.approx(sorted(kappas), rel=tol)
        assert kappas[0] != pytest.approx(kappas[1])  # different seeds, different models


def test_fixed_module_seeds_vary_only_random_masks():
    net = _tanh_mlp(seed=5)
    X, Y = _data()
    res = compare_pruning(net, X, Y, schemes=["random", "magnitude"], sparsities=[0.5], seeds=3)
    assert res.model_kind == "module"
    rand = [r.condition_number() for r in res.runs if r.scheme == "random"]
    mag = [r.condition_number() for r in res.runs if r.scheme == "magnitude"]
    assert len(set(rand)) == 3 and len(set(mag)) == 1
    row = res.row("magnitude", 0.5)
    # identical values: the spread is zero up to the rounding of the mean
    assert row.condition_number_std <= 1e-12 * row.condition_number
    for seed, kappa in zip(range(3), rand):
        pruned = prune_model(net, "random", 0.5, seed=seed)
        masks = {f"{n}.weight": m.weight_mask.bool() for n, m in pruned.named_modules() if hasattr(m, "weight_mask")}
        expect = ref.spectrum_from_jacobian(ref.kept_jacobian(net, masks, X), 10)["kappa"]
        assert kappa == pytest.approx(expect, rel=_rel(expect))


def test_subsample_draws_a_seeded_subset_per_seed():
    net = _tanh_mlp(seed=6)
    X, Y = _data(n=20)
    res = compare_pruning(net, X, Y, schemes=["magnitude"], sparsities=[0.4], seeds=2, subsample=8)
    assert res.n_samples == 8
    masks = ref.magnitude_masks(net, 0.4)
    kappas = []
    for seed in (0, 1):
        idx = torch.randperm(20, generator=torch.Generator().manual_seed(seed))[:8].sort().values
        kappas.append(ref.spectrum_from_jacobian(ref.kept_jacobian(net, masks, X[idx]), 8)["kappa"])
        run = next(r for r in res.runs if r.seed == seed)
        assert run.condition_number() == pytest.approx(kappas[-1], rel=_rel(kappas[-1]))
    assert kappas[0] != pytest.approx(kappas[1])


# ------------------------------------------------------------------ training and rank correlation


def test_training_losses_match_handwritten_masked_gd_and_auto_lr():
    net = _tanh_mlp(seed=7)
    X, Y = _data(n=12, seed=8)
    res = compare_pruning(net, X, Y, schemes=["magnitude", "global-magnitude"], sparsities=[0, 0.4, 0.8], seeds=1,
                          train_steps=15, optimizer="gd")
    dense = ref.spectrum_from_jacobian(ref.kept_jacobian(net, {}, X), 12)
    lr = 1.0 / dense["lambda_max"]
    assert res.lrs == pytest.approx((lr,), rel=1e-9)
    finals, kappas = [], []
    for row in res.rows:
        scope = "global" if row.scheme == "global-magnitude" else "layer"
        masks = ref.magnitude_masks(net, row.sparsity, scope)
        losses = ref.gd_losses(net, masks, X, Y, lr, 15)
        curve = next(c for c in res.curves if c.scheme == row.scheme and c.sparsity == row.sparsity)
        np.testing.assert_array_equal(curve.steps, np.arange(16))
        np.testing.assert_allclose(curve.loss_mean, losses, rtol=1e-9)
        assert row.final_loss == pytest.approx(losses[-1], rel=1e-9)
        assert row.final_loss_std == 0.0 and row.n_diverged == 0
        finals.append(losses[-1])
        kappas.append(ref.spectrum_from_jacobian(ref.kept_jacobian(net, masks, X), 12)["kappa"])
    rc = res.rank_correlation["kept"]
    assert rc.n_cells == 5
    assert rc.spearman == pytest.approx(ref.spearman(kappas, finals), abs=1e-12)
    assert rc.kendall == pytest.approx(ref.kendall_tau_b(kappas, finals), abs=1e-12)
    assert 0 <= rc.spearman_pvalue <= 1 and 0 <= rc.kendall_pvalue <= 1


def test_auto_cell_lr_is_one_over_each_cells_lambda_max():
    net = _tanh_mlp(seed=10)
    X, Y = _data(n=12, seed=11)
    res = compare_pruning(net, X, Y, schemes=["magnitude"], sparsities=[0, 0.6], seeds=1, train_steps=6,
                          optimizer="gd", lr="auto-cell", coordinates="all")
    assert res.lr_rule == "auto-cell" and math.isnan(res.lrs[0])
    for row in res.rows:
        masks = ref.magnitude_masks(net, row.sparsity)
        lam = ref.spectrum_from_jacobian(ref.kept_jacobian(net, masks, X), 12)["lambda_max"]
        assert row.lr == pytest.approx(1.0 / lam, rel=1e-9)
        assert row.final_loss == pytest.approx(ref.gd_losses(net, masks, X, Y, 1.0 / lam, 6)[-1], rel=1e-9)
    run = measure_pruning(net, "magnitude", 0.6, X, Y, train_steps=6, optimizer="gd", lr="auto-cell")
    assert run.lr == res.row("magnitude", 0.6, "all").lr


def test_training_sgd_uses_gnadvisor_train_with_fixed_masks():
    spec = ArchSpec(depth=1, width=6, input_dim=5, output_dim=3)
    X, Y = _data(n=30)
    res = compare_pruning(spec, X, Y, schemes=["random"], sparsities=[0.5], seeds=[2], train_steps=7, lr=0.05,
                          batch_size=8)
    pruned = prune_model(build_model(spec, 2), "random", 0.5, seed=2)
    out = gna.train(pruned, X, Y, steps=7, optimizer="sgd", lr=0.05, batch_size=8, seed=2)
    np.testing.assert_allclose(res.curves[0].losses[0], out.losses, rtol=1e-12)
    assert res.lrs == (0.05,)
    for _, m in out.model.named_modules():
        if hasattr(m, "weight_mask"):
            assert torch.all(m.weight[~m.weight_mask.bool()] == 0)


def test_adam_auto_lr_and_record_every():
    X, Y = _data(n=8)
    res = compare_pruning(_tanh_mlp(), X, Y, schemes=["magnitude"], sparsities=[0.5], seeds=1, train_steps=6,
                          optimizer="adam", record_every=4)
    assert res.lrs == (1e-3,)
    np.testing.assert_array_equal(res.curves[0].steps, [0, 4, 6])


# ------------------------------------------------------------------ degenerate cells


def test_collapsed_layer_reports_infinite_kappa_on_kept_coordinates():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5, bias=False), nn.Tanh(), nn.Linear(5, 5, bias=False), nn.Tanh(),
                        nn.Linear(5, 2, bias=False)).to(F64)
    with torch.no_grad():
        net[2].weight.mul_(1e-3)  # global magnitude prunes this layer first
    X, Y = _data(n=6, d=4, k=2)
    res = compare_pruning(net, X, Y, schemes=["global-magnitude"], sparsities=[0.46], seeds=1, coordinates="both")
    kept, full = res.row("global-magnitude", 0.46, "kept"), res.row("global-magnitude", 0.46, "all")
    assert res.runs[0].collapsed_layers == ("2.weight",)
    assert kept.condition_number == math.inf and kept.n_degenerate == 1 and kept.n_collapsed == 1
    assert kept.lambda_max == 0.0 and math.isnan(kept.lambda_min) and kept.rank == 0
    masks = ref.magnitude_masks(net, 0.46, "global")
    assert not masks["2.weight"].any()
    assert np.all(ref.kept_jacobian(net, masks, X) == 0)  # the output no longer depends on the kept weights
    expect = ref.spectrum_from_jacobian(ref.all_jacobian(net, masks, X), 6)
    _check_row(full, expect)
    assert any("prunes every weight of 2.weight" in n for n in res.notes)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["rows"][0]["condition_number"] == "inf" and d["rows"][0]["lambda_min"] is None


# ------------------------------------------------------------------ records and measure_pruning


def test_records_to_dict_and_frame():
    X, Y = _data()
    res = compare_pruning(_tanh_mlp(), X, Y, schemes=["magnitude", "snip"], sparsities=[0, 0.5], seeds=2,
                          train_steps=3, optimizer="gd")
    assert isinstance(res, PruningComparison)
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert len(d["rows"]) == 3 and len(d["runs"]) == 6 and len(d["curves"]) == 3
    for row in d["rows"]:
        assert {"scheme", "sparsity", "condition_number", "condition_number_std", "coordinates"} <= set(row)
    frame = res.to_frame()
    assert list(frame["scheme"]) == ["dense", "magnitude", "snip"]
    np.testing.assert_allclose(frame["condition_number"], [r.condition_number for r in res.rows])
    assert len(res.to_frame("runs")) == 6
    with pytest.raises(KeyError):
        res.row("random", 0.5)


def test_measure_pruning_single_cell_matches_compare():
    net = _tanh_mlp(seed=9)
    X, Y = _data(seed=9)
    run = measure_pruning(net, "grasp", 0.6, X, Y, coordinates="both")
    res = compare_pruning(net, X, Y, schemes=["grasp"], sparsities=[0.6], seeds=1, coordinates="both")
    for c in ("kept", "all"):
        assert run.condition_number(c) == res.row("grasp", 0.6, c).condition_number
    dense = measure_pruning(net, None, 0.0, X)
    assert dense.scheme == "dense" and dense.sparsity_achieved == 0.0
    assert not hasattr(net[0], "weight_mask")  # the input model is untouched


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"schemes": ["magnitude", "nope"]}, "scheme must be one of 'magnitude', 'global-magnitude', 'random', 'snip', "
                                            "'grasp', 'synflow'; got 'nope'"),
        ({"schemes": []}, "schemes must not be empty"),
        ({"schemes": ["random", "random"]}, "schemes must be distinct"),
        ({"sparsities": [0.5, 1.0]}, r"sparsities must lie in \[0.0, 1.0\), got 1.0"),
        ({"sparsities": [-0.1]}, "sparsities must lie in"),
        ({"sparsities": [0.2, 0.2]}, "sparsities must be distinct"),
        ({"sparsities": []}, "sparsities must not be empty"),
        ({"seeds": 0}, "seeds must be a positive integer"),
        ({"seeds": [1, 1]}, "seeds must be distinct"),
        ({"coordinates": "some"}, "coordinates must be one of 'kept', 'all', 'both'"),
        ({"optimizer": "lbfgs"}, "optimizer must be one of"),
        ({"lr": -1.0}, "lr must be a finite number > 0"),
        ({"lr": "fast"}, "lr must be a finite number > 0, 'auto' or 'auto-cell', got 'fast'"),
        ({"subsample": 99}, "subsample must be at most the 10 samples"),
        ({"scheme_options": {"synflow": {"nope": 1}}, "schemes": ["synflow"]}, "options of scheme='synflow'"),
    ],
)
def test_compare_errors_are_one_line(kwargs, match):
    X, Y = _data()
    with pytest.raises(GNAdvisorError, match=match) as info:
        compare_pruning(_tanh_mlp(), X, Y, **{"sparsities": [0.5], "seeds": 1, **kwargs})
    assert "\n" not in str(info.value)


def test_compare_errors_for_model_and_data():
    X, Y = _data()
    with pytest.raises(GNAdvisorError, match="Y must be given .* for scheme"):
        compare_pruning(_tanh_mlp(), X, None, schemes=["snip"], sparsities=[0.5], seeds=1)
    with pytest.raises(GNAdvisorError, match="Y must be given .* for train_steps=3"):
        compare_pruning(_tanh_mlp(), X, None, schemes=["magnitude"], sparsities=[0.5], seeds=1, train_steps=3)
    with pytest.raises(GNAdvisorError, match="must not be pruned already"):
        compare_pruning(prune_model(_tanh_mlp(), "random", 0.5), X, Y, schemes=["magnitude"], sparsities=[0.5])
    with pytest.raises(GNAdvisorError, match="model spec must be dense"):
        compare_pruning(ArchSpec(depth=1, width=4, input_dim=5, output_dim=3, prune_scheme="random", sparsity=0.5),
                        X, Y, schemes=["magnitude"], sparsities=[0.5])
    with pytest.raises(GNAdvisorError, match="model must be a torch.nn.Module, an ArchSpec or a callable"):
        compare_pruning("mlp", X, Y)
    with pytest.raises(GNAdvisorError, match="model factory must return a torch.nn.Module, got int"):
        compare_pruning(lambda seed: 3, X, Y, schemes=["magnitude"], sparsities=[0.5])
    with pytest.raises(GNAdvisorError, match="sparsity must be 0 for the dense reference"):
        measure_pruning(_tanh_mlp(), None, 0.5, X)
    with pytest.raises(GNAdvisorError, match="lr must be given when train_steps > 0"):
        measure_pruning(_tanh_mlp(), "magnitude", 0.5, X, Y, train_steps=2)


def test_default_schemes_are_the_registry():
    X, Y = _data(n=4)
    res = compare_pruning(lambda seed: _tanh_mlp(seed), X, Y, sparsities=[0.3], seeds=1,
                          scheme_options={"synflow": {"iterations": 3}})
    assert res.schemes == tuple(SCHEMES) and res.model_kind == "factory"
    assert [r.scheme for r in res.rows] == list(SCHEMES)


def test_example_prune_digits_quick(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "prune_digits.py"
    spec = importlib.util.spec_from_file_location("prune_digits_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "| scheme | sparsity | kappa (kept) mean ± std |" in out
    assert "| magnitude | 0.5 |" in out and "| random | 0.8 |" in out
    assert "- kappa (kept coordinates) vs magnitude sparsity: Spearman" in out
    assert "- control, magnitude cells with lr = 1/lambda_max per cell" in out


# ------------------------------------------------------------------ forecast (forecast_steps)


def test_forecast_on_a_linear_model_is_exact_masked_gd():
    # one nn.Linear with bias is linear in its parameters: the forecast of the pruned model is exactly
    # full-batch GD on its kept coordinates (hand-written loop over the kept entries only)
    X, Y = _data(n=9, d=5, k=3, seed=4)
    torch.manual_seed(3)
    net = nn.Linear(5, 3).to(F64)
    T = 6
    res = compare_pruning(net, X, Y, schemes=["magnitude"], sparsities=[0, 0.5], seeds=1, train_steps=T,
                          optimizer="gd", lr="auto", forecast_steps=T)
    dense_lr = res.lrs[0]
    for run in res.runs:
        masks = {} if run.scheme == "dense" else ref.magnitude_masks(net, run.sparsity)
        lam = ref.spectrum_from_jacobian(ref.kept_jacobian(net, masks, X), 9)["lambda_max"]
        assert run.forecast.lr == pytest.approx(1 / lam, rel=1e-10)
        np.testing.assert_allclose(run.forecast.losses, ref.gd_losses(net, masks, X, Y, 1 / lam, T), rtol=1e-8)
        # at the training lr (the dense model's 1/lambda_max), the forecast is the measured training run
        assert run.forecast_train_lr.lr == dense_lr
        np.testing.assert_allclose(run.forecast_train_lr.losses, ref.gd_losses(net, masks, X, Y, dense_lr, T), rtol=1e-8)
        np.testing.assert_allclose(run.forecast_train_lr.losses, run.losses, rtol=1e-8)
    row = res.row("magnitude", 0.5)
    run = res.runs[1]
    assert row.forecast_loss_ratio == run.forecast.ratio and row.forecast_loss_ratio_std == 0.0
    assert row.forecast_final_loss == run.forecast.final_loss and row.forecast_lr == run.forecast.lr
    assert row.forecast_final_loss_train_lr == run.forecast_train_lr.final_loss
    assert res.forecast_steps == T and set(res.forecast_rank_correlation) == {"cell_lr", "train_lr"}
    assert res.forecast_rank_correlation["cell_lr"].n_cells == 2  # < 3 cells: nan
    assert math.isnan(res.forecast_rank_correlation["cell_lr"].spearman)


def test_forecast_matches_gn_forecast_per_seed_and_aggregates():
    spec = ArchSpec(depth=1, width=6, input_dim=5, output_dim=3, activation="tanh")
    X, Y = _data(n=8)
    res = compare_pruning(spec, X, Y, schemes=["magnitude", "random"], sparsities=[0, 0.4, 0.8], seeds=[0, 1],
                          coordinates="both", forecast_steps=9)
    for run in res.runs:
        base = build_model(spec, run.seed)
        net = base if run.scheme == "dense" else prune_model(base, run.scheme, run.sparsity, seed=run.seed)
        fc = gna.gn_forecast(net, X, Y, steps=9)
        np.testing.assert_allclose(run.forecast.losses, fc.losses, rtol=1e-9)
        assert run.forecast.lr == pytest.approx(fc.lr, rel=1e-9)
        assert run.forecast_train_lr is None
        # the kept spectrum computed from the shared Gram is gn_spectrum's
        assert run.lambda_max("kept") == pytest.approx(gna.gn_spectrum(net, X).lambda_max, rel=1e-10)
    for row in res.rows:
        group = [r for r in res.runs if r.scheme == row.scheme and r.sparsity == row.sparsity]
        ratios = [r.forecast.ratio for r in group]
        assert row.forecast_loss_ratio == pytest.approx(np.mean(ratios), rel=1e-12)
        assert row.forecast_loss_ratio_std == pytest.approx(np.std(ratios), rel=1e-9, abs=1e-15)
        assert row.forecast_final_loss == pytest.approx(np.mean([r.forecast.final_loss for r in group]), rel=1e-12)
    assert res.forecast_rank_correlation == {}  # no training, nothing to correlate with
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert {"forecast_loss_ratio", "forecast_loss_ratio_std", "forecast_final_loss"} <= set(d["rows"][0])
    assert {"forecast_loss_ratio", "forecast_final_loss", "forecast_lr"} <= set(d["runs"][0])
    assert {"forecast_loss_ratio", "forecast_loss_ratio_std"} <= set(res.to_frame().columns)
    assert "forecast_loss_ratio" in res.to_frame("runs").columns
    plain = compare_pruning(spec, X, Y, schemes=["magnitude"], sparsities=[0.4], seeds=1)
    assert not any(k.startswith("forecast_") for k in plain.to_dict()["rows"][0])
    assert not any(c.startswith("forecast_") for c in plain.to_frame().columns)


def test_forecast_of_a_collapsed_cell_is_the_constant_initial_loss():
    # bias-free net whose first layer has tiny weights: global magnitude pruning removes all of it, so the
    # output is 0, G = 0 on the kept coordinates, the gradient vanishes and the loss stays ||Y||^2 / (2n)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4, bias=False), nn.Tanh(), nn.Linear(4, 3, bias=False)).to(F64)
    with torch.no_grad():
        net[0].weight.mul_(1e-3)
    X, Y = _data(n=7)
    res = compare_pruning(net, X, Y, schemes=["global-magnitude"], sparsities=[0.7], seeds=1, train_steps=3,
                          optimizer="gd", lr=0.1, forecast_steps=4)
    run = res.runs[0]
    assert run.collapsed_layers and math.isinf(run.condition_number("kept"))
    L0 = float((Y**2).sum()) / (2 * 7)
    np.testing.assert_allclose(run.forecast.losses, [L0] * 5, rtol=1e-12)
    assert run.forecast.ratio == 1.0 and math.isnan(run.forecast.lr)
    np.testing.assert_allclose(run.forecast_train_lr.losses, [L0] * 5, rtol=1e-12)
    np.testing.assert_allclose(run.losses, [L0] * 4, rtol=1e-12)  # training agrees
    assert res.rows[0].forecast_loss_ratio == 1.0 and math.isnan(res.rows[0].forecast_lr)
    assert any("forecast loss stays at its initial value" in note for note in res.notes)


def test_forecast_needs_targets():
    X, _ = _data()
    with pytest.raises(GNAdvisorError, match="Y must be given.*forecast_steps=3"):
        compare_pruning(_tanh_mlp(), X, None, schemes=["magnitude"], sparsities=[0.5], seeds=1, forecast_steps=3)
    with pytest.raises(GNAdvisorError, match="forecast_steps must be a non-negative integer"):
        compare_pruning(_tanh_mlp(), X, _data()[1], schemes=["magnitude"], sparsities=[0.5], seeds=1, forecast_steps=-1)


def test_rows_report_the_smallest_spectral_gap_and_unclear_cuts():
    from gnadvisor.pruning.compare import UNCLEAR_GAP

    net = _tanh_mlp(seed=3)
    X, Y = _data(n=12)
    res = compare_pruning(net, X, Y, schemes=["random", "magnitude"], sparsities=[0.5, 0.9], seeds=2,
                          coordinates="kept")
    for row in res.rows:
        group = [r for r in res.runs if r.scheme == row.scheme and r.sparsity == row.sparsity]
        gaps = []
        for r in group:
            s = r.spectra["kept"]
            if s is None:
                continue
            # the gap is the ratio of the last kept eigenvalue to the first one below the cut
            expect = math.inf if s.below_cut is None or s.below_cut.size == 0 else s.eigenvalues[-1] / s.below_cut[0]
            assert r.spectral_gap() == pytest.approx(expect, rel=1e-12)
            gaps.append(expect)
        assert row.spectral_gap_min == (min(gaps) if gaps else row.spectral_gap_min)
        assert row.n_unclear_cut == sum(g < UNCLEAR_GAP for g in gaps)
        d = row.to_dict()
        assert "spectral_gap_min" in d and d["n_unclear_cut"] == row.n_unclear_cut
