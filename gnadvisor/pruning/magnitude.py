"""Layer-wise magnitude pruning, the paper's convention (gn-theory §7)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gnadvisor.pruning._base import PruningScheme, layerwise_masks, prunable_parameters

__all__ = ["magnitude_masks", "SCHEME"]


def magnitude_masks(model: nn.Module, sparsity: float, *, X: Any = None, Y: Any = None,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """Keep-masks that prune, per tensor, the ``floor(s * numel)`` smallest ``|w|``.

    Parameters
    ----------
    model : torch.nn.Module
        Unpruned model; not modified.
    sparsity : float
        Fraction ``s`` in [0, 1) pruned in every prunable tensor.
    X, Y : ignored
        Data-free scheme.
    seed : int
        Unused (deterministic); ties are broken by flat index.

    Returns
    -------
    dict of str to torch.Tensor
        Boolean keep-mask per prunable tensor name.

    References
    ----------
    Zhao, Singh & Lucchi (2024), pruning at initialisation (gn-theory §7): per parameter tensor,
    the ``floor(p * numel)`` smallest-magnitude entries; Han et al. (2015).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Linear(4, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[0.5, -0.1, 2.0, -0.3]]))
    >>> magnitude_masks(net, 0.5)["weight"].tolist()
    [[True, False, True, False]]
    """
    scores = {name: getattr(m, p).detach().abs() for name, m, p in prunable_parameters(model)}
    return layerwise_masks(scores, sparsity)


SCHEME = PruningScheme(
    name="magnitude",
    scope="layer",
    needs_data=False,
    masks=magnitude_masks,
    summary="per tensor, prune the floor(s*numel) smallest |w| (the paper's convention)",
    reference="Zhao, Singh & Lucchi 2024 (gn-theory §7); Han et al. 2015",
)
