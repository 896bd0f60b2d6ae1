"""`gnadvisor score`: every printed number against gn_spectrum's reference route; one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import gnadvisor as gna
from gnadvisor.cli.main import cli
from gnadvisor.loading import data_for_model, load_model

from cases import naive_gn_eigenvalues, naive_jacobian

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "examples" / "models"


def run(*args):
    res = CliRunner().invoke(cli, list(args))
    return res


def score_json(*args):
    res = run("score", *args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)  # stdout only: warnings on stderr must not break the JSON


@pytest.mark.parametrize(
    "target, extra",
    [
        (f"{MODELS}/mlp_bn.py:make_model", ["--kwargs", '{"width": 8, "depth": 2}', "--samples", "12"]),
        (f"{MODELS}/resnet_cifar.py:make_model", ["--kwargs", '{"blocks": 1, "width": 4}', "--input-shape", "3,8,8",
                                                  "--samples", "6"]),
        (f"{MODELS}/custom_block.py:GatedNet", ["--kwargs", '{"width": 6}', "--samples", "10"]),
    ],
    ids=["mlp-bn", "resnet", "custom"],
)
def test_score_examples_match_jacobian_route(target, extra):
    out = score_json(target, *extra)
    kwargs = json.loads(extra[1])
    model = load_model(target, kwargs)
    shape = None
    if "--input-shape" in extra:
        shape = tuple(int(s) for s in extra[extra.index("--input-shape") + 1].split(","))
    ds = data_for_model(model, "digits", n_samples=int(extra[extra.index("--samples") + 1]), input_shape=shape)
    ref = gna.gn_spectrum(model, ds.X, method="jacobian")
    assert out["condition_number"] == pytest.approx(ref.condition_number, rel=1e-8)
    assert out["lambda_max"] == pytest.approx(ref.lambda_max, rel=1e-8)
    assert out["lambda_min"] == pytest.approx(ref.lambda_min, rel=1e-8)
    assert out["rank"] == ref.rank
    assert out["params"] == ref.n_params
    np.testing.assert_allclose(out["eigenvalues"], ref.eigenvalues, rtol=1e-8, atol=1e-8 * ref.lambda_min)
    # per-layer blocks: kappa of the GN restricted to the block, trace share = ||J_b||_F^2 / ||J||_F^2
    model.train()
    J = naive_jacobian(model, ds.X)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    sizes = [p.numel() for p in model.parameters() if p.requires_grad]
    offsets = np.cumsum([0] + sizes)
    total = float((J**2).sum())
    assert sum(b["trace_share"] for b in out["layers"]) == pytest.approx(1.0)
    for block in out["layers"]:
        cols = np.concatenate([np.arange(offsets[names.index(p)], offsets[names.index(p) + 1]) for p in block["params"]])
        Jb = J[:, cols]
        assert block["trace_share"] == pytest.approx(float((Jb**2).sum()) / total, rel=1e-8, abs=1e-14)
        ev = naive_gn_eigenvalues(Jb, ds.n_samples)
        ev = ev[ev > max(Jb.shape) * np.finfo(float).eps * ev[0]]
        kappa = ev[0] / ev[-1]  # lambda_min is only known to ~ eps * lambda_max: relative error ~ kappa * eps
        assert block["condition_number"] == pytest.approx(kappa, rel=max(1e-8, 1e3 * kappa * np.finfo(float).eps))
        assert block["rank"] == len(ev)


def test_score_human_table_and_plots(tmp_path):
    res = run("score", f"{MODELS}/custom_block.py:GatedNet", "--kwargs", '{"width": 6}', "--samples", "10",
              "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    for text in ("condition number kappa", "lambda_min != 0", "rank rule", "where it comes from", "kappa(Sigma)"):
        assert text in res.output
    assert (tmp_path / "spectrum.png").stat().st_size > 1000
    assert (tmp_path / "layers.png").stat().st_size > 1000


def test_score_linear_chain_shows_bounds_and_theoretical_rank(tmp_path):
    f = tmp_path / "lin.py"
    f.write_text(
        "import torch\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Linear(64, 80, bias=False), torch.nn.Linear(80, 10, bias=False))\n"
    )
    out = score_json(f"{f}:make", "--samples", "100", "--whiten", "--data", "synthetic")
    assert out["method"] == "kronecker"
    assert out["data_condition_number"] == pytest.approx(1.0, rel=1e-8)
    assert out["rank"] == out["theoretical_rank"]
    assert out["bounds"]["lemma1"]["valid"]
    # Lemma 1 holds with equality for whitened data (Sigma = I/n)
    assert out["bounds"]["lemma1"]["value"] == pytest.approx(out["condition_number"], rel=1e-8)


def test_score_checkpoints_show_kappa_over_training(tmp_path):
    target = f"{MODELS}/custom_block.py:GatedNet"
    model = load_model(target, {"width": 6})
    paths = []
    for i in range(2):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.0 + 0.5 * i)
        paths.append(tmp_path / f"ep{i}.pt")
        torch.save(model.state_dict(), paths[-1])
    out = score_json(target, "--kwargs", '{"width": 6}', "--samples", "10", "--no-layers",
                     "--weights", str(paths[0]), "--weights", str(paths[1]))
    assert [c["checkpoint"] for c in out["checkpoints"]] == [str(p) for p in paths]
    ds = data_for_model(model, "digits", n_samples=10)
    for c, p in zip(out["checkpoints"], paths):
        m = load_model(target, {"width": 6})
        m.load_state_dict(torch.load(p))
        assert c["condition_number"] == pytest.approx(gna.gn_spectrum(m, ds.X, method="jacobian").condition_number, rel=1e-8)


def test_score_saved_module_torchscript_and_package_target(tmp_path, monkeypatch):
    model = load_model(f"{MODELS}/custom_block.py:GatedNet", {"width": 6})
    ref = score_json(f"{MODELS}/custom_block.py:GatedNet", "--kwargs", '{"width": 6}', "--samples", "10", "--no-layers")
    torch.save(model, tmp_path / "whole.pt")
    out = score_json(str(tmp_path / "whole.pt"), "--samples", "10", "--no-layers")
    assert out["condition_number"] == pytest.approx(ref["condition_number"], rel=1e-10)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 12), torch.nn.Tanh(), torch.nn.Linear(12, 10))
    batch = torch.export.Dim("batch")
    exported = torch.export.export(mlp, (torch.randn(4, 64),), dynamic_shapes=({0: batch},))
    torch.export.save(exported, tmp_path / "exported.pt2")
    out = score_json(str(tmp_path / "exported.pt2"), "--samples", "10", "--no-layers", "--input-shape", "64")
    ds = data_for_model(mlp, "digits", n_samples=10)
    assert out["condition_number"] == pytest.approx(gna.gn_spectrum(mlp, ds.X, method="jacobian").condition_number, rel=1e-8)
    torch.jit.save(torch.jit.script(mlp), tmp_path / "scripted.pt")
    _err(run("score", str(tmp_path / "scripted.pt"), "--input-shape", "64"), "TorchScript")
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(
        "import torch\nclass Net(torch.nn.Sequential):\n"
        "    def __init__(self, width=5):\n"
        "        torch.manual_seed(1)\n"
        "        super().__init__(torch.nn.Linear(64, width), torch.nn.GELU(), torch.nn.Linear(width, 10))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = score_json("mypkg.nets:Net", "--kwargs", '{"width": 7}', "--samples", "10", "--no-layers")
    assert out["params"] == 64 * 7 + 7 + 7 * 10 + 10


def _err(res, pattern):
    assert res.exit_code != 0, res.output
    lines = [l for l in res.output.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), res.output
    assert "Traceback" not in res.output
    import re

    assert re.search(pattern, lines[0]), lines[0]


def test_score_errors_are_one_line(tmp_path):
    _err(run("score", str(tmp_path / "missing.py") + ":make"), "does not exist")
    f = tmp_path / "m.py"
    f.write_text(
        "import torch\n"
        "def raises():\n    raise RuntimeError('boom')\n"
        "def not_tensor():\n"
        "    class M(torch.nn.Module):\n"
        "        def __init__(self):\n            super().__init__(); self.l = torch.nn.Linear(64, 2)\n"
        "        def forward(self, x):\n            return {'out': self.l(x)}\n"
        "    return M()\n"
        "def wrong_in():\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(49, 3))\n"
        "def small():\n    return torch.nn.Sequential(torch.nn.Linear(64, 30), torch.nn.ReLU(), torch.nn.Linear(30, 10))\n"
        "def not_module():\n    return 3\n"
    )
    _err(run("score", f"{f}:nothere"), "has no attribute 'nothere'")
    _err(run("score", f"{f}:raises"), "raised RuntimeError: boom")
    _err(run("score", f"{f}:not_tensor", "--samples", "5"), "must return a tensor")
    _err(run("score", f"{f}:wrong_in", "--samples", "5", "--input-shape", "64"), "could not be applied to inputs of shape")
    _err(run("score", f"{f}:not_module"), "not a torch.nn.Module")
    _err(run("score", f"{f}:small", "--kwargs", "{bad"), "--kwargs must be a JSON object")
    _err(run("score", f"{f}:small", "--samples", "50", "--method", "gram", "--max-memory", "1KB"),
         "over the memory budget.*lanczos")
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    _err(run("score", f"{f}:small", "--data", str(bad)), "bad.npz")
    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((10, 32)))
    _err(run("score", f"{f}:small", "--data", str(wide)), r"model takes inputs of shape 64 .*wide.npy")
    _err(run("score", str(f)), r"needs the factory or class to use.*small")
    _err(run("score", str(tmp_path / "nothing.pt")), "no such file")
    torch.save({"w": torch.zeros(2)}, tmp_path / "sd.pt")
    _err(run("score", str(tmp_path / "sd.pt")), "state dict")
    _err(run("score", f"{f}:small", "--weights", str(tmp_path / "sd.pt")), "does not fit the model.*Missing key.*0.weight")


def test_help_on_every_command():
    res = run("--help")
    assert res.exit_code == 0 and "score" in res.output
    from gnadvisor.cli.main import _COMMANDS

    assert set(_COMMANDS) == {"score", "suggest", "prune", "validate"}
    for cmd in _COMMANDS:
        assert cmd in res.output
        sub = run(cmd, "--help")
        assert sub.exit_code == 0 and "Usage" in sub.output, (cmd, sub.output)
    assert "RUNS ITS CODE" in " ".join(run("score", "--help").output.split())


# ------------------------------------------------------------------ training-speed forecast (--forecast-steps)


def _gd_losses_linear(net, X, Y, lr, steps):
    """Hand-written full-batch GD on (1/2n) sum ||W x + b - y||^2: losses before each step and at the end."""
    W, b = net.weight.detach().clone(), net.bias.detach().clone()
    n, out = X.shape[0], []
    for _ in range(steps + 1):
        R = X @ W.T + b - Y
        out.append(float((R**2).sum()) / (2 * n))
        W, b = W - lr * (R.T @ X) / n, b - lr * R.sum(0) / n
    return np.array(out)


@pytest.mark.parametrize("n, d, k, route", [(6, 8, 2, "gram"), (20, 3, 2, "jacobian")], ids=["shared-gram", "two-routes"])
def test_score_model_forecast_is_gn_forecast_and_exact_gd_on_a_linear_model(n, d, k, route):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    Y = torch.randn(n, k, generator=g, dtype=torch.float64)
    torch.manual_seed(1)
    net = torch.nn.Linear(d, k).double()  # with bias: linear in its parameters, so the forecast is exact
    T = 25
    rep = gna.score_model(net, X, Y, forecast_steps=T, per_layer=False)
    fc = rep.forecast
    assert rep.spectrum.method == route
    assert ("Gram and eigendecomposition shared with the spectrum" in fc.notes) == (route == "gram")
    direct = gna.gn_forecast(net, X, Y, steps=T)
    np.testing.assert_allclose(fc.losses, direct.losses, rtol=1e-12, atol=0)
    assert (fc.ratio, fc.log_decrease) == pytest.approx((direct.ratio, direct.log_decrease), rel=1e-12)
    # lr = 1 / lambda_max of (1/n) J J^T with J from one autograd call per output entry
    lam = naive_gn_eigenvalues(naive_jacobian(net, X), n)
    assert fc.lr == pytest.approx(1 / lam[0], rel=1e-10)
    np.testing.assert_allclose(fc.losses, _gd_losses_linear(net, X, Y, fc.lr, T), rtol=1e-8, atol=1e-12)
    assert fc.losses[0] == pytest.approx(float(((net(X) - Y) ** 2).sum()) / (2 * n), rel=1e-12)
    # the spectrum that shares the Gram is gn_spectrum's
    ref = gna.gn_spectrum(net, X, method="jacobian")
    assert rep.spectrum.rank == ref.rank
    np.testing.assert_allclose(rep.spectrum.eigenvalues, ref.eigenvalues, rtol=1e-10, atol=1e-12 * ref.lambda_max)
    # a given step size
    rep = gna.score_model(net, X, Y, forecast_steps=T, forecast_lr=0.03, per_layer=False)
    assert rep.forecast.lr == 0.03 and rep.forecast.lr_scale is None
    np.testing.assert_allclose(rep.forecast.losses, _gd_losses_linear(net, X, Y, 0.03, T), rtol=1e-8, atol=1e-12)
    d = rep.to_dict()
    assert d["forecast"]["steps"] == T and len(d["forecast"]["losses"]) == T + 1
    assert "forecast" not in gna.score_model(net, X, per_layer=False).to_dict()


def test_score_model_forecast_argument_errors():
    X, Y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    net = torch.nn.Linear(3, 2).double()
    with pytest.raises(gna.GNAdvisorError, match="needs targets Y"):
        gna.score_model(net, X, forecast_steps=3)
    with pytest.raises(gna.GNAdvisorError, match="needs forecast_steps"):
        gna.score_model(net, X, Y, forecast_lr=0.1)
    with pytest.raises(gna.GNAdvisorError, match=r"one column per model output: the model has 2 outputs.*3 columns"):
        gna.score_model(net, X, torch.randn(8, 3), forecast_steps=3)
    with pytest.raises(gna.GNAdvisorError, match="one row per sample: 8 rows"):
        gna.score_model(net, X, Y[:7], forecast_steps=3)
    with pytest.raises(gna.GNAdvisorError, match="forecast_lr must be a finite number > 0"):
        gna.score_model(net, X, Y, forecast_steps=3, forecast_lr=-1.0)


def test_score_cli_forecast_on_digits_json_csv_table(tmp_path):
    target = f"{MODELS}/mlp_bn.py:make_model"
    args = [target, "--kwargs", '{"width": 8, "depth": 2}', "--samples", "12", "--forecast-steps", "7"]
    out = score_json(*args)
    model = load_model(target, {"width": 8, "depth": 2})
    ds = data_for_model(model, "digits", n_samples=12)
    assert ds.Y.shape == (12, 10) and torch.equal(ds.Y.sum(1), torch.ones(12, dtype=ds.Y.dtype))  # one-hot labels
    ref = gna.gn_forecast(model, ds.X, ds.Y, steps=7)
    fc = out["forecast"]
    np.testing.assert_allclose(fc["losses"], ref.losses, rtol=1e-10)
    for key in ("initial_loss", "final_loss", "ratio", "log_decrease", "lr"):
        assert fc[key] == pytest.approx(getattr(ref, key), rel=1e-10), key
    assert fc["steps"] == 7 and fc["lr_scale"] == 1.0
    csv_path = tmp_path / "s.csv"
    res = run("score", *args, "--csv", str(csv_path))
    assert res.exit_code == 0, res.output
    from gnadvisor.cli.options import fmt

    for label, key in (("loss after 0 steps", "initial_loss"), ("loss after 7 steps", "final_loss"),
                       ("ratio L_T / L_0", "ratio"), ("log decrease log(L_0 / L_T)", "log_decrease"), ("lr used", "lr")):
        line = next(ln for ln in res.output.splitlines() if ln.startswith(label))
        assert line.split()[-1] == fmt(fc[key]), line
    import pandas as pd

    row = pd.read_csv(csv_path).iloc[0]
    for key in ("steps", "lr", "initial_loss", "final_loss", "ratio", "log_decrease"):
        assert row[f"forecast_{key}"] == pytest.approx(fc[key], rel=1e-12), key


def test_score_cli_forecast_with_targets_file_and_checkpoints(tmp_path):
    from sklearn.datasets import load_digits

    target = f"{MODELS}/custom_block.py:GatedNet"
    model = load_model(target, {"width": 6})
    # user targets as a function of the inputs: the subsample must pick matching rows of X and Y
    A = np.random.default_rng(2).normal(size=(64, 10))
    np.save(tmp_path / "y.npy", (np.asarray(load_digits().data, dtype=np.float64) / 16.0) @ A)
    paths = []
    for i in range(2):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.0 + 0.3 * i)
        paths.append(tmp_path / f"ep{i}.pt")
        torch.save(model.state_dict(), paths[-1])
    out = score_json(target, "--kwargs", '{"width": 6}', "--samples", "9", "--seed", "4", "--no-layers",
                     "--targets", str(tmp_path / "y.npy"), "--forecast-steps", "5", "--lr", "0.002",
                     "--weights", str(paths[0]), "--weights", str(paths[1]))
    ds = data_for_model(model, "digits", n_samples=9, seed=4)
    Y = ds.X @ torch.from_numpy(A)
    for c, p in zip(out["checkpoints"], paths):
        m = load_model(target, {"width": 6})
        m.load_state_dict(torch.load(p))
        ref = gna.gn_forecast(m, ds.X, Y, steps=5, lr=0.002)
        assert c["forecast"]["lr"] == 0.002
        np.testing.assert_allclose(c["forecast"]["losses"], ref.losses, rtol=1e-10)
    assert out["checkpoints"][0]["forecast"]["final_loss"] != out["checkpoints"][1]["forecast"]["final_loss"]
    res = run("score", target, "--kwargs", '{"width": 6}', "--samples", "9", "--seed", "4", "--no-layers",
              "--targets", str(tmp_path / "y.npy"), "--forecast-steps", "5", "--lr", "0.002",
              "--weights", str(paths[0]), "--weights", str(paths[1]))
    assert res.exit_code == 0 and "forecast loss@5" in res.output
    # targets inside the data file (keys X / Y)
    X = ds.X.numpy()
    np.savez(tmp_path / "xy.npz", X=X, Y=Y.numpy())
    out = score_json(target, "--kwargs", '{"width": 6}', "--data", str(tmp_path / "xy.npz"), "--no-layers",
                     "--forecast-steps", "4")
    ref = gna.gn_forecast(load_model(target, {"width": 6}), ds.X, Y, steps=4)
    np.testing.assert_allclose(out["forecast"]["losses"], ref.losses, rtol=1e-10)


def test_score_cli_forecast_errors_are_one_line(tmp_path):
    target = f"{MODELS}/mlp_bn.py:make_model"
    base = [target, "--kwargs", '{"width": 4, "depth": 1}', "--samples", "6", "--no-layers", "--forecast-steps", "3"]
    np.save(tmp_path / "narrow.npy", np.zeros((1797, 3)))
    np.save(tmp_path / "short.npy", np.zeros((1796, 10)))
    (tmp_path / "bad.npy").write_bytes(b"\x00 garbage \xff" * 8)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(6, 64)))
    _err(run("score", *base, "--targets", str(tmp_path / "narrow.npy")),
         r"one column per model output: the model has 10 outputs per sample, the targets have 3 columns")
    _err(run("score", *base, "--targets", str(tmp_path / "short.npy")), r"one row per sample of digits \(1797 rows.*got 1796")
    _err(run("score", *base, "--targets", str(tmp_path / "bad.npy")), r"bad\.npy.*could not be read")
    _err(run("score", *base, "--targets", str(tmp_path / "none.npy")), "does not exist")
    _err(run("score", *base, "--data", "synthetic"), "synthetic data has no targets.*--targets")
    _err(run("score", *base, "--data", str(tmp_path / "x.npy")), r"x\.npy has no targets.*--targets")
    _err(run("score", *base[:-2], "--lr", "0.1"), "--lr is for the training-speed forecast: give --forecast-steps")
    _err(run("score", *base[:-2], "--targets", str(tmp_path / "short.npy")), "--targets is for the training-speed forecast")
    _err(run("score", *base, "--lr", "-1"), "forecast_lr must be a finite number > 0")


def test_score_all_zero_inputs_report_nan_data_condition(tmp_path):
    # Sigma = 0: kappa(Sigma) is undefined (was an internal IndexError); the GN still exists through the biases
    np.save(tmp_path / "z.npy", np.zeros((6, 64)))
    out = score_json(f"{MODELS}/mlp_bn.py:make_model", "--kwargs", '{"width": 4, "depth": 1}',
                     "--data", str(tmp_path / "z.npy"), "--no-layers")
    assert out["data_condition_number"] is None and out["data_rank"] == 0


@pytest.mark.parametrize("args, pattern", [
    (("score", "x.py:f", "--device", "tpu"), r"'--device'.*'tpu'.*see 'gnadvisor score --help'"),
    (("prune", "mlp", "--sparsity", "1.0"), r"'--sparsity'.*see 'gnadvisor prune --help'"),
    (("suggest",), r"Missing option '--depth'.*see 'gnadvisor suggest --help'"),
    (("validate", "--steps", "0"), r"'--steps'.*see 'gnadvisor validate --help'"),
    (("nosuch",), r"No such command 'nosuch'"),
])
def test_usage_errors_are_one_line(args, pattern):
    res = run(*args)
    assert res.exit_code == 2
    _err(res, pattern)
