"""`gnadvisor validate`: JSON, CSV and --out files from a tiny run; one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gnadvisor.cli.main import cli
from gnadvisor.validation import spearman


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_validate_help():
    res = run("validate", "--help")
    assert res.exit_code == 0 and "--workers" in res.output and "--specs" in res.output
    assert "validate" in run("--help").output


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("validate")
    specs = [{"depth": d, "width": w, "activation": a, "bias": True}
             for d, w, a in ((1, 8, "tanh"), (2, 6, "relu"), (3, 6, "gelu"), (1, 4, "linear"))]
    (tmp / "specs.json").write_text(json.dumps({"specs": specs}))
    res = run("validate", "--specs", str(tmp / "specs.json"), "--samples", "16", "--steps", "6", "--seeds", "2",
              "--bootstrap", "30", "--workers", "1", "--json", "--csv", str(tmp / "corr.csv"), "--out", str(tmp / "out"))
    assert res.exit_code == 0, res.output
    return tmp, json.loads(res.stdout)


def test_validate_json_and_files(tiny):
    tmp, out = tiny
    assert out["n_architectures"] == 4 and out["config"]["seeds"] == [0, 1] and out["config"]["steps"] == 6
    assert len(out["records"]) == 8 and "losses" not in out["records"][0]["measured"]["gd"]
    n_scores = len(out["scores"])
    assert len(out["correlations"]) == n_scores * 2 * 3
    # the printed correlation is the one of the printed records; "forecast" under Adam is the Adam forecast
    x = [[r["scores"]["forecast_adam"] for r in out["records"] if r["seed"] == s] for s in (0, 1)]
    y = [[r["measured"]["adam"]["speed"] for r in out["records"] if r["seed"] == s] for s in (0, 1)]
    row = next(r for r in out["correlations"]
               if r["score"] == "forecast" and r["optimizer"] == "adam" and r["target"] == "speed")
    assert row["spearman"] == pytest.approx(np.mean([spearman(x[s], y[s]) for s in (0, 1)]), abs=1e-12)
    csv = pd.read_csv(tmp / "corr.csv")
    assert len(csv) == len(out["correlations"]) and {"score", "optimizer", "target", "spearman_low"} <= set(csv.columns)
    files = {p.name for p in (tmp / "out").iterdir()}
    assert {"results.json", "results.md", "correlations.csv", "records.csv", "forecast_vs_measured_gd.png", "forecast_vs_measured_adam.png",
            "scores_vs_speed_gd.png", "scores_vs_speed_adam.png", "scores_vs_speed_sgd.png"} <= files
    full = json.loads((tmp / "out" / "results.json").read_text())
    assert len(full["records"][0]["measured"]["gd"]["losses"]) == 7


def test_validate_table_output_and_errors(tmp_path):
    (tmp_path / "one.json").write_text(json.dumps([{"depth": 1, "width": 4}, {"depth": 2, "width": 4}]))
    res = run("validate", "--specs", str(tmp_path / "one.json"), "--samples", "10", "--steps", "3", "--seeds", "1",
              "--bootstrap", "0", "--workers", "1")
    assert res.exit_code == 0, res.output
    assert "GD, lr = 1/lambda_max, target speed" in res.output and "forecast" in res.output
    res = run("validate", "--specs", str(tmp_path / "one.json"), "--space", "mlp")
    assert res.exit_code != 0 and "at most one of --specs and --space" in res.output
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((10, 4)))
    res = run("validate", "--data", str(tmp_path / "x.npy"), "--steps", "2")
    assert res.exit_code != 0 and "has no targets" in res.output
    res = run("validate", "--specs", str(tmp_path / "missing.json"))
    assert res.exit_code == 2 and "Error: specs file" in res.output and "Traceback" not in res.output
