"""Build plain ``nn.Module`` networks from an :class:`~gnadvisor.search.ArchSpec`.

The models are deliberately plain: ``nn.Linear``/``nn.Conv2d``/``nn.BatchNorm*`` modules, each
used once per forward pass, float64 parameters, no in-place operations, so that
:func:`gnadvisor.gn_spectrum` can take its fastest route (the structured ``nn.Linear`` rule of
the Gram route, or the Kronecker route when the model is linear in ``x``).

Skip connections (family ``resmlp``, and ``cnn`` with ``skip_beta > 0``)
-----------------------------------------------------------------------
The weight layers are grouped, from the input, into consecutive blocks of ``skip_every``
layers (the last block may be shorter). A block maps

    h  ->  F(h) + beta * P h,

where ``F`` is the block's layers in sequence, each hidden layer being
``h -> act(BN(W h + b))`` (BN only with ``batchnorm``) and the output layer ``h -> W h + b``,
and ``P = I_rect = eye(out, in)`` keeps the first ``min(in, out)`` coordinates (channels for
convolutions) and pads with zeros. For ``resmlp`` all ``L = depth + 1`` layers, including the
first and the output layer, are grouped; for ``cnn`` only the ``depth`` convolutions are (the
pooling and the Linear head carry no skip). With ``skip_every=1``, ``activation="linear"``,
``bias=False`` and ``batchnorm=False`` every layer is exactly ``h -> (W_l + beta I_rect) h``,
the paper's Eq. 7.

Initialisation
--------------
Weights of every layer use the same rule with the activation's gain ``g``
(:func:`activation_gain`), biases are zero and batch norm starts at scale 1, shift 0:

=================  ==========================================================
``init``           weight distribution (fan_in, fan_out include the 3x3 kernel)
=================  ==========================================================
kaiming_normal     N(0, g^2 / fan_in)                     (paper, gn-theory Sec. 8)
kaiming_uniform    U(-b, b), b = g sqrt(3 / fan_in)
xavier_normal      N(0, 2 g^2 / (fan_in + fan_out))
xavier_uniform     U(-b, b), b = g sqrt(6 / (fan_in + fan_out))
orthogonal         g Q, Q (semi-)orthogonal from the QR of a Gaussian matrix
=================  ==========================================================

Every random draw comes from a local ``torch.Generator`` seeded with ``seed``; the global RNG
is left untouched.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gnadvisor._checks import GNAdvisorError, check_choice, check_positive_int
from gnadvisor.search.spec import ACTIVATIONS, ArchSpec

__all__ = [
    "ConvNet",
    "MLP",
    "activation_gain",
    "build_model",
    "build_pruned_model",
]

_DTYPE = torch.float64
#: E[GELU(z)^2] for z ~ N(0, 1), in closed form.
_GELU_SECOND_MOMENT = 1.0 / 3.0 + 1.0 / (2.0 * math.pi * math.sqrt(3.0))


def activation_gain(activation: str, leaky_alpha: float = 0.01) -> float:
    """Initialisation gain ``g`` of an activation.

    ``1`` for linear, ``sqrt(2)`` for ReLU, ``sqrt(2 / (1 + alpha^2))`` for Leaky-ReLU and
    ``5/3`` for tanh, as ``torch.nn.init.calculate_gain``. GELU has no PyTorch gain; it gets
    ``1 / sqrt(E[GELU(z)^2])`` with ``z ~ N(0, 1)``, ``E[GELU(z)^2] = 1/3 + 1/(2 pi sqrt 3)``,
    the rule that also gives the linear, ReLU and Leaky-ReLU values above.

    Parameters
    ----------
    activation : {"linear", "relu", "leaky_relu", "tanh", "gelu"}
        The activation.
    leaky_alpha : float, default 0.01
        Negative slope, used only for ``"leaky_relu"``.

    Returns
    -------
    float
        The gain.

    Raises
    ------
    GNAdvisorError
        If ``activation`` is not one of the names above.

    References
    ----------
    He et al. 2015 (Kaiming init); gn-theory Sec. 8 (the paper's gains).

    Examples
    --------
    >>> round(activation_gain("relu") ** 2, 12)
    2.0
    >>> round(activation_gain("gelu"), 4)
    1.5335
    """
    check_choice("activation", activation, ACTIVATIONS)
    if activation == "linear":
        return 1.0
    if activation == "relu":
        return math.sqrt(2.0)
    if activation == "leaky_relu":
        return math.sqrt(2.0 / (1.0 + leaky_alpha**2))
    if activation == "tanh":
        return 5.0 / 3.0
    return 1.0 / math.sqrt(_GELU_SECOND_MOMENT)


def _activation_module(spec: ArchSpec) -> nn.Module:
    if spec.activation == "linear":
        return nn.Identity()
    if spec.activation == "relu":
        return nn.ReLU()
    if spec.activation == "leaky_relu":
        return nn.LeakyReLU(spec.leaky_alpha)
    if spec.activation == "tanh":
        return nn.Tanh()
    return nn.GELU()


def _init_weight(weight: torch.Tensor, init: str, gain: float, gen: torch.Generator) -> None:
    """Fill ``weight`` (out, in, *kernel) in place from ``gen``."""
    out_features = weight.shape[0]
    receptive = weight[0][0].numel() if weight.ndim > 2 else 1
    fan_in = weight.shape[1] * receptive
    fan_out = out_features * receptive
    shape, kw = weight.shape, {"generator": gen, "dtype": weight.dtype}
    if init == "kaiming_normal":
        new = torch.randn(shape, **kw) * (gain / math.sqrt(fan_in))
    elif init == "kaiming_uniform":
        new = (2 * torch.rand(shape, **kw) - 1) * (gain * math.sqrt(3.0 / fan_in))
    elif init == "xavier_normal":
        new = torch.randn(shape, **kw) * (gain * math.sqrt(2.0 / (fan_in + fan_out)))
    elif init == "xavier_uniform":
        new = (2 * torch.rand(shape, **kw) - 1) * (gain * math.sqrt(6.0 / (fan_in + fan_out)))
    else:  # orthogonal, as torch.nn.init.orthogonal_
        rows, cols = out_features, weight[0].numel()
        a = torch.randn(max(rows, cols), min(rows, cols), **kw)
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))  # unique, Haar-distributed Q
        new = (q.T if rows < cols else q).reshape(shape) * gain
    with torch.no_grad():
        weight.copy_(new)


def _embed(h: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """``I_rect h`` along ``dim`` (negative): keep the first ``size`` entries, or zero-pad."""
    n = h.shape[dim]
    if n == size:
        return h
    if n > size:
        return h.narrow(dim, 0, size)
    pad = [0, 0] * (-dim - 1) + [0, size - n]
    return F.pad(h, pad)


def _blocks(n_layers: int, spec: ArchSpec) -> list[tuple[int, int]]:
    """[start, stop) layer ranges of the skip blocks (one block without skips when beta = 0)."""
    if not spec.has_skips:
        return [(0, n_layers)]
    s = spec.skip_every
    return [(i, min(i + s, n_layers)) for i in range(0, n_layers, s)]


class MLP(nn.Module):
    """Fully-connected network for families ``mlp`` and ``resmlp`` (skips when ``skip_beta > 0``).

    ``depth`` hidden ``nn.Linear`` layers of width ``m`` (each followed by ``BatchNorm1d`` if
    ``batchnorm``, then the activation) and a Linear output layer; skip blocks as described in
    :mod:`gnadvisor.search.models`. Accepts ``(n, d)`` inputs, single samples ``(d,)``, and
    inputs shaped ``(n, *input_shape)`` or ``input_shape`` (flattened first).

    Parameters
    ----------
    spec : ArchSpec
        A spec of family ``"mlp"`` or ``"resmlp"``.
    seed : int, default 0
        Seed of the local generator used for the weights.

    Raises
    ------
    GNAdvisorError
        If ``spec`` has another family (use :func:`build_model`, which dispatches).

    Attributes
    ----------
    spec : ArchSpec
        The spec it was built from.
    layers : nn.ModuleList
        The ``L = depth + 1`` Linear layers, the last is the output layer.
    norms : nn.ModuleList
        ``depth`` BatchNorm1d modules, or empty.
    act : nn.Module
        The activation.
    """

    def __init__(self, spec: ArchSpec, seed: int = 0) -> None:
        super().__init__()
        check_choice("family", spec.family, ("mlp", "resmlp"))
        self.spec = spec
        gen = torch.Generator().manual_seed(seed)
        gain = activation_gain(spec.activation, spec.leaky_alpha)
        self.layers = nn.ModuleList()
        for fan_in, fan_out in spec._layer_dims():
            layer = torch.nn.utils.skip_init(nn.Linear, fan_in, fan_out, bias=spec.bias,
                                             dtype=_DTYPE)
            _init_weight(layer.weight, spec.init, gain, gen)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
            self.layers.append(layer)
        m = spec.width_resolved
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(m, dtype=_DTYPE) for _ in range(spec.depth if spec.batchnorm else 0)
        )
        self.act = _activation_module(spec)
        self._blocks = _blocks(len(self.layers), spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(n, output_dim)`` (or ``(output_dim,)`` for one unbatched sample)."""
        shape = self.spec.input_shape
        if shape is not None and len(shape) > 1 and tuple(x.shape[-len(shape):]) == shape:
            x = torch.flatten(x, start_dim=x.ndim - len(shape))
        h = x
        last = len(self.layers) - 1
        for start, stop in self._blocks:
            h_in = h
            for i in range(start, stop):
                h = self.layers[i](h)
                if i < last:
                    if len(self.norms):
                        h = self.norms[i](h)
                    h = self.act(h)
            if self.spec.has_skips:
                h = h + self.spec.skip_beta * _embed(h_in, h.shape[-1], -1)
        return h

    def linear_structure(self) -> dict[str, Any] | None:
        """The structure the analytic bounds need, or None when no closed form applies.

        Returns
        -------
        dict or None
            * ``{"kind": "linear_chain", "weights": [W_1, ..., W_L], "beta": beta}`` when the
              network is a bias-free, BN-free linear chain: ``activation="linear"`` and either
              no skips (``beta = 0``) or ``skip_every = 1``. The end-to-end map is
              ``(W_L + beta I_rect) ... (W_1 + beta I_rect)``, ``I_rect = eye(out, in)``
              (paper Eq. 7); ``W_l`` are the raw ``(out, in)`` weights (masked values when
              pruned), detached.
            * ``{"kind": "leaky_one_hidden", "weights": [V, W], "alpha": alpha}`` for a
              bias-free, BN-free, skip-free one-hidden-layer Leaky-ReLU network
              ``f(x) = W sigma(V x)`` (paper Eq. 9); ReLU is reported as ``alpha = 0.0``.
            * ``None`` otherwise (biases, batch norm, other activations, or skips spanning more
              than one layer, whose block map ``W_b ... W_a + beta P`` is no chain of
              single weight matrices).
        """
        spec = self.spec
        if spec.bias or spec.batchnorm:
            return None
        weights = [layer.weight.detach() for layer in self.layers]
        if spec.activation == "linear" and (not spec.has_skips or spec.skip_every == 1):
            return {"kind": "linear_chain", "weights": weights, "beta": float(spec.skip_beta)}
        if spec.activation in ("leaky_relu", "relu") and spec.depth == 1 and not spec.has_skips:
            alpha = spec.leaky_alpha if spec.activation == "leaky_relu" else 0.0
            return {"kind": "leaky_one_hidden", "weights": weights, "alpha": float(alpha)}
        return None


class ConvNet(nn.Module):
    """Convolutional network for family ``cnn``.

    ``depth`` 3x3 ``nn.Conv2d`` layers (padding 1, ``width`` channels, each followed by
    ``BatchNorm2d`` if ``batchnorm``, then the activation), skip blocks over the convolutions
    when ``skip_beta > 0`` (channels embedded by ``I_rect``), global average pooling and a
    Linear head. Accepts ``(n, C, H, W)`` inputs, single samples ``(C, H, W)``, and flat
    inputs ``(n, C*H*W)`` or ``(C*H*W,)`` (reshaped to ``input_shape`` first).

    Parameters
    ----------
    spec : ArchSpec
        A spec of family ``"cnn"``.
    seed : int, default 0
        Seed of the local generator used for the weights.

    Raises
    ------
    GNAdvisorError
        If ``spec`` has another family (use :func:`build_model`, which dispatches).

    Attributes
    ----------
    spec : ArchSpec
        The spec it was built from.
    convs : nn.ModuleList
        The ``depth`` convolutions.
    norms : nn.ModuleList
        ``depth`` BatchNorm2d modules, or empty.
    act : nn.Module
        The activation.
    head : nn.Linear
        The output layer, ``width -> output_dim``.
    """

    def __init__(self, spec: ArchSpec, seed: int = 0) -> None:
        super().__init__()
        check_choice("family", spec.family, ("cnn",))
        self.spec = spec
        gen = torch.Generator().manual_seed(seed)
        gain = activation_gain(spec.activation, spec.leaky_alpha)
        dims = spec._layer_dims()
        self.convs = nn.ModuleList()
        for c_in, c_out in dims[:-1]:
            conv = torch.nn.utils.skip_init(nn.Conv2d, c_in, c_out, kernel_size=3, padding=1,
                                            bias=spec.bias, dtype=_DTYPE)
            _init_weight(conv.weight, spec.init, gain, gen)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            self.convs.append(conv)
        m = spec.width_resolved
        self.norms = nn.ModuleList(
            nn.BatchNorm2d(m, dtype=_DTYPE) for _ in range(spec.depth if spec.batchnorm else 0)
        )
        self.act = _activation_module(spec)
        self.head = torch.nn.utils.skip_init(nn.Linear, m, spec.output_dim, bias=spec.bias,
                                             dtype=_DTYPE)
        _init_weight(self.head.weight, spec.init, gain, gen)
        if self.head.bias is not None:
            nn.init.zeros_(self.head.bias)
        self._blocks = _blocks(len(self.convs), spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(n, output_dim)`` (or ``(output_dim,)`` for one unbatched sample)."""
        shape = self.spec.input_shape
        if tuple(x.shape[-3:]) != shape:
            x = x.reshape(*x.shape[:-1], *shape)
        h = x
        for start, stop in self._blocks:
            h_in = h
            for i in range(start, stop):
                h = self.convs[i](h)
                if len(self.norms):
                    h = self.norms[i](h)
                h = self.act(h)
            if self.spec.has_skips:
                h = h + self.spec.skip_beta * _embed(h_in, h.shape[-3], -3)
        return self.head(h.mean(dim=(-2, -1)))

    def linear_structure(self) -> None:
        """Always None: a convolution is no dense weight matrix (gn-theory Sec. 4, App. B).

        Linear conv nets are still linear in ``x``; ``gn_spectrum`` detects that itself.
        """
        return None


def build_model(spec: ArchSpec, seed: int = 0) -> nn.Module:
    """Build the float64 network described by ``spec``, deterministically for ``seed``.

    Pruning is *not* applied (see :func:`build_pruned_model`). The model is returned in
    training mode, so batch norm normalises with batch statistics, as in the paper.

    Parameters
    ----------
    spec : ArchSpec
        The architecture.
    seed : int, default 0
        Seed (``>= 0``) of the local ``torch.Generator`` for the weights; the global RNG state
        is not touched.

    Returns
    -------
    MLP or ConvNet
        A plain ``nn.Module`` with ``linear_structure()``;
        ``sum(p.numel() for p in model.parameters()) == spec.n_params()``.

    Raises
    ------
    GNAdvisorError
        If ``spec`` is not an :class:`ArchSpec` or ``seed`` is not a non-negative integer.

    Examples
    --------
    >>> import torch
    >>> spec = ArchSpec(family="resmlp", depth=3, width=16, skip_beta=0.5,
    ...                 input_shape=(1, 8, 8), output_dim=10)
    >>> model = build_model(spec, seed=0)
    >>> model(torch.zeros(5, 1, 8, 8, dtype=torch.float64)).shape
    torch.Size([5, 10])
    >>> sum(p.numel() for p in model.parameters()) == spec.n_params()
    True
    """
    if not isinstance(spec, ArchSpec):
        raise GNAdvisorError(f"spec must be an ArchSpec, got {type(spec).__name__}")
    seed = check_positive_int("seed", seed, allow_zero=True)
    return ConvNet(spec, seed) if spec.family == "cnn" else MLP(spec, seed)


def build_pruned_model(spec: ArchSpec, seed: int = 0, X: torch.Tensor | None = None,
                       Y: torch.Tensor | None = None) -> nn.Module:
    """:func:`build_model`, then prune at initialisation as ``spec`` says.

    When :attr:`ArchSpec.needs_pruning`, calls ``gnadvisor.pruning.prune_model(model,
    spec.prune_scheme, spec.sparsity, X=X, Y=Y, seed=seed, inplace=True)`` (for ``synflow``
    without ``X`` also ``input_shape``, the spec's sample shape); otherwise returns the dense
    model and does not import ``gnadvisor.pruning``. Pruned layers keep ``weight_orig`` and a
    ``weight_mask`` (``torch.nn.utils.prune``), so ``layer.weight`` is the masked weight and the
    parameter count is unchanged.

    Parameters
    ----------
    spec : ArchSpec
        The architecture, including ``prune_scheme`` and ``sparsity``.
    seed : int, default 0
        Seed for the weights and for randomised pruning schemes.
    X, Y : torch.Tensor, optional
        Data ``(n, ...)`` and targets ``(n, k)``, required by the data-dependent schemes
        ``snip`` and ``grasp``.

    Returns
    -------
    MLP or ConvNet
        The pruned model.

    Raises
    ------
    GNAdvisorError
        As :func:`build_model`, or as ``prune_model`` raises (e.g. ``snip`` without data).
    """
    model = build_model(spec, seed)
    if not spec.needs_pruning:
        return model
    from gnadvisor.pruning import prune_model

    options = {}
    if spec.prune_scheme == "synflow" and X is None:
        options["input_shape"] = spec.input_shape or (spec.input_dim,)
    return prune_model(model, spec.prune_scheme, spec.sparsity, X=X, Y=Y, seed=seed,
                       inplace=True, **options)
