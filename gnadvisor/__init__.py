"""gnadvisor: which network architectures will be easy to optimise?

Measures the conditioning of the Gauss-Newton matrix G = (1/n) sum_i J_i^T J_i of a network on
data (Zhao, Singh & Lucchi, NeurIPS 2024): exact spectra for any PyTorch model, the paper's
closed-form bounds, and an architecture search built on both.
"""

from ._checks import GNAdvisorError
from .bounds import (
    Assumption,
    Bound,
    Term,
    gn_bounds,
    init_estimate,
    layerwise,
    lemma1,
    lemma2,
    lemma2_max,
    lemma4,
    lemma4_loose,
    linear_structure,
    residual_aligned,
)
from .data import Dataset, data_covariance_condition, load_data
from .forecast import Forecast, LinearisedForecast, gn_forecast, linearised_forecast
from .loading import load_model
from .pruning import SCHEMES, PruningComparison, compare_pruning, measure_pruning, prune_model, sparsity_report
from .score import BlockReport, ScoreReport, score_model
from .search import (
    Ablation,
    ArchSpec,
    Recommendation,
    Score,
    SearchSpace,
    SuggestResult,
    Verification,
    ablate_architecture,
    baseline_architecture,
    build_model,
    build_pruned_model,
    constraint_violations,
    exact_cost,
    forecast_architecture,
    load_search_space,
    measure_training,
    score_architecture,
    suggest_architectures,
    verify_architecture,
)
from .spectrum import RANK_RULE, Route, Spectrum, gn_gram, gn_spectrum
from .training import TrainResult, train
from .validation import ValidationResult, validate_architectures

__version__ = "0.1.0"

__all__ = [
    # errors
    "GNAdvisorError",
    # exact spectra
    "gn_spectrum",
    "gn_gram",
    "Spectrum",
    "Route",
    "RANK_RULE",
    # analytic bounds
    "Bound",
    "Assumption",
    "Term",
    "lemma1",
    "lemma2",
    "lemma2_max",
    "layerwise",
    "residual_aligned",
    "lemma4",
    "lemma4_loose",
    "init_estimate",
    "gn_bounds",
    "linear_structure",
    # training-speed forecast
    "gn_forecast",
    "Forecast",
    "linearised_forecast",
    "LinearisedForecast",
    # scoring a model
    "score_model",
    "ScoreReport",
    "BlockReport",
    "load_model",
    # data and training
    "load_data",
    "Dataset",
    "data_covariance_condition",
    "train",
    "TrainResult",
    # architectures
    "ArchSpec",
    "build_model",
    "build_pruned_model",
    "SearchSpace",
    "load_search_space",
    "constraint_violations",
    # the search
    "suggest_architectures",
    "SuggestResult",
    "Recommendation",
    "Verification",
    "verify_architecture",
    "baseline_architecture",
    "ablate_architecture",
    "Ablation",
    "forecast_architecture",
    "measure_training",
    "score_architecture",
    "Score",
    "exact_cost",
    # pruning
    "prune_model",
    "sparsity_report",
    "compare_pruning",
    "measure_pruning",
    "PruningComparison",
    "SCHEMES",
    # validation
    "validate_architectures",
    "ValidationResult",
]
