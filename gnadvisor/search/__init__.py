"""Architecture search: specs, model building, search spaces.

Data flow: YAML -> :class:`SearchSpace` -> Optuna trial -> :class:`ArchSpec` ->
:func:`build_model` -> ``gn_spectrum``.
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
from .spec import ACTIVATIONS, FAMILIES, INITS, PRUNE_SCHEMES, ArchSpec

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
]
