"""gnadvisor: which network architectures will be easy to optimise?

Measures the conditioning of the Gauss-Newton matrix (Zhao, Singh & Lucchi, NeurIPS 2024).
"""

from ._checks import GNAdvisorError
from .spectrum import RANK_RULE, Route, Spectrum, gn_spectrum

__version__ = "0.1.0"

__all__ = [
    # errors
    "GNAdvisorError",
    # exact spectra
    "gn_spectrum",
    "Spectrum",
    "Route",
    "RANK_RULE",
]
