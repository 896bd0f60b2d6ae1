"""Lemma 1: the one-hidden-layer linear network bound (tight when Sigma is proportional to I)."""

from __future__ import annotations

from typing import Any, Sequence

from .._checks import GNAdvisorError
from ._base import PAPER, Bound, as_data, as_weights, data_spectrum
from ._chain import chain_spectra
from .lemma2 import _lemma2_from

__all__ = ["lemma1"]


def lemma1(weights: Sequence[Any], X: Any) -> Bound:
    r"""Lemma 1: kappa(G) of ``f(x) = W V x`` (one hidden layer, no activation).

    .. math::

        \kappa(G) \le \kappa(\Sigma)\,
        \frac{\sigma^2_{\max}(W) + \sigma^2_{\max}(V)}{\sigma^2_{\min}(W) + \sigma^2_{\min}(V)}
        = \kappa(\Sigma)\,[\gamma\,\kappa^2(W) + (1-\gamma)\,\kappa^2(V)],
        \quad \gamma = \frac{\sigma^2_{\min}(W)}{\sigma^2_{\min}(W) + \sigma^2_{\min}(V)},

    with ``sigma^2_min(W) = lambda_min(W W^T)`` (k x k) and ``sigma^2_min(V) =
    lambda_min(V^T V)`` (d x d). Equality holds when ``Sigma`` is proportional to the identity
    (whitened data): then the GN spectrum is ``{c (lambda_i(W W^T) + lambda_j(V^T V))}``.

    Assumptions: ``Sigma`` full rank and a positive denominator. The paper assumes
    ``m >= max(d, k)``; the denominator is already positive when ``m >= k`` (``W W^T``
    invertible) or ``m >= d`` (``V^T V`` invertible), and the bound (and the equality for
    whitened data) then still holds. When ``m < k`` and ``m < d`` both Grams are singular and
    the bound is vacuous (``value is None``). This is :func:`lemma2` with ``L = 2``; its two terms are
    ``l = 1`` (``A_1 = W``, ``B_1 = I_d``) and ``l = 2`` (``A_2 = I_k``, ``B_2 = V``).

    Parameters
    ----------
    weights : sequence of two array-like or torch.Tensor
        ``[V, W]``: ``V`` is m x d (first layer), ``W`` is k x m, PyTorch (out, in) orientation.
    X : array-like or torch.Tensor
        Inputs, shape (n, d).

    Returns
    -------
    Bound
        ``name="lemma1"``, ``kind="bound"``; ``details["gamma"]`` is gamma above.

    Raises
    ------
    GNAdvisorError
        If ``weights`` is not two chained 2-D matrices, or ``X`` is not (n, d).

    References
    ----------
    Zhao, Singh & Lucchi (NeurIPS 2024), Lemma 1 (and its tightness for whitened data).

    Examples
    --------
    >>> import numpy as np
    >>> from gnadvisor.bounds import lemma1
    >>> V = np.diag([1.0, 2.0])           # m = d = 2
    >>> W = np.array([[3.0, 0.0]])        # k = 1
    >>> b = lemma1([V, W], np.eye(2))     # Sigma = I / 2, kappa(Sigma) = 1
    >>> round(b.value, 12)                # (9 + 4) / (9 + 1)
    1.3
    """
    Ws = as_weights(weights)
    if len(Ws) != 2:
        raise GNAdvisorError(
            f"weights must hold exactly 2 matrices [V, W] for lemma1 (one hidden layer), got "
            f"{len(Ws)}; use lemma2 for deeper networks")
    Xf = as_data(X, Ws[0].shape[1])
    b = _lemma2_from(chain_spectra(Ws), data_spectrum(Xf), 0.0, name="lemma1",
                     reference=f"{PAPER}, Lemma 1")
    t1, t2 = b.terms
    details = dict(b.details)
    details.update({
        "sigma2_max_W": t1.lambda_max_A, "sigma2_min_W": t1.lambda_min_A,
        "sigma2_max_V": t2.lambda_max_B, "sigma2_min_V": t2.lambda_min_B,
        "gamma": t1.gamma,
    })
    return Bound(name=b.name, value=b.value, valid=b.valid, kind=b.kind,
                 assumptions=b.assumptions, reference=b.reference, kappa_sigma=b.kappa_sigma,
                 terms=b.terms, details=details)
