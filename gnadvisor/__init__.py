"""gnadvisor: which network architectures will be easy to optimise?

Measures the conditioning of the Gauss-Newton matrix G = (1/n) sum_i J_i^T J_i of a network on
data (Zhao, Singh & Lucchi, NeurIPS 2024): exact spectra for any PyTorch model, the paper's
closed-form bounds, and an architecture search built on both.
"""

from ._checks import GNAdvisorError
from .data import Dataset, data_covariance_condition, load_data
from .loading import load_model
from .pruning import SCHEMES, PruningComparison, compare_pruning, measure_pruning, prune_model, sparsity_report
from .score import BlockReport, ScoreReport, score_model
from .search import ArchSpec, SearchSpace, build_model, build_pruned_model, constraint_violations, load_search_space
from .spectrum import RANK_RULE, Route, Spectrum, gn_gram, gn_spectrum
from .training import TrainResult, train

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
    # pruning
    "prune_model",
    "sparsity_report",
    "compare_pruning",
    "measure_pruning",
    "PruningComparison",
    "SCHEMES",
]
