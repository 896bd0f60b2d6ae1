"""Search spaces: bundled YAML, validation errors naming the bad key, Optuna sampling, constraints."""

import copy
from pathlib import Path

import optuna
import pytest
import yaml

from gnadvisor import GNAdvisorError
from gnadvisor.search import (
    BUNDLED_SPACES,
    ArchSpec,
    Dimension,
    SearchSpace,
    constraint_violations,
    load_search_space,
)

REPO = Path(__file__).resolve().parents[2]
TOP_LEVEL = REPO / "search_spaces"
PACKAGED = REPO / "gnadvisor" / "search_spaces"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(seed=0, sampler=None):
    return optuna.create_study(sampler=sampler or optuna.samplers.RandomSampler(seed=seed))


def _default_dict():
    return yaml.safe_load((TOP_LEVEL / "default.yaml").read_text())


# ---------------------------------------------------------------------------------- bundled files
def test_bundled_copies_are_identical():
    top = sorted(p.name for p in TOP_LEVEL.glob("*.yaml"))
    assert top == sorted(f"{name}.yaml" for name in BUNDLED_SPACES)
    assert sorted(p.name for p in PACKAGED.glob("*.yaml")) == top
    for name in top:
        assert (PACKAGED / name).read_bytes() == (TOP_LEVEL / name).read_bytes(), (
            f"gnadvisor/search_spaces/{name} differs from search_spaces/{name}: edit the "
            f"top-level copy and copy it into the package")


@pytest.mark.parametrize("name", BUNDLED_SPACES)
def test_bundled_space_loads_and_round_trips(name):
    space = load_search_space(name)
    assert space.name == name
    assert space.objectives and set(space.objectives) <= {"kappa", "params", "flops"}
    assert space.constraints  # every bundled space is bounded
    assert space.dimension("width") is not None
    assert {d.name for d in space.dimensions} >= {"activation", "init", "batchnorm", "prune_scheme"}
    assert SearchSpace.from_dict(space.to_dict()) == space
    assert SearchSpace.from_dict(yaml.safe_load(yaml.safe_dump(space.to_dict()))) == space
    assert load_search_space(TOP_LEVEL / f"{name}.yaml") == space
    assert load_search_space(str(PACKAGED / f"{name}.yaml")) == space


def test_default_space_mixes_families_and_matches_the_issue():
    space = load_search_space("default")
    assert space.families == ("mlp", "resmlp", "cnn")
    assert space.dimension("skip_beta").choices == (0.0, 0.25, 0.5, 1.0)
    assert space.dimension("batchnorm").choices == (False, True)
    assert None in space.dimension("prune_scheme").choices
    assert space.dimension("sparsity").high <= 0.8
    assert (space.dimension("width").low, space.dimension("width").high) == (16, 512)
    assert space.directions == ["minimize"]


# ---------------------------------------------------------------------------------- bad files
def _set(data, path, value):
    *parents, last = path.split(".")
    for key in parents:
        data = data[key]
    if value is _DELETE:
        del data[last]
    else:
        data[last] = value


_DELETE = object()

