"""Search spaces: which architectures ``gnadvisor suggest`` may propose, read from YAML.

A search space file has these top-level keys::

    name: resmlp                     # optional, defaults to the file name
    description: ...                 # optional
    dimensions:                      # required: what is searched
      width: {low: 16, high: 512, log: true}        # int range (Optuna suggest_int)
      skip_beta: {choices: [0.0, 0.25, 0.5, 1.0]}   # categorical (suggest_categorical)
      sparsity: {low: 0.1, high: 0.8}               # float range (suggest_float)
    fixed:                           # optional: ArchSpec fields held constant
      family: resmlp
    constraints:                     # optional, null or absent = unconstrained
      max_params: 10000000
      max_flops: 10000000
    objectives: [kappa]              # required: minimised, from OBJECTIVES

Every key of ``dimensions`` and ``fixed`` is an :class:`~gnadvisor.search.ArchSpec` field
(:data:`DIMENSIONS`); a field given in neither takes the ``ArchSpec`` default. Exactly one of
``width`` and ``width_multiplier`` must be given. ``depth`` comes from the CLI ``--depth`` and
``input_dim``, ``input_shape``, ``output_dim`` from the data, so files cannot set them.

The bundled spaces (:data:`BUNDLED_SPACES`) ship inside the package in
``gnadvisor/search_spaces/``; the repository's top-level ``search_spaces/`` holds identical
copies for users to read and copy (a test keeps the two in sync).

Conditional dimensions
----------------------
:meth:`SearchSpace.suggest` asks the trial for a dimension only where it matters, so Optuna
sees the real (dynamic) search space:

* ``leaky_alpha`` only when ``activation == "leaky_relu"``;
* ``skip_beta`` only for families ``resmlp`` and ``cnn`` (``mlp`` always has ``beta = 0``),
  and ``skip_every`` only when ``skip_beta > 0``;
* ``sparsity`` only when ``prune_scheme`` is not null;
* family ``cnn`` only when the data are image-shaped, ``input_shape = (C, H, W)``
  (:meth:`SearchSpace.families_for`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from gnadvisor._checks import (
    GNAdvisorError,
    check_bool,
    check_choice,
    check_known_keys,
    check_number,
    check_positive_int,
)
from gnadvisor.search.spec import _FIELD_CHECKS, _SKIP_FAMILIES, ArchSpec

__all__ = [
    "BUNDLED_SPACES",
    "DIMENSIONS",
    "Dimension",
    "OBJECTIVES",
    "SearchSpace",
    "constraint_violations",
    "load_search_space",
]

#: Names accepted by :func:`load_search_space` without a path.
BUNDLED_SPACES: tuple[str, ...] = ("default", "mlp", "resmlp", "cnn")
#: Objectives a space may list; all are minimised. ``kappa``: the GN pseudo-condition number
#: (scored as ``log10 kappa``); ``forecast``: the forecast training-loss ratio ``L_T / L_0``
#: after ``T`` full-batch GD steps at ``lr = 1 / lambda_max`` (:func:`gnadvisor.gn_forecast`,
#: scored as ``log10 L_T / L_0``; needs targets); ``params``: :meth:`ArchSpec.n_params`;
#: ``flops``: :meth:`ArchSpec.flops`. A study needs exactly one of ``kappa`` and ``forecast``
#: (its primary objective), optionally with ``params`` and/or ``flops`` for a Pareto front.
OBJECTIVES: tuple[str, ...] = ("kappa", "forecast", "params", "flops")
#: Searchable ArchSpec fields and their kind: ``"categorical"`` (choices only), ``"int"`` or
#: ``"float"`` (choices or a range).
DIMENSIONS: dict[str, str] = {
    "family": "categorical",
    "width": "int",
    "width_multiplier": "float",
    "activation": "categorical",
    "leaky_alpha": "float",
    "bias": "categorical",
    "batchnorm": "categorical",
    "skip_beta": "float",
    "skip_every": "int",
    "init": "categorical",
    "prune_scheme": "categorical",
    "sparsity": "float",
}
#: Constraint keys, in the order :func:`constraint_violations` reports them.
CONSTRAINTS: tuple[str, ...] = ("max_params", "max_flops")

_TOP_KEYS = ("name", "description", "dimensions", "fixed", "constraints", "objectives")
_DIM_KEYS = ("choices", "low", "high", "log", "step")
_FROM_RUN = {
    "depth": "depth comes from --depth (the depth argument of suggest)",
    "input_dim": "input_dim comes from the data",
    "input_shape": "input_shape comes from the data",
    "output_dim": "output_dim comes from the data",
}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ArchSpec)}


def _check_value(path: str, name: str, value: Any) -> Any:
    """Validate one value of dimension ``name`` as ArchSpec would; ``path`` names it."""
    if name == "width":  # None is ArchSpec's "not given", never a searchable value
        return check_positive_int(path, value)
    if name == "width_multiplier":
        return check_number(path, value, low=0.0, low_inclusive=False)
    return _FIELD_CHECKS[name](path, value)


def _check_dim_name(section: str, name: Any) -> None:
    if name in _FROM_RUN:
        raise GNAdvisorError(
            f"{section}.{name} cannot be set in a search space: {_FROM_RUN[name]}")
    check_known_keys(section, [name], DIMENSIONS)


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched ArchSpec field: categorical ``choices`` or a ``[low, high]`` range.

    Parameters
    ----------
    name : str
        The ArchSpec field, a key of :data:`DIMENSIONS`; also the Optuna parameter name.
    choices : tuple, optional
        The values to choose from (categorical).
    low, high : int or float, optional
        Inclusive range bounds (int for ``width``/``skip_every``, float otherwise).
    log : bool, default False
        Sample the range on a log scale.
    step : int or float, optional
        Grid spacing of the range (not with ``log``).
    """

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    @property
    def is_range(self) -> bool:
        """True for a ``[low, high]`` range, False for choices."""
        return self.choices is None

    @classmethod
    def from_dict(cls, name: str, data: Any, path: str) -> "Dimension":
        """Validate the YAML mapping of one dimension; ``path`` (e.g. ``dimensions.width``) names it.

        Raises
        ------
        GNAdvisorError
            Naming the bad key path and what is allowed.
        """
        kind = DIMENSIONS[name]
        if not isinstance(data, Mapping):
            raise GNAdvisorError(
                f"{path} must be a mapping with 'choices' or 'low'/'high' (put constant values "
                f"under 'fixed'), got {data!r}")
        check_known_keys(path, data.keys(), _DIM_KEYS)
        if "choices" in data:
            extra = [k for k in data if k != "choices"]
            if extra:
                raise GNAdvisorError(
                    f"{path} has 'choices', so it cannot also have {', '.join(map(repr, extra))}")
            raw = data["choices"]
            if not isinstance(raw, list) or not raw:
                raise GNAdvisorError(f"{path}.choices must be a non-empty list, got {raw!r}")
            choices = tuple(_check_value(f"{path}.choices[{i}]", name, v) for i, v in enumerate(raw))
            for i, v in enumerate(choices):
                if v in choices[:i]:
                    raise GNAdvisorError(f"{path}.choices lists {raw[i]!r} twice")
            return cls(name, choices=choices)

        if kind == "categorical":
            raise GNAdvisorError(f"{path} must list 'choices' (it is categorical), got {dict(data)!r}")
        missing = [k for k in ("low", "high") if k not in data]
        if missing:
            raise GNAdvisorError(
                f"{path} needs 'choices', or both 'low' and 'high'; missing {', '.join(map(repr, missing))}")
        low = _check_value(f"{path}.low", name, data["low"])
        high = _check_value(f"{path}.high", name, data["high"])
        if low > high:
            raise GNAdvisorError(f"{path}.low must be <= high, got low={low!r}, high={high!r}")
        log = check_bool(f"{path}.log", data.get("log", False))
        step = data.get("step")
        if step is not None:
            step = (check_positive_int(f"{path}.step", step) if kind == "int"
                    else check_number(f"{path}.step", step, low=0.0, low_inclusive=False))
        if log and low <= 0:
            raise GNAdvisorError(f"{path}.low must be > 0 when log is true, got {low!r}")
        if log and step not in (None, 1):
            raise GNAdvisorError(f"{path}.step cannot be combined with log: true, got step={step!r}")
        if kind == "int" and step == 1:
            step = None
        return cls(name, low=low, high=high, log=log, step=step)

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping of this dimension."""
        if not self.is_range:
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def suggest(self, trial: Any, *, choices: Sequence[Any] | None = None,
                high: float | None = None) -> Any:
        """Ask an Optuna trial for a value, under the parameter name :attr:`name`.

        ``choices`` narrows the categorical choices, ``high`` lowers the range's upper end
        (kept on the ``step`` grid and ``>= low``).
        """
        if not self.is_range:
            return trial.suggest_categorical(self.name, list(self.choices if choices is None else choices))
        top = self.high if high is None else max(self.low, min(self.high, high))
        if DIMENSIONS[self.name] == "int":
            step = self.step or 1
            top = self.low + (int(top) - self.low) // step * step
            return trial.suggest_int(self.name, self.low, top, step=step, log=self.log)
        if self.step is not None:
            top = self.low + math.floor((top - self.low) / self.step + 1e-9) * self.step
        return trial.suggest_float(self.name, self.low, top, step=self.step, log=self.log)


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """A validated search space: searched dimensions, fixed values, constraints, objectives.

    Build it with :func:`load_search_space` (YAML) or :meth:`from_dict`; the module docstring
    describes the file format. Direct construction is validated the same way.

    Parameters
    ----------
    name : str
        Short name (``"default"``, or the file name).
    description : str
        Free text.
    dimensions : tuple of Dimension
        The searched ArchSpec fields.
    fixed : tuple of (str, value) pairs
        ArchSpec fields held constant.
    max_params, max_flops : int, optional
        Constraints on :meth:`ArchSpec.n_params` and :meth:`ArchSpec.flops`; None = none.
    objectives : tuple of str
        Objectives to minimise, from :data:`OBJECTIVES`.

    Raises
    ------
    GNAdvisorError
        On construction, naming the bad key path and the allowed keys or values.

    Examples
    --------
    >>> import optuna
    >>> space = load_search_space("default")
    >>> space.families_for(None)  # flat data: no CNN
    ('mlp', 'resmlp')
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> spec = space.suggest(study.ask(), depth=20, input_dim=64, output_dim=10)
    >>> spec.depth, spec.input_dim, spec.family in ("mlp", "resmlp")
    (20, 64, True)
    >>> all(v <= 0 for v in constraint_violations(spec, space))
    True
    """

    name: str
    description: str
    dimensions: tuple[Dimension, ...]
    fixed: tuple[tuple[str, Any], ...]
    max_params: int | None
    max_flops: int | None
    objectives: tuple[str, ...]

    def __post_init__(self) -> None:
        if not all(isinstance(d, Dimension) for d in self.dimensions):
            raise GNAdvisorError("dimensions must be a tuple of Dimension records")
        try:
            data = self.to_dict()
        except (TypeError, ValueError):
            raise GNAdvisorError(
                "fixed must be a tuple of (field, value) pairs; build search spaces with "
                "SearchSpace.from_dict or load_search_space") from None
        for key, value in _parse_space(data, self.name).items():
            object.__setattr__(self, key, value)

    # ------------------------------------------------------------------ access
    def dimension(self, name: str) -> Dimension | None:
        """The searched dimension ``name``, or None if it is fixed or absent."""
        return next((d for d in self.dimensions if d.name == name), None)

    @property
    def fixed_values(self) -> dict[str, Any]:
        """The fixed ArchSpec fields as a dict."""
        return dict(self.fixed)

    @property
    def constraints(self) -> dict[str, int]:
        """The active constraints, e.g. ``{"max_params": 10000000}``, in :data:`CONSTRAINTS` order."""
        values = {"max_params": self.max_params, "max_flops": self.max_flops}
        return {k: v for k, v in values.items() if v is not None}

    @property
    def directions(self) -> list[str]:
        """Optuna study directions, one per objective (all ``"minimize"``)."""
        return ["minimize"] * len(self.objectives)

    @property
    def families(self) -> tuple[str, ...]:
        """Families the space can propose, before filtering by the input shape."""
        dim = self.dimension("family")
        if dim is not None:
            return tuple(dim.choices)
        return (self.fixed_values.get("family", _DEFAULTS["family"]),)

    def families_for(self, input_shape: Sequence[int] | None) -> tuple[str, ...]:
        """Families usable for data of this sample shape: ``cnn`` only if it is ``(C, H, W)``.

        Parameters
        ----------
        input_shape : sequence of int or None
            Shape of one sample; None or a 1-D shape for flat data.

        Returns
        -------
        tuple of str
            The space's families that fit, in the space's order.

        Raises
        ------
        GNAdvisorError
            If no family of the space fits the data (a CNN-only space on flat data).
        """
        image = input_shape is not None and len(input_shape) == 3
        usable = tuple(f for f in self.families if f != "cnn" or image)
        if not usable:
            got = (f"input_shape={tuple(input_shape)!r}" if input_shape is not None
                   else "flat input")
            raise GNAdvisorError(
                f"search space {self.name!r} only proposes family 'cnn', which needs image-shaped "
                f"input (channels, height, width), got {got}; use image-shaped data or a space "
                f"with family 'mlp' or 'resmlp'")
        return usable

    # ------------------------------------------------------------------ sampling
    def _pick(self, trial: Any, name: str, **kw: Any) -> Any:
        fixed = self.fixed_values
        if name in fixed:
            return fixed[name]
        dim = self.dimension(name)
        return _DEFAULTS[name] if dim is None else dim.suggest(trial, **kw)

    def suggest(self, trial: Any, depth: int, input_dim: int, output_dim: int,
                input_shape: Sequence[int] | None = None) -> ArchSpec:
        """Sample an :class:`ArchSpec` with an Optuna trial.

        Parameters are named after the ArchSpec fields (``"width"``, ``"skip_beta"``, ...);
        conditional ones are asked for only where they matter (module docstring). ``width`` (or
        ``width_multiplier``) is sampled last: when it is a range and the space has
        constraints, its upper end is lowered to the largest value that satisfies them given
        the other choices, so no trial is wasted on an infeasible width. If even ``low``
        violates them, the full range is used and :func:`constraint_violations` reports it.
        ``optuna.trial.FixedTrial(trial.params)`` reproduces the same spec.

        Parameters
        ----------
        trial : optuna.trial.BaseTrial
            The trial to ask (``study.ask()``, inside an objective, or a ``FixedTrial``).
        depth : int
            Number of hidden layers.
        input_dim : int
            Input size ``d`` (``prod(input_shape)`` for image data).
        output_dim : int
            Number of outputs ``k``.
        input_shape : sequence of int, optional
            Shape of one sample; ``(C, H, W)`` enables family ``cnn``.

        Returns
        -------
        ArchSpec
            A valid spec.

        Raises
        ------
        GNAdvisorError
            If no family fits the data (:meth:`families_for`) or ``depth``/``input_dim``/
            ``output_dim``/``input_shape`` or a fixed value is invalid.
        """
        if input_shape is not None:
            input_shape = tuple(input_shape)
        family = self._pick(trial, "family", choices=self.families_for(input_shape))
        kw: dict[str, Any] = {"family": family, "depth": depth, "input_dim": input_dim,
                              "output_dim": output_dim, "input_shape": input_shape}
        kw["activation"] = self._pick(trial, "activation")
        if kw["activation"] == "leaky_relu":
            kw["leaky_alpha"] = self._pick(trial, "leaky_alpha")
        kw["bias"] = self._pick(trial, "bias")
        kw["batchnorm"] = self._pick(trial, "batchnorm")
        if family in _SKIP_FAMILIES:
            kw["skip_beta"] = self._pick(trial, "skip_beta")
            if kw["skip_beta"] > 0:
                kw["skip_every"] = self._pick(trial, "skip_every")
        kw["init"] = self._pick(trial, "init")
        kw["prune_scheme"] = self._pick(trial, "prune_scheme")
        if kw["prune_scheme"] is not None:
            kw["sparsity"] = self._pick(trial, "sparsity")

        width_name = "width" if self._defines("width") else "width_multiplier"
        dim = self.dimension(width_name)
        cap = None
        if dim is not None and dim.is_range and self.constraints:
            w_max = self._max_feasible_width(kw, dim, depth)
            if w_max is not None:
                cap = w_max if width_name == "width" else w_max / (depth + 1)
        kw[width_name] = self._pick(trial, width_name, **({} if cap is None else {"high": cap}))
        return ArchSpec(**kw)

    def _defines(self, name: str) -> bool:
        return name in self.fixed_values or self.dimension(name) is not None

    def _max_feasible_width(self, kw: dict[str, Any], dim: Dimension, depth: int) -> int | None:
        """Largest width meeting the constraints, or None if the range's low end already fails.

        n_params and flops grow with the width, so bisect on it.
        """
        def ok(width: int) -> bool:
            return all(v <= 0 for v in constraint_violations(ArchSpec(width=width, **kw), self))

        if dim.name == "width":
            lo, hi = int(dim.low), int(dim.high)
        else:  # width_multiplier: the widths it can resolve to
            lo = max(1, math.floor(dim.low * (depth + 1) + 0.5))
            hi = max(lo, math.floor(dim.high * (depth + 1) + 0.5))
        if not ok(lo):
            return None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
        return lo

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """The YAML-shaped mapping (:meth:`from_dict` inverts it)."""
        return {
            "name": self.name,
            "description": self.description,
            "dimensions": {d.name: d.to_dict() for d in self.dimensions},
            "fixed": dict(self.fixed),
            "constraints": {"max_params": self.max_params, "max_flops": self.max_flops},
            "objectives": list(self.objectives),
        }

    @classmethod
    def from_dict(cls, data: Any, *, default_name: str = "custom") -> "SearchSpace":
        """Validate a YAML-shaped mapping (see the module docstring) into a SearchSpace.

        Parameters
        ----------
        data : mapping
            The parsed file.
        default_name : str, default "custom"
            Name used when ``data`` has no ``name``.

        Returns
        -------
        SearchSpace

        Raises
        ------
        GNAdvisorError
            Naming the bad key path (``dimensions.width.low``) and the allowed keys or values.
        """
        return cls(**_parse_space(data, default_name))


def _parse_space(data: Any, default_name: str) -> dict[str, Any]:
    """Validate a YAML-shaped mapping; return SearchSpace's fields (normalised, canonical order)."""
    if not isinstance(data, Mapping):
        raise GNAdvisorError(
            f"a search space must be a mapping with keys {', '.join(_TOP_KEYS)}, "
            f"got {type(data).__name__}")
    check_known_keys("the search space", data.keys(), _TOP_KEYS)
    for key in ("dimensions", "objectives"):
        if key not in data:
            raise GNAdvisorError(f"the search space needs a '{key}' key")

    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise GNAdvisorError(f"name must be a non-empty string, got {name!r}")
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        raise GNAdvisorError(f"description must be a string, got {description!r}")

    raw_dims = data["dimensions"]
    if not isinstance(raw_dims, Mapping):
        raise GNAdvisorError(f"dimensions must be a mapping of ArchSpec fields, got {raw_dims!r}")
    dims = []
    for key, value in raw_dims.items():
        _check_dim_name("dimensions", key)
        dims.append(Dimension.from_dict(key, value, f"dimensions.{key}"))

    raw_fixed = data.get("fixed") or {}
    if not isinstance(raw_fixed, Mapping):
        raise GNAdvisorError(f"fixed must be a mapping of ArchSpec fields, got {raw_fixed!r}")
    fixed = []
    for key, value in raw_fixed.items():
        _check_dim_name("fixed", key)
        value = _check_value(f"fixed.{key}", key, value)
        if key in raw_dims:
            raise GNAdvisorError(
                f"{key} is in both dimensions and fixed; keep it in one of them")
        fixed.append((key, value))

    defined = set(raw_dims) | set(raw_fixed)
    n_width = len(defined & {"width", "width_multiplier"})
    if n_width != 1:
        raise GNAdvisorError(
            "the search space must define exactly one of width and width_multiplier "
            f"(in dimensions or fixed), got {'both' if n_width else 'neither'}")
    scheme_dim = next((d for d in dims if d.name == "prune_scheme"), None)
    schemes = (scheme_dim.choices if scheme_dim is not None
               else (dict(fixed).get("prune_scheme"),))
    if any(s is not None for s in schemes) and "sparsity" not in defined:
        raise GNAdvisorError(
            "the search space lets prune_scheme be set, so it must define sparsity "
            "(in dimensions or fixed)")

    raw_cons = data.get("constraints") or {}
    if not isinstance(raw_cons, Mapping):
        raise GNAdvisorError(f"constraints must be a mapping, got {raw_cons!r}")
    check_known_keys("constraints", raw_cons.keys(), CONSTRAINTS)
    cons = {k: _check_limit(f"constraints.{k}", raw_cons.get(k)) for k in CONSTRAINTS}

    raw_obj = data["objectives"]
    if not isinstance(raw_obj, list) or not raw_obj:
        raise GNAdvisorError(
            f"objectives must be a non-empty list from {', '.join(OBJECTIVES)}, got {raw_obj!r}")
    objectives = tuple(check_choice(f"objectives[{i}]", o, OBJECTIVES)
                       for i, o in enumerate(raw_obj))
    if len(set(objectives)) != len(objectives):
        raise GNAdvisorError(f"objectives must not repeat, got {raw_obj!r}")

    order = list(DIMENSIONS)  # canonical order: equality does not depend on the file's order
    dims.sort(key=lambda d: order.index(d.name))
    fixed.sort(key=lambda item: order.index(item[0]))
    return dict(name=name, description=description.strip(), dimensions=tuple(dims),
                fixed=tuple(fixed), objectives=objectives, **cons)


