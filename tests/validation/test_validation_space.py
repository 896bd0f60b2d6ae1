"""The built-in validation set, spec files and search-space samples."""

from __future__ import annotations

import json

import pytest

from gnadvisor._checks import GNAdvisorError
from gnadvisor.search import ArchSpec
from gnadvisor.validation import load_specs, sample_space_specs, validation_specs


def test_builtin_set_covers_the_required_space():
    specs = validation_specs()
    assert len(specs) >= 60 and len(set(specs)) == len(specs)
    assert {s.depth for s in specs} >= {1, 2, 4, 8, 16}
    assert {s.activation for s in specs} == {"linear", "relu", "leaky_relu", "tanh", "gelu"}
    assert {s.width_resolved for s in specs} >= {16, 32, 64, 128}
    assert any(s.has_skips for s in specs) and any(s.batchnorm for s in specs)
    assert any(s.bias for s in specs) and any(not s.bias for s in specs)
    assert {s.prune_scheme for s in specs if s.needs_pruning} == {"magnitude", "random", "snip", "synflow"}
    assert validation_specs() == specs  # deterministic
    assert all(s.input_dim == 49 and s.output_dim == 3 for s in validation_specs(input_dim=49, output_dim=3))
    with pytest.raises(GNAdvisorError, match=r"\(--set\) must be one of 'digits-v1'"):
        validation_specs("nope")


def test_load_specs_from_list_and_from_suggest_like_output(tmp_path):
    a = {"depth": 3, "width": 16, "activation": "tanh"}
    b = {"depth": 3, "width": 32, "family": "resmlp", "skip_beta": 0.5}
    (tmp_path / "list.json").write_text(json.dumps([a, b]))
    specs = load_specs(tmp_path / "list.json", input_dim=64, output_dim=10)
    assert specs == [ArchSpec(input_dim=64, output_dim=10, **a), ArchSpec(input_dim=64, output_dim=10, **b)]
    c = {"depth": 3, "width": 8}
    study = {"recommendations": [{"rank": 1, "spec": b, "kappa": 3.0}, {"rank": 2, "spec": a}],
             "baseline": {"spec": a, "kappa": 9.0}, "ablation": {"steps": [{"spec": c}]}, "other": {"depth": 99}}
    (tmp_path / "study.json").write_text(json.dumps(study))
    specs = load_specs(tmp_path / "study.json", input_dim=64, output_dim=10)
    assert [s.width for s in specs] == [32, 16]  # top-K then baseline (kept once); ablation ignored
    (tmp_path / "nested.json").write_text(json.dumps({"runs": [{"spec": c}, {"spec": b}], "baseline": {"spec": a}}))
    assert [s.width for s in load_specs(tmp_path / "nested.json", input_dim=64, output_dim=10)] == [8, 32, 16]
    (tmp_path / "bad.json").write_text(json.dumps([{"depth": 0, "width": 4}]))
    with pytest.raises(GNAdvisorError, match="spec #0 .* depth must be a positive integer"):
        load_specs(tmp_path / "bad.json", input_dim=64, output_dim=10)
    (tmp_path / "empty.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(GNAdvisorError, match="holds no architecture specs"):
        load_specs(tmp_path / "empty.json", input_dim=64, output_dim=10)


def test_sample_space_specs_is_seeded_and_feasible():
    a = sample_space_specs("mlp", depths=[2, 5], n_per_depth=3, seed=4, input_dim=64, output_dim=10)
    b = sample_space_specs("mlp", depths=[2, 5], n_per_depth=3, seed=4, input_dim=64, output_dim=10)
    assert a == b and len(a) == 6 and [s.depth for s in a] == [2, 2, 2, 5, 5, 5]
    assert all(s.family == "mlp" for s in a)
