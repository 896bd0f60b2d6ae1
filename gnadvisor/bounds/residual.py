"""Eq. 8: the residual-network estimate under aligned singular vectors (a heuristic)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._base import PAPER, Assumption, Bound, add_identity, as_data, as_weights, check_beta, \
    data_spectrum
from ._chain import LayerSpectra, layer_spectra
from .layerwise import _ratio_bound

__all__ = ["residual_aligned"]

_ALIGN_RTOL = 1e-8


def residual_aligned(weights: Sequence[Any], X: Any, beta: float) -> Bound:
    r"""Eq. 8: kappa(G) of a residual linear net if each ``W_l + beta I`` shifted its spectrum.

    Under the paper's assumption that the singular vectors of ``W_l`` align with ``I_rect``,
    ``sigma(W_l + beta I_rect) = sigma(W_l) + beta``, i.e.
    ``kappa(W_l + beta I) = (sigma_max(W_l) + beta) / (sigma_min(W_l) + beta)``, and the
    layer-wise form of Lemma 2 becomes

    .. math::

        \kappa(G) \lesssim \kappa(\Sigma)
        \frac{\sum_l \prod_{i \ne l} (\sigma_{\max}(W_i) + \beta)^2}
             {\sum_l \prod_{i \ne l} (\sigma_{\min}(W_i) + \beta)^2}
        = \kappa(\Sigma) \sum_l \gamma_l \prod_{i \ne l}
          \Bigl(\frac{\sigma_{\max}(W_i) + \beta}{\sigma_{\min}(W_i) + \beta}\Bigr)^2,

    (``sigma_min`` the smallest of the ``min(out, in)`` singular values; a factor whose Gram on
    the needed side is singular, e.g. a wide first layer, counts as 0 exactly as in
    :func:`layerwise`). It shows why ``beta`` improves conditioning, but it is **not a bound**:
    for general weights ``W + beta I`` does not shift singular values (only Weyl's
    ``sigma_min(W) - beta <= sigma_min(W + beta I)`` holds), and the estimate can be below the
    true kappa. ``kind="estimate"``; ``valid`` is True only when the alignment is verified
    numerically on every layer (e.g. symmetric PSD square layers), and then the value equals
    :func:`layerwise` ``(weights, X, beta)``, a proven bound. For a proven number on
    residual nets use :func:`lemma2` or :func:`layerwise` with ``beta``.

    Parameters
    ----------
    weights : sequence of array-like or torch.Tensor
        The residual branches ``[W_1, ..., W_L]`` (without the identity), (out, in) orientation.
    X : array-like or torch.Tensor
        Inputs, shape (n, d).
    beta : float
        Residual scale; ``beta >= 0``.

    Returns
    -------
    Bound
        ``name="residual_aligned"``, ``kind="estimate"``. ``details["alignment_error"]`` is the
        largest relative gap between ``sigma(W + beta I)`` and ``sigma(W) + beta`` at the extremes.

    Raises
    ------
    GNAdvisorError
        If the weights are not a chain of 2-D matrices, ``X`` is not (n, d), or ``beta < 0``.

    References
    ----------
    Zhao, Singh & Lucchi (NeurIPS 2024), Eq. 7 (residual layers) and Eq. 8 (bound under
    aligned singular vectors).

    Examples
    --------
    >>> import numpy as np
    >>> from gnadvisor.bounds import residual_aligned, layerwise
    >>> Ws = [np.diag([1.0, 2.0, 3.0])] * 3     # symmetric PSD: aligned with I
    >>> X = np.eye(3)
    >>> e = residual_aligned(Ws, X, beta=1.0)
    >>> e.kind, e.valid, bool(np.isclose(e.value, layerwise(Ws, X, beta=1.0).value))
    ('estimate', True, True)
    """
    beta = check_beta(beta)
    Ws = as_weights(weights)
    ds = data_spectrum(as_data(X, Ws[0].shape[1]))
    shapes = [W.shape for W in Ws]
    raw = layer_spectra(Ws)
    smax = np.sqrt(raw.s_max2) + beta
    smin = np.sqrt(raw.s_min2) + beta
    sq_ok_out = np.array([o <= i for o, i in shapes])
    sq_ok_in = np.array([i <= o for o, i in shapes])
    aligned = LayerSpectra(smax ** 2, smin ** 2, np.where(sq_ok_out, smin ** 2, 0.0),
                           np.where(sq_ok_in, smin ** 2, 0.0))

    actual = layer_spectra(add_identity(Ws, beta)) if beta else raw
    amax, amin = np.sqrt(actual.s_max2), np.sqrt(actual.s_min2)
    err = np.maximum(np.abs(amax - smax) / np.maximum(smax, 1e-300),
                     np.abs(amin - smin) / np.maximum(smin, 1e-300))
    worst = int(np.argmax(err))
    ok = bool(np.all(err <= _ALIGN_RTOL))
    if ok:
        detail = f"sigma(W_l + beta I) = sigma(W_l) + beta on all {len(Ws)} layers"
    else:
        detail = (f"W_{worst + 1}: sigma_max, sigma_min of W + beta I are {amax[worst]:.4g}, "
                  f"{amin[worst]:.4g}, not sigma(W) + beta = {smax[worst]:.4g}, "
                  f"{smin[worst]:.4g}; this is an estimate, not a bound (use lemma2 or "
                  "layerwise with beta for a bound)")
    align = Assumption("singular vectors of each W_l aligned with I_rect, so that "
                       "sigma(W_l + beta I_rect) = sigma(W_l) + beta", ok, detail)
    details = {"beta": beta, "alignment_error": float(err.max()),
               "kappa_aligned": (smax / smin).tolist(),
               "kappa_actual": (amax / np.where(amin > 0, amin, np.nan)).tolist()}
    return _ratio_bound("residual_aligned", "estimate", aligned, shapes, ds, [align],
                        f"{PAPER}, Eq. 8 (residual connections, aligned singular vectors)",
                        details)
