"""Architecture specifications: a frozen, validated, serialisable description of one network.

An :class:`ArchSpec` is what the search proposes, what the scorer scores and what the report
prints. It holds no weights; :func:`gnadvisor.search.build_model` turns it into an
``nn.Module``. Everything here is plain Python (no torch), so specs are cheap to create,
hash, compare, count (:meth:`ArchSpec.n_params`, :meth:`ArchSpec.flops`) and store as JSON.

Conventions (gn-theory Sec. 1)
------------------------------
========================  =====================  ==========================================
paper                     code                   meaning
========================  =====================  ==========================================
hidden layers             ``depth``              ``depth >= 1``; the CLI's ``--depth``
L                         ``n_weight_layers``    weight matrices (or conv layers + head) =
                                                 ``depth + 1``
m                         ``width_resolved``     hidden width (channels for ``cnn``)
m = c * L                 ``width_multiplier``   ``width = round(c * (depth + 1))``
beta                      ``skip_beta``          skip-connection weight, 0 = no skips
d, k                      ``input_dim``,         input size (``prod(input_shape)``) and
                          ``output_dim``         number of outputs
========================  =====================  ==========================================
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Callable, Mapping

from gnadvisor._checks import (
    GNAdvisorError,
    check_bool,
    check_choice,
    check_fraction,
    check_known_keys,
    check_number,
    check_positive_int,
)

__all__ = [
    "ACTIVATIONS",
    "ArchSpec",
    "FAMILIES",
    "INITS",
    "PRUNE_SCHEMES",
]

#: Network families. ``mlp`` and ``resmlp`` accept flat or image-shaped input (flattened);
#: ``cnn`` needs ``input_shape = (channels, height, width)``.
FAMILIES: tuple[str, ...] = ("mlp", "resmlp", "cnn")
#: Element-wise activations after every hidden layer (``linear`` = identity).
ACTIVATIONS: tuple[str, ...] = ("linear", "relu", "leaky_relu", "tanh", "gelu")
#: Weight initialisations (biases always start at zero).
INITS: tuple[str, ...] = (
    "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "orthogonal",
)
#: Pruning-at-initialisation schemes understood by ``gnadvisor.pruning.prune_model``.
PRUNE_SCHEMES: tuple[str, ...] = (
    "magnitude", "global-magnitude", "random", "snip", "grasp", "synflow",
)

#: Families whose hidden layers may carry skip connections.
_SKIP_FAMILIES: tuple[str, ...] = ("resmlp", "cnn")


def _check_optional_positive_int(name: str, value: Any) -> int | None:
    return None if value is None else check_positive_int(name, value)


def _check_width_multiplier(name: str, value: Any) -> float | None:
    return None if value is None else check_number(name, value, low=0.0, low_inclusive=False)


def _check_leaky_alpha(name: str, value: Any) -> float:
    return check_number(name, value, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)


def _check_skip_beta(name: str, value: Any) -> float:
    return check_number(name, value, low=0.0)


def _check_prune_scheme(name: str, value: Any) -> str | None:
    return None if value is None else check_choice(name, value, PRUNE_SCHEMES)


def _check_sparsity(name: str, value: Any) -> float:
    if isinstance(value, bool):  # float(True) would pass check_fraction
        raise GNAdvisorError(f"{name} must be a number in [0, 1), got {value!r}")
    return check_fraction(name, value)


def _check_input_shape(name: str, value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) == 0:
        raise GNAdvisorError(
            f"{name} must be a non-empty list of positive integers such as [1, 8, 8], got {value!r}"
        )
    return tuple(check_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


#: Per-field validators ``(name, value) -> normalised value``; shared with the YAML loader so
#: that a search space and a spec accept exactly the same values.
_FIELD_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "family": lambda n, v: check_choice(n, v, FAMILIES),
    "depth": check_positive_int,
    "width": _check_optional_positive_int,
    "width_multiplier": _check_width_multiplier,
    "activation": lambda n, v: check_choice(n, v, ACTIVATIONS),
    "leaky_alpha": _check_leaky_alpha,
    "bias": check_bool,
    "skip_beta": _check_skip_beta,
    "skip_every": check_positive_int,
    "batchnorm": check_bool,
    "init": lambda n, v: check_choice(n, v, INITS),
    "prune_scheme": _check_prune_scheme,
    "sparsity": _check_sparsity,
    "input_dim": _check_optional_positive_int,
    "input_shape": _check_input_shape,
    "output_dim": check_positive_int,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArchSpec:
    """A validated description of one network architecture (no weights).

    Parameters
    ----------
    depth : int
        Number of hidden layers, ``>= 1`` (the CLI's ``--depth``). The network has
        ``L = depth + 1`` weight layers: ``depth`` hidden Linear (or 3x3 conv) layers and one
        Linear output layer.
    output_dim : int
        Number of outputs ``k``.
    family : {"mlp", "resmlp", "cnn"}, default "mlp"
        ``mlp``: Linear layers; ``resmlp``: the same with skip connections of weight
        ``skip_beta``; ``cnn``: 3x3 convolutions (padding 1, ``width`` channels), global average
        pooling and a Linear head; needs ``input_shape = (C, H, W)``.
    width : int, optional
        Hidden width ``m`` (channels for ``cnn``). Give exactly one of ``width`` and
        ``width_multiplier``.
    width_multiplier : float, optional
        ``c`` in ``m = c * L`` (width growing with depth): the width is
        ``round(c * (depth + 1))`` (halves rounded up), which must be ``>= 1``.
    activation : {"linear", "relu", "leaky_relu", "tanh", "gelu"}, default "relu"
        Applied after every hidden layer, never after the output layer.
    leaky_alpha : float, default 0.01
        Negative slope ``alpha`` in ``(0, 1)`` of ``leaky_relu``; ignored for other activations.
    bias : bool, default False
        Whether layers have biases (the paper's networks have none).
    skip_beta : float, default 0.0
        Skip weight ``beta >= 0``; 0 means no skips. Must be 0 for ``mlp``. See
        :func:`gnadvisor.search.build_model` for where the skips go.
    skip_every : int, default 1
        Number of weight layers spanned by one skip connection (1 = the paper's Eq. 7, every
        layer has its own skip; 2 = ResNet-style blocks). Ignored when ``skip_beta`` is 0.
    batchnorm : bool, default False
        Batch norm (affine) after every hidden layer, before the activation.
    init : {"kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "orthogonal"}
        Weight initialisation, default ``"kaiming_normal"`` (the paper's); the gain depends on
        the activation (:func:`gnadvisor.search.activation_gain`).
    prune_scheme : str, optional
        Pruning at initialisation, one of :data:`PRUNE_SCHEMES`, or None for a dense network.
        Applied by :func:`gnadvisor.search.build_pruned_model`, not by ``build_model``.
    sparsity : float, default 0.0
        Fraction of weights pruned, ``0 <= sparsity < 1``; must be 0 without ``prune_scheme``.
    input_dim : int, optional
        Input size ``d``. Filled in from ``input_shape`` when omitted; must equal its product
        when both are given.
    input_shape : tuple of int, optional
        Shape of one sample, e.g. ``(1, 8, 8)``. Required for ``cnn`` (exactly
        ``(channels, height, width)``); MLPs flatten inputs of this shape.

    Raises
    ------
    GNAdvisorError
        On construction, when a field has a wrong type or value or fields contradict each
        other; the one-line message names the field, what must hold and what came in.

    Examples
    --------
    >>> spec = ArchSpec(family="resmlp", depth=20, width=128, skip_beta=1.0, batchnorm=True,
    ...                 input_dim=64, output_dim=10)
    >>> spec.describe()
    'resmlp d20 w128 relu β=1 BN kaiming_normal'
    >>> spec.n_params()  # weights 64*128 + 19*128*128 + 128*10, batch norm 20 * 2*128
    325888
    >>> ArchSpec.from_json(spec.to_json()) == spec
    True
    >>> ArchSpec(depth=3, width_multiplier=8, input_dim=64, output_dim=10).width_resolved
    32
    >>> ArchSpec(depth=3, width=0, input_dim=64, output_dim=10)
    Traceback (most recent call last):
    ...
    gnadvisor._checks.GNAdvisorError: width must be a positive integer, got 0
    """

    family: str = "mlp"
    depth: int
    width: int | None = None
    width_multiplier: float | None = None
    activation: str = "relu"
    leaky_alpha: float = 0.01
    bias: bool = False
    skip_beta: float = 0.0
    skip_every: int = 1
    batchnorm: bool = False
    init: str = "kaiming_normal"
    prune_scheme: str | None = None
    sparsity: float = 0.0
    input_dim: int | None = None
    input_shape: tuple[int, ...] | None = None
    output_dim: int

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _FIELD_CHECKS[f.name](f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)

        if (self.width is None) == (self.width_multiplier is None):
            got = ("neither" if self.width is None
                   else f"both (width={self.width}, width_multiplier={self.width_multiplier:g})")
            raise GNAdvisorError(f"give exactly one of width and width_multiplier, got {got}")
        if self.width_multiplier is not None and self._multiplied_width() < 1:
            raise GNAdvisorError(
                f"width_multiplier * (depth + 1) must be >= 0.5 (the width is its rounded value), "
                f"got {self.width_multiplier:g} * {self.depth + 1} = "
                f"{self.width_multiplier * (self.depth + 1):g}"
            )
        if self.family not in _SKIP_FAMILIES and self.skip_beta != 0:
            raise GNAdvisorError(
                f"skip_beta must be 0 for family {self.family!r} (use family 'resmlp' for "
                f"skip connections), got {self.skip_beta:g}"
            )
        if self.prune_scheme is None and self.sparsity != 0:
            raise GNAdvisorError(
                f"sparsity must be 0 when prune_scheme is None (set prune_scheme to prune), "
                f"got {self.sparsity:g}"
            )

        if self.input_dim is None and self.input_shape is None:
            raise GNAdvisorError("give input_dim or input_shape, got neither")
        if self.input_shape is not None:
            size = math.prod(self.input_shape)
            if self.input_dim is None:
                object.__setattr__(self, "input_dim", size)
            elif self.input_dim != size:
                raise GNAdvisorError(
                    f"input_dim must equal the product of input_shape "
                    f"({'*'.join(map(str, self.input_shape))} = {size}), got {self.input_dim}"
                )
        if self.family == "cnn" and (self.input_shape is None or len(self.input_shape) != 3):
            raise GNAdvisorError(
                f"family 'cnn' needs input_shape = (channels, height, width), "
                f"got {self.input_shape!r}"
            )

    def _multiplied_width(self) -> int:
        # round half up (Python's round() rounds half to even)
        return int(math.floor(self.width_multiplier * (self.depth + 1) + 0.5))

    # ------------------------------------------------------------------ derived values
    @property
    def width_resolved(self) -> int:
        """Hidden width ``m``: ``width``, or ``round(width_multiplier * (depth + 1))``."""
        return self.width if self.width is not None else self._multiplied_width()

    @property
    def n_weight_layers(self) -> int:
        """``L = depth + 1``: hidden layers plus the output layer."""
        return self.depth + 1

    @property
    def has_skips(self) -> bool:
        """True when the network has skip connections (``skip_beta > 0``)."""
        return self.skip_beta > 0

    @property
    def needs_pruning(self) -> bool:
        """True when :func:`~gnadvisor.search.build_pruned_model` has something to prune."""
        return self.prune_scheme is not None and self.sparsity > 0

    def _layer_dims(self) -> list[tuple[int, int]]:
        """(in, out) of the ``L`` weight layers; for ``cnn`` the first ``depth`` are channels."""
        m = self.width_resolved
        first = self.input_shape[0] if self.family == "cnn" else self.input_dim
        dims = [first] + [m] * self.depth
        return list(zip(dims[:-1], dims[1:])) + [(m, self.output_dim)]

    def n_params(self) -> int:
        """Number of trainable parameters, counted without building the model.

        Weights and biases of every layer plus the affine scale and shift of each batch norm
        (running statistics are buffers, not parameters). Pruned weights are counted: this is
        the dense count.

        Returns
        -------
        int
            Equals ``sum(p.numel() for p in build_model(spec, seed).parameters())``.
        """
        kernel = 9 if self.family == "cnn" else 1
        total = 0
        for i, (fan_in, fan_out) in enumerate(self._layer_dims()):
            hidden = i < self.depth
            total += fan_in * fan_out * (kernel if hidden else 1)
            total += fan_out if self.bias else 0
            total += 2 * fan_out if (hidden and self.batchnorm) else 0
        return total

    def flops(self) -> int:
        """Forward multiply-accumulates (MACs) per sample of the weight layers.

        Counts ``in * out`` for each Linear layer and ``9 * in_channels * out_channels * H * W``
        for each 3x3 convolution (padding 1 keeps ``H x W``). Element-wise work (biases,
        activations, batch norm, skip additions, pooling) is not counted: it is ``O(m)`` per
        layer against the ``O(m^2)`` products.

        Returns
        -------
        int
            MACs per sample (one MAC = one multiply and one add).
        """
        spatial = self.input_shape[1] * self.input_shape[2] if self.family == "cnn" else 1
        total = 0
        for i, (fan_in, fan_out) in enumerate(self._layer_dims()):
            if i < self.depth and self.family == "cnn":
                total += 9 * fan_in * fan_out * spatial
            else:
                total += fan_in * fan_out
        return total

    def describe(self) -> str:
        """Short one-line summary, e.g. ``'resmlp d20 w128 relu β=1 BN kaiming_normal'``."""
        width = f"w{self.width_resolved}"
        if self.width_multiplier is not None:
            width += f"(c={self.width_multiplier:g})"
        act = (f"leaky_relu(α={self.leaky_alpha:.3g})" if self.activation == "leaky_relu"
               else self.activation)
        parts = [self.family, f"d{self.depth}", width, act]
        if self.has_skips:
            parts.append(f"β={self.skip_beta:.3g}"
                         + (f" every {self.skip_every}" if self.skip_every > 1 else ""))
        if self.batchnorm:
            parts.append("BN")
        if self.bias:
            parts.append("bias")
        parts.append(self.init)
        if self.prune_scheme is not None:
            parts.append(f"{self.prune_scheme} {self.sparsity:.0%}")
        return " ".join(parts)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON/YAML-ready Python values (``input_shape`` as a list)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if out["input_shape"] is not None:
            out["input_shape"] = list(out["input_shape"])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ArchSpec":
        """Build a spec from :meth:`to_dict` output (missing optional keys take defaults).

        Raises
        ------
        GNAdvisorError
            If ``data`` is not a mapping, has unknown keys (named, with the allowed keys),
            lacks ``depth`` or ``output_dim``, or a value is invalid.
        """
        if not isinstance(data, Mapping):
            raise GNAdvisorError(f"ArchSpec data must be a mapping, got {type(data).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        check_known_keys("ArchSpec", data.keys(), allowed)
        missing = [k for k in ("depth", "output_dim") if k not in data]
        if missing:
            raise GNAdvisorError(f"ArchSpec is missing required key(s) {', '.join(map(repr, missing))}")
        return cls(**data)

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "ArchSpec":
        """Inverse of :meth:`to_json`.

        Raises
        ------
        GNAdvisorError
            If ``text`` is not valid JSON or :meth:`from_dict` rejects it.
        """
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise GNAdvisorError(f"ArchSpec JSON is not valid: {exc}") from None
        return cls.from_dict(data)
