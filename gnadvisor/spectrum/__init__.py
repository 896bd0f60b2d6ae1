"""Exact Gauss-Newton spectra: one public function, four routes (see :class:`Route`)."""

from ._base import RANK_RULE, Route, Spectrum
from .api import gn_spectrum

__all__ = ["gn_spectrum", "Spectrum", "Route", "RANK_RULE"]
