"""The :class:`Bound` record and the small-matrix linear algebra every bound shares.

Notation (Zhao, Singh & Lucchi 2024; gn-theory Sec. 1-2) and code names:

=====================  ==========================  =========================================
paper                  code                        meaning
=====================  ==========================  =========================================
kappa(G)               ``Bound.value``             lambda_max / lambda_min!=0 of the GN matrix
Sigma = X^T X / n      ``kappa_sigma``             uncentred input covariance, d x d
L                      ``len(weights)``            number of weight matrices (= depth + 1)
W_l (out x in)         ``weights[l-1]``            PyTorch orientation, forward order
A_l = W_L ... W_{l+1}  ``Term.lambda_*_A``         k x m, A_L = I_k; extremes of A_l A_l^T
B_l = W_{l-1} ... W_1  ``Term.lambda_*_B``         m x d, B_1 = I_d; extremes of B_l^T B_l
gamma_l                ``Term.gamma``              weight of term l in Lemma 2
beta                   ``beta``                    residual scale, W_l -> W_l + beta I_rect
alpha                  ``alpha``                   Leaky-ReLU negative slope
=====================  ==========================  =========================================
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .._checks import GNAdvisorError, check_matrix, check_real

__all__ = ["Bound", "Assumption", "Term"]

#: float64 machine epsilon, used by the scale-free rank rule ``lambda <= lambda_max * N * eps``.
EPS64 = float(np.finfo(np.float64).eps)

PAPER = "Zhao, Singh & Lucchi, Theoretical characterisation of the Gauss-Newton conditioning " \
        "in Neural Networks, NeurIPS 2024"


def _json_number(x: Any) -> Any:
    """Python float for finite numbers, None for inf/NaN (JSON has neither)."""
    if x is None or isinstance(x, bool):
        return x
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def _json_safe(obj: Any) -> Any:
    """Recursively convert to JSON-safe builtins (non-finite floats become None)."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_json_safe(v) for v in obj.tolist()]
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return _json_number(obj)