BAD_FILES = [
    ("objective", ["kappa"], "unknown key 'objective' in the search space; allowed keys: name, description, dimensions, fixed, constraints, objectives"),
    ("dimensions.widht", {"low": 1, "high": 2}, "unknown key 'widht' in dimensions; allowed keys: family, width, width_multiplier, activation"),
    ("dimensions.width.hgih", 3, "unknown key 'hgih' in dimensions.width; allowed keys: choices, low, high, log, step"),
    ("dimensions.activation.choices", ["relu", "swish"], "dimensions.activation.choices[1] must be one of 'linear', 'relu', 'leaky_relu', 'tanh', 'gelu'; got 'swish'"),
    ("dimensions.family.choices", ["mlp", "vit"], "dimensions.family.choices[1] must be one of 'mlp', 'resmlp', 'cnn'; got 'vit'"),
    ("dimensions.prune_scheme.choices", [None, "lottery"], "dimensions.prune_scheme.choices[1] must be one of 'magnitude', 'global-magnitude', 'random', 'snip', 'grasp', 'synflow'; got 'lottery'"),
    ("dimensions.activation.choices", ["relu", "relu"], "dimensions.activation.choices lists 'relu' twice"),
    ("dimensions.activation.choices", [], "dimensions.activation.choices must be a non-empty list"),
    ("dimensions.depth", {"choices": [2, 4]}, "dimensions.depth cannot be set in a search space: depth comes from --depth"),
    ("dimensions.output_dim", {"choices": [2]}, "dimensions.output_dim cannot be set in a search space: output_dim comes from the data"),
    ("dimensions.init", {"low": 0, "high": 1}, "dimensions.init must list 'choices' (it is categorical)"),
    ("dimensions.bias", True, "dimensions.bias must be a mapping with 'choices' or 'low'/'high' (put constant values under 'fixed'), got True"),
    ("dimensions.width", {"low": 512, "high": 16}, "dimensions.width.low must be <= high, got low=512, high=16"),
    ("dimensions.width", {"low": 16}, "dimensions.width needs 'choices', or both 'low' and 'high'; missing 'high'"),
    ("dimensions.width", {"low": 16, "high": 64, "log": True, "step": 8}, "dimensions.width.step cannot be combined with log: true"),
    ("dimensions.width", {"choices": [16, 32], "low": 8}, "dimensions.width has 'choices', so it cannot also have 'low'"),
    ("dimensions.width.low", 0, "dimensions.width.low must be a positive integer, got 0"),
    ("dimensions.sparsity.high", 1.0, "dimensions.sparsity.high must lie in [0.0, 1.0), got 1.0"),
    ("dimensions.skip_beta", {"low": 0.0, "high": 1.0, "log": True}, "dimensions.skip_beta.low must be > 0 when log is true, got 0.0"),
    ("dimensions.leaky_alpha.log", "yes", "dimensions.leaky_alpha.log must be true or false, got 'yes'"),
    ("dimensions.width_multiplier", {"low": 1.0, "high": 4.0}, "must define exactly one of width and width_multiplier (in dimensions or fixed), got both"),
    ("dimensions.width", _DELETE, "must define exactly one of width and width_multiplier (in dimensions or fixed), got neither"),
    ("dimensions.sparsity", _DELETE, "lets prune_scheme be set, so it must define sparsity"),
    ("fixed", {"bias": "yes"}, "fixed.bias must be true or false, got 'yes'"),
    ("fixed", {"bias": False}, "bias is in both dimensions and fixed; keep it in one of them"),
    ("fixed", {"input_dim": 64}, "fixed.input_dim cannot be set in a search space: input_dim comes from the data"),
    ("fixed", {"dropout": 0.1}, "unknown key 'dropout' in fixed; allowed keys: family, width"),
    ("constraints.max_param", 10, "unknown key 'max_param' in constraints; allowed keys: max_params, max_flops"),
    ("constraints.max_params", "5e6", "constraints.max_params must be a positive integer or null, got '5e6' (YAML reads 5e6 as text: write 5000000 or 5.0e6)"),
    ("constraints.max_flops", -1, "constraints.max_flops must be a positive integer or null, got -1"),
    ("objectives", ["accuracy"], "objectives[0] must be one of 'kappa', 'forecast', 'params', 'flops'; got 'accuracy'"),
    ("objectives", [], "objectives must be a non-empty list"),
    ("objectives", ["kappa", "kappa"], "objectives must not repeat"),
    ("objectives", _DELETE, "the search space needs a 'objectives' key"),
    ("name", 3, "name must be a non-empty string, got 3"),
]


@pytest.mark.parametrize("path, value, message", BAD_FILES,
                         ids=[f"{p}={'<deleted>' if v is _DELETE else v}" for p, v, _ in BAD_FILES])
def test_invalid_file_error_names_the_bad_key(tmp_path, path, value, message):
    data = _default_dict()
    _set(data, path, value if value is _DELETE else copy.deepcopy(value))
    file = tmp_path / "space.yaml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(GNAdvisorError) as info:
        load_search_space(file)
    text = str(info.value)
    assert text.startswith(f"search space file {str(file)!r}: ")
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize("content, message", [
    ("dimensions: [width\nobjectives: [kappa]\n", r"is not valid YAML: .* at line \d+, column \d+"),
    ("dimensions:\n  width: {low: 8, high: 16}\n  width: {low: 8, high: 32}\nobjectives: [kappa]\n",
     r"is not valid YAML: duplicate key 'width' at line 3, column 3"),
    ("", r"is empty; it needs at least 'dimensions' and 'objectives'"),
    ("- width\n- depth\n", r"a search space must be a mapping with keys name, description, dimensions"),
    ("objectives: [kappa]\n", r"the search space needs a 'dimensions' key"),
], ids=["syntax", "duplicate-key", "empty", "list", "no-dimensions"])
def test_malformed_file_one_line_error(tmp_path, content, message):
    file = tmp_path / "bad.yaml"
    file.write_text(content)
    with pytest.raises(GNAdvisorError, match=message) as info:
        load_search_space(file)
    assert "\n" not in str(info.value)


