"""Shared machinery of the pruning schemes: the scheme record, prunable tensors, mask selection.

Every scheme maps ``(model, sparsity, X, Y, seed, **options)`` to one boolean keep-mask per
prunable tensor (``True`` = keep). :func:`gnadvisor.pruning.prune_model` then installs the masks with
``torch.nn.utils.prune.custom_from_mask``, so each pruned module holds a ``weight_orig`` parameter,
a ``weight_mask`` buffer, and recomputes ``weight = weight_orig * weight_mask`` before each forward.

Prunable tensors: the ``weight`` of every ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` and
``nn.Conv3d`` (never biases, never normalisation layers), in ``model.named_modules()`` order,
named by their qualified parameter name (``"0.weight"``, ``"layer1.conv.weight"``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.utils import prune

from gnadvisor._checks import GNAdvisorError

__all__ = [
    "PRUNABLE_TYPES",
    "PruningScheme",
    "clone_model",
    "prunable_parameters",
]

#: Module types whose ``weight`` is pruned.
PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

MaskFn = Callable[..., "dict[str, torch.Tensor]"]


@dataclass(frozen=True)
class PruningScheme:
    """A registered pruning scheme.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"snip"``.
    scope : {"layer", "global"}
        ``"layer"``: each tensor loses ``floor(s * numel)`` entries. ``"global"``:
        ``floor(s * total)`` entries are pruned across all prunable tensors together.
    needs_data : bool
        Whether ``X`` and ``Y`` are required.
    masks : callable
        ``masks(model, sparsity, *, X, Y, seed, **options) -> dict[name, bool keep-mask]``;
        ``model`` is left untouched.
    options : tuple of str
        Extra keyword options the scheme accepts (passed through ``prune_model``).
    summary : str
        One line: the score and which entries are pruned.
    reference : str
        Source of the scheme.
    """

    name: str
    scope: str
    needs_data: bool
    masks: MaskFn
    options: tuple[str, ...] = ()
    summary: str = ""
    reference: str = ""


def prunable_parameters(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """List the prunable tensors of ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        Any module.

    Returns
    -------
    list of (str, torch.nn.Module, str)
        ``(qualified_name, module, "weight")`` for every ``nn.Linear`` / ``nn.Conv1d/2d/3d``, in
        ``named_modules()`` order.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    >>> [name for name, _, _ in prunable_parameters(net)]
    ['0.weight', '2.weight']
    """
    out = []
    for mod_name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES):
            out.append((f"{mod_name}.weight" if mod_name else "weight", module, "weight"))
    return out


def _pruning_hooks(module: nn.Module) -> list[prune.BasePruningMethod]:
    return [h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]


def is_pruned(model: nn.Module) -> bool:
    """Whether any submodule carries a ``torch.nn.utils.prune`` reparametrisation."""
    return any(_pruning_hooks(m) for m in model.modules())


def check_unpruned(model: nn.Module) -> None:
    """Raise if ``model`` already carries pruning masks (schemes score unpruned models)."""
    if is_pruned(model):
        raise GNAdvisorError(
            "model must not be pruned already, got one with torch.nn.utils.prune masks; prune the "
            "unpruned model, or call torch.nn.utils.prune.remove on its modules first"
        )


def clone_model(model: nn.Module) -> nn.Module:
    """Deep copy of ``model`` that also works for pruned models.

    ``copy.deepcopy`` fails on a model pruned with ``torch.nn.utils.prune`` (its ``weight``
    attribute is a non-leaf tensor ``weight_orig * weight_mask``); this detaches those attributes
    for the copy and recomputes them from the copy's own ``weight_orig`` and ``weight_mask``.

    Parameters
    ----------
    model : torch.nn.Module
        Any module, pruned or not. It is left unchanged.

    Returns
    -------
    torch.nn.Module
        An independent copy.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.nn.utils import prune
    >>> net = nn.Linear(3, 2)
    >>> _ = prune.random_unstructured(net, "weight", amount=0.5)
    >>> copy_ = clone_model(net)
    >>> bool(torch.equal(copy_.weight, net.weight)), copy_.weight_orig is net.weight_orig
    (True, False)
    """
    saved: list[tuple[nn.Module, str, torch.Tensor]] = []
    for module in model.modules():
        for hook in _pruning_hooks(module):
            name = hook._tensor_name
            value = module.__dict__.get(name)
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                saved.append((module, name, value))
                module.__dict__[name] = value.detach()
    try:
        clone = copy.deepcopy(model)
    finally:
        for module, name, value in saved:
            module.__dict__[name] = value
    refresh_pruned_weights(clone)
    return clone


def refresh_pruned_weights(model: nn.Module) -> None:
    """Recompute ``weight = weight_orig * weight_mask`` on every pruned module, in place.

    PyTorch only refreshes the attribute in a forward pre-hook, so after an optimiser step it is
    stale until the next forward; call this before reading ``module.weight``.
    """
    for module in model.modules():
        for hook in _pruning_hooks(module):
            setattr(module, hook._tensor_name, hook.apply_mask(module))


def n_to_prune(sparsity: float, numel: int) -> int:
    """``floor(sparsity * numel)``, robust to float rounding (``0.29 * 100`` gives 29, not 28)."""
    return min(numel, int(math.floor(round(sparsity * numel, 9))))


def layerwise_masks(scores: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Per tensor, prune the ``floor(s * numel)`` lowest scores (ties: lower flat index first)."""
    out = {}
    for name, score in scores.items():
        flat = score.reshape(-1)
        keep = torch.ones(flat.numel(), dtype=torch.bool)
        keep[torch.argsort(flat, stable=True)[: n_to_prune(sparsity, flat.numel())]] = False
        out[name] = keep.reshape(score.shape)
    return out


