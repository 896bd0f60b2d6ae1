"""Layer-wise relaxation of Lemma 2: per-layer singular values only (sub-multiplicativity)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._base import PAPER, Assumption, Bound, DataSpectrum, add_identity, as_data, as_weights, \
    check_beta, data_spectrum
from ._chain import LayerSpectra, RatioOfSums, finite_assumption, layer_spectra, \
    layerwise_products, paper_width_assumption, ratio_of_sums, summarise_zero_terms

__all__ = ["layerwise"]


def _layerwise_ratio(ls: LayerSpectra) -> RatioOfSums:
    suf_max, pre_max, suf_out, pre_in = layerwise_products(ls)
    return ratio_of_sums(suf_max, suf_out, pre_max, pre_in, logs=True)


def _zero_layer_reasons(ls: LayerSpectra, shapes: list[tuple[int, int]]) -> list[str]:
    """Why each term of the layer-wise denominator vanishes (first zero factor)."""
    L = len(shapes)
    whys = []
    for l in range(L):
        why = None
        for i in range(l + 1, L):
            if ls.s_out2[i] == 0.0:
                out, inn = shapes[i]
                why = (f"W_{i + 1} is {out}x{inn} with out > in, so lambda_min(W W^T) = 0"
                       if out > inn else f"W_{i + 1} is numerically singular")
                break
        if why is None:
            for i in range(l):
                if ls.s_in2[i] == 0.0:
                    out, inn = shapes[i]
                    why = (f"W_{i + 1} is {out}x{inn} with in > out, so lambda_min(W^T W) = 0"
                           if inn > out else f"W_{i + 1} is numerically singular")
                    break
        whys.append(f"l={l + 1}: {why}")
    return whys


def _ratio_bound(name: str, kind: str, ls: LayerSpectra, shapes: list[tuple[int, int]],
                 ds: DataSpectrum, extra: list[Assumption], reference: str,
                 details: dict[str, Any]) -> Bound:
    """Shared by :func:`layerwise` and :func:`residual_aligned`."""
    rs = _layerwise_ratio(ls)
    statement = ("some term l has prod_{i>l} lambda_min(W_i W_i^T) prod_{i<l} "
                 "lambda_min(W_i^T W_i) > 0")
    if rs.positive:
        pos = sum(1 for t in rs.terms if t.lambda_min_A > 0 and t.lambda_min_B > 0)
        positive = Assumption(statement, True, f"{pos} of {len(rs.terms)} terms positive")
    else:
        positive = Assumption(statement, False, "every term vanishes: "
                              + summarise_zero_terms(_zero_layer_reasons(ls, shapes)))
    d, k = shapes[0][1], shapes[-1][0]
    widths = tuple(s[0] for s in shapes[:-1])
    assumptions = [ds.assumption(), positive, paper_width_assumption(d, k, widths), *extra]
    value = ds.kappa * rs.ratio
    bad = finite_assumption(rs.log_num, value if rs.positive and ds.lam_min > 0 else 0.0)
    if bad is not None:
        assumptions.append(bad)
    computable = ds.lam_min > 0 and rs.positive and bad is None
    valid = all(a.holds for a in assumptions if a.required)
    value = value if computable else None
    if kind == "bound" and not valid:
        value = None
    details = dict(details)
    details.update({
        "lambda_max_sigma": ds.lam_max, "lambda_min_sigma": ds.lam_min,
        "sigma_max": np.sqrt(ls.s_max2).tolist(), "sigma_min": np.sqrt(ls.s_min2).tolist(),
        "log_numerator": rs.log_num, "log_denominator": rs.log_den,
    })
    return Bound(name=name, value=value, valid=valid, kind=kind,
                 assumptions=tuple(assumptions), reference=reference,
                 kappa_sigma=ds.kappa, terms=rs.terms, details=details)


def layerwise(weights: Sequence[Any], X: Any, beta: float = 0.0) -> Bound:
    r"""Lemma 2 relaxed to per-layer singular values (valid, very loose when deep).

    Sub-multiplicativity of the extreme singular values in Lemma 2 gives

    .. math::

        \kappa(G) \le \kappa(\Sigma)\,
        \frac{\sum_l \prod_{i \ne l} \sigma^2_{\max}(W_i)}
             {\sum_l \prod_{i > l} \lambda_{\min}(W_i W_i^\top)
                      \prod_{i < l} \lambda_{\min}(W_i^\top W_i)},

    which is the ``sum_l prod_{i!=l} sigma^2_max / sum_l prod_{i!=l} sigma^2_min`` form of
    gn-theory Sec. 4, with the orientation made explicit: factors to the left of ``W_l`` (in
    ``A_l``) need full row rank, factors to the right (in ``B_l``) full column rank. For square
    hidden layers both are ``sigma^2_min(W_i)``. Each term bounds the matching Lemma 2 term,
    so ``layerwise >= lemma2`` whenever both are valid. ``beta > 0`` evaluates it on
    ``W_l + beta I_rect`` (Eq. 7).

    Assumptions: ``Sigma`` full rank and at least one positive term, else vacuous
    (``value is None``).

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
        ``name="layerwise"``; ``terms`` hold the per-term products (bounds on the Lemma 2
        eigenvalues), ``details["sigma_max"]``/``["sigma_min"]`` the per-layer values.

    Raises
    ------
    GNAdvisorError
        If the weights are not a chain of 2-D matrices, ``X`` is not (n, d), or ``beta < 0``.

    References
    ----------
    Zhao, Singh & Lucchi (NeurIPS 2024), Lemma 2 with sub-multiplicativity of the extreme
    singular values (the per-layer form used for the residual analysis, Eq. 7-8).

    Examples
    --------
    >>> import numpy as np
    >>> from gnadvisor.bounds import layerwise, lemma2
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 4))
    >>> Ws = [rng.standard_normal((8, 4)), rng.standard_normal((8, 8)), rng.standard_normal((3, 8))]
    >>> layerwise(Ws, X).value >= lemma2(Ws, X).value
    True
    """
    beta = check_beta(beta)
    Ws = add_identity(as_weights(weights), beta)
    ds = data_spectrum(as_data(X, Ws[0].shape[1]))
    extra = []
    if beta:
        extra.append(Assumption("residual form W_l + beta I_rect on every layer (Eq. 7)", True,
                                f"beta = {beta:g}", required=False))
    return _ratio_bound("layerwise", "bound", layer_spectra(Ws), [W.shape for W in Ws], ds,
                        extra, f"{PAPER}, Lemma 2 with sub-multiplicativity (layer-wise form)",
                        {"beta": beta})
