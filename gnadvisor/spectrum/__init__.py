"""Exact Gauss-Newton spectra: one public function, four routes (see :class:`Route`)."""

from ._base import RANK_RULE, Route, Spectrum
from .api import gn_gram, gn_spectrum

__all__ = ["gn_spectrum", "gn_gram", "Spectrum", "Route", "RANK_RULE"]
