"""Architecture search: specs, model building, search spaces, scoring and the Optuna study.

Data flow: YAML -> :class:`SearchSpace` -> Optuna trial -> :class:`ArchSpec` ->
:func:`build_model` -> ``gn_spectrum`` -> :class:`Score` -> storage -> :class:`SuggestResult`.
"""

from .models import ConvNet, MLP, activation_gain, build_model, build_pruned_model
from .space import (
    BUNDLED_SPACES,
    DIMENSIONS,
    OBJECTIVES,
    Dimension,
    SearchSpace,
    constraint_violations,
    load_search_space,
)
from .scorer import TIER_NAMES, TIERS, BoundTier, Score, SubsampleTier, Tier, exact_cost, score_architecture
from .spec import ACTIVATIONS, FAMILIES, INITS, PRUNE_SCHEMES, ArchSpec
from .study import (
    Ablation,
    AblationStep,
    Recommendation,
    SuggestResult,
    TrainingForecast,
    TrainingMeasurement,
    Verification,
    ablate_architecture,
    baseline_architecture,
    forecast_architecture,
    measure_training,
    open_storage,
    suggest_architectures,
    verify_architecture,
)

__all__ = [
    # specs
    "ArchSpec",
    "FAMILIES",
    "ACTIVATIONS",
    "INITS",
    "PRUNE_SCHEMES",
    # models
    "build_model",
    "build_pruned_model",
    "activation_gain",
    "MLP",
    "ConvNet",
    # search spaces
    "SearchSpace",
    "Dimension",
    "load_search_space",
    "constraint_violations",
    "BUNDLED_SPACES",
    "DIMENSIONS",
    "OBJECTIVES",
    # scoring
    "score_architecture",
    "exact_cost",
    "Score",
    "Tier",
    "BoundTier",
    "SubsampleTier",
    "TIERS",
    "TIER_NAMES",
    # the study
    "suggest_architectures",
    "SuggestResult",
    "Recommendation",
    "Verification",
    "verify_architecture",
    "baseline_architecture",
    "ablate_architecture",
    "Ablation",
    "AblationStep",
    "forecast_architecture",
    "measure_training",
    "TrainingForecast",
    "TrainingMeasurement",
    "open_storage",
]
