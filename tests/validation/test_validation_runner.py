"""validate_architectures: records agree with direct calls, statistics with the records, seeds reproduce."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import gnadvisor as gna
from gnadvisor._checks import GNAdvisorError
from gnadvisor.forecast import gn_forecast, linearised_forecast
from gnadvisor.search import ArchSpec, build_pruned_model
from gnadvisor.validation import SCORES, TARGETS, bootstrap_ci, naswot, snip, spearman, validate_architectures
from gnadvisor.validation.runner import MATCHED_FORECAST, OPTIMIZERS


def _specs():
    kw = dict(input_dim=6, output_dim=3)
    return [
        ArchSpec(depth=1, width=12, activation="tanh", bias=True, **kw),
        ArchSpec(depth=3, width=8, activation="relu", bias=True, **kw),
        ArchSpec(family="resmlp", depth=2, width=8, activation="gelu", skip_beta=0.5, **kw),
        ArchSpec(depth=2, width=8, activation="linear", **kw),  # bias-free linear: Lemma 2 applies
        ArchSpec(depth=2, width=8, activation="relu", batchnorm=True, **kw),
        ArchSpec(depth=2, width=10, activation="tanh", bias=True, prune_scheme="magnitude", sparsity=0.5, **kw),
    ]


@pytest.fixture(scope="module")
def data():
    # full-rank Sigma (d = 6 < n = 20), so Lemma 2 is not vacuous for the bias-free linear net
    return gna.load_data("synthetic", n_samples=20, input_dim=6, output_dim=3, seed=0)


@pytest.fixture(scope="module")
def result(data):
    return validate_architectures(_specs(), data, steps=12, seeds=(0, 1), n_boot=40, sgd_batch_size=8)


def test_records_match_direct_calls(result, data):
    rec = next(r for r in result.records if r["arch"] == 5 and r["seed"] == 1)  # pruned tanh net
    spec = _specs()[5]
    model = build_pruned_model(spec, 1, data.X, data.Y)
    fc = gn_forecast(model, data.X, data.Y, steps=12, device="cpu")
    assert rec["scores"]["forecast"] == rec["scores"]["forecast_gd"] == pytest.approx(fc.log_decrease, rel=1e-10)
    fa = linearised_forecast(model, data.X, data.Y, steps=12, optimizer="adam", lr=1e-3, device="cpu")
    assert rec["scores"]["forecast_adam"] == pytest.approx(fa.log_decrease, rel=1e-10)
    assert rec["forecast_adam_losses"] == pytest.approx(fa.losses.tolist(), rel=1e-10)
    assert rec["scores"]["kappa"] == pytest.approx(math.log10(fc.condition_number), rel=1e-10)
    assert 10 ** rec["scores"]["params"] == pytest.approx(fc.n_params)  # kept parameters
    assert 10 ** rec["scores"]["snip"] == pytest.approx(snip(model, data.X, data.Y), rel=1e-10)
    assert rec["scores"]["naswot"] == naswot(model, data.X)
    for opt, lr, bs in (("gd", fc.lr, None), ("adam", 1e-3, None), ("sgd", 3e-3, 8)):
        tr = gna.train(model, data.X, data.Y, steps=12, optimizer=opt, lr=lr, batch_size=bs, seed=1)
        m = rec["measured"][opt]
        assert m["final_loss"] == pytest.approx(tr.final_loss, rel=1e-12)
        assert m["speed"] == pytest.approx(math.log(tr.losses[0] / tr.final_loss), rel=1e-12)
        assert m["final"] == pytest.approx(-math.log(tr.final_loss), rel=1e-12)
    # the bound is only reported where a lemma applies (bias-free linear chain)
    assert [r["bound_name"] is not None for r in result.records if r["seed"] == 0] == [False, False, False, True, False, False]


def test_statistics_recomputed_from_records(result):
    names = list(result.scores)
    assert set(SCORES) <= set(names) and "kappa@1e-08" in names
    assert len(result.correlations) == len(names) * len(TARGETS) * len(OPTIMIZERS)
    for score, opt in (("forecast", "gd"), ("kappa", "adam"), ("snip", "sgd")):
        sign = result.scores[score][0]
        x = np.array([[sign * r["scores"][score] for r in result.records if r["seed"] == s] for s in (0, 1)])
        y = np.array([[r["measured"][opt]["speed"] for r in result.records if r["seed"] == s] for s in (0, 1)])
        row = result.correlation(score, opt)
        assert row["spearman"] == pytest.approx(np.mean([spearman(x[s], y[s]) for s in (0, 1)]), abs=1e-12)
        assert (row["spearman"], row["spearman_low"], row["spearman_high"]) == pytest.approx(
            bootstrap_ci("spearman", x, y, n_boot=40, seed=0), abs=1e-12)
        stab = next(r for r in result.stability if r["quantity"] == score)
        assert stab["spearman"] == pytest.approx(spearman(x[0], x[1]), abs=1e-12)
    assert result.correlation("params", "gd")["partial_spearman"] != result.correlation("params", "gd")["partial_spearman"]
    # "forecast" is optimiser-matched: its row in each optimiser's table is that optimiser's forecast
    assert MATCHED_FORECAST == {"gd": "forecast_gd", "adam": "forecast_adam", "sgd": "forecast_sgd_lr"}
    for opt, raw in MATCHED_FORECAST.items():
        for target in TARGETS:
            a, b = result.correlation("forecast", opt, target), result.correlation(raw, opt, target)
            for key in ("spearman", "spearman_low", "spearman_high", "partial_spearman", "kendall"):
                assert a[key] == pytest.approx(b[key], abs=1e-12)
    x = np.array([[r["scores"]["forecast_adam"] for r in result.records if r["seed"] == s] for s in (0, 1)])
    y = np.array([[r["measured"]["adam"]["speed"] for r in result.records if r["seed"] == s] for s in (0, 1)])
    assert result.correlation("forecast", "adam")["spearman"] == pytest.approx(
        np.mean([spearman(x[s], y[s]) for s in (0, 1)]), abs=1e-12)
    # the gaps compare with the matched forecast (zero against itself, up to the bootstrap)
    gap = result.correlation("forecast_adam", "adam")
    assert gap["spearman_gap"] == pytest.approx(0.0, abs=1e-12)
    assert {r["optimizer"] for r in result.forecast_fit} == {"gd", "adam"}
    md = result.to_markdown()
    assert "| forecast | higher |" in md and "| forecast_adam | higher |" in md and "Seed-to-seed stability" in md
    assert "`forecast` is optimiser-matched" in md


def test_seeds_reproduce_and_workers_do_not_change_results(result, data):
    again = validate_architectures(_specs()[:4], data, steps=12, seeds=(0, 1), n_boot=40, sgd_batch_size=8, workers=2)
    first = [r for r in result.records if r["arch"] < 4]
    assert len(again.records) == len(first) == 8
    for a, b in zip(first, again.records):
        assert (a["arch"], a["seed"]) == (b["arch"], b["seed"])
        assert json.dumps(a["scores"]) == json.dumps(b["scores"])  # bitwise, NaN included
        assert json.dumps(a["measured"]) == json.dumps(b["measured"])
    # different seeds give different initialisations
    s0, s1 = (next(r for r in result.records if r["arch"] == 0 and r["seed"] == s) for s in (0, 1))
    assert s0["scores"]["kappa"] != s1["scores"]["kappa"]


def test_validate_errors(data):
    with pytest.raises(GNAdvisorError, match="at least one architecture"):
        validate_architectures([], data)
    with pytest.raises(GNAdvisorError, match="input_dim=32"):
        validate_architectures([ArchSpec(depth=1, width=4, input_dim=32, output_dim=3)], data)
    unlabelled = gna.load_data("synthetic", n_samples=10, input_dim=6, targets="none")
    with pytest.raises(GNAdvisorError, match="data must have targets"):
        validate_architectures(_specs()[:1], unlabelled)
    with pytest.raises(GNAdvisorError, match="seeds must be a non-empty list of distinct"):
        validate_architectures(_specs()[:1], data, seeds=(1, 1))
