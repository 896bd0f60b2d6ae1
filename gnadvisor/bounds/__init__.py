"""Closed-form bounds on the Gauss-Newton condition number (Zhao, Singh & Lucchi, NeurIPS 2024).

Each function returns a :class:`Bound`: a proven bound (``kind="bound"``) is either a valid
number or explicitly vacuous (``value=None``) with the failing assumption spelled out; a
heuristic or asymptotic figure is labelled ``kind="estimate"``. Pure numpy on k x k, d x d
(or n x n) matrices; torch tensors are accepted at the boundary, everything runs in float64.

=====================  ==============================================================
function               source
=====================  ==============================================================
``lemma1``             Lemma 1, one hidden layer linear (tight for whitened data)
``lemma2``             Lemma 2 (Eq. 6), convex combination; Eq. 7 with ``beta``
``lemma2_max``         Lemma 2, naive max form (Fig. 3)
``layerwise``          Lemma 2 + sub-multiplicativity, per-layer singular values
``residual_aligned``   Eq. 8, aligned singular vectors (estimate)
``lemma4``             Lemma 4, one hidden layer Leaky-ReLU
``lemma4_loose``       Lemma 4 looser form, corrected to a valid bound
``init_estimate``      App. G at Gaussian initialisation, extended to depth
``gn_bounds``          all of the above that apply to a model
=====================  ==============================================================
"""

from ._base import Assumption, Bound, Term
from .layerwise import layerwise
from .lemma1 import lemma1
from .lemma2 import lemma2, lemma2_max
from .lemma4 import lemma4, lemma4_loose
from .model import gn_bounds, linear_structure
from .random_init import init_estimate
from .residual import residual_aligned

__all__ = [
    # records
    "Bound",
    "Assumption",
    "Term",
    # deep linear networks
    "lemma1",
    "lemma2",
    "lemma2_max",
    "layerwise",
    "residual_aligned",
    # one hidden layer Leaky-ReLU
    "lemma4",
    "lemma4_loose",
    # before training
    "init_estimate",
    # models
    "gn_bounds",
    "linear_structure",
]