def global_masks(scores: dict[str, torch.Tensor], n_prune: int) -> dict[str, torch.Tensor]:
    """Prune the ``n_prune`` lowest scores across all tensors (ties: earlier tensor/index first)."""
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[torch.argsort(flat, stable=True)[:n_prune]] = False
    out, start = {}, 0
    for name, score in scores.items():
        out[name] = keep[start:start + score.numel()].reshape(score.shape)
        start += score.numel()
    return out


def check_scores_finite(scores: dict[str, torch.Tensor], scheme: str) -> None:
    """Raise if any score is NaN (``-inf`` is allowed: it marks entries that stay pruned)."""
    for name, s in scores.items():
        if torch.isnan(s).any() or torch.isposinf(s).any():
            raise GNAdvisorError(
                f"{scheme} scores must be finite, got NaN or inf in {name}; the model's outputs or "
                f"gradients overflow at this scale, so rescale the weights or pick another scheme"
            )


def float64_copy(model: nn.Module) -> nn.Module:
    """An unpruned float64 copy whose prunable weights require gradients (for scoring)."""
    net = clone_model(model).to(torch.float64)
    for _, module, pname in prunable_parameters(net):
        getattr(module, pname).requires_grad_(True)
    return net


def as_float64(value: Any, what: str) -> torch.Tensor:
    """``value`` as a float64 CPU tensor, or a one-line error."""
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise GNAdvisorError(f"{what} must be a tensor or array of numbers, got {type(value).__name__}") from None
    if not (t.is_floating_point() or t.dtype in (torch.int64, torch.int32, torch.int16, torch.int8,
                                                 torch.uint8, torch.bool)):
        raise GNAdvisorError(f"{what} must be real-valued, got dtype {t.dtype}")
    t = t.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(t).all():
        raise GNAdvisorError(f"{what} must contain only finite values, got NaN or inf")
    return t


def check_xy(X: Any, Y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate data for a data-dependent scheme or for training: X ``(n, ...)``, Y ``(n, k)``."""
    Xt = as_float64(X, "X")
    Yt = as_float64(Y, "Y")
    if Xt.ndim < 2 or Xt.shape[0] == 0:
        raise GNAdvisorError(f"X must have shape (n_samples, ...) with n_samples >= 1, got {tuple(Xt.shape)}")
    if Yt.ndim != 2 or Yt.shape[0] != Xt.shape[0]:
        raise GNAdvisorError(
            f"Y must have shape (n_samples, n_outputs) = ({Xt.shape[0]}, k), got {tuple(Yt.shape)}; "
            f"one-hot encode labels, e.g. with gnadvisor.data.load_data"
        )
    return Xt, Yt


def mse_loss(output: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``L = (1 / (2 n)) sum_i ||f(x_i) - y_i||^2``, the loss of :func:`gnadvisor.training.train`."""
    if output.shape != Y.shape:
        raise GNAdvisorError(
            f"model output must have the shape of Y {tuple(Y.shape)}, got {tuple(output.shape)}; "
            f"match the model's output width to the targets"
        )
    return 0.5 * (output - Y).pow(2).sum() / Y.shape[0]


def weight_gradients(loss: torch.Tensor, weights: list[torch.Tensor], *,
                     create_graph: bool = False) -> list[torch.Tensor]:
    """Gradients of ``loss`` w.r.t. ``weights``; zeros for weights the loss does not use."""
    grads = torch.autograd.grad(loss, weights, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(w) if g is None else g for g, w in zip(grads, weights)]