def test_missing_file_error(tmp_path):
    with pytest.raises(GNAdvisorError, match=r"search space 'nope' not found: it is not a bundled space "
                                             r"\(default, mlp, resmlp, cnn\) and no file exists at"):
        load_search_space("nope")
    with pytest.raises(GNAdvisorError, match="not found"):
        load_search_space(tmp_path / "missing.yaml")


def test_minimal_user_file_uses_archspec_defaults(tmp_path):
    file = tmp_path / "tiny.yaml"
    file.write_text("dimensions:\n  width: {choices: [8, 16]}\nobjectives: [kappa, params]\n")
    space = load_search_space(file)
    assert space.name == "tiny" and space.constraints == {} and space.directions == ["minimize"] * 2
    spec = space.suggest(_study().ask(), depth=2, input_dim=5, output_dim=3)
    assert spec == ArchSpec(depth=2, width=spec.width, input_dim=5, output_dim=3)
    assert constraint_violations(spec, space) == []


# ---------------------------------------------------------------------------------- suggest
def _check_conditionals(spec, params):
    assert ("leaky_alpha" in params) == (spec.activation == "leaky_relu")
    assert ("skip_beta" in params) == (spec.family in ("resmlp", "cnn"))
    assert ("skip_every" in params) == (spec.skip_beta > 0)
    assert ("sparsity" in params) == (spec.prune_scheme is not None)
    for name, value in params.items():  # parameter names are the ArchSpec field names
        assert getattr(spec, name) == value


def test_suggest_default_space_on_flat_digits():
    space = load_search_space("default")
    study = _study(seed=1)
    families = set()
    for _ in range(40):
        trial = study.ask()
        spec = space.suggest(trial, depth=20, input_dim=64, output_dim=10)
        assert isinstance(spec, ArchSpec) and spec.depth == 20 and spec.input_dim == 64
        assert spec.output_dim == 10 and spec.input_shape is None
        assert all(v <= 0 for v in constraint_violations(spec, space))
        _check_conditionals(spec, trial.params)
        assert space.suggest(optuna.trial.FixedTrial(trial.params), 20, 64, 10) == spec
        families.add(spec.family)
        study.tell(trial, 0.0)
    assert families == {"mlp", "resmlp"}
    assert study.trials[0].distributions["family"].choices == ("mlp", "resmlp")


def test_suggest_default_space_on_image_digits_caps_cnn_width():
    space = load_search_space("default")
    study = _study(seed=2)
    cnn_widths = []
    for _ in range(60):
        trial = study.ask()
        spec = space.suggest(trial, depth=20, input_dim=64, output_dim=10, input_shape=[1, 8, 8])
        assert spec.input_shape == (1, 8, 8)
        assert all(v <= 0 for v in constraint_violations(spec, space))
        _check_conditionals(spec, trial.params)
        if spec.family == "cnn":
            cnn_widths.append(spec.width)
        study.tell(trial, 0.0)
    assert cnn_widths and max(cnn_widths) <= 67  # 68 channels exceed max_flops at depth 20 on 8x8
    assert ArchSpec(family="cnn", depth=20, width=68, input_shape=(1, 8, 8),
                    output_dim=10).flops() > space.max_flops


def test_suggest_with_tpe_and_dynamic_space():
    space = load_search_space("resmlp")
    study = _study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=4))
    for i in range(12):
        trial = study.ask()
        spec = space.suggest(trial, depth=5, input_dim=64, output_dim=10)
        assert spec.family == "resmlp"
        study.tell(trial, float(spec.width % 7))


def test_cnn_space_needs_image_input():
    space = load_search_space("cnn")
    with pytest.raises(GNAdvisorError, match=r"search space 'cnn' only proposes family 'cnn', which needs "
                                             r"image-shaped input \(channels, height, width\), got flat input"):
        space.suggest(_study().ask(), depth=3, input_dim=64, output_dim=10)
    assert space.families_for((1, 8, 8)) == ("cnn",)
    spec = space.suggest(_study().ask(), depth=3, input_dim=64, output_dim=10, input_shape=(1, 8, 8))
    assert spec.family == "cnn"