@dataclass(frozen=True)
class Assumption:
    """One hypothesis of a bound, whether it holds here, and why (not).

    Attributes
    ----------
    statement : str
        The hypothesis, in words and symbols.
    holds : bool
        Whether it holds for the given weights and data.
    detail : str
        What was measured; when ``holds`` is False, why it fails.
    required : bool
        True if the bound needs it. False for informational conditions (e.g. the paper's
        sufficient condition ``m >= max(d, k)`` where a weaker one is what the proof uses).
    """

    statement: str
    holds: bool
    detail: str = ""
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {"statement": self.statement, "holds": bool(self.holds),
                "detail": self.detail, "required": bool(self.required)}

    def __str__(self) -> str:
        mark = "ok" if self.holds else ("FAILS" if self.required else "not met (not needed)")
        return f"[{mark}] {self.statement}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Term:
    """Summand ``l`` of the Lemma 2 sums (or of its layer-wise relaxation).

    ``lambda_max_A``/``lambda_min_A`` are the extreme eigenvalues of ``A_l A_l^T`` (k x k) and
    ``lambda_*_B`` those of ``B_l^T B_l`` (d x d), or the sub-multiplicative bounds on them for
    :func:`~gnadvisor.bounds.layerwise`. A ``lambda_min`` of 0 means the term adds nothing to
    the denominator (rank-deficient product); its kappa^2 is then ``inf``.

    Attributes
    ----------
    layer : int
        ``l``, 1-based: the term of the derivative w.r.t. ``W_l``.
    lambda_max_A, lambda_min_A, lambda_max_B, lambda_min_B : float
        See above.
    gamma : float
        ``gamma_l = lambda_min_A lambda_min_B / sum_l' (...)``; the gammas sum to 1 when the
        denominator is positive, and are NaN otherwise.
    """

    layer: int
    lambda_max_A: float
    lambda_min_A: float
    lambda_max_B: float
    lambda_min_B: float
    gamma: float

    @property
    def kappa2_A(self) -> float:
        """``kappa^2(A_l) = lambda_max(A A^T) / lambda_min(A A^T)`` (inf if singular)."""
        return self.lambda_max_A / self.lambda_min_A if self.lambda_min_A > 0 else math.inf

    @property
    def kappa2_B(self) -> float:
        """``kappa^2(B_l) = lambda_max(B^T B) / lambda_min(B^T B)`` (inf if singular)."""
        return self.lambda_max_B / self.lambda_min_B if self.lambda_min_B > 0 else math.inf

    @property
    def kappa2(self) -> float:
        """``kappa^2(A_l) kappa^2(B_l)``, the quantity Lemma 2 averages with weights gamma_l."""
        return self.kappa2_A * self.kappa2_B

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict, including the derived kappa^2 values (None when infinite)."""
        return _json_safe({
            "layer": self.layer,
            "lambda_max_A": self.lambda_max_A, "lambda_min_A": self.lambda_min_A,
            "lambda_max_B": self.lambda_max_B, "lambda_min_B": self.lambda_min_B,
            "kappa2_A": self.kappa2_A, "kappa2_B": self.kappa2_B, "kappa2": self.kappa2,
            "gamma": self.gamma,
        })


_KINDS = ("bound", "estimate")


@dataclass(frozen=True)
class Bound:
    """A closed-form bound (or estimate) of the GN pseudo-condition number, with its evidence.

    Invariants, checked on construction (a violation raises ``GNAdvisorError``):

    * ``kind == "bound"``: ``value`` is a number exactly when ``valid`` is True; outside the
      assumptions the bound is *vacuous* and ``value`` is None, never a silent number.
    * ``kind == "estimate"`` (a heuristic or an asymptotic approximation, not a proof):
      ``value`` is None only when it cannot be evaluated (a zero denominator); ``valid`` says
      whether the modelling assumptions behind it hold.

    Attributes
    ----------
    name : str
        The function that produced it: ``"lemma1"``, ``"lemma2"``, ``"lemma2_max"``,
        ``"layerwise"``, ``"residual_aligned"``, ``"lemma4"``, ``"lemma4_loose"`` or
        ``"init_estimate"``.
    value : float or None
        The bound on kappa(G), or None when vacuous.
    valid : bool
        All required assumptions hold.
    kind : {"bound", "estimate"}
        Whether ``value`` is proven to be >= kappa(G).
    assumptions : tuple of Assumption
        Every hypothesis checked, with what was measured and why it fails when it does.
    reference : str
        Where the formula comes from (lemma / equation of the paper, or this library).
    kappa_sigma : float or None
        kappa(Sigma) of the data covariance (inf if Sigma is singular), when the bound uses it.
    terms : tuple of Term
        The per-layer summands (Lemma 2 family); empty for the others.
    details : Mapping[str, Any]
        Further parts of the formula (numerator, denominator, eigenvalues, probabilities).
    """

    name: str
    value: float | None
    valid: bool
    kind: str
    assumptions: tuple[Assumption, ...]
    reference: str
    kappa_sigma: float | None = None
    terms: tuple[Term, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise GNAdvisorError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        if self.value is not None:
            v = float(self.value)
            if not math.isfinite(v):
                raise GNAdvisorError(f"value must be finite or None, got {self.value!r}")
            object.__setattr__(self, "value", v)
        if self.kind == "bound" and self.valid != (self.value is not None):
            raise GNAdvisorError(
                f"a bound has a value exactly when it is valid, got valid={self.valid} "
                f"and value={self.value!r}")
        object.__setattr__(self, "assumptions", tuple(self.assumptions))
        object.__setattr__(self, "terms", tuple(self.terms))
        object.__setattr__(self, "details", types.MappingProxyType(dict(self.details)))

    @property
    def vacuous(self) -> bool:
        """True when there is no number (``value is None``)."""
        return self.value is None

    @property
    def failed(self) -> tuple[Assumption, ...]:
        """The required assumptions that do not hold (why the bound is vacuous/invalid)."""
        return tuple(a for a in self.assumptions if a.required and not a.holds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``json.dumps(b.to_dict(), allow_nan=False)`` works).

        Non-finite numbers (an infinite kappa(Sigma) or kappa^2 of a singular term) become None.
        """
        return _json_safe({
            "name": self.name, "value": self.value, "valid": bool(self.valid),
            "kind": self.kind, "reference": self.reference,
            "kappa_sigma": self.kappa_sigma,
            "assumptions": [a.to_dict() for a in self.assumptions],
            "terms": [t.to_dict() for t in self.terms],
            "details": dict(self.details),
        })

    def __str__(self) -> str:
        head = f"{self.name} ({self.kind}): "
        if self.value is None:
            why = "; ".join(f"{a.statement}: {a.detail}" for a in self.failed) or "not evaluable"
            return head + f"vacuous ({why})"
        flag = "" if self.valid else " [assumptions not met, see .failed]"
        return head + f"{self.value:.4g}{flag}"


# ----------------------------------------------------------------------------------------
# boundary conversion and checks
# ----------------------------------------------------------------------------------------

def as_weights(weights: Any, name: str = "weights") -> list[np.ndarray]:
    """Float64 copies of a forward-ordered list of (out, in) matrices forming a chain."""
    if hasattr(weights, "ndim") or not isinstance(weights, Sequence) or len(weights) == 0:
        raise GNAdvisorError(
            f"{name} must be a non-empty list of 2-D (out, in) matrices in forward order, "
            f"got {type(weights).__name__}")
    Ws = [check_matrix(f"{name}[{i}]", W) for i, W in enumerate(weights)]
    for i in range(1, len(Ws)):
        if Ws[i].shape[1] != Ws[i - 1].shape[0]:
            raise GNAdvisorError(
                f"{name}[{i}] must have {Ws[i - 1].shape[0]} columns (the out_features of "
                f"{name}[{i - 1}], PyTorch (out, in) orientation), got shape {Ws[i].shape}")
    return Ws