def _check_limit(path: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():  # 5.0e6 in YAML
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise GNAdvisorError(
            f"{path} must be a positive integer or null, got {value!r} "
            f"(YAML reads 5e6 as text: write 5000000 or 5.0e6)")
    return value


def constraint_violations(spec: ArchSpec, space: SearchSpace) -> list[float]:
    """Relative constraint violations, Optuna ``constraints_func`` style (``<= 0`` = satisfied).

    One entry per active constraint, in :data:`CONSTRAINTS` order:
    ``spec.n_params() / max_params - 1`` and ``spec.flops() / max_flops - 1``. Relative values
    make the constraints comparable. Parameter counts are dense (pruned weights count).

    Parameters
    ----------
    spec : ArchSpec
        The candidate.
    space : SearchSpace
        Its search space.

    Returns
    -------
    list of float
        Empty when the space has no constraints.

    Examples
    --------
    >>> space = SearchSpace.from_dict({"dimensions": {"width": {"choices": [8]}},
    ...                                "constraints": {"max_params": 1000},
    ...                                "objectives": ["kappa"]})
    >>> spec = ArchSpec(depth=1, width=8, input_dim=100, output_dim=10)  # 880 weights
    >>> constraint_violations(spec, space)
    [-0.12]
    """
    out = []
    if space.max_params is not None:
        out.append(spec.n_params() / space.max_params - 1.0)
    if space.max_flops is not None:
        out.append(spec.flops() / space.max_flops - 1.0)
    return out


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key: construct_mapping reports it
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise GNAdvisorError(f"{source} is not valid YAML: {problem}{where}") from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GNAdvisorError(f"{source} is not valid YAML: {first}") from None


def load_search_space(name_or_path: str | os.PathLike[str]) -> SearchSpace:
    """Load a bundled search space by name, or a user's YAML file by path.

    Parameters
    ----------
    name_or_path : str or path-like
        One of :data:`BUNDLED_SPACES` (these names win over files of the same name), or the
        path of a YAML file in the format of the module docstring.

    Returns
    -------
    SearchSpace

    Raises
    ------
    GNAdvisorError
        One line, prefixed by the source: the file is missing or unreadable, is not valid
        YAML, or fails validation (naming the bad key path and the allowed keys or values).

    Examples
    --------
    >>> space = load_search_space("resmlp")
    >>> space.objectives, space.fixed_values["family"]
    (('kappa',), 'resmlp')
    """
    if isinstance(name_or_path, str) and name_or_path in BUNDLED_SPACES:
        source = f"bundled search space {name_or_path!r}"
        text = (resources.files("gnadvisor") / "search_spaces" / f"{name_or_path}.yaml") \
            .read_text(encoding="utf-8")
        default_name = name_or_path
    else:
        path = Path(name_or_path)
        source = f"search space file {str(path)!r}"
        if not path.is_file():
            raise GNAdvisorError(
                f"search space {str(name_or_path)!r} not found: it is not a bundled space "
                f"({', '.join(BUNDLED_SPACES)}) and no file exists at {str(path.resolve())!r}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise GNAdvisorError(f"{source} cannot be read: {exc}") from None
        default_name = path.stem
    data = _parse_yaml(text, source)
    if data is None:
        raise GNAdvisorError(f"{source} is empty; it needs at least 'dimensions' and 'objectives'")
    try:
        return SearchSpace.from_dict(data, default_name=default_name)
    except GNAdvisorError as exc:
        raise GNAdvisorError(f"{source}: {exc}") from None
