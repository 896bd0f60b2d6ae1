"""Shared machinery of the deep-linear bounds: the products A_l, B_l and the ratio of sums.

For ``f(x) = W_L ... W_1 x`` the non-zero GN spectrum equals that of
``M = sum_l (A_l A_l^T) kron (Sigma^1/2 B_l^T B_l Sigma^1/2)`` (paper Eq. 4-5, gn-theory Sec. 2),
so by Weyl's inequalities and ``lambda(P kron Q) = lambda(P) lambda(Q)``

    lambda_max(M) <= lambda_max(Sigma) sum_l lambda_max(A_l A_l^T) lambda_max(B_l^T B_l)
    lambda_min(M) >= lambda_min(Sigma) sum_l lambda_min(A_l A_l^T) lambda_min(B_l^T B_l).

When the right-hand side of the second line is positive, M is positive definite, G has full
rank kd, its smallest non-zero eigenvalue is lambda_min(M), and the ratio bounds kappa(G).
That is the only thing the proof needs: the paper's ``m >= max(d, k)`` makes *every* summand
positive, but one positive summand suffices (e.g. hidden widths >= k make the l = 1 summand,
``B_1 = I_d``, positive whatever d is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._base import Assumption, Extremes, Term, gram_extremes, log_sum, safe_log


@dataclass(frozen=True)
class ChainSpectra:
    """Extremes of ``A_l A_l^T`` and ``B_l^T B_l`` for l = 1..L (index 0..L-1)."""

    A: tuple[Extremes, ...]
    B: tuple[Extremes, ...]
    d: int
    k: int
    widths: tuple[int, ...]  # out_features of W_1 .. W_{L-1}


def _product(hi: int, lo: int) -> str:
    """'W_hi ... W_lo' (1-based), or 'W_hi' for a single factor."""
    return f"W_{hi}" if hi == lo else f"W_{hi} ... W_{lo}"


@np.errstate(over="ignore", invalid="ignore")
def chain_spectra(Ws: list[np.ndarray]) -> ChainSpectra:
    """All ``A_l``, ``B_l`` extremes with O(L) matrix products (prefix/suffix reuse).

    ``B_{l+1} = W_l B_l`` (m x d) and ``A_{l-1} = A_l W_l`` (k x m) are each formed once, and
    only the k x k and d x d Gram matrices are diagonalised.
    """
    L = len(Ws)
    d, k = Ws[0].shape[1], Ws[-1].shape[0]
    widths = tuple(W.shape[0] for W in Ws[:-1])
    one = Extremes(1.0, 1.0)

    B: list[Extremes] = [one]
    prod = Ws[0]
    for l in range(1, L):  # 0-based term l: B_l = W[l-1] ... W[0]
        if l > 1:
            prod = Ws[l - 1] @ prod
        e = gram_extremes(prod, "cols")
        if e.why_zero is not None:
            bottleneck = min(widths[:l])
            if bottleneck < d:
                e = Extremes(e.lam_max, 0.0, f"B_{l + 1} = {_product(l, 1)} has rank <= min "
                                             f"width {bottleneck} < d = {d}")
            else:
                e = Extremes(e.lam_max, 0.0, f"B_{l + 1}: {e.why_zero}")
        B.append(e)

    A: list[Extremes] = [one] * L
    prod = Ws[-1]
    for l in range(L - 2, -1, -1):  # 0-based term l: A_l = W[L-1] ... W[l+1]
        if l < L - 2:
            prod = prod @ Ws[l + 1]
        e = gram_extremes(prod, "rows")
        if e.why_zero is not None:
            bottleneck = min(widths[l:])
            if bottleneck < k:
                e = Extremes(e.lam_max, 0.0, f"A_{l + 1} = {_product(L, l + 2)} has rank <= "
                                             f"min width {bottleneck} < k = {k}")
            else:
                e = Extremes(e.lam_max, 0.0, f"A_{l + 1}: {e.why_zero}")
        A[l] = e
    return ChainSpectra(tuple(A), tuple(B), d, k, widths)


@dataclass(frozen=True)
class LayerSpectra:
    """Per-layer singular values squared: ``s_max2``, and the lambda_min of each Gram side.

    ``s_out2[i] = lambda_min(W_i W_i^T)`` (0 when out > in) bounds ``A``-side products from below;
    ``s_in2[i] = lambda_min(W_i^T W_i)`` (0 when in > out) bounds ``B``-side products.
    """

    s_max2: np.ndarray
    s_min2: np.ndarray  # smallest of the min(out, in) squared singular values
    s_out2: np.ndarray
    s_in2: np.ndarray


@np.errstate(over="ignore", invalid="ignore")
def layer_spectra(Ws: list[np.ndarray]) -> LayerSpectra:
    """Extreme squared singular values of every layer (one small Gram per layer)."""
    smax, smin, sout, sin = [], [], [], []
    for W in Ws:
        out, inn = W.shape
        e = gram_extremes(W, "rows" if out <= inn else "cols")
        smax.append(e.lam_max)
        smin.append(e.lam_min)
        sout.append(e.lam_min if out <= inn else 0.0)
        sin.append(e.lam_min if inn <= out else 0.0)
    return LayerSpectra(*(np.array(v, dtype=np.float64) for v in (smax, smin, sout, sin)))


def layerwise_products(ls: LayerSpectra) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Log of ``prod_{i>l} s_max2``, ``prod_{i<l} s_max2``, ``prod_{i>l} s_out2``, ``prod_{i<l} s_in2``.

    Sub-multiplicativity: ``lambda_max(A_l A_l^T) <= prod_{i>l} sigma_max^2(W_i)`` and
    ``lambda_min(A_l A_l^T) >= prod_{i>l} lambda_min(W_i W_i^T)``; likewise for B_l with
    ``i < l`` and ``lambda_min(W_i^T W_i)``. Prefix/suffix sums of logs, O(L).
    """
    lmax, lout, lin = safe_log(ls.s_max2), safe_log(ls.s_out2), safe_log(ls.s_in2)

    def suffix(v: np.ndarray) -> np.ndarray:  # sum_{i>l}
        out = np.zeros_like(v)
        out[:-1] = np.cumsum(v[::-1])[::-1][1:]
        return out

    def prefix(v: np.ndarray) -> np.ndarray:  # sum_{i<l}
        out = np.zeros_like(v)
        out[1:] = np.cumsum(v)[:-1]
        return out

    return suffix(lmax), prefix(lmax), suffix(lout), prefix(lin)