def as_data(X: Any, d: int) -> np.ndarray:
    """Float64 copy of the inputs ``X`` (n x d), checked against the first layer."""
    X = check_matrix("X", X)
    if X.shape[1] != d:
        raise GNAdvisorError(
            f"X must have d = {d} columns (in_features of the first weight), got shape {X.shape}")
    return X


def check_beta(beta: Any) -> float:
    """Residual scale: a finite number >= 0."""
    return check_real("beta", beta, low=0.0)


def add_identity(Ws: list[np.ndarray], beta: float) -> list[np.ndarray]:
    """``W_l + beta * I_rect`` with ``I_rect = eye(out, in)`` (paper Eq. 7)."""
    if beta == 0.0:
        return Ws
    return [W + beta * np.eye(*W.shape) for W in Ws]


# ----------------------------------------------------------------------------------------
# extreme eigenvalues of small Gram matrices, with the scale-free rank rule
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Extremes:
    """``lambda_max`` and ``lambda_min`` of a Gram matrix; ``lambda_min = 0`` when singular."""

    lam_max: float
    lam_min: float
    why_zero: str | None = None  # why lam_min is 0, None when it is positive


@np.errstate(over="ignore", invalid="ignore")
def gram_extremes(M: np.ndarray, side: str) -> Extremes:
    """Extreme eigenvalues of ``M M^T`` (``side="rows"``) or ``M^T M`` (``side="cols"``).

    Only the smaller Gram matrix is formed and diagonalised. Its eigenvalues carry an absolute
    rounding error of order ``tol = lambda_max * max(M.shape) * eps64`` (the scale-free rank
    rule), so the result is padded to stay on the safe side of a bound: ``lambda_max + tol``
    and ``lambda_min - tol``. ``lambda_min`` is 0 when the requested Gram is larger than
    ``rank(M) <= min(M.shape)`` (structural), or when ``lambda_min <= 2 tol`` (numerically
    singular). Ill-conditioned products (``lambda_min / lambda_max`` near ``tol``) therefore
    lose relative accuracy in ``lambda_min``, never validity.
    """
    r, c = M.shape
    size, other = (r, c) if side == "rows" else (c, r)
    G = M @ M.T if r <= c else M.T @ M
    if not np.all(np.isfinite(G)):
        return Extremes(math.inf, 0.0, "float64 overflow in a weight product")
    if G.shape[0] == 1:
        ev = np.array([float(G[0, 0])])
    else:
        ev = np.linalg.eigvalsh(G)
    lam_max = max(float(ev[-1]), 0.0)
    if lam_max == 0.0:
        return Extremes(0.0, 0.0, "the matrix is zero")
    tol = lam_max * max(r, c) * EPS64
    if size > other:
        return Extremes(lam_max + tol, 0.0, f"rank <= {other} < {size}")
    lam_min = float(ev[0])
    if lam_min <= 2.0 * tol:
        return Extremes(lam_max + tol, 0.0,
                        f"numerically singular (lambda_min/lambda_max = {lam_min / lam_max:.2e}"
                        f" <= 2 * {max(r, c)} * eps64)")
    return Extremes(lam_max + tol, lam_min - tol)


@dataclass(frozen=True)
class DataSpectrum:
    """Extremes of ``Sigma = X^T X / n`` and kappa(Sigma) (inf when singular)."""

    n: int
    d: int
    lam_max: float
    lam_min: float
    why_singular: str | None

    @property
    def kappa(self) -> float:
        return self.lam_max / self.lam_min if self.lam_min > 0 else math.inf

    def assumption(self) -> Assumption:
        ok = self.lam_min > 0
        if ok:
            detail = f"kappa(Sigma) = {self.kappa:.4g}"
        else:
            detail = f"Sigma is singular ({self.why_singular})"
            if self.n < self.d:
                detail += f": n = {self.n} samples < d = {self.d} features"
        return Assumption("Sigma = X^T X / n has full rank d (lambda_min(Sigma) > 0)", ok, detail)


def data_spectrum(X: np.ndarray) -> DataSpectrum:
    """Extremes of the uncentred covariance ``Sigma = X^T X / n`` (gn-theory Sec. 1)."""
    n, d = X.shape
    e = gram_extremes(X / math.sqrt(n), "cols")
    return DataSpectrum(n, d, e.lam_max, e.lam_min, e.why_zero)


@np.errstate(over="ignore", invalid="ignore")
def log_sum(logs: np.ndarray) -> float:
    """``log(sum(exp(logs)))`` that tolerates ``-inf`` entries (zero terms)."""
    logs = np.asarray(logs, dtype=np.float64)
    top = float(np.max(logs))
    if top == -math.inf:
        return -math.inf
    return top + math.log(float(np.sum(np.exp(logs - top))))


def safe_log(x: Any) -> np.ndarray:
    """Elementwise log with log(0) = -inf and no warning."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(x, dtype=np.float64))
