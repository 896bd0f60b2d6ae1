"""Zero-cost (training-free) NAS scores that users compare an advisor against.

Each function scores a model at its current (initial) weights on a batch, on a private float64
copy in training mode (batch norm with batch statistics, as in :func:`gnadvisor.train`), and
returns one float. Pruned models (``torch.nn.utils.prune``) are scored on their kept weights.
The loss is gnadvisor's ``L = (1/(2n)) sum_i ||f(x_i) - y_i||^2``.

==============  ===========================================================  ===============
function        score                                                        better when
==============  ===========================================================  ===============
``grad_norm``   ``||grad_theta L||_2`` over all trainable parameters           higher
``snip``        ``sum |dL/dw * w|`` over Linear/Conv weights                   higher
``synflow``     ``log sum |dR/dw * w|``, ``R = 1^T f_|theta|(1)``              higher
``naswot``      ``log |det K_H|``, binary activation-pattern kernel            higher
``tenas_kappa`` ``log10`` of lambda_max / lambda_min of the summed-logit NTK   lower
==============  ===========================================================  ===============

References
----------
Abdelfattah, Mehrotra, Dudziak & Lane (2021), "Zero-cost proxies for lightweight NAS", ICLR
(grad-norm, SNIP and SynFlow as architecture scores); Lee, Ajanthan & Torr (2019), SNIP;
Tanaka et al. (2020), SynFlow; Mellor, Turner, Storkey & Crowley (2021), "Neural architecture
search without training", ICML (NASWOT); Chen, Gong & Wang (2021), "Neural architecture search on
ImageNet in four GPU hours: a theoretically inspired perspective", ICLR (TE-NAS).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from gnadvisor._checks import GNAdvisorError
from gnadvisor.pruning._base import _pruning_hooks, check_xy, clone_model, mse_loss, prunable_parameters

__all__ = ["ZERO_COST_SCORES", "grad_norm", "naswot", "snip", "synflow", "tenas_kappa", "tenas_kappa_from_gram"]

#: Activation modules whose inputs define NASWOT's binary codes.
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.ELU, nn.SiLU, nn.Sigmoid, nn.Softplus, nn.Identity)

#: name -> (orientation, one-line description); orientation +1 = higher is better.
ZERO_COST_SCORES: dict[str, tuple[int, str]] = {
    "grad_norm": (+1, "||grad L||_2 at initialisation"),
    "snip": (+1, "SNIP: sum |dL/dw * w| over Linear/Conv weights"),
    "synflow": (+1, "SynFlow: log sum |dR/dw * w| of the |theta|-network on an all-ones input"),
    "naswot": (+1, "NASWOT: log|det K_H| of the binary activation-pattern kernel"),
    "tenas_kappa": (-1, "TE-NAS: log10 condition number of the NTK of the summed logits"),
}


def _scoring_copy(model: nn.Module) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise GNAdvisorError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    net = clone_model(model).to(torch.float64)
    net.train()
    for m in net.modules():  # dropout off, batch norm in training mode
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    return net


def _trainable(net: nn.Module) -> list[torch.Tensor]:
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise GNAdvisorError("model must have trainable parameters (requires_grad=True), got none")
    return params


def _layer_weights(net: nn.Module) -> list[torch.Tensor]:
    """The trainable tensor behind each Linear/Conv weight (``weight_orig`` when pruned)."""
    out = []
    for _, module, pname in prunable_parameters(net):
        hooked = {h._tensor_name for h in _pruning_hooks(module)}
        t = getattr(module, pname + "_orig") if pname in hooked else getattr(module, pname)
        if isinstance(t, nn.Parameter) and t.requires_grad:
            out.append(t)
    if not out:
        raise GNAdvisorError("model must contain a trainable nn.Linear or nn.Conv layer for this score, got none")
    return out


def grad_norm(model: nn.Module, X: Any, Y: Any) -> float:
    """``||grad_theta L||_2`` at the current weights, over all trainable parameters.

    Pruned coordinates have zero gradient (``dL/dw_orig = mask * dL/dw``), so only kept
    coordinates count.

    Parameters
    ----------
    model : torch.nn.Module
        Not modified.
    X, Y : torch.Tensor or array
        Inputs ``(n, ...)`` and targets ``(n, k)``.

    Returns
    -------
    float

    Raises
    ------
    GNAdvisorError
        For mis-shaped data or a model without trainable parameters.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(1, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.fill_(1.0)
    >>> grad_norm(net, torch.tensor([[2.0]]), torch.tensor([[0.0]]))  # dL/dw = (w x - y) x = 4
    4.0
    """
    X, Y = check_xy(X, Y)
    net = _scoring_copy(model)
    params = _trainable(net)
    grads = torch.autograd.grad(mse_loss(net(X), Y), params, allow_unused=True)
    return float(math.sqrt(sum(float((g * g).sum()) for g in grads if g is not None)))


def snip(model: nn.Module, X: Any, Y: Any) -> float:
    """SNIP as an architecture score: ``sum |dL/dw * w|`` over every Linear/Conv weight.

    Parameters
    ----------
    model : torch.nn.Module
        Not modified.
    X, Y : torch.Tensor or array
        Inputs ``(n, ...)`` and targets ``(n, k)``.

    Returns
    -------
    float

    Raises
    ------
    GNAdvisorError
        For mis-shaped data or a model without trainable Linear/Conv weights.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1.0, -2.0]]))
    >>> snip(net, torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0]]))  # |(-1)(1)| + |(-1)(-2)|
    3.0
    """
    X, Y = check_xy(X, Y)
    net = _scoring_copy(model)
    weights = _layer_weights(net)
    grads = torch.autograd.grad(mse_loss(net(X), Y), weights, allow_unused=True)
    return float(sum(float((g * w.detach()).abs().sum()) for g, w in zip(grads, weights) if g is not None))


def synflow(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """SynFlow as an architecture score: ``log sum |dR/dw * w|`` over Linear/Conv weights.

    Data-free: on a float64 copy in eval mode, every floating parameter and buffer is replaced
    by its absolute value (pruning masks stay 0/1), and ``R = sum of f(1)`` for one all-ones
    input of shape ``input_shape``. For a bias-free network of ``L`` weight layers with no
    normalisation, ``R`` is homogeneous of degree 1 in each layer's weights, so the sum equals
    ``L * R`` (Euler): a check the tests use. The log keeps deep networks in range.

    Parameters
    ----------
    model : torch.nn.Module
        Not modified.
    input_shape : tuple of int
        Shape of one sample.

    Returns
    -------
    float
        ``log`` of the summed scores; ``-inf`` if they are all zero.

    Raises
    ------
    GNAdvisorError
        For a model without trainable Linear/Conv weights, or scores that overflow.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False), torch.nn.Linear(2, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 4.0]]))
    ...     _ = net[1].weight.copy_(torch.tensor([[-1.0, 0.5]]))
    >>> round(math.exp(synflow(net, (2,))), 10)  # 2 layers * R, R = |v|^T |W| 1 = 3 + 3.5
    13.0
    """
    if not isinstance(model, nn.Module):
        raise GNAdvisorError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    net = clone_model(model).to(torch.float64).eval()
    with torch.no_grad():
        for t in list(net.parameters()) + list(net.buffers()):
            if t.is_floating_point():
                t.abs_()
    weights = _layer_weights(net)
    R = net(torch.ones(1, *tuple(input_shape), dtype=torch.float64)).sum()
    grads = torch.autograd.grad(R, weights, allow_unused=True)
    total = sum(float((g * w.detach()).abs().sum()) for g, w in zip(grads, weights) if g is not None)
    if not math.isfinite(total):
        raise GNAdvisorError("synflow scores overflow float64 for this model; the network is too deep or its weights too large")
    return math.log(total) if total > 0 else -math.inf


def naswot(model: nn.Module, X: Any) -> float:
    """NASWOT: ``log |det K_H|`` of the binary activation-pattern kernel (Mellor et al. 2021).

    Every call of an activation module (ReLU, Leaky-ReLU, GELU, tanh, ... and ``nn.Identity``,
    the "linear" activation of gnadvisor models) contributes the binary code ``1[z > 0]`` of
    its input ``z`` for each sample; with ``c_i`` the concatenated codes (``N_A`` units) of
    sample i, ``K_H[i, j] = N_A - d_Hamming(c_i, c_j) = c_i^T c_j + (1 - c_i)^T (1 - c_j)``.
    For non-ReLU activations the sign of the pre-activation plays the role of the ReLU gate
    (the usual extension).

    Parameters
    ----------
    model : torch.nn.Module
        Not modified.
    X : torch.Tensor or array
        Inputs ``(n, ...)``.

    Returns
    -------
    float
        ``log |det K_H|``; ``-inf`` when ``K_H`` is singular (e.g. two samples with identical codes).

    Raises
    ------
    GNAdvisorError
        If the model has no activation module to hook.
    """
    net = _scoring_copy(model)
    X = torch.as_tensor(X).to(torch.float64)
    codes: list[torch.Tensor] = []

    def hook(module, inputs, output):
        z = inputs[0]
        codes.append((z.reshape(z.shape[0], -1) > 0).to(torch.float64))

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, _ACTIVATIONS)]
    try:
        with torch.no_grad():
            net(X)
    finally:
        for h in handles:
            h.remove()
    if not codes:
        raise GNAdvisorError("naswot needs activation modules (ReLU, GELU, Tanh, Identity, ...) to read binary codes, found none")
    C = torch.cat(codes, dim=1)
    K = C @ C.T + (1 - C) @ (1 - C).T
    sign, logabs = torch.linalg.slogdet(K)
    return float(logabs) if float(sign) != 0 else -math.inf


def tenas_kappa_from_gram(K: torch.Tensor, n_samples: int) -> float:
    """``log10`` condition number of the summed-logit NTK, from the full Gram ``K`` (n k x n k).

    The summed logit ``s(x) = sum_c f_c(x)`` has Jacobian rows ``sum_c J_(i,c)``, so its NTK is
    the block sum ``Theta[i, j] = sum_(c, c') K[(i, c), (j, c')]`` (times ``n``, which does not
    change the ratio). As TE-NAS, ``kappa = lambda_max / lambda_min`` over *all* ``n``
    eigenvalues; a ``lambda_min`` at or below ``n * eps64 * lambda_max`` is clipped there, so
    singular kernels get a large finite value.

    Parameters
    ----------
    K : torch.Tensor
        ``gn_gram`` output, rows ``i * k + c``.
    n_samples : int
        ``n``.

    Returns
    -------
    float
    """
    n = n_samples
    k = K.shape[0] // n
    theta = K.reshape(n, k, n, k).sum(dim=(1, 3))
    ev = torch.linalg.eigvalsh(0.5 * (theta + theta.T))
    lam_max = float(ev[-1])
    floor = n * float(np.finfo(np.float64).eps) * lam_max
    lam_min = max(float(ev[0]), floor)
    return math.log10(lam_max / lam_min)


def tenas_kappa(model: nn.Module, X: Any, **gram_options: Any) -> float:
    """TE-NAS: ``log10`` condition number of the NTK of the summed logits (Chen et al. 2021).

    Parameters
    ----------
    model : torch.nn.Module
        Not modified.
    X : torch.Tensor or array
        Inputs ``(n, ...)``.
    **gram_options
        Passed to :func:`gnadvisor.gn_gram` (``device``, ``batchnorm``, ...).

    Returns
    -------
    float
        See :func:`tenas_kappa_from_gram`. Lower is better.

    Raises
    ------
    GNAdvisorError
        As :func:`gnadvisor.gn_gram`.
    """
    from gnadvisor.spectrum import gn_gram

    K = gn_gram(model, X, **gram_options)
    return tenas_kappa_from_gram(K, int(torch.as_tensor(X).shape[0]))