def safe_exp(x: float) -> float:
    """``exp(x)`` that returns inf instead of raising OverflowError (NaN stays NaN)."""
    return math.exp(x) if x < 709.0 or x != x else math.inf


@dataclass(frozen=True)
class RatioOfSums:
    """``sum_l num_l / sum_l den_l`` in log space, with its per-term parts."""

    terms: tuple[Term, ...]
    log_num: float
    log_den: float

    @property
    def positive(self) -> bool:
        return self.log_den > -math.inf

    @property
    def ratio(self) -> float:
        return safe_exp(self.log_num - self.log_den) if self.positive else math.inf

    @property
    def max_kappa2(self) -> float:
        return max(t.kappa2 for t in self.terms)


@np.errstate(over="ignore", invalid="ignore")
def ratio_of_sums(lmaxA: np.ndarray, lminA: np.ndarray, lmaxB: np.ndarray,
                  lminB: np.ndarray, logs: bool = False) -> RatioOfSums:
    """Build the terms and ``sum lmaxA lmaxB / sum lminA lminB`` (inputs are logs if ``logs``)."""
    if logs:
        LmA, LnA, LmB, LnB = lmaxA, lminA, lmaxB, lminB
        lmaxA, lminA, lmaxB, lminB = (np.exp(v) for v in (LmA, LnA, LmB, LnB))
    else:
        LmA, LnA, LmB, LnB = (safe_log(v) for v in (lmaxA, lminA, lmaxB, lminB))
    log_num = log_sum(LmA + LmB)
    log_den_terms = LnA + LnB
    log_den = log_sum(log_den_terms)
    if log_den > -math.inf:
        gammas = np.exp(log_den_terms - log_den)
    else:
        gammas = np.full(len(lmaxA), math.nan)
    terms = tuple(
        Term(l + 1, float(lmaxA[l]), float(lminA[l]), float(lmaxB[l]), float(lminB[l]),
             float(gammas[l]))
        for l in range(len(lmaxA)))
    return RatioOfSums(terms, log_num, log_den)


