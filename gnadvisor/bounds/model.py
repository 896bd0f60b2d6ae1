"""``gn_bounds``: every applicable closed-form bound for a model, recognised by its structure."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import GNAdvisorError, check_matrix
from ._base import Bound, add_identity, as_data, as_weights, check_beta, data_spectrum
from ._chain import chain_spectra
from .layerwise import layerwise
from .lemma1 import lemma1
from .lemma2 import _lemma2_from, _lemma2_max_from
from .lemma4 import lemma4, lemma4_loose
from .residual import residual_aligned

__all__ = ["gn_bounds", "linear_structure"]


def _flatten_sequential(model: Any) -> list[Any] | None:
    """Leaf modules of a (possibly nested) ``nn.Sequential``, or None if not a Sequential."""
    from torch import nn

    if not isinstance(model, nn.Sequential):
        return None
    leaves: list[Any] = []
    for child in model:
        if isinstance(child, nn.Sequential):
            leaves.extend(_flatten_sequential(child) or [])
        else:
            leaves.append(child)
    return leaves


def linear_structure(model: Any) -> dict[str, Any] | None:
    """Describe ``model`` in the form the bounds understand, or None if no bound applies.

    Recognised, in this order:

    1. any object with a ``linear_structure()`` method (gnadvisor-built models): its result,
       None or ``{"kind": "linear_chain", "weights": [W_1..W_L], "beta": float}`` or
       ``{"kind": "leaky_one_hidden", "weights": [V, W], "alpha": float}``;
    2. ``nn.Sequential`` of bias-free ``nn.Linear`` (with optional ``nn.Identity`` and
       ``nn.Flatten``, nesting allowed) -> ``"linear_chain"`` with ``beta = 0``;
    3. ``nn.Sequential(Linear, LeakyReLU(alpha) or ReLU, Linear)``, bias-free (same optional
       modules) -> ``"leaky_one_hidden"`` (ReLU is ``alpha = 0``).

    Parameters
    ----------
    model : object
        Usually a ``torch.nn.Module``.

    Returns
    -------
    dict or None
        The description, or None.

    Raises
    ------
    GNAdvisorError
        If a ``linear_structure()`` method returns something malformed.

    Examples
    --------
    >>> from torch import nn
    >>> from gnadvisor.bounds import linear_structure
    >>> s = linear_structure(nn.Sequential(nn.Linear(4, 8, bias=False), nn.Linear(8, 3, bias=False)))
    >>> s["kind"], [tuple(w.shape) for w in s["weights"]], s["beta"]
    ('linear_chain', [(8, 4), (3, 8)], 0.0)
    >>> linear_structure(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3))) is None   # biases
    True
    """
    method = getattr(model, "linear_structure", None)
    if callable(method):
        return _check_structure(method())
    leaves = _flatten_sequential(model)
    if not leaves:
        return None
    from torch import nn

    core = [m for m in leaves if not isinstance(m, (nn.Identity, nn.Flatten))]
    linear = [isinstance(m, nn.Linear) and m.bias is None for m in core]
    if core and all(linear):
        return {"kind": "linear_chain", "weights": [m.weight for m in core], "beta": 0.0}
    if (len(core) == 3 and linear[0] and linear[2]
            and isinstance(core[1], (nn.LeakyReLU, nn.ReLU))):
        alpha = float(core[1].negative_slope) if isinstance(core[1], nn.LeakyReLU) else 0.0
        return {"kind": "leaky_one_hidden", "weights": [core[0].weight, core[2].weight],
                "alpha": alpha}
    return None


def _check_structure(s: Any) -> dict[str, Any] | None:
    if s is None:
        return None
    if not isinstance(s, dict) or s.get("kind") not in ("linear_chain", "leaky_one_hidden"):
        raise GNAdvisorError(
            "model.linear_structure() must return None or a dict with kind 'linear_chain' or "
            f"'leaky_one_hidden', got {s!r:.80}")
    if "weights" not in s:
        raise GNAdvisorError("model.linear_structure() must include 'weights', got keys "
                             f"{sorted(s)}")
    return s


def gn_bounds(model: Any, X: Any) -> dict[str, Bound]:
    """Every closed-form bound that applies to ``model`` on inputs ``X``, by name.

    The model is recognised by :func:`linear_structure`:

    * linear chain (``beta = 0``): ``lemma2``, ``lemma2_max``, ``layerwise``, and ``lemma1``
      when it has one hidden layer;
    * residual linear chain (``beta > 0``): ``lemma2``, ``lemma2_max``, ``layerwise`` (all on
      ``W_l + beta I_rect``, Eq. 7) and the ``residual_aligned`` estimate (Eq. 8);
    * one hidden layer Leaky-ReLU / ReLU: ``lemma4`` and ``lemma4_loose``.

    Anything else (biases, convolutions, other activations, deeper non-linear nets) gets an
    empty dict: no closed-form bound applies, use ``gn_spectrum``. Bounds outside their
    assumptions are still returned, with ``value=None`` and the reason in ``assumptions``.
    The products ``A_l``, ``B_l`` are computed once and shared by the Lemma 2 bounds.

    Parameters
    ----------
    model : torch.nn.Module or object with ``linear_structure()``
        The network.
    X : array-like or torch.Tensor
        Inputs, shape (n, d), or (n, ...) when the model starts with ``nn.Flatten``.

    Returns
    -------
    dict of str to Bound
        Possibly empty.

    Raises
    ------
    GNAdvisorError
        If ``X`` does not match the model's input dimension, or a ``linear_structure()``
        method returns a malformed description.

    References
    ----------
    Zhao, Singh & Lucchi (NeurIPS 2024): Lemma 1, Lemma 2 (Eq. 6), Eq. 7-8, Lemma 4.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from gnadvisor.bounds import gn_bounds
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8, bias=False), nn.Linear(8, 8, bias=False),
    ...                     nn.Linear(8, 3, bias=False)).double()
    >>> sorted(gn_bounds(net, torch.randn(50, 4, dtype=torch.float64)))
    ['layerwise', 'lemma2', 'lemma2_max']
    >>> gn_bounds(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)), torch.randn(5, 4))
    {}
    """
    s = linear_structure(model)
    if s is None:
        return {}
    weights = as_weights(list(s["weights"]), "model weights")
    X = _inputs(X, weights[0].shape[1])
    if s["kind"] == "leaky_one_hidden":
        if len(weights) != 2:
            raise GNAdvisorError("a 'leaky_one_hidden' structure needs weights [V, W], got "
                                 f"{len(weights)} matrices")
        alpha = s.get("alpha", 0.0)
        return {"lemma4": lemma4(weights, X, alpha),
                "lemma4_loose": lemma4_loose(weights, X, alpha)}
    beta = check_beta(s.get("beta", 0.0))
    Xf = as_data(X, weights[0].shape[1])
    cs = chain_spectra(add_identity(weights, beta))
    ds = data_spectrum(Xf)
    out: dict[str, Bound] = {}
    if len(weights) == 2 and beta == 0.0:
        out["lemma1"] = lemma1(weights, Xf)
    out["lemma2"] = _lemma2_from(cs, ds, beta)
    out["lemma2_max"] = _lemma2_max_from(cs, ds, beta)
    out["layerwise"] = layerwise(weights, Xf, beta)
    if beta > 0.0:
        out["residual_aligned"] = residual_aligned(weights, Xf, beta)
    return out


def _inputs(X: Any, d: int) -> np.ndarray:
    """(n, d) float64 inputs; (n, ...) inputs are flattened when they hold d values per sample."""
    if hasattr(X, "detach") or hasattr(X, "shape"):
        shape = tuple(X.shape)
        if len(shape) > 2 and int(np.prod(shape[1:])) == d:
            X = X.reshape(shape[0], d)
    return check_matrix("X", X)
