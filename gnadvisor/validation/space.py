"""Which architectures ``gnadvisor validate`` trains: the built-in set, spec files, search spaces.

The built-in set (:func:`validation_specs`, name ``"digits-v1"``) is generated deterministically
in code, so the README's results can be regenerated exactly. It has 73 architectures in seven
groups, all for flat inputs (``input_dim``) and ``output_dim`` outputs:

=====  ====================================================================================  ==
group  what varies (everything else: family mlp, width 64, biases, Kaiming-normal init)      n
=====  ====================================================================================  ==
A      activation {linear, relu, leaky_relu(0.1), tanh, gelu} x depth {1, 4, 16}              15
B      activation {relu, leaky_relu(0.1), tanh, gelu} x (depth, width) {2, 8} x {16, 128}    16
C      activation {relu, tanh, gelu} x init {xavier_normal, orthogonal}, depth 8             6
D      resmlp: activation {relu, tanh, gelu} x (depth 4 beta 0.5 / depth 16 beta 0.5 every   10
       2 layers / depth 16 beta 1), plus a bias-free linear resmlp of depth 8, beta 0.5
E      batch norm, width 32, no bias: activation {relu, tanh, gelu} x depth {2, 8}, a linear  8
       BN net of depth 4, and a resmlp BN relu of depth 8 (beta 1 every 2 layers)
F      pruned at init, activation {relu, tanh} x (depth 4 magnitude 80 %, depth 4 random     10
       50 %, depth 8 snip 80 %, depth 8 synflow 50 %, depth 16 magnitude 50 %)
G      bias-free (the paper's setting): linear depth {1, 2, 4, 8, 16}, leaky_relu(0.1)        8
       depth 1, relu and gelu depth 4
=====  ====================================================================================  ==

Depth is the number of hidden layers (1 to 16). Batch-norm networks are kept narrow because
their samples are coupled, which makes the exact Gram slower (gn-theory Sec. 6).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from gnadvisor._checks import GNAdvisorError, check_positive_int
from gnadvisor.search.spec import ArchSpec

__all__ = ["BUILTIN_SETS", "load_specs", "sample_space_specs", "validation_specs"]

#: Names of the built-in architecture sets.
BUILTIN_SETS: tuple[str, ...] = ("digits-v1",)

_ARCH_KEYS = ("depth",)


def _base(**kw: Any) -> dict[str, Any]:
    out = {"family": "mlp", "width": 64, "bias": True, "init": "kaiming_normal", "activation": "relu"}
    out.update(kw)
    if out["activation"] == "leaky_relu":
        out.setdefault("leaky_alpha", 0.1)
    return out


def _digits_v1() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # A: activation x depth
    for act in ("linear", "relu", "leaky_relu", "tanh", "gelu"):
        for depth in (1, 4, 16):
            rows.append(_base(activation=act, depth=depth))
    # B: width at two depths
    for act in ("relu", "leaky_relu", "tanh", "gelu"):
        for depth in (2, 8):
            for width in (16, 128):
                rows.append(_base(activation=act, depth=depth, width=width))
    # C: initialisation
    for act in ("relu", "tanh", "gelu"):
        for init in ("xavier_normal", "orthogonal"):
            rows.append(_base(activation=act, depth=8, init=init))
    # D: residual MLPs
    for act in ("relu", "tanh", "gelu"):
        rows.append(_base(family="resmlp", activation=act, depth=4, skip_beta=0.5))
        rows.append(_base(family="resmlp", activation=act, depth=16, skip_beta=0.5, skip_every=2))
        rows.append(_base(family="resmlp", activation=act, depth=16, skip_beta=1.0))
    rows.append(_base(family="resmlp", activation="linear", depth=8, skip_beta=0.5, bias=False))
    # E: batch norm (narrow)
    for act in ("relu", "tanh", "gelu"):
        for depth in (2, 8):
            rows.append(_base(activation=act, depth=depth, width=32, batchnorm=True, bias=False))
    rows.append(_base(activation="linear", depth=4, width=32, batchnorm=True, bias=False))
    rows.append(_base(family="resmlp", activation="relu", depth=8, width=32, batchnorm=True, bias=False,
                      skip_beta=1.0, skip_every=2))
    # F: pruning at initialisation
    for act in ("relu", "tanh"):
        for depth, scheme, sparsity in ((4, "magnitude", 0.8), (4, "random", 0.5), (8, "snip", 0.8),
                                        (8, "synflow", 0.5), (16, "magnitude", 0.5)):
            rows.append(_base(activation=act, depth=depth, prune_scheme=scheme, sparsity=sparsity))
    # G: bias-free, the paper's setting (analytic bounds apply to the linear ones)
    for depth in (1, 2, 4, 8, 16):
        rows.append(_base(activation="linear", depth=depth, bias=False))
    rows.append(_base(activation="leaky_relu", depth=1, bias=False))
    rows.append(_base(activation="relu", depth=4, bias=False))
    rows.append(_base(activation="gelu", depth=4, bias=False))
    return rows


def validation_specs(name: str = "digits-v1", *, input_dim: int = 64, output_dim: int = 10) -> list[ArchSpec]:
    """The built-in validation architectures (module docstring), in a fixed order.

    Parameters
    ----------
    name : {"digits-v1"}
        Which built-in set.
    input_dim : int, default 64
        Input size ``d`` (64 for the digits).
    output_dim : int, default 10
        Number of outputs ``k``.

    Returns
    -------
    list of ArchSpec

    Raises
    ------
    GNAdvisorError
        For an unknown set name or bad sizes.

    Examples
    --------
    >>> specs = validation_specs()
    >>> len(specs), min(s.depth for s in specs), max(s.depth for s in specs)
    (73, 1, 16)
    >>> sorted({s.activation for s in specs})
    ['gelu', 'leaky_relu', 'linear', 'relu', 'tanh']
    """
    if name not in BUILTIN_SETS:
        raise GNAdvisorError(f"built-in architecture set (--set) must be one of {', '.join(map(repr, BUILTIN_SETS))}; "
                             f"got {name!r}")
    input_dim = check_positive_int("input_dim", input_dim)
    output_dim = check_positive_int("output_dim", output_dim)
    return [ArchSpec(input_dim=input_dim, output_dim=output_dim, **row) for row in _digits_v1()]


def _is_spec_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and "depth" in obj and all(isinstance(k, str) for k in obj)


def _collect(obj: Any, out: list[dict[str, Any]], under_spec_key: bool = False) -> None:
    """Spec dicts: items of a top-level list, or values under keys "spec"/"specs"/"baseline"."""
    if isinstance(obj, list):
        for item in obj:
            _collect(item, out, under_spec_key)
        return
    if not isinstance(obj, dict):
        return
    if under_spec_key and _is_spec_dict(obj):
        out.append(obj)
        return
    for key, value in obj.items():
        if key in ("spec", "specs", "baseline", "baseline_spec"):
            _collect(value, out, True)
        elif isinstance(value, (dict, list)):
            _collect(value, out, False)


def load_specs(path: str | Path, *, input_dim: int, output_dim: int,
               input_shape: Sequence[int] | None = None) -> list[ArchSpec]:
    """Read architectures from a JSON file.

    Accepted layouts: a list of :meth:`ArchSpec.to_dict` mappings; the ``--json`` output of
    ``gnadvisor suggest`` (or its ``suggest.json``): the ``"spec"`` of each entry of
    ``"recommendations"`` (the top-K of the finished study) and of ``"baseline"``, ablation
    variants ignored; or any other JSON object in which spec mappings sit under the keys
    ``"spec"``, ``"specs"``, ``"baseline"`` or ``"baseline_spec"`` at any depth. A mapping
    counts as a spec when it has a ``"depth"`` key. Missing ``input_dim``, ``input_shape`` and ``output_dim`` are filled in from
    the data; duplicates (same spec) are kept once, in order of first appearance.

    Parameters
    ----------
    path : str or pathlib.Path
        The JSON file.
    input_dim, output_dim : int
        Sizes from the data.
    input_shape : sequence of int, optional
        Sample shape of image data (needed for ``cnn`` specs).

    Returns
    -------
    list of ArchSpec

    Raises
    ------
    GNAdvisorError
        For a missing or invalid file, a file without specs, or an invalid spec (the message
        says which entry).
    """
    p = Path(path)
    if not p.is_file():
        raise GNAdvisorError(f"specs file {str(p)!r} does not exist; pass a JSON list of architecture specs")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GNAdvisorError(f"specs file {str(p)!r} is not valid JSON ({exc})") from None
    found: list[dict[str, Any]] = []
    if isinstance(data, dict) and "recommendations" in data:  # gnadvisor suggest --json / suggest.json
        _collect({"specs": data["recommendations"], "baseline": data.get("baseline")}, found)
    else:
        _collect(data, found, isinstance(data, list))
    if not found:
        raise GNAdvisorError(
            f"specs file {str(p)!r} holds no architecture specs: expected a list of spec mappings (with a 'depth' "
            "key) or an object with them under 'spec'/'specs'/'baseline'"
        )
    specs: list[ArchSpec] = []
    for i, raw in enumerate(found):
        d = dict(raw)
        d.setdefault("output_dim", output_dim)
        if "input_dim" not in d and "input_shape" not in d:
            d["input_dim"] = input_dim
            if input_shape is not None and len(input_shape) > 1:
                d["input_shape"] = list(input_shape)
        try:
            spec = ArchSpec.from_dict(d)
        except GNAdvisorError as exc:
            raise GNAdvisorError(f"spec #{i} of {str(p)!r}: {exc}") from None
        if spec not in specs:
            specs.append(spec)
    return specs


def sample_space_specs(space: Any, *, depths: Iterable[int], n_per_depth: int, seed: int, input_dim: int,
                       output_dim: int, input_shape: Sequence[int] | None = None) -> list[ArchSpec]:
    """Draw architectures from a search space (YAML) with Optuna's seeded random sampler.

    ``n_per_depth`` feasible, distinct specs per depth (up to ``20 * n_per_depth`` draws;
    infeasible ones under the space's constraints are skipped).

    Parameters
    ----------
    space : SearchSpace or str
        A :class:`~gnadvisor.search.SearchSpace`, or a bundled name or YAML path for
        :func:`~gnadvisor.search.load_search_space`.
    depths : iterable of int
        Depths (hidden layers) to sample at.
    n_per_depth : int
        Specs per depth.
    seed : int
        Sampler seed.
    input_dim, output_dim : int
        Sizes from the data.
    input_shape : sequence of int, optional
        Sample shape (``(C, H, W)`` enables ``cnn``).

    Returns
    -------
    list of ArchSpec

    Raises
    ------
    GNAdvisorError
        For a bad space, depth or count, or a space that yields no feasible spec.
    """
    import optuna

    from gnadvisor.search import SearchSpace, constraint_violations, load_search_space

    if not isinstance(space, SearchSpace):
        space = load_search_space(space)
    n_per_depth = check_positive_int("n_per_depth", n_per_depth)
    depths = [check_positive_int("depth", d) for d in depths]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    specs: list[ArchSpec] = []
    for depth in depths:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed + 1000 * depth))
        got = 0
        for _ in range(20 * n_per_depth):
            trial = study.ask()
            spec = space.suggest(trial, depth=depth, input_dim=input_dim, output_dim=output_dim,
                                 input_shape=input_shape)
            study.tell(trial, 0.0)
            if any(v > 0 for v in constraint_violations(spec, space)) or spec in specs:
                continue
            specs.append(spec)
            got += 1
            if got == n_per_depth:
                break
    if not specs:
        raise GNAdvisorError(f"search space {space.name!r} gave no feasible architecture at depths {depths}")
    return specs
