r"""Zero-cost kappa(G) at Gaussian initialisation, from random-matrix theory (no weights needed).

Two regimes, chosen by ``t``:

``t > 0``: a **proven** high-probability bound. For an N x n (N >= n) matrix with i.i.d.
N(0, s^2) entries, with probability at least ``1 - 2 exp(-t^2 / 2)``,
``s (sqrt(N) - sqrt(n) - t) <= sigma_min <= sigma_max <= s (sqrt(N) + sqrt(n) + t)``
(Vershynin 2012, Cor. 5.35). A union bound over the L layers and the layer-wise form of
Lemma 2 (sub-multiplicativity, :func:`~gnadvisor.bounds.layerwise`) give a bound holding with
probability ``>= 1 - 2 L exp(-t^2 / 2)``. For one hidden layer this is exactly the paper's
App. G bound (probability ``1 - 4 exp(-t^2/2)``). A square m x m hidden layer has no positive
lower bound of this type (``sqrt(m) - sqrt(m) - t < 0``), so every term of the layer-wise sum
that contains a square factor vanishes: the proven bound exists for ``depth <= 2`` only
(``depth = 2`` keeps the term that skips the single hidden layer), and is vacuous deeper.

``t = 0``: an **asymptotic estimate** of Lemma 2 at initialisation (m, d, k -> inf with
d/m, k/m fixed). ``A_l A_l^T`` is ``W_L C W_L^T`` with ``C`` the Gram of a product of ``j``
square Gaussian matrices; by free probability its eigenvalues fill an interval whose edges,
in units of ``E[lambda]``, are ``x(z) = (1+z)^{j+1} (c+z) / z`` at the two roots of
``(j+1) z^2 + j c z - c = 0`` (``c = k/m``; the positive root gives the upper edge, the root in
``(-1, -c)`` the lower one, and the lower edge is 0 when ``c >= 1``). ``j = 0`` gives the
Marchenko-Pastur edges ``(1 +- sqrt(c))^2``, so for one hidden layer the estimate is the
paper's App. G expression at ``t = 0``. ``B_l^T B_l`` is the same with ``c = d/m``. Plugging
the edges into the Lemma 2 ratio is exact in the limit for each extreme eigenvalue; at finite
width the edges fluctuate by O(m^{-2/3}) (Tracy-Widom), a k x k matrix with small k does not
reach the edges of the limiting spectrum, and the normalised trace of a deep product is not
self-averaging. It estimates the Lemma 2 value of a typical draw, not a guaranteed bound.
Measured against the median Lemma 2 value of 5 Kaiming draws on whitened data
(d, m, k in {(16,128,8), (64,256,10), (8,64,4), (64,64,10), (32,48,10)}): 1.1-1.6x above it
at depth 1-2, 1.3-2.4x at depth 4, 1.3-3.7x at depth 8 and 1.8-5.2x at depth 16; always
above, and monotone in depth and width like the sampled values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import GNAdvisorError, check_positive_int, check_real
from ._base import PAPER, Assumption, Bound
from ._chain import LayerSpectra, layerwise_products, ratio_of_sums

__all__ = ["init_estimate"]

_INITS = ("kaiming", "xavier")


def _free_edges(c: float, j: int) -> tuple[float, float]:
    """Edges of the non-zero spectrum of ``X C X^T`` (see module docstring), mean 1."""
    disc = math.sqrt(j * j * c * c + 4.0 * (j + 1) * c)

    def x(z: float) -> float:
        return (1.0 + z) ** (j + 1) * (c + z) / z

    hi = x((-j * c + disc) / (2.0 * (j + 1)))
    lo = x((-j * c - disc) / (2.0 * (j + 1))) if c < 1.0 else 0.0
    return max(lo, 0.0), hi


def _variances(init: Any, d: int, m: int, k: int) -> tuple[float, float, float, str]:
    """(first, hidden, last) layer variances of the i.i.d. Gaussian entries."""
    if isinstance(init, str):
        if init not in _INITS:
            raise GNAdvisorError(
                f"init must be one of {', '.join(map(repr, _INITS))} or a positive std, "
                f"got {init!r}")
        if init == "kaiming":  # kaiming_normal_, fan_in, gain 1 (linear)
            return 1.0 / d, 1.0 / m, 1.0 / m, "Kaiming normal, fan_in, gain 1: var = 1/fan_in"
        return (2.0 / (d + m), 1.0 / m, 2.0 / (m + k),
                "Xavier normal: var = 2/(fan_in + fan_out)")
    std = check_real("init", init, low=0.0)
    if std == 0.0:
        raise GNAdvisorError("init must be 'kaiming', 'xavier' or a positive std, got 0")
    return std * std, std * std, std * std, f"N(0, {std:g}^2) on every layer"


def init_estimate(d: int, m: int, k: int, depth: int = 1, init: Any = "kaiming",
                  kappa_sigma: float = 1.0, t: float = 0.0) -> Bound:
    r"""kappa(G) of a deep linear net at i.i.d. Gaussian initialisation, before any weights exist.

    A zero-cost a-priori score for an architecture (width ``m``, ``depth`` hidden layers) on
    data with condition number ``kappa_sigma``. ``t > 0``: a high-probability **bound**
    (``kind="bound"``, proven, see the module docstring), with
    ``details["probability"] = 1 - 2 L exp(-t^2/2)``; vacuous for depth >= 3 and for ``t``
    too small to make the probability positive. ``t = 0``: the asymptotic **estimate** of the
    Lemma 2 value at initialisation (``kind="estimate"``), which for ``depth = 1`` is

    .. math::

        \kappa(\Sigma)\,
        \frac{\sigma_w^2(\sqrt m + \sqrt k)^2 + \sigma_v^2(\sqrt m + \sqrt d)^2}
             {\sigma_w^2(\sqrt m - \sqrt k)^2 + \sigma_v^2(\sqrt m - \sqrt d)^2}

    (negative differences clamp to 0: ``m < d`` makes ``V^T V`` singular), and for deeper nets
    uses the free-probability edges of the products ``A_l``, ``B_l``.

    Parameters
    ----------
    d : int
        Input dimension.
    m : int
        Width of every hidden layer.
    k : int
        Output dimension.
    depth : int, default 1
        Number of hidden layers (``L = depth + 1`` weight matrices).
    init : {"kaiming", "xavier"} or float, default "kaiming"
        Entry variances: ``"kaiming"`` = ``kaiming_normal_`` (fan_in, gain 1, as for linear
        nets: 1/fan_in), ``"xavier"`` = ``xavier_normal_`` (2/(fan_in + fan_out)), or a float
        standard deviation used on every layer.
    kappa_sigma : float, default 1.0
        kappa(Sigma) of the data (1 for whitened data); must be >= 1.
    t : float, default 0.0
        Deviation parameter of the high-probability bound; 0 asks for the estimate.

    Returns
    -------
    Bound
        ``name="init_estimate"``; ``terms`` hold the per-term edges; ``details`` the variances,
        edges, probability and which regime was used.

    Raises
    ------
    GNAdvisorError
        If ``d``, ``m``, ``k`` or ``depth`` is not a positive integer, ``init`` is unknown,
        ``kappa_sigma < 1`` or ``t < 0``.

    References
    ----------
    Zhao, Singh & Lucchi (NeurIPS 2024), App. G (one hidden layer at initialisation) and
    Lemma 2; R. Vershynin, Introduction to the non-asymptotic analysis of random matrices
    (2012), Cor. 5.35; Marchenko & Pastur (1967); for products of Gaussian matrices the
    S-transform of free probability (Voiculescu), e.g. Burda, Janik & Waclaw, Phys. Rev. E 81
    (2010).

    Examples
    --------
    >>> from gnadvisor.bounds import init_estimate
    >>> e = init_estimate(d=16, m=64, k=4, init=1.0)   # same std everywhere, whitened data
    >>> e.kind, round(e.value, 10)                     # ((8+2)^2 + (8+4)^2) / ((8-2)^2 + (8-4)^2)
    ('estimate', 4.6923076923)
    >>> b = init_estimate(d=16, m=64, k=4, init=1.0, t=3.0)
    >>> b.kind, b.valid, round(b.details["probability"], 4)
    ('bound', True, 0.9556)
    >>> init_estimate(d=16, m=64, k=4, depth=3, t=3.0).value is None   # no proof that deep
    True
    """
    d = check_positive_int("d", d)
    m = check_positive_int("m", m)
    k = check_positive_int("k", k)
    depth = check_positive_int("depth", depth)
    kappa_sigma = check_real("kappa_sigma", kappa_sigma, low=1.0)
    t = check_real("t", t, low=0.0)
    v_first, v_hidden, v_last, init_text = _variances(init, d, m, k)
    L = depth + 1
    shapes = [(m, d)] + [(m, m)] * (depth - 1) + [(k, m)]
    variances = [v_first] + [v_hidden] * (depth - 1) + [v_last]
    assumptions = [Assumption("weights i.i.d. Gaussian with zero mean, linear network, "
                              "uniform hidden width", True, init_text, required=False)]
    details: dict[str, Any] = {"d": d, "m": m, "k": k, "depth": depth, "L": L, "t": t,
                               "variances": variances, "kappa_sigma": kappa_sigma}
    if t > 0:
        return _proven(shapes, variances, kappa_sigma, t, assumptions, details)
    return _asymptotic(d, m, k, depth, v_first, v_hidden, v_last, kappa_sigma, assumptions,
                       details)


def _proven(shapes: list[tuple[int, int]], variances: list[float], kappa_sigma: float,
            t: float, assumptions: list[Assumption], details: dict[str, Any]) -> Bound:
    L = len(shapes)
    prob = 1.0 - 2.0 * L * math.exp(-t * t / 2.0)
    smax2, smin2, sout2, sin2 = [], [], [], []
    for (out, inn), var in zip(shapes, variances):
        big, small = max(out, inn), min(out, inn)
        hi = math.sqrt(var) * (math.sqrt(big) + math.sqrt(small) + t)
        lo = math.sqrt(var) * max(0.0, math.sqrt(big) - math.sqrt(small) - t)
        smax2.append(hi * hi)
        smin2.append(lo * lo)
        sout2.append(lo * lo if out <= inn else 0.0)
        sin2.append(lo * lo if inn <= out else 0.0)
    ls = LayerSpectra(*(np.array(v) for v in (smax2, smin2, sout2, sin2)))
    suf_max, pre_max, suf_out, pre_in = layerwise_products(ls)
    rs = ratio_of_sums(suf_max, suf_out, pre_max, pre_in, logs=True)
    assumptions.append(Assumption(
        "union-bound probability 1 - 2 L exp(-t^2/2) > 0", prob > 0,
        f"L = {L}, t = {t:g}: probability >= {prob:.4g}"
        + ("" if prob > 0 else "; increase t")))
    if rs.positive:
        pos = Assumption("some term of the layer-wise sum has a positive lower bound", True,
                         f"{sum(1 for x in rs.terms if x.gamma > 0)} of {L} terms positive")
    else:
        square = sum(1 for o, i in shapes if o == i)
        why = (f"every term contains one of the {square} square hidden layers, whose "
               "sigma_min has no positive high-probability lower bound (sqrt(m) - sqrt(m) - t "
               "< 0); no proven bound for depth >= 3, use t = 0 for the estimate"
               if square >= 2 else
               "the Vershynin lower bounds sqrt(N) - sqrt(n) - t are <= 0 for the layers "
               "involved; increase the width or decrease t")
        pos = Assumption("some term of the layer-wise sum has a positive lower bound", False, why)
    assumptions.append(pos)
    valid = prob > 0 and rs.positive
    details.update({"regime": "high-probability bound", "probability": prob,
                    "sigma_max_bounds": np.sqrt(smax2).tolist(),
                    "sigma_min_bounds": np.sqrt(smin2).tolist()})
    return Bound(name="init_estimate", value=kappa_sigma * rs.ratio if valid else None,
                 valid=valid, kind="bound", assumptions=tuple(assumptions),
                 reference=f"{PAPER}, App. G and Lemma 2 (layer-wise), with Vershynin (2012) "
                           "Cor. 5.35 and a union bound", kappa_sigma=kappa_sigma,
                 terms=rs.terms, details=details)


def _asymptotic(d: int, m: int, k: int, depth: int, v_first: float, v_hidden: float,
                v_last: float, kappa_sigma: float, assumptions: list[Assumption],
                details: dict[str, Any]) -> Bound:
    L = depth + 1
    lmaxA, lminA, lmaxB, lminB = (np.ones(L) for _ in range(4))
    g = v_hidden * m  # each hidden factor multiplies E[lambda] by sigma_h^2 m
    for l in range(L):  # 0-based term l: derivative w.r.t. W_{l+1}
        if l < L - 1:   # A_l = W_L (hidden)^j, j = number of hidden factors
            j = L - 2 - l
            lo, hi = _free_edges(k / m, j)
            scale = v_last * m * g ** j
            lmaxA[l], lminA[l] = scale * hi, scale * lo
        if l > 0:       # B_l = (hidden)^j' W_1
            j = l - 1
            lo, hi = _free_edges(d / m, j)
            scale = v_first * m * g ** j
            lmaxB[l], lminB[l] = scale * hi, scale * lo
    rs = ratio_of_sums(lmaxA, lminA, lmaxB, lminB)
    assumptions.append(Assumption(
        "large-width limit (m, d, k -> inf, d/m and k/m fixed)", True,
        f"asymptotic estimate, not a bound; finite-width edges fluctuate by O(m^(-2/3)), "
        f"m = {m}", required=False))
    if rs.positive:
        pos = Assumption("some term has positive asymptotic lower edges", True,
                         f"d/m = {d / m:.3g}, k/m = {k / m:.3g}")
    else:
        pos = Assumption("some term has positive asymptotic lower edges", False,
                         f"m = {m} < k = {k} and m < d = {d}: every term is singular")
    assumptions.append(pos)
    details.update({"regime": "asymptotic estimate (t = 0)", "probability": None})
    return Bound(name="init_estimate", value=kappa_sigma * rs.ratio if rs.positive else None,
                 valid=rs.positive, kind="estimate", assumptions=tuple(assumptions),
                 reference=f"{PAPER}, App. G (t = 0) and Lemma 2, with free-probability edges "
                           "for products of Gaussian matrices", kappa_sigma=kappa_sigma,
                 terms=rs.terms, details=details)
