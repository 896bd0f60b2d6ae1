"""Layer-wise random pruning, seeded."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from gnadvisor.pruning._base import PruningScheme, layerwise_masks, prunable_parameters

__all__ = ["random_masks", "mask_seed", "SCHEME"]


def mask_seed(seed: int) -> int:
    """A seed for mask draws, independent of the weight stream seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed), 0x6D61736B]).generate_state(1, dtype=np.uint64)[0] >> 1)


def random_masks(model: nn.Module, sparsity: float, *, X: Any = None, Y: Any = None,
                 seed: int = 0) -> dict[str, torch.Tensor]:
    """Keep-masks that prune, per tensor, ``floor(s * numel)`` entries chosen uniformly at random.

    One ``torch.Generator`` draws i.i.d. uniform scores for the tensors in order; the lowest
    are pruned, so each subset of the right size is equally likely and the masks depend only on
    ``seed`` and the tensor shapes. The generator is seeded with :func:`mask_seed` (``seed``),
    a stream independent of the one that :func:`gnadvisor.build_model` uses for the weights
    with the same ``seed``: seeding both with ``seed`` itself would correlate the masks with
    the weights (torch's normal draws are transformed uniforms of the same stream).

    Parameters
    ----------
    model : torch.nn.Module
        Unpruned model; not modified.
    sparsity : float
        Fraction ``s`` in [0, 1) pruned in every prunable tensor.
    X, Y : ignored
        Data-free scheme.
    seed : int
        Seed of the random choice.

    Returns
    -------
    dict of str to torch.Tensor
        Boolean keep-mask per prunable tensor name.

    References
    ----------
    Liu et al. (2022), "The unreasonable effectiveness of random pruning"; baseline in Zhao,
    Singh & Lucchi (2024).

    Examples
    --------
    >>> from torch import nn
    >>> m = random_masks(nn.Linear(10, 10), 0.3, seed=1)["weight"]
    >>> int((~m).sum())
    30
    """
    gen = torch.Generator().manual_seed(mask_seed(seed))
    scores = {name: torch.rand(getattr(m, p).shape, generator=gen, dtype=torch.float64)
              for name, m, p in prunable_parameters(model)}
    return layerwise_masks(scores, sparsity)


SCHEME = PruningScheme(
    name="random",
    scope="layer",
    needs_data=False,
    masks=random_masks,
    summary="per tensor, prune floor(s*numel) entries uniformly at random (seeded)",
    reference="Liu et al. 2022",
)
