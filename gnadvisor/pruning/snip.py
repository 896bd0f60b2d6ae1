"""SNIP: single-shot connection-sensitivity pruning (Lee et al. 2019)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gnadvisor.pruning._base import (
    PruningScheme,
    check_scores_finite,
    check_unpruned,
    check_xy,
    float64_copy,
    global_masks,
    mse_loss,
    n_to_prune,
    prunable_parameters,
    weight_gradients,
)

__all__ = ["snip_scores", "snip_masks", "SCHEME"]


def snip_scores(model: nn.Module, X: Any, Y: Any) -> dict[str, torch.Tensor]:
    """SNIP saliencies ``|dL/dw * w|`` of every prunable weight.

    ``L = (1 / (2 n)) sum_i ||f(x_i) - y_i||^2`` on the whole of ``(X, Y)`` (the training loss of
    :func:`gnadvisor.training.train`), computed on a float64 copy in the model's current
    train/eval mode. The paper's normalisation by the sum of all saliencies is omitted: it does
    not change the ranking.

    Parameters
    ----------
    model : torch.nn.Module
        Unpruned model; not modified.
    X : torch.Tensor or array
        Inputs ``(n, ...)``.
    Y : torch.Tensor or array
        Targets ``(n, k)``, the model's output shape.

    Returns
    -------
    dict of str to torch.Tensor
        float64 saliency per prunable tensor name, same shape as the weight.

    Raises
    ------
    GNAdvisorError
        If the model is already pruned or ``X``/``Y`` have the wrong shape.

    References
    ----------
    Lee, Ajanthan & Torr (2019), "SNIP: Single-shot network pruning based on connection
    sensitivity", ICLR, Eq. (6).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1.0, -2.0]]))
    >>> X, Y = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0]])
    >>> snip_scores(net, X, Y)["weight"].tolist()  # dL/dw = (w.x - y) x = [-1, -1]
    [[1.0, 2.0]]
    """
    check_unpruned(model)
    X, Y = check_xy(X, Y)
    net = float64_copy(model)
    targets = prunable_parameters(net)
    weights = [getattr(m, p) for _, m, p in targets]
    grads = weight_gradients(mse_loss(net(X), Y), weights)
    return {name: (g * w).abs().detach() for (name, _, _), g, w in zip(targets, grads, weights)}


def snip_masks(model: nn.Module, sparsity: float, *, X: Any, Y: Any,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """Keep-masks pruning the ``floor(s * total)`` lowest SNIP saliencies globally.

    Parameters
    ----------
    model : torch.nn.Module
        Unpruned model; not modified.
    sparsity : float
        Global fraction ``s`` in [0, 1).
    X, Y : torch.Tensor or array
        Data for the saliencies, see :func:`snip_scores`.
    seed : int
        Unused (deterministic given the data); ties are broken by (tensor, index) order.

    Returns
    -------
    dict of str to torch.Tensor
        Boolean keep-mask per prunable tensor name.

    Raises
    ------
    GNAdvisorError
        As :func:`snip_scores`.
    """
    scores = snip_scores(model, X, Y)
    check_scores_finite(scores, "snip")
    total = sum(s.numel() for s in scores.values())
    return global_masks(scores, n_to_prune(sparsity, total))


SCHEME = PruningScheme(
    name="snip",
    scope="global",
    needs_data=True,
    masks=snip_masks,
    summary="prune the lowest |dL/dw * w| (MSE loss on X, Y) over all prunable tensors",
    reference="Lee, Ajanthan & Torr 2019 (ICLR)",
)
