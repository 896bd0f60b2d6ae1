"""SynFlow: iterative synaptic-flow pruning, data-free (Tanaka et al. 2020)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from gnadvisor._checks import GNAdvisorError, check_positive_int
from gnadvisor.pruning._base import (
    PruningScheme,
    as_float64,
    check_scores_finite,
    check_unpruned,
    float64_copy,
    global_masks,
    n_to_prune,
    prunable_parameters,
    weight_gradients,
)

__all__ = ["synflow_scores", "synflow_masks", "SCHEME", "DEFAULT_ITERATIONS"]

#: Pruning rounds, as in the paper. Each round is one float64 forward and backward pass on a
#: single all-ones input: 100 rounds take ~0.1 s for a small MLP and ~3 s for a ResNet20-sized
#: CNN (0.27 M weights, 3x32x32) on 2 CPU cores, so the paper's value is kept as the default.
DEFAULT_ITERATIONS = 100


class _Linearised:
    """A float64 copy with every floating parameter and buffer replaced by its absolute value."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        self.net = float64_copy(model).eval()  # batch norm uses (abs) running statistics
        with torch.no_grad():
            for t in list(self.net.parameters()) + list(self.net.buffers()):
                if t.is_floating_point():
                    t.abs_()
        self.targets = prunable_parameters(self.net)
        self.weights = [getattr(m, p) for _, m, p in self.targets]
        self.abs_weights = [w.detach().clone() for w in self.weights]
        self.input = torch.ones(1, *input_shape, dtype=torch.float64)

    def scores(self, keep: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            for (name, _, _), w, w0 in zip(self.targets, self.weights, self.abs_weights):
                w.copy_(w0 if keep is None else w0 * keep[name])
        R = self.net(self.input).sum()
        grads = weight_gradients(R, self.weights)
        return {name: (g * w).abs().detach() for (name, _, _), g, w in zip(self.targets, grads, self.weights)}


def _input_shape(model: nn.Module, X: Any, input_shape: Any) -> tuple[int, ...]:
    if X is not None:
        Xt = as_float64(X, "X")
        if Xt.ndim < 2:
            raise GNAdvisorError(f"X must have shape (n_samples, ...), got {tuple(Xt.shape)}")
        shape = tuple(int(s) for s in Xt.shape[1:])
        if input_shape is not None and tuple(input_shape) != shape:
            raise GNAdvisorError(
                f"input_shape must match X's sample shape {shape}, got {tuple(input_shape)}; pass one of them"
            )
        return shape
    if input_shape is not None:
        try:
            shape = tuple(int(s) for s in input_shape)
            ok = len(shape) >= 1 and all(s > 0 for s in shape)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise GNAdvisorError(
                f"input_shape must be a non-empty tuple of positive integers, got {input_shape!r}; e.g. (3, 32, 32)"
            )
        return shape
    first = prunable_parameters(model)[0][1]
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    raise GNAdvisorError(
        f"input_shape is required for synflow when the first layer is {type(first).__name__} "
        f"(in_channels={first.in_channels}), got None; pass input_shape=({first.in_channels}, H, W) or X"
    )


def synflow_scores(model: nn.Module, input_shape: tuple[int, ...], *,
                   masks: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """One round of SynFlow scores ``|dR/dw * w|`` on the linearised network.

    Linearisation: on a float64 copy in eval mode, every floating parameter and buffer is
    replaced by its absolute value (as in the authors' code: ``param.abs_()`` over the state
    dict, so batch norm uses ``|gamma|``, ``|beta|`` and ``|running_mean|``), pruned weights
    (``masks`` False) are zeroed, and ``R = sum of f(1)`` for one all-ones input.

    Parameters
    ----------
    model : torch.nn.Module
        Unpruned model; not modified.
    input_shape : tuple of int
        Shape of one sample, e.g. ``(64,)`` or ``(3, 32, 32)``.
    masks : dict of str to torch.Tensor, optional
        Boolean keep-masks from an earlier round.

    Returns
    -------
    dict of str to torch.Tensor
        float64 score per prunable tensor name (0 for pruned entries).

    Raises
    ------
    GNAdvisorError
        If the model is already pruned.

    References
    ----------
    Tanaka, Kunin, Yamins & Ganguli (2020), "Pruning neural networks without any data by
    iteratively conserving synaptic flow", NeurIPS, Algorithm 1.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 4.0]]))
    ...     _ = net[1].weight.copy_(torch.tensor([[-1.0, 0.5]]))
    >>> synflow_scores(net, (2,))["0.weight"].tolist()  # |v_i| * |W_ij|
    [[1.0, 2.0], [1.5, 2.0]]
    """
    check_unpruned(model)
    return _Linearised(model, tuple(input_shape)).scores(masks)


def synflow_masks(model: nn.Module, sparsity: float, *, X: Any = None, Y: Any = None, seed: int = 0,
                  iterations: int = DEFAULT_ITERATIONS,
                  input_shape: tuple[int, ...] | None = None) -> dict[str, torch.Tensor]:
    """Keep-masks from iterative SynFlow with the paper's exponential schedule.

    Round ``j = 1..T`` (``T = iterations``) scores the current masked, linearised network and
    prunes globally to ``floor((1 - (1 - s)^(j / T)) * total)`` entries, the last round to exactly
    ``floor(s * total)``; already-pruned entries stay pruned. Ties are broken by (tensor, index).

    Parameters
    ----------
    model : torch.nn.Module
        Unpruned model; not modified.
    sparsity : float
        Global fraction ``s`` in [0, 1).
    X : torch.Tensor or array, optional
        Used only for the input shape ``X.shape[1:]``.
    Y : ignored
        Data-free scheme.
    seed : int
        Unused (deterministic).
    iterations : int, default 100
        Number of rounds ``T`` (the paper's 100; one forward/backward pass each, see
        :data:`DEFAULT_ITERATIONS` for timings). Fewer rounds are cheaper and closer to
        single-shot pruning, which suffers more from layer collapse.
    input_shape : tuple of int, optional
        Shape of one sample. Default: from ``X``, else ``(in_features,)`` of the first prunable
        layer if it is ``nn.Linear``; required for a convolutional first layer.

    Returns
    -------
    dict of str to torch.Tensor
        Boolean keep-mask per prunable tensor name.

    Raises
    ------
    GNAdvisorError
        If ``iterations`` is not a positive integer, the input shape is missing or inconsistent,
        or the scores overflow.
    """
    iterations = check_positive_int("iterations", iterations)
    lin = _Linearised(model, _input_shape(model, X, input_shape))
    total = sum(w.numel() for w in lin.weights)
    final = n_to_prune(sparsity, total)
    keep: dict[str, torch.Tensor] | None = None
    for j in range(1, iterations + 1):
        scores = lin.scores(keep)
        if keep is not None:
            scores = {k: v.masked_fill(~keep[k], -math.inf) for k, v in scores.items()}
        check_scores_finite(scores, "synflow")
        density = (1.0 - sparsity) ** (j / iterations)
        n_prune = final if j == iterations else min(final, n_to_prune(1.0 - density, total))
        keep = global_masks(scores, n_prune)
    assert keep is not None
    return keep


SCHEME = PruningScheme(
    name="synflow",
    scope="global",
    needs_data=False,
    masks=synflow_masks,
    options=("iterations", "input_shape"),
    summary="iteratively prune the lowest |dR/dw * w| of the |w|-linearised net on an all-ones input",
    reference="Tanaka, Kunin, Yamins & Ganguli 2020 (NeurIPS)",
)
