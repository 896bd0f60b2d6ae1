"""Pruning at initialisation: one module per scheme, a registry, and :func:`prune_model`.

Masks are installed with ``torch.nn.utils.prune``: a pruned module holds the parameter
``weight_orig``, the buffer ``weight_mask`` and recomputes ``weight = weight_orig * weight_mask``
before each forward, so masks stay fixed while ``weight_orig`` trains (the paper keeps masks
during training, gn-theory §7). Only the ``weight`` of ``nn.Linear`` and ``nn.Conv1d/2d/3d`` is
pruned.

==================  ======  ======  ==================================================
scheme              scope   data    pruned entries
==================  ======  ======  ==================================================
magnitude           layer   no      per tensor, the floor(s*numel) smallest |w| (paper)
global-magnitude    global  no      the floor(s*total) smallest |w| overall
random              layer   no      per tensor, floor(s*numel) uniformly random (seed)
snip                global  X, Y    lowest |dL/dw * w|
grasp               global  X, Y    highest -w * (H g)
synflow             global  no      iterative, lowest |dR/dw * w| of the |w|-network
==================  ======  ======  ==================================================

:func:`compare_pruning` compares schemes x sparsities by the GN condition number they leave (on
the kept or all coordinates) and by the loss after training with the masks fixed;
:func:`measure_pruning` does one (scheme, sparsity, seed) cell.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.nn.utils import prune

from gnadvisor._checks import GNAdvisorError, check_fraction, check_positive_int
from gnadvisor.pruning import global_magnitude, grasp, magnitude, random_masks, snip, synflow
from gnadvisor.pruning._base import (
    PRUNABLE_TYPES,
    PruningScheme,
    _pruning_hooks,
    check_unpruned,
    check_xy,
    clone_model,
    prunable_parameters,
    refresh_pruned_weights,
)
from gnadvisor.pruning.compare import (
    PruningComparison,
    PruningCurve,
    PruningRow,
    PruningRun,
    RankCorrelation,
    compare_pruning,
    measure_pruning,
)
from gnadvisor.pruning.grasp import grasp_scores
from gnadvisor.pruning.snip import snip_scores
from gnadvisor.pruning.synflow import synflow_scores

__all__ = [
    "SCHEMES",
    "PruningScheme",
    "prune_model",
    "sparsity_report",
    "prunable_parameters",
    "clone_model",
    "refresh_pruned_weights",
    "snip_scores",
    "grasp_scores",
    "synflow_scores",
    # comparing schemes by GN conditioning and training
    "compare_pruning",
    "measure_pruning",
    "PruningComparison",
    "PruningRow",
    "PruningRun",
    "PruningCurve",
    "RankCorrelation",
]

#: Registry of pruning schemes by name.
SCHEMES: dict[str, PruningScheme] = {
    s.name: s
    for s in (magnitude.SCHEME, global_magnitude.SCHEME, random_masks.SCHEME, snip.SCHEME,
              grasp.SCHEME, synflow.SCHEME)
}


def prune_model(
    model: nn.Module,
    scheme: str,
    sparsity: float,
    *,
    X: Any = None,
    Y: Any = None,
    seed: int = 0,
    inplace: bool = False,
    **options: Any,
) -> nn.Module:
    """Prune the ``weight`` of every ``nn.Linear`` / ``nn.Conv1d/2d/3d`` with a registered scheme.

    Parameters
    ----------
    model : torch.nn.Module
        An unpruned model (any dtype).
    scheme : str
        A key of :data:`SCHEMES`: ``"magnitude"`` (the paper's per-tensor convention),
        ``"global-magnitude"``, ``"random"``, ``"snip"``, ``"grasp"``, ``"synflow"``.
    sparsity : float
        Fraction ``s`` in [0, 1) of weights to prune: ``floor(s * numel)`` per tensor for
        layer-wise schemes, ``floor(s * total)`` over all prunable tensors for global ones
        (``floor`` is robust to float rounding: ``0.29 * 100`` prunes 29). ``s = 0`` installs no
        masks: the result is an exact copy (or ``model`` itself with ``inplace``), so its
        Gauss-Newton spectrum is unchanged. ``s > 0`` always installs masks, all-ones for tensors
        whose count rounds down to 0.
    X, Y : torch.Tensor or array, optional
        Data ``(n, ...)`` and targets ``(n, k)``; required by ``"snip"`` and ``"grasp"`` (MSE loss
        as in :func:`gnadvisor.training.train`). ``"synflow"`` reads only the input shape from X.
    seed : int, default 0
        Seed for ``"random"``; the other schemes are deterministic.
    inplace : bool, default False
        Prune ``model`` itself instead of a deep copy.
    **options
        Scheme options: ``"synflow"`` takes ``iterations`` (default 100) and ``input_shape``
        (required for a convolutional first layer when X is not given).

    Returns
    -------
    torch.nn.Module
        The pruned model: masks in ``<module>.weight_mask``, trainable ``<module>.weight_orig``.

    Raises
    ------
    GNAdvisorError
        For an unknown scheme (the message lists them), a sparsity outside [0, 1), an unknown
        option, a model without prunable layers or already pruned, or missing/mis-shaped data.

    References
    ----------
    Zhao, Singh & Lucchi (2024), pruning at initialisation (gn-theory §7); the scheme papers are
    cited in each module.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = nn.Sequential(nn.Linear(8, 10), nn.ReLU(), nn.Linear(10, 2))
    >>> pruned = prune_model(net, "magnitude", 0.75)
    >>> [int((m.weight_mask == 0).sum()) for m in (pruned[0], pruned[2])]
    [60, 15]
    >>> sparsity_report(pruned)["sparsity"]
    0.75
    >>> hasattr(net[0], "weight_mask")  # the input model is untouched
    False
    """
    if not isinstance(model, nn.Module):
        raise GNAdvisorError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    spec = _get_scheme(scheme)
    sparsity = check_fraction("sparsity", sparsity)
    seed = check_positive_int("seed", seed, allow_zero=True)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        accepted = ", ".join(spec.options) if spec.options else "none"
        raise GNAdvisorError(
            f"options of scheme={spec.name!r} must be among ({accepted}), got {', '.join(unknown)}; drop them"
        )
    check_unpruned(model)
    if not prunable_parameters(model):
        raise GNAdvisorError(
            "model must contain an nn.Linear or nn.Conv1d/2d/3d layer to prune, got none; "
            "pruning applies only to their weights"
        )
    if spec.needs_data:
        if X is None or Y is None:
            raise GNAdvisorError(
                f"scheme={spec.name!r} needs data X and targets Y (it scores weights with the loss), "
                f"got X={'None' if X is None else 'given'}, Y={'None' if Y is None else 'given'}; pass "
                f"both, or use a data-free scheme ({', '.join(n for n, s in SCHEMES.items() if not s.needs_data)})"
            )
        X, Y = check_xy(X, Y)
    net = model if inplace else clone_model(model)
    if sparsity == 0.0:
        return net
    masks = spec.masks(net, sparsity, X=X, Y=Y, seed=seed, **options)
    for name, module, pname in prunable_parameters(net):
        weight = getattr(module, pname)
        prune.custom_from_mask(module, pname, masks[name].to(device=weight.device, dtype=weight.dtype))
    return net


def sparsity_report(model: nn.Module) -> dict[str, Any]:
    """Fraction of zeros in the pruning masks, per tensor and overall.

    Every tensor with a ``torch.nn.utils.prune`` mask is reported, and so is every prunable
    weight without one (counted as 0 pruned), so the global figure is over all prunable weights.

    Parameters
    ----------
    model : torch.nn.Module
        Any model, pruned or not.

    Returns
    -------
    dict
        ``{"tensors": {name: {"numel", "pruned", "sparsity", "masked"}}, "numel": int,
        "pruned": int, "sparsity": float}`` with qualified names such as ``"0.weight"``; plain
        Python numbers (JSON-ready). ``sparsity`` is 0.0 when there is nothing to prune.

    Examples
    --------
    >>> from torch import nn
    >>> net = prune_model(nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 2)), "random", 0.5, seed=0)
    >>> r = sparsity_report(net)
    >>> r["tensors"]["0.weight"]["pruned"], r["tensors"]["1.weight"]["pruned"], r["pruned"], r["numel"]
    (10, 5, 15, 30)
    """
    tensors: dict[str, dict[str, Any]] = {}
    for mod_name, module in model.named_modules():
        hooked = [h._tensor_name for h in _pruning_hooks(module)]
        names = (["weight"] if isinstance(module, PRUNABLE_TYPES) else []) + [
            n for n in hooked if n != "weight" or not isinstance(module, PRUNABLE_TYPES)]
        for pname in names:
            if pname in hooked:
                mask = getattr(module, f"{pname}_mask")
                numel, pruned = mask.numel(), int((mask == 0).sum())
            else:
                numel, pruned = getattr(module, pname).numel(), 0
            tensors[f"{mod_name}.{pname}" if mod_name else pname] = {
                "numel": int(numel), "pruned": pruned,
                "sparsity": pruned / numel if numel else 0.0, "masked": pname in hooked,
            }
    numel = sum(t["numel"] for t in tensors.values())
    pruned = sum(t["pruned"] for t in tensors.values())
    return {"tensors": tensors, "numel": numel, "pruned": pruned,
            "sparsity": pruned / numel if numel else 0.0}


def _get_scheme(scheme: Any) -> PruningScheme:
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise GNAdvisorError(
            f"scheme must be one of {', '.join(map(repr, SCHEMES))}; got {scheme!r}"
        )
    return SCHEMES[scheme]
