"""Scoring tiers, cost model, verification, baseline, ablation and the Optuna study behind suggest."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch

from gnadvisor import GNAdvisorError, gn_spectrum, load_data
from gnadvisor.bounds import gn_bounds
from gnadvisor.search import (
    TIERS,
    ArchSpec,
    BoundTier,
    Score,
    SearchSpace,
    SubsampleTier,
    ablate_architecture,
    baseline_architecture,
    build_model,
    build_pruned_model,
    exact_cost,
    open_storage,
    score_architecture,
    suggest_architectures,
    verify_architecture,
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
RUN = dict(n_samples=24, n_subsample=12, n_init_seeds=2, top_k=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", n_samples=24, seed=0)


@pytest.fixture(scope="module")
def synthetic():
    return load_data("synthetic", n_samples=40, input_dim=4, output_dim=2, seed=0)


def _spec(**kw):
    kw.setdefault("depth", 2)
    kw.setdefault("width", 12)
    kw.setdefault("input_dim", 64)
    kw.setdefault("output_dim", 10)
    return ArchSpec(**kw)


# ---------------------------------------------------------------------------------- cost model
def test_exact_cost_orders_the_expensive_routes():
    plain = _spec(depth=20, width=91)
    assert exact_cost(_spec(depth=20, width=91, batchnorm=True), 256) > 100 * exact_cost(plain, 256)
    pruned = _spec(depth=20, width=91, prune_scheme="magnitude", sparsity=0.5)
    assert exact_cost(pruned, 256) > 10 * exact_cost(plain, 256)
    assert exact_cost(_spec(depth=20, width=182), 256) > exact_cost(plain, 256)
    assert exact_cost(plain, 256) > 3 * exact_cost(plain, 128)
    # linear in x with k*d < n*k: the Kronecker route's cost does not grow with n
    linear = _spec(depth=20, width=91, activation="linear")
    assert exact_cost(linear, 4096) == exact_cost(linear, 1024) < exact_cost(plain, 1024)


def test_exact_cost_rejects_bad_sample_counts():
    with pytest.raises(GNAdvisorError, match="n_samples must be a positive integer, got 0"):
        exact_cost(_spec(), 0)


# ---------------------------------------------------------------------------------- scoring tiers
def _applicable(tier, digits, synthetic):
    """(spec, X) where ``tier`` applies."""
    if tier.name == "bound":
        return ArchSpec(depth=2, width=8, activation="linear", input_dim=4, output_dim=2), synthetic.X
    return _spec(family="resmlp", skip_beta=1.0, activation="tanh"), digits.X


@pytest.mark.parametrize("tier", TIERS, ids=lambda t: f"tier={t.name}")
class TestTierContract:
    def test_scores_where_it_applies(self, tier, digits, synthetic):
        spec, X = _applicable(tier, digits, synthetic)
        model = build_pruned_model(spec, 0, X)
        score = tier.score(spec, model, X=X, n_subsample=10, device="cpu")
        assert isinstance(score, Score)
        assert score.tier == tier.name and tier.summary
        assert math.isfinite(score.kappa) and score.kappa >= 1.0
        assert 0 < score.n_samples <= X.shape[0]
        # a score is a kappa of the same model on its samples, or an upper bound on it
        exact = gn_spectrum(model, X[: score.n_samples]).condition_number
        if tier.name == "bound":
            assert score.kappa >= exact * (1 - 1e-9)
        else:
            assert score.kappa == pytest.approx(exact, rel=1e-8)

    def test_round_trips_through_trial_storage(self, tier, digits, synthetic):
        spec, X = _applicable(tier, digits, synthetic)
        score = tier.score(spec, build_pruned_model(spec, 0, X), X=X, n_subsample=10, device="cpu")
        assert Score.from_dict(score.to_dict()) == score


def test_bound_tier_is_the_tightest_valid_bound(synthetic):
    spec = ArchSpec(depth=3, width=8, activation="linear", input_dim=4, output_dim=2)
    model = build_model(spec, 1)
    score = BoundTier().score(spec, model, X=synthetic.X, n_subsample=10, device="cpu")
    valid = [b.value for b in gn_bounds(model, synthetic.X).values() if b.kind == "bound" and b.valid]
    assert score.kappa == min(valid) and score.n_samples == synthetic.n_samples


@pytest.mark.parametrize("case", ["tanh", "batchnorm", "pruned", "singular-sigma"])
def test_bound_tier_declines_outside_its_assumptions(case, digits, synthetic):
    X = synthetic.X
    if case == "tanh":
        spec = ArchSpec(depth=2, width=8, activation="tanh", input_dim=4, output_dim=2)
    elif case == "batchnorm":
        spec = ArchSpec(depth=2, width=8, activation="linear", batchnorm=True, input_dim=4, output_dim=2)
    elif case == "pruned":
        spec = ArchSpec(depth=2, width=8, activation="linear", prune_scheme="random", sparsity=0.5,
                        input_dim=4, output_dim=2)
    else:  # digits have constant pixels: Sigma is singular and every linear-chain bound is vacuous
        spec, X = _spec(activation="linear", width=64), digits.X
    model = build_pruned_model(spec, 0, X)
    assert BoundTier().score(spec, model, X=X, n_subsample=10, device="cpu") is None
    assert score_architecture(spec, X, n_subsample=10).tier == "subsample"


def test_score_architecture_uses_the_first_tier_that_applies(synthetic):
    linear = ArchSpec(depth=2, width=8, activation="linear", input_dim=4, output_dim=2)
    assert score_architecture(linear, synthetic.X).tier == "bound"
    assert score_architecture(linear, synthetic.X, tiers=(SubsampleTier(),)).tier == "subsample"
    with pytest.raises(GNAdvisorError, match="no scoring tier applies"):
        score_architecture(ArchSpec(depth=2, width=8, activation="tanh", input_dim=4, output_dim=2), synthetic.X,
                           tiers=(BoundTier(),))


def test_score_architecture_reports_failures_as_a_tier():
    X = torch.zeros(6, 64, dtype=torch.float64)  # bias-free ReLU net on zero inputs: G = 0
    score = score_architecture(_spec(), X, n_subsample=6)
    assert score.tier == "failed" and score.kappa == math.inf and "zero" in score.detail
    assert score.log10_kappa == math.inf


# ---------------------------------------------------------------------------------- verification
def test_verify_architecture_is_gn_spectrum_per_seed(digits):
    spec = _spec(family="resmlp", skip_beta=0.5, activation="tanh")
    v = verify_architecture(spec, digits.X, seeds=[3, 4])
    want = [gn_spectrum(build_model(spec, s), digits.X).condition_number for s in (3, 4)]
    np.testing.assert_allclose(v.kappas, want, rtol=1e-8)
    assert v.seeds == (3, 4) and v.n_samples == 24
    assert v.mean == pytest.approx(np.mean(want)) and v.std == pytest.approx(np.std(want, ddof=1))
    with pytest.raises(GNAdvisorError, match="at least one"):
        verify_architecture(spec, digits.X, seeds=[])


def test_baseline_is_a_plain_mlp_of_median_width():
    space = SearchSpace.from_dict(SMALL)
    base = baseline_architecture(space, 7, input_dim=64, output_dim=10)
    assert (base.family, base.depth, base.width, base.activation, base.init) == ("mlp", 7, 16, "relu", "kaiming_normal")
    assert not (base.batchnorm or base.bias or base.has_skips or base.prune_scheme)
    logw = SearchSpace.from_dict({"dimensions": {"width": {"low": 16, "high": 512, "log": True}}, "objectives": ["kappa"]})
    assert baseline_architecture(logw, 3, input_dim=8, output_dim=2).width == 91  # sqrt(16 * 512) = 90.5
    mult = SearchSpace.from_dict({"dimensions": {"width_multiplier": {"choices": [1.0, 2.0, 4.0]}},
                                  "objectives": ["kappa"]})
    assert baseline_architecture(mult, 3, input_dim=8, output_dim=2).width_multiplier == 2.0


def test_ablation_reverts_each_difference_alone(digits):
    base = _spec()
    spec = _spec(family="resmlp", skip_beta=1.0, activation="tanh", init="orthogonal", width=20, bias=True)
    abl = ablate_architecture(spec, base, digits.X, seeds=[0, 1])
    by = {s.factor: s for s in abl.steps}
    assert set(by) == {"skips", "activation", "init", "width", "bias"}
    assert by["skips"].spec == ArchSpec.from_dict({**spec.to_dict(), "family": "mlp", "skip_beta": 0.0})
    assert by["activation"].spec.activation == "relu" and by["activation"].spec.skip_beta == 1.0
    assert by["width"].spec.width == 12 and by["init"].spec.init == "kaiming_normal"
    for step in abl.steps:
        want = [gn_spectrum(build_model(step.spec, s), digits.X).condition_number for s in (0, 1)]
        np.testing.assert_allclose(step.verification.kappas, want, rtol=1e-8)
        assert step.ratio == pytest.approx(np.mean(want) / abl.reference.mean)
        overlap = min(want) <= max(abl.reference.kappas) and max(want) >= min(abl.reference.kappas)
        assert step.clear == ((step.ratio > 1.5 or step.ratio < 1 / 1.5) and not overlap)
        assert step.change in step.explanation
    ratios = [s.ratio for s in abl.steps]
    assert ratios == sorted(ratios, reverse=True)
    assert "reverted alone" in abl.summary
    assert ablate_architecture(base, base, digits.X, seeds=[0]).steps == ()


# ---------------------------------------------------------------------------------- the study
@pytest.fixture(scope="module")
def small_run():
    return suggest_architectures(2, space=SearchSpace.from_dict(SMALL), trials=8, seed=0, **RUN)


def test_suggest_verifies_the_best_scored_trials(small_run):
    res = small_run
    frame = res.trials
    assert len(frame) == 8 and set(frame["state"]) == {"COMPLETE"}
    feasible = frame[frame["feasible"]].sort_values(["score", "number"])
    best_specs = []
    for _, row in feasible.iterrows():
        if row["architecture"] not in best_specs:
            best_specs.append(row["architecture"])
    assert sorted(r.spec.describe() for r in res.recommendations) == sorted(best_specs[:2])
    means = [r.condition_number for r in res.recommendations]
    assert means == sorted(means) and [r.rank for r in res.recommendations] == [1, 2]
    for r in res.recommendations:
        assert r.improvement == pytest.approx(res.baseline.condition_number / r.condition_number)
        assert r.score.kappa == frame.loc[frame["number"] == r.trial_number, "score"].item()
        assert r.verification.seeds == (0, 1)
        assert r.score.tier == "subsample" and r.score.n_samples == 12
    assert res.baseline.spec.describe() == "mlp d2 w16 relu kaiming_normal"
    assert res.ablation is not None and res.ablation.spec == res.recommendations[0].spec
    d = res.to_dict()
    assert list(d) == ["recommendations", "baseline", "ablation", "settings", "study", "notes", "timings"]
    assert d["study"]["n_trials"] == 8 and d["study"]["tiers"] == {"subsample": 8}


def test_suggest_is_reproducible_for_a_seed(small_run):
    again = suggest_architectures(2, space=SearchSpace.from_dict(SMALL), trials=8, seed=0, **RUN)
    a, b = small_run.to_dict(), again.to_dict()
    a.pop("timings"), b.pop("timings")
    assert a == b
    other = suggest_architectures(2, space=SearchSpace.from_dict(SMALL), trials=8, seed=1, ablation=False, **RUN)
    assert other.settings["data"]["fingerprint"] != small_run.settings["data"]["fingerprint"]


def test_bound_tier_scores_linear_chains_in_the_study():
    res = suggest_architectures(3, space=SearchSpace.from_dict(LINEAR), data="synthetic", input_dim=4, output_dim=2,
                                trials=4, n_samples=40, n_init_seeds=1, top_k=2, ablation=False)
    assert set(res.trials["tier"]) == {"bound"}
    for r in res.recommendations:
        assert r.score.tier == "bound" and r.score.n_samples == 40
        assert r.score.kappa >= r.verification.kappas[0] * (1 - 1e-9)  # same model (seed 0), same samples


def test_budgets_are_constraints_not_crashes():
    space = SearchSpace.from_dict({**SMALL, "dimensions": {**SMALL["dimensions"], "width": {"choices": [8, 64]}},
                                   "constraints": {"max_params": 2000}})
    res = suggest_architectures(2, space=space, trials=10, ablation=False, **RUN)
    frame = res.trials
    assert (frame.loc[~frame["feasible"], "tier"] == "skipped").all()
    assert (frame.loc[frame["feasible"], "tier"] == "subsample").all()
    assert all(r.params <= 2000 for r in res.recommendations)
    assert (frame["params"] > 2000).sum() == (~frame["feasible"]).sum()
    with pytest.raises(GNAdvisorError, match="no completed feasible trial"):
        suggest_architectures(2, space=SearchSpace.from_dict(SMALL), trials=3, max_gflop=1e-9, ablation=False, **RUN)


def test_multi_objective_recommends_from_the_pareto_front():
    res = suggest_architectures(2, space=SearchSpace.from_dict(SMALL), objectives=["params", "kappa"], trials=10,
                                ablation=False, **{**RUN, "top_k": 3})
    assert res.settings["objectives"] == ["kappa", "params"]
    pts = [(v[0], v[1]) for v, f in zip(res.trials["values"], res.trials["feasible"]) if f]
    for r in res.recommendations:
        assert r.pareto is True
        mine = (math.log10(r.score.kappa), r.params)
        assert not any(p[0] <= mine[0] and p[1] <= mine[1] and p != mine for p in pts)


def test_sqlite_study_resumes_and_refuses_other_settings(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    space = SearchSpace.from_dict(SMALL)
    first = suggest_architectures(2, space=space, trials=3, storage=url, study_name="s", ablation=False, **RUN)
    second = suggest_architectures(2, space=space, trials=3, storage=url, study_name="s", ablation=False, **RUN)
    assert (first.study_info["n_trials"], second.study_info["n_trials"]) == (3, 6)
    assert second.study_info["n_trials_this_run"] == 3
    assert list(second.trials["number"]) == [0, 1, 2, 3, 4, 5]
    # the sampler is reseeded per trial number: the resumed run draws new random trials
    assert list(second.trials["architecture"][:3]) != list(second.trials["architecture"][3:])
    with pytest.raises(GNAdvisorError, match=r"created with n_samples=24, this run has n_samples=30"):
        suggest_architectures(2, space=space, trials=1, storage=url, study_name="s",
                              **{**RUN, "n_samples": 30})
    report = suggest_architectures(2, space=space, trials=0, storage=url, study_name="s", ablation=False, **RUN)
    assert report.study_info["n_trials"] == 6 and report.study_info["n_trials_this_run"] == 0


def test_journal_storage(tmp_path):
    path = tmp_path / "journal.log"
    res = suggest_architectures(2, space=SearchSpace.from_dict(SMALL), trials=2, storage=f"journal://{path}",
                                ablation=False, **RUN)
    assert path.exists() and res.study_info["n_trials"] == 2


@pytest.mark.parametrize("url, message", [
    ("nosuchdialect://x", "cannot open storage 'nosuchdialect://x'"),
    ("postgresql+psycopg2://u:secret@127.0.0.1:1/db", "cannot open storage 'postgresql\\+psycopg2://u:\\*\\*\\*@"),
])
def test_bad_storage_is_one_line_without_the_password(url, message):
    with pytest.raises(GNAdvisorError, match=message) as info:
        open_storage(url)
    assert "secret" not in str(info.value) and "\n" not in str(info.value)
