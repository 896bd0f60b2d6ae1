"""The training forecast and the training check in the architecture search: every number is
recomputed independently (hand-built Jacobians, a hand-written GD loop), the forecast objective,
its interaction with multi-objective studies, stored studies and data without targets."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch

from gnadvisor import GNAdvisorError, gn_forecast, gn_spectrum, load_data
from gnadvisor.search import ArchSpec, Score, SearchSpace, build_model, build_pruned_model, score_architecture
from gnadvisor.search.study import (
    TrainingForecast,
    forecast_architecture,
    measure_training,
    suggest_architectures,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

SMALL = {
    "dimensions": {
        "family": {"choices": ["mlp", "resmlp"]},
        "width": {"low": 8, "high": 24},
        "activation": {"choices": ["relu", "tanh"]},
        "skip_beta": {"choices": [0.0, 1.0]},
        "init": {"choices": ["kaiming_normal", "orthogonal"]},
    },
    "objectives": ["kappa"],
}
LINEAR = {  # deep linear chains, which the closed-form bounds cover
    "dimensions": {"width": {"choices": [8, 12, 16]}, "init": {"choices": ["kaiming_normal", "orthogonal"]}},
    "fixed": {"family": "mlp", "activation": "linear"},
    "objectives": ["kappa"],
}
RUN = dict(n_samples=24, n_subsample=12, n_init_seeds=2, top_k=2, ablation=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", n_samples=16, seed=0)


def _spec(**kw):
    kw = {"depth": 2, "width": 8, "input_dim": 64, "output_dim": 10, **kw}
    return ArchSpec(**kw)


def _hand_forecast(model, X, Y, steps):
    """L_t/L_0 from an explicit per-sample Jacobian (torch.func), K = J J^T / n, lr = 1/lambda_max."""
    net = build_copy(model)
    params = {k: v.detach() for k, v in net.named_parameters()}

    def f(p):
        return torch.func.functional_call(net, p, (X,)).reshape(-1)

    jac = torch.func.jacrev(f)(params)
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], dim=1)
    n = X.shape[0]
    K = J @ J.T / n
    lam, U = torch.linalg.eigh(K)
    r0 = (f(params) - Y.reshape(-1)).detach()
    proj = (U.T @ r0) ** 2
    lr = 1.0 / lam.max()
    lam = torch.where(lam > lam.max() * 1e-13, lam, torch.zeros_like(lam))
    losses = [float(((1 - lr * lam) ** (2 * t) * proj).sum() / (2 * n)) for t in (0, steps)]
    return losses[1] / losses[0], float(lr)


def build_copy(model):
    import copy

    return copy.deepcopy(model).double()


def _hand_gd(model, X, Y, steps, lr):
    """Plain full-batch GD on ||f(X) - Y||^2 / (2n), written out: L_N / L_0."""
    net = build_copy(model)
    n = X.shape[0]

    def loss():
        return ((net(X) - Y) ** 2).sum() / (2 * n)

    with torch.no_grad():
        L0 = float(loss())
    for _ in range(steps):
        net.zero_grad()
        value = loss()
        value.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= lr * p.grad
    with torch.no_grad():
        return float(loss()) / L0


# ---------------------------------------------------------------------------------- measurements
def test_forecast_architecture_matches_a_hand_built_jacobian(digits):
    spec = _spec(activation="tanh", family="resmlp", skip_beta=1.0)
    fc = forecast_architecture(spec, digits.X, digits.Y, seeds=[0, 3], steps=40)
    assert isinstance(fc, TrainingForecast) and fc.seeds == (0, 3) and fc.steps == 40
    for i, s in enumerate((0, 3)):
        ratio, lr = _hand_forecast(build_model(spec, s), digits.X, digits.Y, 40)
        assert fc.loss_ratios[i] == pytest.approx(ratio, rel=1e-6)
        assert fc.lrs[i] == pytest.approx(lr, rel=1e-9)
        assert fc.log_decreases[i] == pytest.approx(-math.log(ratio), rel=1e-6)
    assert fc.loss_ratio == pytest.approx(np.mean(fc.loss_ratios))
    assert fc.loss_ratio_std == pytest.approx(np.std(fc.loss_ratios, ddof=1))
    d = fc.to_dict()
    assert set(d) == {"steps", "lr_scale", "seeds", "n_samples", "lr", "loss_ratio", "log_decrease", "initial_loss"}
    assert d["loss_ratio"]["values"] == list(fc.loss_ratios) and d["loss_ratio"]["mean"] == fc.loss_ratio


def test_measure_training_matches_a_hand_written_gd_loop(digits):
    spec = _spec(activation="tanh", width=12)
    m = measure_training(spec, digits.X, digits.Y, seeds=[1, 2], steps=15)
    for i, s in enumerate((1, 2)):
        model = build_model(spec, s)
        _, lr = _hand_forecast(model, digits.X, digits.Y, 15)
        assert m.lrs[i] == pytest.approx(lr, rel=1e-9)
        assert m.loss_ratios[i] == pytest.approx(_hand_gd(model, digits.X, digits.Y, 15, m.lrs[i]), rel=1e-9)
        assert m.forecast_loss_ratios[i] == pytest.approx(_hand_forecast(model, digits.X, digits.Y, 15)[0], rel=1e-6)
        assert len(m.curves[i]) == 16 and not m.diverged[i]
    # a given forecast is reused (same lr), and must be of the same seeds
    fc = forecast_architecture(spec, digits.X, digits.Y, seeds=[1, 2], steps=100)
    again = measure_training(spec, digits.X, digits.Y, seeds=[1, 2], steps=15, forecast=fc)
    assert again.loss_ratios == pytest.approx(m.loss_ratios, rel=1e-12)
    with pytest.raises(GNAdvisorError, match="same seeds"):
        measure_training(spec, digits.X, digits.Y, seeds=[0, 2], steps=15, forecast=fc)


def test_forecast_score_is_gn_forecast_on_the_subsample(digits):
    spec = _spec(activation="tanh")
    score = score_architecture(spec, digits.X, Y=digits.Y, n_subsample=10, seed=2, objective="forecast",
                               forecast_steps=30)
    model = build_model(spec, 2)
    want = gn_forecast(model, digits.X[:10], digits.Y[:10], steps=30)
    assert score.tier == "subsample" and score.n_samples == 10 and score.forecast_steps == 30
    assert score.loss_ratio == pytest.approx(want.ratio, rel=1e-10)
    assert score.kappa == pytest.approx(gn_spectrum(model, digits.X[:10]).condition_number, rel=1e-6)
    assert score.value("forecast") == pytest.approx(math.log10(want.ratio))
    assert score.value("kappa") == score.log10_kappa
    assert Score.from_dict(score.to_dict()) == score
    with pytest.raises(GNAdvisorError, match="needs targets"):
        score_architecture(spec, digits.X, n_subsample=10, objective="forecast")


def test_bound_tier_does_not_score_the_forecast_objective():
    ds = load_data("synthetic", n_samples=40, input_dim=4, output_dim=2, seed=0)
    linear = ArchSpec(depth=2, width=8, activation="linear", input_dim=4, output_dim=2)
    assert score_architecture(linear, ds.X, Y=ds.Y).tier == "bound"
    score = score_architecture(linear, ds.X, Y=ds.Y, n_subsample=20, objective="forecast")
    assert score.tier == "subsample" and score.n_samples == 20 and 0 < score.loss_ratio < 1


# ---------------------------------------------------------------------------------- the study
@pytest.fixture(scope="module")
def forecast_run():
    return suggest_architectures(2, space=SearchSpace.from_dict(SMALL), objective="forecast", forecast_steps=50,
                                 trials=8, validate_steps=10, **RUN)


def test_forecast_objective_scores_every_trial_and_ranks_by_the_verified_forecast(forecast_run):
    res = forecast_run
    assert res.settings["objective"] == "forecast" and res.settings["objectives"] == ["forecast"]
    frame = res.trials
    assert set(frame["tier"]) == {"subsample"}
    for ratio, values in zip(frame["loss_ratio"], frame["values"]):
        assert values[0] == pytest.approx(math.log10(ratio))
    # the candidates are the distinct best-forecast trials
    best = []
    for _, row in frame[frame["feasible"]].sort_values(["loss_ratio", "number"]).iterrows():
        if row["architecture"] not in best:
            best.append(row["architecture"])
    assert sorted(r.spec.describe() for r in res.recommendations) == sorted(best[:2])
    ratios = [r.forecast.loss_ratio for r in res.recommendations]
    assert ratios == sorted(ratios) and [r.rank for r in res.recommendations] == [1, 2]
    ds = load_data("digits", n_samples=24, seed=0)
    for r in [*res.recommendations, res.baseline]:
        assert r.forecast.steps == 50 and r.forecast.seeds == (0, 1)
        want = [gn_forecast(build_pruned_model(r.spec, s, ds.X, ds.Y), ds.X, ds.Y, steps=50).ratio for s in (0, 1)]
        assert r.forecast.loss_ratios == pytest.approx(want, rel=1e-10)
    assert res.baseline.score.loss_ratio is not None
    assert any("rows ranked by the mean forecast" in n for n in res.notes)


def test_training_check_trains_the_winner_and_the_baseline(forecast_run):
    res = forecast_run
    first, second = res.recommendations
    assert first.measured is not None and res.baseline.measured is not None and second.measured is None
    ds = load_data("digits", n_samples=24, seed=0)
    for r in (first, res.baseline):
        m = r.measured
        assert m.steps == 10 and m.lrs == pytest.approx(r.forecast.lrs, rel=1e-12)
        for s, lr, got in zip(m.seeds, m.lrs, m.loss_ratios):
            assert got == pytest.approx(_hand_gd(build_model(r.spec, s), ds.X, ds.Y, 10, lr), rel=1e-9)
    d = first.to_dict()
    assert d["measured"]["loss_ratio"]["values"] == list(first.measured.loss_ratios)
    assert second.to_dict()["measured"] is None
    assert res.timings["validate_s"] > 0


def test_kappa_objective_still_forecasts_every_row():
    res = suggest_architectures(2, space=SearchSpace.from_dict(SMALL), trials=6, forecast_steps=20, **RUN)
    means = [r.condition_number for r in res.recommendations]
    assert means == sorted(means)  # ranked by kappa, not by the forecast
    assert all(r.forecast is not None and r.forecast.steps == 20 for r in [*res.recommendations, res.baseline])
    assert all(r.measured is None for r in [*res.recommendations, res.baseline])
    assert res.recommendations[0].score.loss_ratio is None and "loss_ratio" not in res.recommendations[0].score.to_dict()
    off = suggest_architectures(2, space=SearchSpace.from_dict(SMALL), trials=2, forecast_steps=0, **RUN)
    assert all(r.forecast is None for r in [*off.recommendations, off.baseline])
    with pytest.raises(GNAdvisorError, match="needs forecast_steps >= 1"):
        suggest_architectures(2, space=SearchSpace.from_dict(SMALL), trials=2, objective="forecast",
                              forecast_steps=0, **RUN)


def test_forecast_with_params_is_a_pareto_front_ranked_by_the_forecast():
    res = suggest_architectures(2, space=SearchSpace.from_dict(SMALL), objectives=["params", "forecast"],
                                forecast_steps=30, trials=10, **{**RUN, "top_k": 3})
    assert res.settings["objectives"] == ["forecast", "params"] and res.study_info["sampler"] == "NSGAIISampler"
    pts = [tuple(v) for v, f in zip(res.trials["values"], res.trials["feasible"]) if f]
    for r in res.recommendations:
        assert r.pareto is True
        mine = (math.log10(r.score.loss_ratio), r.params)
        assert not any(p[0] <= mine[0] and p[1] <= mine[1] and p != mine for p in pts)
    ratios = [r.forecast.loss_ratio for r in res.recommendations]
    assert ratios == sorted(ratios)


@pytest.mark.parametrize("objectives, objective, message", [
    (["params"], None, "must include 'kappa' or 'forecast'"),
    (["kappa", "forecast"], None, "exactly once"),
    (["kappa", "params"], "forecast", "conflicts with objectives"),
    (None, "speed", "objective must be one of"),
])
def test_objective_errors(objectives, objective, message):
    with pytest.raises(GNAdvisorError, match=message):
        suggest_architectures(2, space=SearchSpace.from_dict(SMALL), trials=1, objectives=objectives,
                              objective=objective, **RUN)


def test_objective_replaces_the_primary_of_the_space():
    space = SearchSpace.from_dict({**SMALL, "objectives": ["kappa", "params"]})
    res = suggest_architectures(2, space=space, objective="forecast", forecast_steps=10, trials=3, **RUN)
    assert res.settings["objectives"] == ["forecast", "params"]
    res = suggest_architectures(2, space=SearchSpace.from_dict(SMALL), objective="forecast", objectives=["params"],
                                forecast_steps=10, trials=3, **RUN)
    assert res.settings["objectives"] == ["forecast", "params"]


def test_resumed_study_with_another_objective_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    space = SearchSpace.from_dict(SMALL)
    suggest_architectures(2, space=space, trials=2, storage=url, study_name="k", forecast_steps=0, **RUN)
    with pytest.raises(GNAdvisorError, match=r'created with objectives=\["kappa"\], this run has objectives=\["forecast"\]'):
        suggest_architectures(2, space=space, trials=1, storage=url, study_name="k", objective="forecast", **RUN)
    # a forecast study also pins its horizon T; the kappa study does not depend on it
    suggest_architectures(2, space=space, trials=1, storage=url, study_name="k", forecast_steps=7, **RUN)
    suggest_architectures(2, space=space, trials=2, storage=url, study_name="f", objective="forecast",
                          forecast_steps=20, **RUN)
    with pytest.raises(GNAdvisorError, match="created with forecast_steps=20, this run has forecast_steps=30"):
        suggest_architectures(2, space=space, trials=1, storage=url, study_name="f", objective="forecast",
                              forecast_steps=30, **RUN)
    again = suggest_architectures(2, space=space, trials=1, storage=url, study_name="f", objective="forecast",
                                  forecast_steps=20, **RUN)
    assert again.study_info["n_trials"] == 3


def test_data_without_targets_get_no_forecast(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).standard_normal((30, 6)))
    res = suggest_architectures(2, space=SearchSpace.from_dict(SMALL), data=str(path), output_dim=3, trials=3,
                                validate_steps=5, **RUN)
    assert all(r.forecast is None and r.measured is None for r in [*res.recommendations, res.baseline])
    assert res.settings["targets"] is None and res.settings["forecast_steps"] == 0
    assert res.settings["validate_steps"] == 0
    assert any("no targets" in n for n in res.notes)
    with pytest.raises(GNAdvisorError, match="needs training targets"):
        suggest_architectures(2, space=SearchSpace.from_dict(SMALL), data=str(path), output_dim=3, trials=1,
                              objective="forecast", **RUN)


def test_synthetic_targets_are_named_in_the_notes():
    res = suggest_architectures(2, space=SearchSpace.from_dict(LINEAR), data="synthetic", input_dim=4, output_dim=2,
                                trials=2, forecast_steps=10, **{**RUN, "n_samples": 20})
    assert "random classes" in res.settings["targets"]
    assert any("random classes" in n for n in res.notes)
    assert res.recommendations[0].forecast is not None
