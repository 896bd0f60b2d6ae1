"""Lemma 4: one-hidden-layer Leaky-ReLU network ``f(x) = W sigma(V x)``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._checks import GNAdvisorError, check_real
from ._base import PAPER, Assumption, Bound, Extremes, as_data, as_weights, gram_extremes

__all__ = ["lemma4", "lemma4_loose"]


@dataclass(frozen=True)
class _Parts:
    n: int
    d: int
    m: int
    k: int
    alpha: float
    K: Extremes      # X X^T (n x n), the paper's X_c^T X_c
    WW: Extremes     # W W^T (k x k)
    SS: Extremes     # S^T S (n x n), S = sigma(V X^T) (m x n)
    ZZ: Extremes     # Z^T Z (n x n), Z = V X^T (pre-activations)
    Z_fro2: float    # ||V X^T||_F^2
    c_min: float     # min(1, alpha^2): smallest squared derivative
    c_max: float     # max(1, alpha^2): largest squared derivative


def _parts(weights: Any, X: Any, alpha: Any) -> _Parts:
    alpha = check_real("alpha", alpha)
    Ws = as_weights(weights)
    if len(Ws) != 2:
        raise GNAdvisorError(
            f"weights must hold exactly 2 matrices [V, W] (one hidden layer), got {len(Ws)}")
    V, W = Ws
    Xf = as_data(X, V.shape[1])
    n, d = Xf.shape
    m, k = V.shape[0], W.shape[0]
    Z = V @ Xf.T                                  # m x n pre-activations
    S = np.where(Z > 0, Z, alpha * Z)             # sigma(z) = max(z, alpha z) for alpha <= 1
    return _Parts(n, d, m, k, alpha,
                  K=gram_extremes(Xf, "rows"), WW=gram_extremes(W, "rows"),
                  SS=gram_extremes(S, "cols"), ZZ=gram_extremes(Z, "cols"),
                  Z_fro2=float(np.sum(Z * Z)),
                  c_min=min(1.0, alpha * alpha), c_max=max(1.0, alpha * alpha))


def _why(e: Extremes, what: str, dims: str) -> str:
    if e.lam_min > 0:
        return f"lambda_min({what}) = {e.lam_min:.4g} > 0"
    return f"lambda_min({what}) = 0 ({dims}: {e.why_zero})"


def _paper_conditions(p: _Parts) -> Assumption:
    ok = p.n <= p.d and p.n <= p.m and p.m >= p.k
    fails = [s for s, c in ((f"n = {p.n} > d = {p.d}", p.n > p.d),
                            (f"n = {p.n} > m = {p.m}", p.n > p.m),
                            (f"m = {p.m} < k = {p.k}", p.m < p.k)) if c]
    return Assumption("n <= d, n <= m and m >= k (the paper's conditions)", ok,
                      "; ".join(fails) if fails else f"n={p.n}, d={p.d}, m={p.m}, k={p.k}",
                      required=False)


def _common_details(p: _Parts) -> dict[str, Any]:
    return {
        "alpha": p.alpha, "n": p.n, "d": p.d, "m": p.m, "k": p.k,
        "lambda_max_XXt": p.K.lam_max, "lambda_min_XXt": p.K.lam_min,
        "lambda_max_WWt": p.WW.lam_max, "lambda_min_WWt": p.WW.lam_min,
        "lambda_max_StS": p.SS.lam_max, "lambda_min_StS": p.SS.lam_min,
        "lambda_max_ZtZ": p.ZZ.lam_max, "lambda_min_ZtZ": p.ZZ.lam_min,
        "frobenius2_VXt": p.Z_fro2, "c_min": p.c_min, "c_max": p.c_max,
    }


def lemma4(weights: Sequence[Any], X: Any, alpha: float) -> Bound:
    r"""Lemma 4: kappa(G) of ``f(x) = W sigma(V x)`` with Leaky-ReLU ``sigma`` (slope ``alpha``).

    With ``S = sigma(V X^T)`` (m x n) and ``Lambda_i = diag(sigma'(v_i^T x_q))`` (entries 1 or
    **+alpha**), ``J J^T = (S^T S) kron I_k + sum_i (Lambda_i X X^T Lambda_i) kron (w_i w_i^T)``
    (Eq. 9-11). Since ``c_min I <= Lambda_i^2 <= c_max I`` with ``c_min = min(1, alpha^2)``,
    ``c_max = max(1, alpha^2)``,

    .. math::

        \kappa(G) \le
        \frac{c_{\max}\,\lambda_{\max}(XX^\top)\,\lambda_{\max}(WW^\top) + \lambda_{\max}(S^\top S)}
             {c_{\min}\,\lambda_{\min}(XX^\top)\,\lambda_{\min}(WW^\top) + \lambda_{\min}(S^\top S)},

    which for ``0 <= alpha <= 1`` is the paper's ``[... ] / [alpha^2 ... + lambda_min(S^T S)]``.
    ``X X^T`` and ``S^T S`` are n x n: ``lambda_min(X X^T) > 0`` needs ``n <= d``,
    ``lambda_min(W W^T) > 0`` needs ``m >= k``, ``lambda_min(S^T S) > 0`` needs ``n <= m``.
    The bound needs only a positive denominator (then ``J J^T`` is positive definite and its
    smallest eigenvalue is the smallest non-zero one of G): either the first summand
    (``alpha != 0``, ``n <= d``, ``m >= k``) or the second. Otherwise vacuous, ``value is None``.
    ReLU is ``alpha = 0``: only the ``S^T S`` summand can make it non-vacuous.

    Parameters
    ----------
    weights : sequence of two array-like or torch.Tensor
        ``[V, W]``: ``V`` is m x d, ``W`` is k x m (PyTorch (out, in) orientation), no biases.
    X : array-like or torch.Tensor
        Inputs, shape (n, d).
    alpha : float
        Negative slope of the Leaky-ReLU (``torch.nn.LeakyReLU(negative_slope=alpha)``).

    Returns
    -------
    Bound
        ``name="lemma4"``, ``kind="bound"``; ``details`` holds every eigenvalue in the formula.

    Raises
    ------
    GNAdvisorError
        If ``weights`` is not ``[V, W]``, ``X`` is not (n, d), or ``alpha`` is not finite.

    References
    ----------
    Zhao, Singh & Lucchi (NeurIPS 2024), Eq. 9-11 and Lemma 4. The derivative on the negative
    side is ``+alpha`` (their research code used ``-alpha``; gn-theory Sec. 9).

    Examples
    --------
    >>> import numpy as np
    >>> from gnadvisor.bounds import lemma4
    >>> rng = np.random.default_rng(0)
    >>> V, W = rng.standard_normal((6, 5)), rng.standard_normal((2, 6))
    >>> lemma4([V, W], rng.standard_normal((4, 5)), alpha=0.3).valid    # n=4 <= d, m
    True
    >>> lemma4([V, W], rng.standard_normal((9, 5)), alpha=0.3).value is None   # n > d, m
    True
    """
    p = _parts(weights, X, alpha)
    first = p.c_min * p.K.lam_min * p.WW.lam_min
    den = first + p.SS.lam_min
    num = p.c_max * p.K.lam_max * p.WW.lam_max + p.SS.lam_max
    detail = "; ".join([
        _why(p.K, "X X^T", f"n x n with n = {p.n}, d = {p.d}"),
        _why(p.WW, "W W^T", f"k x k with k = {p.k}, m = {p.m}"),
        _why(p.SS, "S^T S", f"n x n with n = {p.n}, m = {p.m}"),
        f"alpha^2 = {p.alpha ** 2:.4g}",
    ])
    positive = Assumption("denominator c_min lambda_min(X X^T) lambda_min(W W^T) + "
                          "lambda_min(S^T S) > 0 (then J J^T is positive definite)",
                          den > 0, detail)
    assumptions = (positive, _paper_conditions(p))
    valid = den > 0 and math.isfinite(num)
    details = _common_details(p)
    details.update({"numerator": num, "denominator": den})
    return Bound(name="lemma4", value=num / den if valid else None, valid=valid, kind="bound",
                 assumptions=assumptions, reference=f"{PAPER}, Lemma 4 (Eq. 9-11)",
                 details=details)


def lemma4_loose(weights: Sequence[Any], X: Any, alpha: float) -> Bound:
    r"""Activation-free relaxation of Lemma 4 (a corrected form of the paper's looser bound).

    The paper's second form replaces ``S^T S`` by ``alpha^2 X V^T V X^T`` below and by
    ``X V^T V X^T`` above. Neither step holds in general: a Leaky-ReLU applied entrywise can
    raise the spectral norm and lower the smallest singular value beyond those factors, and the
    published expression can fall below the true kappa. For example ``X = [[0, 1], [-2, -2]]``,
    ``V = [[2, 0], [-2, -2]]``, ``W = [[0, 1]]``, ``alpha = 0.3`` give kappa(G) = 1402.3 but the
    published form 823.7 (``details["paper_value"]`` reports it, labelled, for comparison).

    What is returned is the proven relaxation: ``lambda_max(S^T S) <= ||S||_F^2 <=
    c_max ||V X^T||_F^2`` (entrywise ``|sigma(z)| <= max(1, |alpha|) |z|``) and
    ``lambda_min(S^T S) >= 0``:

    .. math::

        \kappa(G) \le
        \frac{c_{\max}\,(\lambda_{\max}(XX^\top)\,\lambda_{\max}(WW^\top) + \|VX^\top\|_F^2)}
             {c_{\min}\,\lambda_{\min}(XX^\top)\,\lambda_{\min}(WW^\top)},

    always ``>= lemma4``. It needs ``alpha != 0``, ``n <= d`` (``X X^T`` invertible) and
    ``m >= k``; otherwise vacuous (``value is None``).

    Parameters
    ----------
    weights : sequence of two array-like or torch.Tensor
        ``[V, W]``: ``V`` is m x d, ``W`` is k x m, PyTorch (out, in) orientation.
    X : array-like or torch.Tensor
        Inputs, shape (n, d).
    alpha : float
        Negative slope of the Leaky-ReLU.

    Returns
    -------
    Bound
        ``name="lemma4_loose"``, ``kind="bound"``; ``details["paper_value"]`` is the published
        expression (not a bound), or None when its denominator vanishes.

    Raises
    ------
    GNAdvisorError
        If ``weights`` is not ``[V, W]``, ``X`` is not (n, d), or ``alpha`` is not finite.

    References
    ----------
    Zhao, Singh & Lucchi (NeurIPS 2024), Lemma 4 (second, looser form), corrected here as
    described above; Eq. 9-11 for the exact ``J J^T``.

    Examples
    --------
    >>> import numpy as np
    >>> from gnadvisor.bounds import lemma4, lemma4_loose
    >>> rng = np.random.default_rng(0)
    >>> V, W, X = rng.standard_normal((6, 5)), rng.standard_normal((2, 6)), rng.standard_normal((4, 5))
    >>> lemma4_loose([V, W], X, alpha=0.3).value >= lemma4([V, W], X, alpha=0.3).value
    True
    """
    p = _parts(weights, X, alpha)
    den = p.c_min * p.K.lam_min * p.WW.lam_min
    num = p.c_max * (p.K.lam_max * p.WW.lam_max + p.Z_fro2)
    detail = "; ".join([
        _why(p.K, "X X^T", f"n x n with n = {p.n}, d = {p.d}"),
        _why(p.WW, "W W^T", f"k x k with k = {p.k}, m = {p.m}"),
        f"alpha^2 = {p.alpha ** 2:.4g}" + (" (ReLU)" if p.alpha == 0 else ""),
    ])
    positive = Assumption("c_min lambda_min(X X^T) lambda_min(W W^T) > 0 (alpha != 0, n <= d, "
                          "m >= k)", den > 0, detail)
    paper_den = p.alpha ** 2 * (p.K.lam_min * p.WW.lam_min + p.ZZ.lam_min)
    paper_num = p.K.lam_max * p.WW.lam_max + p.ZZ.lam_max
    note = Assumption("the published looser form is not used: it is not a valid bound in "
                      "general (see docstring)", True,
                      "details['paper_value'] reports it for comparison only", required=False)
    valid = den > 0 and math.isfinite(num)
    details = _common_details(p)
    details.update({"numerator": num, "denominator": den,
                    "paper_value": paper_num / paper_den if paper_den > 0 else None})
    return Bound(name="lemma4_loose", value=num / den if valid else None, valid=valid,
                 kind="bound", assumptions=(positive, _paper_conditions(p), note),
                 reference=f"{PAPER}, Lemma 4 (looser form, corrected)", details=details)
