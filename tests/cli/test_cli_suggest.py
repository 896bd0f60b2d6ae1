"""`gnadvisor suggest` end to end: table, JSON schema, reproducibility, every kappa recomputed,
storage resume (also after a killed run), concurrent worker processes (sqlite; PostgreSQL when
GNADVISOR_TEST_POSTGRES_URL is set), budgets, errors, and the depth-20 promise at small budgets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner

from gnadvisor import ArchSpec, gn_spectrum, load_data
from gnadvisor.cli.main import cli
from gnadvisor.search import build_pruned_model

ROOT = Path(__file__).resolve().parents[2]
SPACE = {
    "name": "tiny",
    "dimensions": {
        "family": {"choices": ["mlp", "resmlp"]},
        "width": {"low": 8, "high": 32},
        "activation": {"choices": ["relu", "tanh", "gelu"]},
        "skip_beta": {"choices": [0.0, 0.5, 1.0]},
        "init": {"choices": ["kaiming_normal", "orthogonal", "xavier_normal"]},
        "bias": {"choices": [False, True]},
    },
    "objectives": ["kappa"],
}
SMALL = ["--depth", "2", "--samples", "30", "--subsample", "15", "--init-seeds", "2", "--top", "2"]
ROW_KEYS = {"rank", "architecture", "spec", "params", "flops", "condition_number", "condition_number_std", "kappas",
            "seeds", "n_samples", "routes", "improvement", "score", "score_tier", "score_samples", "score_detail",
            "score_loss_ratio", "forecast", "measured", "trial_number", "worker", "pareto", "reasons"}
FORECAST_KEYS = {"steps", "lr_scale", "seeds", "n_samples", "lr", "loss_ratio", "log_decrease", "initial_loss"}


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


@pytest.fixture(scope="module")
def default_space_run():
    """The bundled default space, small: the JSON of one run."""
    return suggest_json(*SMALL, "--trials", "8")


# ---------------------------------------------------------------------------------- output
def test_help_says_depth_is_hidden_layers():
    res = CliRunner().invoke(cli, ["suggest", "--help"])
    assert res.exit_code == 0 and "hidden layers" in res.output and "--storage" in res.output


def test_table_is_printed(space_file):
    res = run(*SMALL, "--trials", "6", "--space", space_file)
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "rank" in out and "kappa (mean ± std)" in out and "vs baseline" in out
    lines = out.splitlines()
    assert any(line.startswith("1 ") for line in lines) and any(line.startswith("baseline ") for line in lines)
    assert "n = 30 samples for every kappa" in out
    assert "Why #1 is well conditioned" in out or "same design choices as the baseline" in out
    assert "Traceback" not in res.output


def test_json_schema_is_stable(default_space_run):
    d = default_space_run
    assert list(d) == ["recommendations", "baseline", "ablation", "settings", "study", "notes", "timings"]
    assert 1 <= len(d["recommendations"]) <= 2
    for row in [*d["recommendations"], d["baseline"]]:
        assert set(row) == ROW_KEYS
        assert ArchSpec.from_dict(row["spec"]).describe() == row["architecture"]
        assert row["condition_number"] > 0 and row["condition_number_std"] >= 0
        assert row["score_tier"] in ("bound", "subsample") and row["seeds"] == [0, 1]
        assert set(row["forecast"]) == FORECAST_KEYS and row["forecast"]["steps"] == 100
        assert set(row["forecast"]["loss_ratio"]) == {"mean", "std", "values"}
        assert row["measured"] is None and row["score_loss_ratio"] is None
    assert [r["rank"] for r in d["recommendations"]] == list(range(1, len(d["recommendations"]) + 1))
    assert d["baseline"]["rank"] is None and d["baseline"]["improvement"] == 1.0
    assert set(d["settings"]["data"]) >= {"name", "source", "n_samples", "n_subsample", "input_shape", "seed"}
    assert set(d["study"]) >= {"name", "storage", "n_trials", "n_trials_this_run", "tiers", "workers"}
    if d["ablation"] is not None:
        assert set(d["ablation"]) == {"architecture", "spec", "condition_number", "condition_number_std", "steps",
                                      "summary"}


def test_same_seed_same_output(space_file):
    args = [*SMALL, "--trials", "6", "--space", space_file]
    a, b = suggest_json(*args), suggest_json(*args)
    c = suggest_json(*args, "--seed", "1")
    for d in (a, b, c):
        d.pop("timings")
    assert a == b
    assert a != c


def test_every_printed_kappa_recomputes_from_spec_and_seeds(default_space_run):
    d = default_space_run
    data = d["settings"]["data"]
    ds = load_data(data["source"], n_samples=data["n_samples"], input_shape=tuple(data["input_shape"]),
                   seed=data["seed"])
    rows = [*d["recommendations"], d["baseline"]]
    if d["ablation"]:
        rows += [s for s in d["ablation"]["steps"] if s["kappas"] is not None]
    for row in rows:
        spec = ArchSpec.from_dict(row["spec"])
        kappas = [gn_spectrum(build_pruned_model(spec, s, ds.X, ds.Y), ds.X).condition_number for s in row["seeds"]]
        assert row["kappas"] == pytest.approx(kappas, rel=1e-8)
        assert row["condition_number"] == pytest.approx(sum(kappas) / len(kappas), rel=1e-8)
    best, base = d["recommendations"][0], d["baseline"]
    assert best["improvement"] == pytest.approx(base["condition_number"] / best["condition_number"])


def test_csv_and_plots(tmp_path, space_file):
    csv_path, out = tmp_path / "rows.csv", tmp_path / "out"
    res = run(*SMALL, "--trials", "6", "--space", space_file, "--csv", str(csv_path), "--out", str(out))
    assert res.exit_code == 0, res.output
    header = csv_path.read_text().splitlines()[0].split(",")
    assert {"rank", "architecture", "condition_number", "condition_number_std", "params", "score", "score_tier",
            "seeds", "spec", "reasons", "improvement"} <= set(header)
    assert len(csv_path.read_text().splitlines()) == 1 + 2 + 1  # header, 2 rows, baseline
    for name in ("kappa_per_trial.png", "pareto_front.png", "param_importances.png", "suggest.json", "trials.csv"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "kappa_per_trial.png").read_bytes()[:4] == b"\x89PNG"


def test_pareto_objectives(space_file):
    res = run(*SMALL, "--trials", "8", "--space", space_file, "--objectives", "kappa,params", "--no-ablation")
    assert res.exit_code == 0, res.output
    assert "Pareto" in res.stdout
    d = suggest_json(*SMALL, "--trials", "8", "--space", space_file, "--objectives", "kappa,params", "--no-ablation")
    assert d["study"]["sampler"] == "NSGAIISampler" and all(r["pareto"] for r in d["recommendations"])


# ---------------------------------------------------------------------------------- budgets and errors
def test_parameter_budget_is_respected(tmp_path):
    limited = {**SPACE, "dimensions": {**SPACE["dimensions"], "width": {"choices": [8, 64]}},
               "constraints": {"max_params": 1500}}
    path = tmp_path / "limited.yaml"
    path.write_text(yaml.safe_dump(limited))
    d = suggest_json(*SMALL, "--trials", "8", "--space", str(path), "--no-ablation")
    assert all(r["params"] <= 1500 for r in d["recommendations"])
    assert d["study"]["tiers"].get("skipped", 0) + d["study"]["tiers"].get("subsample", 0) == 8


@pytest.mark.parametrize("content, message", [
    ("dimensions: {width: {low: 8, high: 16}}\nobjectives: [kappa]\nbogus: 1\n", "unknown key 'bogus'"),
    ("dimensions: {width: {low: 8, high: [}\n", "is not valid YAML"),
    ("dimensions: {depth: {choices: [2]}, width: {choices: [8]}}\nobjectives: [kappa]\n",
     "depth comes from --depth"),
    (None, "not found"),
], ids=["unknown-key", "bad-yaml", "depth-in-file", "missing"])
def test_bad_search_space_files_are_rejected_cleanly(tmp_path, content, message):
    path = tmp_path / "space.yaml"
    if content is not None:
        path.write_text(content)
    res = run(*SMALL, "--trials", "2", "--space", str(path))
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.output


def test_usage_errors_name_the_flag():
    res = run(*SMALL, "--json", "--csv", "-")
    assert res.exit_code == 2 and "--csv" in res.output
    res = run(*SMALL, "--objectives", "params")
    assert res.exit_code == 2 and "must include 'kappa' or 'forecast'" in res.output
    res = run("--trials", "1")
    assert res.exit_code == 2 and "--depth" in res.output


# ---------------------------------------------------------------------------------- storage and workers
def test_sqlite_resume_accumulates_trials(tmp_path, space_file):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = [*SMALL, "--space", space_file, "--storage", url, "--study-name", "resume", "--no-ablation"]
    first = suggest_json(*args, "--trials", "3")
    second = suggest_json(*args, "--trials", "3")
    assert first["study"]["n_trials"] == 3
    assert second["study"]["n_trials"] == 6 and second["study"]["n_trials_this_run"] == 3
    report = suggest_json(*args, "--trials", "0")
    assert report["study"]["n_trials"] == 6 and report["recommendations"] == second["recommendations"]
    res = run(*args, "--trials", "1", "--seed", "5")
    assert res.exit_code == 2 and "was created with" in res.output


def test_killed_run_resumes_from_its_storage(tmp_path, space_file):
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_worker_cmd(url, "killed", space_file, 10_000), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and _complete(url, "killed") < 3:
            time.sleep(0.2)
        assert proc.poll() is None, "the worker exited before it could be killed"
    finally:
        proc.kill()
        proc.wait()
    done = _complete(url, "killed")
    assert done >= 3
    d = suggest_json(*SMALL, "--space", space_file, "--storage", url, "--study-name", "killed", "--trials", "2",
                     "--no-ablation")
    assert d["study"]["n_trials"] == done + 2 and d["study"]["n_trials_this_run"] >= 2


def _complete(url, study):
    try:
        s = optuna.load_study(study_name=study, storage=url)
    except KeyError:  # not created yet
        return 0
    return len(s.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def _worker_cmd(url, study, space_file, trials):
    return [sys.executable, "-m", "gnadvisor.cli.main", "suggest", *SMALL, "--space", space_file, "--storage", url,
            "--study-name", study, "--trials", str(trials), "--no-ablation", "--json"]


def _two_workers_then_report(url, study, space_file, trials=4):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(_worker_cmd(url, study, space_file, trials), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    report = suggest_json(*SMALL, "--space", space_file, "--storage", url, "--study-name", study, "--trials", "0",
                          "--no-ablation")
    # trials of both processes landed in the one study
    assert report["study"]["n_trials"] == 2 * trials
    assert sorted(report["study"]["workers"].values()) == [trials, trials]
    assert len({w for o in outs for w in o["study"]["workers"]}) == 2
    # the final table covers them: its candidates are the best-scored of all trials, whoever ran them
    study_obj = optuna.load_study(study_name=study, storage=url)
    ranked = sorted((t.values[0], t.number, json.dumps(t.user_attrs["spec"], sort_keys=True))
                    for t in study_obj.trials if t.values is not None and all(v <= 0 for v in t.user_attrs["constraints"]))
    best = []
    for _, _, spec in ranked:
        if spec not in best:
            best.append(spec)
    got = sorted(json.dumps(r["spec"], sort_keys=True) for r in report["recommendations"])
    assert got == sorted(best[:2])
    by_worker = {}
    for t in study_obj.trials:
        by_worker.setdefault(t.user_attrs["worker"], []).append(json.dumps(t.params, sort_keys=True))
    a, b = by_worker.values()
    assert a != b  # per-trial sampler seeds: the workers do not repeat each other's trials
    return study_obj


def test_two_worker_processes_share_a_sqlite_study(tmp_path, space_file):
    _two_workers_then_report(f"sqlite:///{tmp_path / 'shared.db'}", "shared", space_file)


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("GNADVISOR_TEST_POSTGRES_URL"), reason="GNADVISOR_TEST_POSTGRES_URL is unset")
def test_two_worker_processes_share_a_postgres_study(space_file):
    url = os.environ["GNADVISOR_TEST_POSTGRES_URL"]
    study = f"test-{uuid.uuid4().hex[:12]}"
    try:
        _two_workers_then_report(url, study, space_file)
    finally:
        optuna.delete_study(study_name=study, storage=url)


@pytest.mark.slow
def test_depth20_end_to_end_beats_the_baseline_100x():
    """The headline promise at reduced budgets: depth 20 on digits, verified >= 100x better than the baseline."""
    d = suggest_json("--depth", "20", "--trials", "60", "--samples", "128", "--subsample", "32", "--init-seeds", "2")
    best, base = d["recommendations"][0], d["baseline"]
    assert base["architecture"] == "mlp d20 w91 relu kaiming_normal"
    assert base["condition_number"] / best["condition_number"] >= 100
    assert len(d["recommendations"]) == 3 and d["ablation"]["steps"]
    assert all(r["n_samples"] == 128 for r in [*d["recommendations"], base])


def test_one_seed_has_no_spread(space_file):
    """A sample standard deviation over one seed is undefined: null in JSON, no '± 0' in the table."""
    args = ["--space", space_file, "--trials", "4", "--no-ablation", "--depth", "2", "--samples", "30",
            "--subsample", "15", "--init-seeds", "1", "--top", "1"]
    out = suggest_json(*args)
    for row in out["recommendations"] + [out["baseline"]]:
        assert row["condition_number_std"] is None and len(row["kappas"]) == 1
    text = run(*args).output
    assert "± 0" not in text and "± nan" not in text


def test_fewer_rows_than_top_are_explained(space_file):
    args = ["--space", space_file, "--trials", "2", "--no-ablation", "--depth", "2", "--samples", "30",
            "--subsample", "15", "--init-seeds", "1", "--top", "5"]
    n = len(suggest_json(*args)["recommendations"])
    text = run(*args).output
    assert n < 5 and f"Only {n} of --top 5 rows" in text
