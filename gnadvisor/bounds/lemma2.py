"""Lemma 2: the convex-combination bound for deep linear (and residual, Eq. 7) networks."""

from __future__ import annotations

import math
from typing import Any, Sequence

from ._base import PAPER, Assumption, Bound, DataSpectrum, add_identity, as_data, as_weights, \
    check_beta, data_spectrum
from ._chain import ChainSpectra, RatioOfSums, all_terms_assumption, chain_ratio, chain_spectra, \
    finite_assumption, paper_width_assumption, positive_term_assumption, safe_exp

__all__ = ["lemma2", "lemma2_max"]


def _prepare(weights: Any, X: Any, beta: Any) -> tuple[ChainSpectra, DataSpectrum, float]:
    beta = check_beta(beta)
    Ws = as_weights(weights)
    Xf = as_data(X, Ws[0].shape[1])
    return chain_spectra(add_identity(Ws, beta)), data_spectrum(Xf), beta


def _residual_assumption(beta: float) -> list[Assumption]:
    if beta == 0.0:
        return []
    return [Assumption("residual form h -> (W_l + beta I_rect) h on every layer (Eq. 7), "
                       "I_rect = eye(out, in)", True, f"beta = {beta:g}; the bound is evaluated "
                       "on W_l + beta I_rect", required=False)]


def _lemma2_from(cs: ChainSpectra, ds: DataSpectrum, beta: float, *, name: str = "lemma2",
                 reference: str | None = None) -> Bound:
    rs = chain_ratio(cs)
    assumptions = [ds.assumption(), positive_term_assumption(cs, rs),
                   paper_width_assumption(cs.d, cs.k, cs.widths), *_residual_assumption(beta)]
    value = ds.kappa * rs.ratio
    bad = finite_assumption(rs.log_num, value if rs.positive and ds.lam_min > 0 else 0.0)
    if bad is not None:
        assumptions.append(bad)
    valid = all(a.holds for a in assumptions if a.required)
    value = value if valid else None
    return Bound(
        name=name, value=value, valid=valid, kind="bound", assumptions=tuple(assumptions),
        reference=reference or f"{PAPER}, Lemma 2 (Eq. 6); residual form Eq. 7",
        kappa_sigma=ds.kappa, terms=rs.terms, details=_details(rs, ds, beta))


def _details(rs: RatioOfSums, ds: DataSpectrum, beta: float) -> dict[str, Any]:
    dominant = max(rs.terms, key=lambda t: (t.gamma if t.gamma == t.gamma else -1.0,
                                            -t.layer))
    return {
        "beta": beta,
        "lambda_max_sigma": ds.lam_max, "lambda_min_sigma": ds.lam_min,
        "numerator": safe_exp(rs.log_num), "denominator": safe_exp(rs.log_den),
        "log_numerator": rs.log_num, "log_denominator": rs.log_den,
        "n_layers": len(rs.terms),
        "largest_gamma_layer": dominant.layer if rs.positive else None,
    }


def _lemma2_max_from(cs: ChainSpectra, ds: DataSpectrum, beta: float) -> Bound:
    rs = chain_ratio(cs)
    assumptions = [ds.assumption(), all_terms_assumption(rs, cs),
                   paper_width_assumption(cs.d, cs.k, cs.widths), *_residual_assumption(beta)]
    valid = all(a.holds for a in assumptions if a.required)
    worst = max(rs.terms, key=lambda t: t.kappa2)
    value = ds.kappa * worst.kappa2 if valid else None
    if value is not None and not math.isfinite(value):
        assumptions.append(Assumption("float64 arithmetic stayed finite", False,
                                      "kappa^2 overflowed; rescale the weights"))
        valid, value = False, None
    details = _details(rs, ds, beta)
    details["argmax_layer"] = worst.layer
    return Bound(
        name="lemma2_max", value=value, valid=valid, kind="bound",
        assumptions=tuple(assumptions),
        reference=f"{PAPER}, Lemma 2, naive max form (compared in Fig. 3)",
        kappa_sigma=ds.kappa, terms=rs.terms, details=details)


