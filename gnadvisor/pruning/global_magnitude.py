"""Global magnitude pruning: one threshold across all prunable tensors."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gnadvisor.pruning._base import PruningScheme, global_masks, n_to_prune, prunable_parameters

__all__ = ["global_magnitude_masks", "SCHEME"]


def global_magnitude_masks(model: nn.Module, sparsity: float, *, X: Any = None, Y: Any = None,
                           seed: int = 0) -> dict[str, torch.Tensor]:
    """Keep-masks that prune the ``floor(s * total)`` smallest ``|w|`` over all prunable tensors.

    Layers end up with different sparsities; ties at the threshold are broken by (tensor, flat
    index) order so that exactly ``floor(s * total)`` entries are pruned.

    Parameters
    ----------
    model : torch.nn.Module
        Unpruned model; not modified.
    sparsity : float
        Global fraction ``s`` in [0, 1).
    X, Y : ignored
        Data-free scheme.
    seed : int
        Unused (deterministic).

    Returns
    -------
    dict of str to torch.Tensor
        Boolean keep-mask per prunable tensor name.

    References
    ----------
    Frankle & Carbin (2019); Blalock et al. (2020), global magnitude baseline.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 1, bias=False), nn.Linear(1, 2, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[1.0, 2.0]]))
    ...     _ = net[1].weight.copy_(torch.tensor([[3.0], [0.5]]))
    >>> {k: v.flatten().tolist() for k, v in global_magnitude_masks(net, 0.5).items()}
    {'0.weight': [False, True], '1.weight': [True, False]}
    """
    scores = {name: getattr(m, p).detach().abs() for name, m, p in prunable_parameters(model)}
    total = sum(s.numel() for s in scores.values())
    return global_masks(scores, n_to_prune(sparsity, total))


SCHEME = PruningScheme(
    name="global-magnitude",
    scope="global",
    needs_data=False,
    masks=global_magnitude_masks,
    summary="prune the floor(s*total) smallest |w| over all prunable tensors (one threshold)",
    reference="Frankle & Carbin 2019; Blalock et al. 2020",
)
