"""GraSP: gradient-signal-preserving pruning (Wang, Zhang & Grosse 2020)."""

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

__all__ = ["grasp_scores", "grasp_masks", "SCHEME"]


def grasp_scores(model: nn.Module, X: Any, Y: Any) -> dict[str, torch.Tensor]:
    """GraSP scores ``S(-w) = -w * (H g)`` of every prunable weight.

    ``g`` and ``H`` are the gradient and Hessian of ``L = (1 / (2 n)) sum_i ||f(x_i) - y_i||^2``
    on the whole of ``(X, Y)`` with respect to the prunable weights (biases and other parameters
    held fixed); ``H g`` is one Hessian-vector product by double backward, on a float64 copy in
    the model's current train/eval mode. The paper's temperature and cross-entropy are replaced
    by this MSE loss; its ranking rule is kept: the *highest* scores are pruned.

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
        float64 score per prunable tensor name, same shape as the weight.

    Raises
    ------
    GNAdvisorError
        If the model is already pruned or ``X``/``Y`` have the wrong shape.

    References
    ----------
    Wang, Zhang & Grosse (2020), "Picking winning tickets before training by preserving gradient
    flow", ICLR, Eq. (8) and Algorithm 1.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Linear(1, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.fill_(2.0)
    >>> X, Y = torch.tensor([[1.0]]), torch.tensor([[1.0]])
    >>> grasp_scores(net, X, Y)["weight"].item()  # L = (w - 1)^2 / 2: g = 1, H = 1, S = -2
    -2.0
    """
    check_unpruned(model)
    X, Y = check_xy(X, Y)
    net = float64_copy(model)
    targets = prunable_parameters(net)
    weights = [getattr(m, p) for _, m, p in targets]
    grads = weight_gradients(mse_loss(net(X), Y), weights, create_graph=True)
    gv = sum((g * g.detach()).sum() for g in grads)
    if isinstance(gv, torch.Tensor) and gv.requires_grad:
        hg = weight_gradients(gv, weights)
    else:  # the gradient does not depend on the weights: H g = 0
        hg = [torch.zeros_like(w) for w in weights]
    return {name: -(w.detach() * h) for (name, _, _), w, h in zip(targets, weights, hg)}


def grasp_masks(model: nn.Module, sparsity: float, *, X: Any, Y: Any,
                seed: int = 0) -> dict[str, torch.Tensor]:
    """Keep-masks pruning the ``floor(s * total)`` *highest* GraSP scores globally.

    Removing a weight with a large ``S(-w)`` reduces the gradient norm least (or increases it),
    as in the paper. Ties are broken by (tensor, index) order.

    Parameters
    ----------
    model : torch.nn.Module
        Unpruned model; not modified.
    sparsity : float
        Global fraction ``s`` in [0, 1).
    X, Y : torch.Tensor or array
        Data for the scores, see :func:`grasp_scores`.
    seed : int
        Unused (deterministic given the data).

    Returns
    -------
    dict of str to torch.Tensor
        Boolean keep-mask per prunable tensor name.

    Raises
    ------
    GNAdvisorError
        As :func:`grasp_scores`.
    """
    scores = grasp_scores(model, X, Y)
    check_scores_finite(scores, "grasp")
    total = sum(s.numel() for s in scores.values())
    return global_masks({k: -v for k, v in scores.items()}, n_to_prune(sparsity, total))


SCHEME = PruningScheme(
    name="grasp",
    scope="global",
    needs_data=True,
    masks=grasp_masks,
    summary="prune the highest -w * (H g) (MSE loss on X, Y) over all prunable tensors",
    reference="Wang, Zhang & Grosse 2020 (ICLR)",
)