def lemma2(weights: Sequence[Any], X: Any, beta: float = 0.0) -> Bound:
    r"""Lemma 2: convex-combination bound on kappa(G) for an L-layer linear network.

    .. math::

        \kappa(G) \le \kappa(\Sigma)\,
        \frac{\sum_l \lambda_{\max}(A_l A_l^\top)\,\lambda_{\max}(B_l^\top B_l)}
             {\sum_l \lambda_{\min}(A_l A_l^\top)\,\lambda_{\min}(B_l^\top B_l)}
        = \kappa(\Sigma) \sum_l \gamma_l\, \kappa^2(A_l)\, \kappa^2(B_l),

    with ``A_l = W_L ... W_{l+1}`` (``A_L = I_k``), ``B_l = W_{l-1} ... W_1`` (``B_1 = I_d``),
    ``gamma_l`` proportional to the denominator's summands (the second form holds when every
    summand is positive). With ``beta > 0`` every layer is ``W_l + beta I_rect`` (Eq. 7).

    Assumptions (checked, see ``Bound.assumptions``): ``Sigma`` has full rank, and at least one
    summand of the denominator is positive. The paper states ``m >= max(d, k)``, which makes
    every summand positive; the proof only needs one, so e.g. a net with all hidden widths
    ``>= k`` but narrower than ``d`` still gets a valid bound (then G has full rank ``kd``).
    Otherwise the bound is vacuous: ``value is None``.

    All ``A_l``, ``B_l`` come from one suffix and one prefix sweep (O(L) products), and only
    k x k and d x d Gram matrices are diagonalised; the sums are taken in log space.

    Parameters
    ----------
    weights : sequence of array-like or torch.Tensor
        ``[W_1, ..., W_L]`` in forward order, each (out, in) as ``nn.Linear.weight``;
        ``W_1`` is m x d and ``W_L`` is k x m.
    X : array-like or torch.Tensor
        Inputs, shape (n, d). ``Sigma = X^T X / n`` (uncentred).
    beta : float, default 0.0
        Residual scale; ``beta >= 0``.

    Returns
    -------
    Bound
        ``name="lemma2"``, ``kind="bound"``; ``terms`` holds each ``kappa^2(A_l)``,
        ``kappa^2(B_l)`` and ``gamma_l``, ``kappa_sigma`` holds kappa(Sigma).

    Raises
    ------
    GNAdvisorError
        If the weights are not a chain of 2-D matrices, ``X`` is not (n, d), or ``beta < 0``.

    References
    ----------
    Zhao, Singh & Lucchi (NeurIPS 2024), Lemma 2 (Eq. 6) and Eq. 7 (residual connections);
    the exact spectrum it bounds is their Eq. 4-5 (Singh et al., 2021).

    Examples
    --------
    >>> import numpy as np
    >>> from gnadvisor.bounds import lemma2
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 4))
    >>> Ws = [rng.standard_normal((8, 4)), rng.standard_normal((8, 8)), rng.standard_normal((3, 8))]
    >>> b = lemma2(Ws, X)
    >>> b.valid, b.kind, len(b.terms)
    (True, 'bound', 3)
    >>> round(sum(t.gamma for t in b.terms), 12)
    1.0
    >>> lemma2([rng.standard_normal((2, 4)), rng.standard_normal((3, 2))], X).value is None
    True
    """
    cs, ds, beta = _prepare(weights, X, beta)
    return _lemma2_from(cs, ds, beta)


def lemma2_max(weights: Sequence[Any], X: Any, beta: float = 0.0) -> Bound:
    r"""The naive max form of Lemma 2: ``kappa(Sigma) * max_l kappa^2(A_l) kappa^2(B_l)``.

    Valid (a weighted mean is at most the maximum) but far looser than :func:`lemma2` for deep
    nets (paper Fig. 3). It needs *every* summand to be positive, otherwise the maximum is
    infinite and the bound is vacuous (``value is None``); so it is vacuous in some cases where
    :func:`lemma2` is not. With ``beta > 0`` every layer is ``W_l + beta I_rect`` (Eq. 7).

    Parameters
    ----------
    weights : sequence of array-like or torch.Tensor
        ``[W_1, ..., W_L]`` in forward order, (out, in) orientation.
    X : array-like or torch.Tensor
        Inputs, shape (n, d).
    beta : float, default 0.0
        Residual scale; ``beta >= 0``.

    Returns
    -------
    Bound
        ``name="lemma2_max"``; ``details["argmax_layer"]`` is the l attaining the maximum.

    Raises
    ------
    GNAdvisorError
        If the weights are not a chain of 2-D matrices, ``X`` is not (n, d), or ``beta < 0``.

    References
    ----------
    Zhao, Singh & Lucchi (NeurIPS 2024), Lemma 2 and the comparison of the two bounds in
    Fig. 3.

    Examples
    --------
    >>> import numpy as np
    >>> from gnadvisor.bounds import lemma2, lemma2_max
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 4))
    >>> Ws = [rng.standard_normal((8, 4)), rng.standard_normal((8, 8)), rng.standard_normal((3, 8))]
    >>> lemma2(Ws, X).value <= lemma2_max(Ws, X).value
    True
    """
    cs, ds, beta = _prepare(weights, X, beta)
    return _lemma2_max_from(cs, ds, beta)
