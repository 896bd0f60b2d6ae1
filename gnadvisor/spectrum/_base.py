"""Routes, the :class:`Spectrum` record and the rank rule shared by every route."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

#: float64 machine epsilon, used by the rank rule.
EPS64 = float(np.finfo(np.float64).eps)

RANK_RULE = (
    "an eigenvalue counts as non-zero when lambda > rtol * lambda_max, "
    "rtol = N * eps64 by default, N = max(n_params, n_samples * n_outputs), eps64 = 2.22e-16"
)


class Route(str, enum.Enum):
    """The ways of computing the Gauss-Newton spectrum.

    Every member is exact except :attr:`LANCZOS`; ``method="auto"`` picks the cheapest
    exact route that fits in memory. The test-suite loops over this enum, so a new route
    cannot skip the comparison with :attr:`JACOBIAN`.
    """

    KRONECKER = "kronecker"
    GRAM = "gram"
    JACOBIAN = "jacobian"
    LANCZOS = "lanczos"

    @property
    def summary(self) -> str:
        """Cost, when it wins, and its limits, in one line."""
        return {
            Route.KRONECKER: (
                "networks linear in x: the (k*d)x(k*d) matrix (I_k (x) Sigma^1/2) U U^T (I_k (x) Sigma^1/2); "
                "cost independent of n; only for models with f(x) = Theta x"
            ),
            Route.GRAM: (
                "any network: the (n*k)x(n*k) NTK Gram J J^T / n formed without storing J "
                "(structured rule for nn.Linear, block-wise per-sample Jacobians otherwise); "
                "memory (n*k)^2 doubles"
            ),
            Route.JACOBIAN: (
                "reference: materialise J (n*k x p) with torch.func, eigendecompose the smaller "
                "of J^T J and J J^T; memory n*k*p doubles"
            ),
            Route.LANCZOS: (
                "matrix-free Lanczos on v -> J^T J v (jvp/vjp); no dense matrix; lambda_max is "
                "reliable, lambda_min != 0 cannot be certified in general"
            ),
        }[self]


@dataclass(frozen=True)
class Spectrum:
    """The Gauss-Newton spectrum of a model on a data set.

    ``G = (1/n) sum_i J_i^T J_i``; its non-zero eigenvalues equal those of the NTK Gram
    ``K = (1/n) J J^T`` (Zhao, Singh & Lucchi 2024, Sec. 4).

    Attributes
    ----------
    eigenvalues : numpy.ndarray or None
        Non-zero eigenvalues of G (float64, descending) under the rank rule below.
        ``None`` only when ``full=False`` was requested and the extremes were obtained
        without a full eigendecomposition, or for the Lanczos route.
    lambda_max, lambda_min : float
        Largest and smallest non-zero eigenvalue.
    condition_number : float
        Pseudo-condition number kappa = lambda_max / lambda_min (non-zero spectrum).
    rank : int or None
        Number of eigenvalues above the cut (None when not determined, Lanczos).
    spectral_gap : float
        lambda_rank / lambda_(rank+1) at the cut; ``inf`` when no eigenvalue falls below
        the cut (full rank) and ``nan`` when unknown.
    method : str
        Route used (``"kronecker"``, ``"gram"``, ``"jacobian"`` or ``"lanczos"``).
    """

    eigenvalues: np.ndarray | None
    lambda_max: float
    lambda_min: float
    condition_number: float
    rank: int | None
    spectral_gap: float
    method: str
    device: str
    n_samples: int
    n_outputs: int
    n_params: int
    matrix_dim: int
    rtol: float
    rank_rule: str = RANK_RULE
    coordinates: str = "kept"
    certified: bool = True
    time_s: float = 0.0
    below_cut: np.ndarray | None = field(default=None, repr=False)
    notes: tuple[str, ...] = ()

    @property
    def kappa(self) -> float:
        """Alias of :attr:`condition_number`."""
        return self.condition_number

    def condition_number_at(self, rtol: float) -> float:
        """kappa recomputed with a coarser relative rank cut ``rtol`` (needs the full spectrum).

        Eigenvalues ``<= rtol * lambda_max`` are treated as zero. Useful after training,
        when kappa is sensitive to the cut (paper App. C).
        """
        if self.eigenvalues is None:
            raise ValueError("condition_number_at needs the full spectrum; call gn_spectrum(..., full=True)")
        ev = self.eigenvalues[self.eigenvalues > rtol * self.lambda_max]
        return float(ev[0] / ev[-1])

    def to_dict(self, *, with_eigenvalues: bool = False) -> dict[str, Any]:
        """JSON-safe dict (infinite gaps become the string ``"inf"``)."""

        def num(x: float | None) -> Any:
            if x is None:
                return None
            if math.isinf(x):
                return "inf"
            if math.isnan(x):
                return None
            return float(x)

        d: dict[str, Any] = {
            "condition_number": num(self.condition_number),
            "lambda_max": num(self.lambda_max),
            "lambda_min": num(self.lambda_min),
            "rank": self.rank,
            "spectral_gap": num(self.spectral_gap),
            "method": self.method,
            "device": self.device,
            "n_samples": self.n_samples,
            "n_outputs": self.n_outputs,
            "n_params": self.n_params,
            "matrix_dim": self.matrix_dim,
            "rtol": self.rtol,
            "rank_rule": self.rank_rule,
            "coordinates": self.coordinates,
            "certified": self.certified,
            "time_s": round(self.time_s, 4),
            "notes": list(self.notes),
        }
        if with_eigenvalues and self.eigenvalues is not None:
            d["eigenvalues"] = [float(v) for v in self.eigenvalues]
        return d


def default_rtol(n_params: int, n_rows: int) -> float:
    """The default relative rank tolerance N * eps64, N = max(n_params, n_rows)."""
    return max(n_params, n_rows) * EPS64


def split_spectrum(eigs_desc: np.ndarray, rtol: float) -> tuple[np.ndarray, np.ndarray]:
    """Split descending eigenvalues into (non-zero, below-cut) by the relative rule."""
    lam_max = float(eigs_desc[0]) if eigs_desc.size else 0.0
    cut = rtol * lam_max
    keep = eigs_desc > cut
    return eigs_desc[keep], eigs_desc[~keep]


def symmetric_eigvalsh(mat: torch.Tensor) -> np.ndarray:
    """Eigenvalues of a symmetric matrix, float64, descending, as numpy.

    LAPACK's symmetric solver reads the lower triangle only, so no symmetrised copy is made
    (the routes build exactly symmetric matrices, up to rounding in the triangle not read).
    """
    ev = torch.linalg.eigvalsh(mat.to(torch.float64), UPLO="L")
    return ev.flip(0).cpu().numpy()
