"""Does the advice pay off? Train architectures and measure how well each score predicts their training.

``validate_architectures`` trains a set of architectures under GD (``lr = c / lambda_max``),
Adam and SGD, several seeds each, and reports for every score (the loss forecast, kappa at
several rank cuts, the analytic bound, the parameter count and the zero-cost baselines) its
rank correlation with the measured training speed ``log(L_0 / L_T)``, with bootstrap intervals,
partial correlations given ``log(parameter count)``, per activation family, and seed-to-seed
stability. ``gnadvisor validate`` is its command line.

=================  ===============================================================
module             contents
=================  ===============================================================
``runner``         :func:`validate_architectures`, :class:`ValidationResult`
``zero_cost``      grad-norm, SNIP, SynFlow, NASWOT, TE-NAS kappa
``stats``          Spearman, Kendall tau-b, partial Spearman, bootstrap intervals
``space``          the built-in architecture set, spec files, search-space samples
=================  ===============================================================
"""

from .runner import MATCHED_FORECAST, OPTIMIZERS, REFERENCE, SCORES, TARGETS, ValidationConfig, ValidationResult, score_names, validate_architectures
from .space import BUILTIN_SETS, load_specs, sample_space_specs, validation_specs
from .stats import bootstrap_ci, bootstrap_diff_ci, kendall, partial_spearman, spearman
from .zero_cost import ZERO_COST_SCORES, grad_norm, naswot, snip, synflow, tenas_kappa, tenas_kappa_from_gram

__all__ = [
    # running a validation
    "validate_architectures",
    "ValidationResult",
    "ValidationConfig",
    "SCORES",
    "TARGETS",
    "REFERENCE",
    "OPTIMIZERS",
    "MATCHED_FORECAST",
    "score_names",
    # architectures
    "validation_specs",
    "load_specs",
    "sample_space_specs",
    "BUILTIN_SETS",
    # statistics
    "spearman",
    "kendall",
    "partial_spearman",
    "bootstrap_ci",
    "bootstrap_diff_ci",
    # zero-cost baselines
    "grad_norm",
    "snip",
    "synflow",
    "naswot",
    "tenas_kappa",
    "tenas_kappa_from_gram",
    "ZERO_COST_SCORES",
]