def _space(**overrides):
    data = {"dimensions": {"width": {"low": 4, "high": 512}}, "objectives": ["kappa"]}
    data.update(overrides)
    return SearchSpace.from_dict(data)


def test_suggest_width_cap_keeps_trials_feasible():
    space = _space(constraints={"max_params": 2000})  # mlp d=2, 10 -> m -> m -> 3: m^2 + 13 m
    for seed in range(15):
        spec = space.suggest(_study(seed).ask(), depth=2, input_dim=10, output_dim=3)
        assert spec.n_params() <= 2000 and 4 <= spec.width <= 38  # 38^2 + 13*38 = 1938, 39 -> 2028
    # low end already infeasible: the full range is sampled and the violation is reported
    tiny = _space(constraints={"max_params": 10, "max_flops": 10})
    spec = tiny.suggest(_study().ask(), depth=2, input_dim=10, output_dim=3)
    violations = constraint_violations(spec, tiny)
    assert len(violations) == 2 and all(v > 0 for v in violations)


def test_suggest_width_step_stays_on_grid():
    space = _space(dimensions={"width": {"low": 16, "high": 512, "step": 16}},
                   constraints={"max_params": 5000})
    for seed in range(10):
        trial = _study(seed).ask()
        spec = space.suggest(trial, depth=1, input_dim=20, output_dim=5)
        assert spec.width % 16 == 0 and spec.n_params() <= 5000  # 25 m <= 5000: m <= 200 -> 192


def test_suggest_width_multiplier():
    space = _space(dimensions={"width_multiplier": {"low": 1.0, "high": 30.0, "log": True}},
                   constraints={"max_params": 5000})
    for seed in range(10):
        trial = _study(seed).ask()
        spec = space.suggest(trial, depth=3, input_dim=8, output_dim=2)
        assert spec.width is None and spec.width_multiplier == trial.params["width_multiplier"]
        assert 4 <= spec.width_resolved and spec.n_params() <= 5000


def test_fixed_values_are_used_and_not_sampled():
    space = _space(fixed={"family": "resmlp", "skip_beta": 0.5, "bias": True, "activation": "leaky_relu",
                          "leaky_alpha": 0.2, "prune_scheme": "random", "sparsity": 0.3})
    trial = _study().ask()
    spec = space.suggest(trial, depth=2, input_dim=5, output_dim=2)
    assert (spec.family, spec.skip_beta, spec.bias, spec.leaky_alpha, spec.sparsity) == \
        ("resmlp", 0.5, True, 0.2, 0.3)
    assert set(trial.params) == {"width"}
    assert space.fixed_values["prune_scheme"] == "random"


def test_mlp_family_ignores_skip_dimensions():
    space = _space(dimensions={"width": {"choices": [8]}, "family": {"choices": ["mlp"]},
                               "skip_beta": {"choices": [1.0]}})
    trial = _study().ask()
    spec = space.suggest(trial, depth=2, input_dim=5, output_dim=2)
    assert spec.skip_beta == 0.0 and "skip_beta" not in trial.params


def test_constraint_violations_are_relative():
    space = _space(constraints={"max_params": 1000, "max_flops": 400})
    spec = ArchSpec(depth=1, width=10, input_dim=50, output_dim=10, bias=True)  # 600 weights + 20 biases
    assert constraint_violations(spec, space) == pytest.approx([620 / 1000 - 1, 600 / 400 - 1])
    assert constraint_violations(spec, _space()) == []


def test_direct_construction_is_validated_too():
    kw = dict(name="direct", description="", fixed=(("bias", True),), max_params=None,
              max_flops=100, objectives=["kappa"])
    space = SearchSpace(dimensions=(Dimension("width", low=4, high=8),), **kw)
    assert space == SearchSpace.from_dict(space.to_dict())
    assert space.objectives == ("kappa",)
    with pytest.raises(GNAdvisorError, match="dimensions.width.high must be a positive integer, got 0"):
        SearchSpace(dimensions=(Dimension("width", low=4, high=0),), **kw)
    with pytest.raises(GNAdvisorError, match="dimensions must be a tuple of Dimension records"):
        SearchSpace(dimensions=({"width": {"low": 4, "high": 8}},), **kw)