def chain_ratio(cs: ChainSpectra) -> RatioOfSums:
    """The Lemma 2 sums from the exact products."""
    return ratio_of_sums(np.array([e.lam_max for e in cs.A]), np.array([e.lam_min for e in cs.A]),
                         np.array([e.lam_max for e in cs.B]), np.array([e.lam_min for e in cs.B]))


def summarise_zero_terms(whys: list[str], limit: int = 3) -> str:
    """One line listing why the first few summands vanish."""
    shown = "; ".join(whys[:limit])
    more = f"; and {len(whys) - limit} more" if len(whys) > limit else ""
    return shown + more


def positive_term_assumption(cs: ChainSpectra, rs: RatioOfSums) -> Assumption:
    """'At least one summand l has lambda_min(A_l A_l^T) lambda_min(B_l^T B_l) > 0'."""
    statement = ("some term l has lambda_min(A_l A_l^T) lambda_min(B_l^T B_l) > 0 "
                 "(then G has full rank kd)")
    positive = [t.layer for t in rs.terms if t.lambda_min_A > 0 and t.lambda_min_B > 0]
    if positive:
        shown = ", ".join(map(str, positive[:6])) + (", ..." if len(positive) > 6 else "")
        return Assumption(statement, True,
                          f"{len(positive)} of {len(rs.terms)} terms positive (l = {shown})")
    whys = []
    for l in range(len(rs.terms)):
        why = cs.A[l].why_zero or cs.B[l].why_zero
        whys.append(f"l={l + 1}: {why}")
    return Assumption(statement, False, "every term vanishes: " + summarise_zero_terms(whys))


def all_terms_assumption(rs: RatioOfSums, cs: ChainSpectra | None = None) -> Assumption:
    """'Every summand is positive' (needed by the max bound, whose kappa^2 would be inf)."""
    statement = "every term l has lambda_min(A_l A_l^T) lambda_min(B_l^T B_l) > 0"
    zero = [t for t in rs.terms if not (t.lambda_min_A > 0 and t.lambda_min_B > 0)]
    if not zero:
        return Assumption(statement, True, f"all {len(rs.terms)} terms positive")
    whys = []
    for t in zero:
        why = None
        if cs is not None:
            why = cs.A[t.layer - 1].why_zero or cs.B[t.layer - 1].why_zero
        whys.append(f"l={t.layer}: " + (why or "kappa^2 is infinite"))
    return Assumption(statement, False,
                      f"{len(zero)} of {len(rs.terms)} terms vanish, so max_l kappa^2 = inf: "
                      + summarise_zero_terms(whys))


def paper_width_assumption(d: int, k: int, widths: tuple[int, ...]) -> Assumption:
    """The paper's sufficient condition ``m >= max(d, k)`` (informational)."""
    need = max(d, k)
    narrow = [w for w in widths if w < need]
    if not narrow:
        return Assumption("every hidden width m >= max(d, k) (the paper's sufficient condition)",
                          True, f"min width {min(widths) if widths else '-'} >= {need}",
                          required=False)
    return Assumption("every hidden width m >= max(d, k) (the paper's sufficient condition)",
                      False, f"min width {min(narrow)} < max(d, k) = {need}; the bound still "
                      "holds whenever some term is positive", required=False)


def finite_assumption(log_num: float, value: float) -> Assumption | None:
    """Fails when a weight product or the ratio overflowed float64 (absurd weight scales)."""
    if (math.isfinite(log_num) or log_num == -math.inf) and math.isfinite(value):
        return None
    return Assumption("float64 arithmetic stayed finite", False,
                      "a weight product or the ratio overflowed; rescale the weights")

