"""`gnadvisor suggest` training forecast and training check: every printed forecast and measured
loss ratio recomputed from the JSON spec and seeds, --objective forecast ranking, the table, the
CSV, and a resumed study with another objective."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from gnadvisor import ArchSpec, gn_forecast, load_data, train
from gnadvisor.cli.main import cli
from gnadvisor.search import build_pruned_model

SPACE = {
    "name": "tiny",
    "dimensions": {
        "family": {"choices": ["mlp", "resmlp"]},
        "width": {"low": 8, "high": 32},
        "activation": {"choices": ["relu", "tanh", "gelu"]},
        "skip_beta": {"choices": [0.0, 0.5, 1.0]},
        "init": {"choices": ["kaiming_normal", "orthogonal", "xavier_normal"]},
    },
    "objectives": ["kappa"],
}
SMALL = ["--depth", "2", "--samples", "30", "--subsample", "15", "--init-seeds", "2", "--top", "2", "--no-ablation"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return str(path)


def run(*args):
    return CliRunner().invoke(cli, ["suggest", *args])


def suggest_json(*args):
    res = run(*args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _data(d):
    data = d["settings"]["data"]
    return load_data(data["source"], n_samples=data["n_samples"], input_shape=tuple(data["input_shape"]),
                     seed=data["seed"])


@pytest.fixture(scope="module")
def validated(space_file):
    return suggest_json(*SMALL, "--trials", "6", "--space", space_file, "--forecast-steps", "40",
                        "--validate-steps", "12")


def test_printed_forecast_and_measured_recompute_from_spec_and_seeds(validated):
    d = validated
    ds = _data(d)
    best, base = d["recommendations"][0], d["baseline"]
    for row in (best, base):
        spec = ArchSpec.from_dict(row["spec"])
        f, m = row["forecast"], row["measured"]
        assert f["steps"] == 40 and f["seeds"] == row["seeds"] == [0, 1] and m["steps"] == 12
        for i, s in enumerate(row["seeds"]):
            model = build_pruned_model(spec, s, ds.X, ds.Y)
            fc = gn_forecast(model, ds.X, ds.Y, steps=40)
            assert f["loss_ratio"]["values"][i] == pytest.approx(fc.ratio, rel=1e-9)
            assert f["lr"]["values"][i] == pytest.approx(fc.lr, rel=1e-12)
            assert f["log_decrease"]["values"][i] == pytest.approx(fc.log_decrease, rel=1e-9)
            # the measured ratio is an independent GD run from the same init and lr = 1/lambda_max
            losses = train(model, ds.X, ds.Y, steps=12, lr=fc.lr).losses
            assert m["loss_ratio"]["values"][i] == pytest.approx(losses[-1] / losses[0], rel=1e-9)
            assert m["forecast_loss_ratio"]["values"][i] == pytest.approx(gn_forecast(model, ds.X, ds.Y, steps=12).ratio,
                                                                          rel=1e-9)
        vals = f["loss_ratio"]["values"]
        assert f["loss_ratio"]["mean"] == pytest.approx(np.mean(vals))
        assert f["loss_ratio"]["std"] == pytest.approx(np.std(vals, ddof=1))
    # only #1 and the baseline are trained
    assert all(r["measured"] is None for r in d["recommendations"][1:])
    assert d["settings"]["validate_steps"] == 12 and d["settings"]["forecast_steps"] == 40


def test_validate_steps_in_table_and_csv(tmp_path, space_file):
    csv_path = tmp_path / "rows.csv"
    res = run(*SMALL, "--trials", "6", "--space", space_file, "--forecast-steps", "40", "--validate-steps", "12",
              "--csv", str(csv_path))
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "forecast L40/L0" in out and "L12/L0 measured (forecast)" in out
    assert "Forecast after 40 GD steps" in out and "Measured after 12 GD steps" in out
    assert ("as the forecast for 12 steps predicts" in out) or ("contrary to the forecast for 12 steps" in out)
    assert "training check" in out
    rows = list(csv.DictReader(csv_path.open()))
    assert {"forecast_steps", "forecast_lr", "forecast_loss_ratio", "forecast_loss_ratio_std", "forecast_log_decrease",
            "measured_steps", "measured_loss_ratio", "measured_loss_ratio_std",
            "measured_forecast_loss_ratio"} <= set(rows[0])
    by_rank = {r["rank"]: r for r in rows}
    assert float(by_rank["1"]["measured_loss_ratio"]) > 0 and float(by_rank["baseline"]["measured_loss_ratio"]) > 0
    assert by_rank["2"]["measured_loss_ratio"] == "" and float(by_rank["2"]["forecast_loss_ratio"]) > 0
    assert all(r["forecast_steps"] == "40" for r in rows)


def test_objective_forecast_ranks_by_the_verified_forecast(space_file):
    d = suggest_json(*SMALL, "--trials", "8", "--space", space_file, "--objective", "forecast", "--forecast-steps",
                     "30", "--top", "3")
    assert d["settings"]["objective"] == "forecast" and d["settings"]["objectives"] == ["forecast"]
    ratios = [r["forecast"]["loss_ratio"]["mean"] for r in d["recommendations"]]
    assert len(ratios) >= 2 and ratios == sorted(ratios)
    assert all(r["score_tier"] == "subsample" and r["score_loss_ratio"] > 0 for r in d["recommendations"])
    # the search scores are forecasts on the subsample (its first rows and their targets), at the search seed
    ds = _data(d)
    for r in d["recommendations"]:
        model = build_pruned_model(ArchSpec.from_dict(r["spec"]), 0, ds.X, ds.Y)
        sub = gn_forecast(model, ds.X[:15], ds.Y[:15], steps=30)
        assert r["score_loss_ratio"] == pytest.approx(sub.ratio, rel=1e-9)
    table = run(*SMALL, "--trials", "8", "--space", space_file, "--objective", "forecast", "--forecast-steps", "30")
    assert table.exit_code == 0, table.output
    assert "search L_T/L_0 (tier, n)" in table.stdout and "objectives forecast (forecast: L_T/L_0 after T = 30" in table.stdout


def test_resumed_study_with_another_objective_is_refused(tmp_path, space_file):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = [*SMALL, "--space", space_file, "--storage", url, "--study-name", "obj", "--forecast-steps", "0"]
    assert run(*args, "--trials", "2").exit_code == 0
    res = run(*args[:-2], "--trials", "1", "--objective", "forecast")
    assert res.exit_code == 2
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "was created with objectives=[\"kappa\"]" in lines[0]
    assert "this run has objectives=[\"forecast\"]" in lines[0]


def test_forecast_flags(space_file):
    res = run(*SMALL, "--trials", "3", "--space", space_file, "--forecast-steps", "0")
    assert res.exit_code == 0, res.output
    assert "forecast L" not in res.stdout and "Forecast after" not in res.stdout
    res = run(*SMALL, "--trials", "3", "--objective", "forecast", "--forecast-steps", "0")
    assert res.exit_code == 2 and "--forecast-steps" in res.output
    res = run(*SMALL, "--trials", "3", "--objective", "forecast", "--objectives", "kappa,params")
    assert res.exit_code == 2 and "conflicts with objectives" in res.output
    help_text = CliRunner().invoke(cli, ["suggest", "--help"]).output
    assert "--objective" in help_text and "--forecast-steps" in help_text and "--validate-steps" in help_text


def test_data_without_targets_say_so(tmp_path, space_file):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).standard_normal((30, 6)))
    res = run(*SMALL, "--trials", "3", "--space", space_file, "--data", str(path), "--output-dim", "3",
              "--validate-steps", "5")
    assert res.exit_code == 0, res.output
    assert "no targets: no training forecast" in res.stdout and "Forecast after" not in res.stdout
    d = suggest_json(*SMALL, "--trials", "3", "--space", space_file, "--data", str(path), "--output-dim", "3")
    assert all(r["forecast"] is None and r["measured"] is None for r in [*d["recommendations"], d["baseline"]])
    res = run(*SMALL, "--trials", "3", "--space", space_file, "--data", str(path), "--output-dim", "3",
              "--objective", "forecast")
    assert res.exit_code == 2 and "needs training targets" in res.output


def test_plots_include_the_training_forecast(tmp_path, space_file):
    out = tmp_path / "out"
    res = run(*SMALL, "--trials", "4", "--space", space_file, "--forecast-steps", "20", "--validate-steps", "8",
              "--out", str(out))
    assert res.exit_code == 0, res.output
    assert (out / "training_forecast.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "suggest.json").read_text())
    assert saved["recommendations"][0]["measured"]["steps"] == 8
    assert not any(isinstance(v, float) and math.isnan(v) for v in saved["settings"].values())
