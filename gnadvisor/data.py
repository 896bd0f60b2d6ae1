"""Datasets for every gnadvisor command.

One entry point, :func:`load_data`, returns a :class:`Dataset` of float64 tensors from the
bundled scikit-learn digits, from synthetic Gaussian data, or from a ``.npy``/``.npz``/``.pt``/
``.csv`` file. Nothing is ever downloaded.

Conventions (Zhao, Singh & Lucchi 2024; ``gn-theory.md`` §1 and §8):

============  =============================  ===============================================
paper         code                           meaning
============  =============================  ===============================================
X             ``Dataset.X``                  inputs, rows are samples, ``(n, *input_shape)``
n             ``Dataset.n_samples``          number of samples
d             ``Dataset.n_features``         ``prod(input_shape)``, flattened input width
k             ``Dataset.n_outputs``          target width (one-hot: number of classes)
Sigma         --                             ``X^T X / n``, flattened and *uncentred*
kappa(Sigma)  ``data_covariance_condition``  lambda_max / lambda_min over non-zero spectrum
============  =============================  ===============================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gnadvisor._checks import GNAdvisorError, check_choice, check_positive_int

__all__ = ["Dataset", "load_data", "data_covariance_condition"]

_SUFFIXES = (".npy", ".npz", ".pt", ".csv")
_TARGET_KINDS = (None, "onehot", "gaussian", "none")
_LABEL_COLUMNS = ("label", "y", "target")
_SYNTHETIC_N = 1000
_SYNTHETIC_D = 64
_DEFAULT_K = 10


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs and targets, float64, ready for the GN engine and for training.

    Attributes
    ----------
    X : torch.Tensor
        Inputs, float64, shape ``(n_samples, *input_shape)``.
    Y : torch.Tensor or None
        Targets, float64, shape ``(n_samples, n_outputs)`` (one-hot rows for class labels), or
        ``None`` when the source has no targets.
    name : str
        ``"digits"``, ``"synthetic"`` or the file name.
    input_shape : tuple of int
        Shape of one sample.
    n_classes : int or None
        Number of classes when ``Y`` is one-hot, else ``None``.
    notes : tuple of str
        What was done to the raw data (subsampling, resizing, standardising, whitening), one
        sentence each, for reports.

    Raises
    ------
    GNAdvisorError
        On construction, if the tensors are not float64 or their shapes disagree.
    """

    X: torch.Tensor
    Y: torch.Tensor | None
    name: str
    input_shape: tuple[int, ...]
    n_classes: int | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.X, torch.Tensor) or self.X.dtype != torch.float64:
            raise GNAdvisorError(f"Dataset.X must be a float64 torch tensor, got {_describe(self.X)}")
        if tuple(self.X.shape[1:]) != tuple(self.input_shape):
            raise GNAdvisorError(
                f"Dataset.X must have shape (n, *input_shape) with input_shape={_fmt(self.input_shape)}, "
                f"got {tuple(self.X.shape)}"
            )
        if self.Y is not None:
            ok = (isinstance(self.Y, torch.Tensor) and self.Y.dtype == torch.float64
                  and self.Y.ndim == 2 and self.Y.shape[0] == self.X.shape[0])
            if not ok:
                raise GNAdvisorError(
                    f"Dataset.Y must be None or a float64 tensor of shape ({self.X.shape[0]}, k), "
                    f"got {_describe(self.Y)}"
                )

    @property
    def n_samples(self) -> int:
        """Number of samples ``n``."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Flattened input width ``d = prod(input_shape)``."""
        return math.prod(self.input_shape)

    @property
    def n_outputs(self) -> int | None:
        """Target width ``k``, or ``None`` without targets."""
        return None if self.Y is None else int(self.Y.shape[1])


def load_data(
    source: str | Path = "digits",
    *,
    n_samples: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    input_dim: int | None = None,
    output_dim: int | None = None,
    standardize: bool = False,
    whiten: bool = False,
    seed: int = 0,
    targets: str | None = None,
    targets_file: str | Path | None = None,
) -> Dataset:
    """Load a dataset as float64 tensors.

    The sources:

    ``"digits"``
        scikit-learn's bundled 8x8 digits (1797 samples, 64 pixels, 10 classes). Pixels are
        divided by 16, so inputs lie in [0, 1]; ``Y`` is the one-hot label. The default
        ``input_shape`` is ``(64,)`` (flattened, as in the paper). An ``input_shape`` with 64
        entries reshapes (e.g. ``(1, 8, 8)``); an image shape ``(H, W)`` or ``(C, H, W)`` of
        another size resizes each 8x8 image bilinearly (anti-aliased when shrinking) and repeats
        the grey channel ``C`` times, e.g. ``(3, 32, 32)`` for a CIFAR-style CNN or ``(1, 7, 7)``.
    ``"synthetic"``
        ``X`` i.i.d. standard Gaussian of shape ``(n_samples, *input_shape)``
        (defaults: 1000 samples, ``input_shape=(64,)``); ``Y`` one-hot of uniformly random
        classes of ``output_dim`` (default 10) so that training targets exist, or standard
        Gaussian with ``targets="gaussian"``.
    path to ``.npy``
        Inputs only, shape ``(n, ...)``.
    path to ``.npz``
        Key ``X`` and optionally ``Y`` or ``y``.
    path to ``.pt``
        A tensor (inputs only) or a dict with key ``X`` and optionally ``Y`` or ``y``
        (read with ``torch.load(weights_only=True)``).
    path to ``.csv``
        Numeric table, optional header row. If a header column is named ``label``, ``y`` or
        ``target`` (any case; usually the last column) it is the target, all other columns are
        features; otherwise all columns are features.

    ``targets_file``: targets from their own ``.npy``/``.npz``/``.pt``/``.csv`` file, one row per
    sample of the source *before* subsampling, in the source's order (so ``n_samples`` picks the
    same rows of ``X`` and ``Y``; synthetic data: one row per generated sample). ``.npy``: the
    array; ``.npz``: key ``Y`` or ``y`` (or its only array); ``.pt``: a tensor, or a dict with key
    ``Y`` or ``y``; ``.csv``: every column (optional header row). They replace the source's own
    targets.

    File targets: integer labels (1-D or one column; in a csv, whole non-negative numbers) become
    one-hot with ``max(label) + 1`` classes (or ``output_dim`` if larger); other targets are used as
    they are, as an ``(n, k)`` float matrix. Image-shaped file inputs ``(n, H, W)`` or
    ``(n, C, H, W)`` may be resized like the digits.

    Order of operations: subsample, reshape or resize, then ``standardize`` and ``whiten`` on the
    flattened inputs (so the statistics are those of what the network sees), then targets.

    Parameters
    ----------
    source : str or pathlib.Path, default "digits"
        ``"digits"``, ``"synthetic"`` or a file path.
    n_samples : int, optional
        Keep this many samples: the first ``n_samples`` after a permutation seeded by ``seed``
        (deterministic; a smaller ``n_samples`` gives a prefix of a larger one). ``None`` keeps all
        samples in file order (synthetic: 1000).
    input_shape : tuple of int, optional
        Shape of one sample, see the sources above.
    input_dim : int, optional
        Shorthand for ``input_shape=(input_dim,)``.
    output_dim : int, optional
        Target width ``k``: the number of random classes or Gaussian outputs, or the one-hot width
        for labels (must be at least the number of classes).
    standardize : bool, default False
        Per-feature zero mean and unit variance (population std). Constant features become 0.
    whiten : bool, default False
        The paper's whitening (gn-theory §8): with the thin SVD ``X = U S V^T`` of the flattened,
        uncentred inputs, ``X <- U_r V_r^T`` keeping the ``r`` singular directions with
        ``s_i^2 > s_max^2 * d * eps`` (the rule of :func:`data_covariance_condition`). Then
        ``Sigma = X^T X / n = V_r V_r^T / n``: ``I / n`` when ``r = d``, otherwise ``P / n`` with
        ``P`` the orthogonal projector onto the data's span, so ``kappa(Sigma) = 1`` over its
        non-zero spectrum either way. The digits have three constant-zero pixels (0, 32, 39), so
        whitened digits have ``r = 61`` of ``d = 64``: those pixels stay 0 and ``Sigma`` is a
        rank-61 projector / n, not ``I / n``; rank formulas (gn-theory §3) must use ``r = 61``.
        Applied after ``standardize`` if both are set.
    seed : int, default 0
        Seed for subsampling, synthetic inputs and random targets (separate streams).
    targets : {None, "onehot", "gaussian", "none"}, default None
        ``None``: the source's own targets (digits and files: their labels; synthetic: random
        one-hot). ``"onehot"``: one-hot of uniformly random classes (``output_dim``, default 10),
        e.g. for unlabelled files. ``"gaussian"``: standard Gaussian targets. ``"none"``: no
        targets (``Y`` is ``None``).
    targets_file : str or pathlib.Path, optional
        Targets from this file (see above); not together with ``targets``.

    Returns
    -------
    Dataset
        ``X`` and ``Y`` float64 on the CPU, with notes on what was done.

    Raises
    ------
    GNAdvisorError
        For an unknown source or file type, a missing or unreadable file, non-finite values, an
        ``input_shape`` that does not fit the data, ``n_samples`` above the available samples,
        inconsistent ``input_shape``/``input_dim``, a bad ``output_dim`` or ``targets``,
        whitening all-zero data, or a ``targets_file`` that is missing, unreadable, not numeric or
        finite, or whose row count is not the source's number of samples.

    References
    ----------
    Zhao, Singh & Lucchi (2024): Sigma = X^T X / n (uncentred) and whitening X <- U V^T
    (gn-theory §1, §8).

    Examples
    --------
    >>> ds = load_data("digits", n_samples=100, input_shape=(1, 8, 8))
    >>> tuple(ds.X.shape), tuple(ds.Y.shape), ds.n_classes
    ((100, 1, 8, 8), (100, 10), 10)
    >>> w = load_data("digits", whiten=True)
    >>> round(data_covariance_condition(w.X), 8), data_covariance_condition(w.X, return_rank=True)[1]
    (1.0, 61)
    >>> load_data("synthetic", n_samples=5, input_dim=3, output_dim=2).Y.sum(dim=1).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    seed = check_positive_int("seed", seed, allow_zero=True)
    if n_samples is not None:
        n_samples = check_positive_int("n_samples", n_samples)
    if output_dim is not None:
        output_dim = check_positive_int("output_dim", output_dim)
    check_choice("targets", targets, _TARGET_KINDS)
    if targets_file is not None and targets is not None:
        raise GNAdvisorError(f"give targets or targets_file, not both; got targets={targets!r} and "
                             f"targets_file={str(targets_file)!r}")
    shape = _resolve_shape(input_shape, input_dim)
    notes: list[str] = []

    kind = _source_kind(source)
    if kind == "synthetic":
        n = _SYNTHETIC_N if n_samples is None else n_samples
        shape = shape if shape is not None else (_SYNTHETIC_D,)
        X = _rng(seed, 2).standard_normal((n, *shape))
        raw_y: tuple[str, np.ndarray] | None = None
        name, image, n_classes_raw = "synthetic", None, None
        notes.append(f"synthetic: X ~ N(0, I), {n} samples of shape {_fmt(shape)} (seed {seed})")
        if targets_file is not None:
            raw_y = _load_targets_file(targets_file, n, name, notes)
            n_classes_raw = _n_label_classes(raw_y)
    else:
        if kind == "digits":
            X, raw_y, name = _load_digits()
        else:
            X, raw_y, name = _load_file(Path(source), kind)
        if targets_file is not None:
            raw_y = _load_targets_file(targets_file, X.shape[0], name, notes)
        image = _image_shape(X, kind)
        n_classes_raw = _n_label_classes(raw_y)
        if n_samples is not None:
            total = X.shape[0]
            if n_samples > total:
                raise GNAdvisorError(
                    f"n_samples must be at most the {total} samples of {name}, got {n_samples}; "
                    f"lower it or drop it to use all samples"
                )
            idx = _rng(seed, 0).permutation(total)[:n_samples]
            X = X[idx]
            raw_y = None if raw_y is None else (raw_y[0], raw_y[1][idx])
            notes.append(f"subsampled {n_samples} of {total} samples (seeded permutation, seed {seed})")
        X, shape = _fit_shape(X, shape, image, name, notes)

    flat = X.reshape(X.shape[0], -1)
    if standardize:
        flat = _standardize(flat, notes)
    if whiten:
        flat = _whiten(flat, name, notes)
    X = flat.reshape(X.shape[0], *shape)

    if targets_file is not None:
        targets = "labels"
    Y, n_classes = _make_targets(targets, kind, raw_y, n_classes_raw, output_dim, X.shape[0],
                                 seed, name, notes)
    return Dataset(
        X=torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64)),
        Y=None if Y is None else torch.from_numpy(np.ascontiguousarray(Y, dtype=np.float64)),
        name=name,
        input_shape=tuple(int(s) for s in shape),
        n_classes=n_classes,
        notes=tuple(notes),
    )


def data_covariance_condition(X: Any, *, return_rank: bool = False) -> float | tuple[float, int]:
    """Pseudo-condition number of the data covariance ``Sigma = X^T X / n``.

    ``X`` is flattened to ``(n, d)``; ``Sigma`` is uncentred, as in the paper. Its eigenvalues
    are ``s_i^2 / n`` from the singular values of ``X`` (more accurate than forming ``Sigma``).
    Rank rule (scale-free, gn-theory §1): ``lambda_i > lambda_max * d * eps`` with ``eps`` the
    float64 machine epsilon. ``kappa = lambda_max / lambda_r`` over those ``r`` eigenvalues.

    Parameters
    ----------
    X : torch.Tensor or numpy.ndarray
        Inputs of shape ``(n, ...)``.
    return_rank : bool, default False
        Also return the numerical rank ``r``.

    Returns
    -------
    float or (float, int)
        ``kappa(Sigma)``, and ``r`` if ``return_rank``.

    Raises
    ------
    GNAdvisorError
        If ``X`` is not numeric with at least one sample and one feature, has non-finite values,
        or is all zero.

    References
    ----------
    Zhao, Singh & Lucchi (2024): the pseudo-condition number, and the kappa(Sigma) factor of
    Lemmas 1-2 (gn-theory §1, §4).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])  # third feature is always zero
    >>> data_covariance_condition(X, return_rank=True)
    (4.0, 2)
    """
    A = _as_numeric_array(X, "X")
    if A.ndim < 2 or A.shape[0] == 0 or math.prod(A.shape[1:]) == 0:
        raise GNAdvisorError(f"X must have shape (n_samples, ...) with n_samples >= 1, got {A.shape}")
    A = A.reshape(A.shape[0], -1)
    if not np.all(np.isfinite(A)):
        raise GNAdvisorError("X must contain only finite values, got NaN or inf; clean the data first")
    n, d = A.shape
    lam = np.linalg.svd(A, compute_uv=False) ** 2 / n
    if lam.size == 0 or lam[0] == 0.0:
        raise GNAdvisorError("X must have a non-zero entry, got all zeros; kappa(Sigma) is undefined")
    keep = lam[lam > lam[0] * d * np.finfo(np.float64).eps]
    kappa = float(keep[0] / keep[-1])
    return (kappa, int(keep.size)) if return_rank else kappa


# --------------------------------------------------------------------------------------------
# private helpers


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def _fmt(shape: tuple[int, ...]) -> str:
    return str(tuple(int(s) for s in shape))


def _describe(value: Any) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"{type(value).__name__} of dtype {value.dtype} and shape {tuple(value.shape)}"
    return repr(value)


def _resolve_shape(input_shape: Any, input_dim: Any) -> tuple[int, ...] | None:
    shape = None
    if input_shape is not None:
        try:
            shape = tuple(int(s) for s in input_shape)
            ok = len(shape) >= 1 and all(s > 0 for s in shape) and all(
                float(s) == int(s) for s in input_shape)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise GNAdvisorError(
                f"input_shape must be a non-empty tuple of positive integers, got {input_shape!r}; "
                f"e.g. (64,) or (1, 8, 8)"
            )
    if input_dim is not None:
        input_dim = check_positive_int("input_dim", input_dim)
        if shape is not None and math.prod(shape) != input_dim:
            raise GNAdvisorError(
                f"input_dim must equal prod(input_shape) = {math.prod(shape)}, got {input_dim}; "
                f"pass only one of them"
            )
        shape = shape if shape is not None else (input_dim,)
    return shape


def _source_kind(source: Any) -> str:
    if isinstance(source, str) and source in ("digits", "synthetic"):
        return source
    if not isinstance(source, (str, Path)):
        raise GNAdvisorError(
            f"source must be 'digits', 'synthetic' or a file path, got {source!r}"
        )
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise GNAdvisorError(
            f"source must be 'digits', 'synthetic' or a path ending in {', '.join(_SUFFIXES)}; "
            f"got {str(source)!r}"
        )
    if not path.is_file():
        raise GNAdvisorError(
            f"source file {str(path)!r} does not exist; check the path or use 'digits' or 'synthetic'"
        )
    return suffix


def _load_digits() -> tuple[np.ndarray, tuple[str, np.ndarray], str]:
    from sklearn.datasets import load_digits

    d = load_digits()
    X = np.asarray(d.data, dtype=np.float64) / 16.0
    return X, ("labels", np.asarray(d.target, dtype=np.int64)), "digits"


def _unreadable(path: Path, kind: str, exc: BaseException, hint: str) -> GNAdvisorError:
    msg = " ".join(str(exc).split())[:160]
    return GNAdvisorError(
        f"source file {str(path)!r} could not be read as {kind} ({type(exc).__name__}: {msg}); {hint}"
    )


def _load_file(path: Path, kind: str) -> tuple[np.ndarray, tuple[str, np.ndarray] | None, str]:
    name = path.name
    Y: Any = None
    if kind == ".npy":
        try:
            X = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - any failure means the file is unreadable
            raise _unreadable(path, ".npy", exc, "save the inputs with numpy.save") from None
    elif kind == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if "X" not in keys:
                    raise GNAdvisorError(
                        f"source file {str(path)!r} must hold an array named 'X', found keys {keys}; "
                        f"save it with numpy.savez(path, X=inputs, Y=targets)"
                    )
                X = z["X"]
                Y = z["Y"] if "Y" in keys else (z["y"] if "y" in keys else None)
        except GNAdvisorError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _unreadable(path, ".npz", exc, "save it with numpy.savez(path, X=..., Y=...)") from None
    elif kind == ".pt":
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise _unreadable(path, ".pt", exc,
                              "save a tensor or a dict of tensors {'X': ..., 'Y': ...} with torch.save") from None
        if isinstance(obj, torch.Tensor):
            X = obj
        elif isinstance(obj, dict) and "X" in obj:
            X = obj["X"]
            Y = obj.get("Y", obj.get("y"))
        else:
            found = f"a dict with keys {list(obj)}" if isinstance(obj, dict) else type(obj).__name__
            raise GNAdvisorError(
                f"source file {str(path)!r} must hold a tensor or a dict with key 'X', found {found}; "
                f"save it with torch.save({{'X': inputs, 'Y': targets}}, path)"
            )
    else:
        X, Y = _load_csv(path)

    X = _as_numeric_array(X, f"X in {name}")
    if X.ndim < 2 or X.shape[0] == 0:
        raise GNAdvisorError(
            f"X in {name} must have shape (n_samples, ...) with n_samples >= 1, got {X.shape}; "
            f"reshape a single feature to (n, 1)"
        )
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise GNAdvisorError(f"X in {name} must contain only finite values, got NaN or inf; clean the file")
    raw_y = None if Y is None else _parse_targets(Y, X.shape[0], name)
    return X, raw_y, name


def _load_targets_file(source: str | Path, n: int, data_name: str, notes: list[str]) -> tuple[str, np.ndarray]:
    """Targets from their own file: ("labels" | "values", array with ``n`` rows)."""
    if not isinstance(source, (str, Path)):
        raise GNAdvisorError(f"targets_file must be a file path, got {source!r}")
    path = Path(source)
    kind = path.suffix.lower()
    if kind not in _SUFFIXES:
        raise GNAdvisorError(f"targets file {str(path)!r} must end in {', '.join(_SUFFIXES)}")
    if not path.is_file():
        raise GNAdvisorError(f"targets file {str(path)!r} does not exist; check the path")
    hint = f"save the targets as one row per sample of {data_name}"
    try:
        if kind == ".npy":
            Y = np.load(path, allow_pickle=False)
        elif kind == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = "Y" if "Y" in keys else ("y" if "y" in keys else (keys[0] if len(keys) == 1 else None))
                if key is None:
                    raise GNAdvisorError(
                        f"targets file {str(path)!r} must hold an array named 'Y' (or a single array), found keys "
                        f"{keys}; save it with numpy.savez(path, Y=targets)"
                    )
                Y = z[key]
        elif kind == ".pt":
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict) and ("Y" in obj or "y" in obj):
                obj = obj["Y"] if "Y" in obj else obj["y"]
            if not isinstance(obj, torch.Tensor):
                found = f"a dict with keys {list(obj)}" if isinstance(obj, dict) else type(obj).__name__
                raise GNAdvisorError(
                    f"targets file {str(path)!r} must hold a tensor or a dict with key 'Y', found {found}; "
                    f"save it with torch.save(targets, path)"
                )
            Y = obj
        else:
            Y = _load_target_csv(path)
    except GNAdvisorError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure means the file is unreadable
        msg = " ".join(str(exc).split())[:160]
        raise GNAdvisorError(
            f"targets file {str(path)!r} could not be read as {kind} ({type(exc).__name__}: {msg}); {hint}"
        ) from None
    A = _as_numeric_array(Y, f"targets in {path.name}")
    if A.ndim == 0 or A.ndim > 2:
        raise GNAdvisorError(
            f"targets file {str(path)!r} must hold a 1-D or 2-D array (one row per sample), got shape {A.shape}"
        )
    if A.shape[0] != n:
        raise GNAdvisorError(
            f"targets file {str(path)!r} must have one row per sample of {data_name} ({n} rows, in its order, "
            f"before subsampling), got {A.shape[0]} rows"
        )
    raw = _parse_targets(A, n, path.name)
    what = "integer labels (one-hot encoded)" if raw[0] == "labels" else f"{raw[1].shape[1]} column(s)"
    notes.append(f"targets: {path.name}, {what}")
    return raw


def _load_target_csv(path: Path) -> np.ndarray:
    import pandas as pd

    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    fields = [f.strip() for f in first.strip().split(",")]
    has_header = not all(_is_number(f) for f in fields)
    df = pd.read_csv(path, header=0 if has_header else None, skipinitialspace=True)
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise GNAdvisorError(f"targets file {str(path)!r} must have at least one data row and column, got none")
    bad = [str(c) for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise GNAdvisorError(
            f"targets file {str(path)!r} must be numeric, column(s) {bad[:5]} are not; a header row is allowed"
        )
    A = df.to_numpy()
    if A.shape[1] == 1 and A.dtype.kind == "f":
        y = A[:, 0]
        if np.all(np.isfinite(y)) and np.all(y == np.round(y)) and np.all(y >= 0):
            return y.astype(np.int64)
    return A


def _load_csv(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    import pandas as pd

    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
        fields = [f.strip() for f in first.strip().split(",")]
        has_header = not all(_is_number(f) for f in fields)
        df = pd.read_csv(path, header=0 if has_header else None, skipinitialspace=True)
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(path, ".csv", exc, "write a numeric, comma-separated table") from None
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise GNAdvisorError(f"source file {str(path)!r} must have at least one data row and column, got none")
    label_cols = [c for c in df.columns if str(c).strip().lower() in _LABEL_COLUMNS] if has_header else []
    if len(label_cols) > 1:
        raise GNAdvisorError(
            f"source file {str(path)!r} must have at most one target column, found {label_cols}; rename the others"
        )
    bad = [str(c) for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise GNAdvisorError(
            f"source file {str(path)!r} must be numeric, column(s) {bad[:5]} are not; "
            f"remove text columns (a header row is allowed)"
        )
    Y = None
    if label_cols:
        y = df[label_cols[0]].to_numpy(dtype=np.float64)
        df = df.drop(columns=label_cols)
        if df.shape[1] == 0:
            raise GNAdvisorError(f"source file {str(path)!r} must have feature columns besides the target")
        whole = np.all(np.isfinite(y)) and np.all(y == np.round(y)) and np.all(y >= 0)
        Y = y.astype(np.int64) if whole else y
    return df.to_numpy(dtype=np.float64), Y


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_numeric_array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.is_complex():
            raise GNAdvisorError(f"{what} must be real-valued, got dtype {value.dtype}")
        value = value.numpy() if value.dtype != torch.bfloat16 else value.double().numpy()
    A = np.asarray(value)
    if A.dtype.kind not in "biuf":
        raise GNAdvisorError(f"{what} must be numeric (int, float or bool), got dtype {A.dtype}")
    return A


def _parse_targets(Y: Any, n: int, name: str) -> tuple[str, np.ndarray]:
    A = _as_numeric_array(Y, f"Y in {name}")
    if A.shape[:1] != (n,) or A.ndim > 2:
        raise GNAdvisorError(
            f"Y in {name} must have {n} rows (one per sample) and at most 2 dimensions, got shape {A.shape}"
        )
    if A.dtype.kind in "biu" and (A.ndim == 1 or A.shape[1] == 1):
        labels = A.reshape(n).astype(np.int64)
        if labels.min() < 0:
            raise GNAdvisorError(f"integer labels in {name} must be >= 0, got {labels.min()}")
        return "labels", labels
    values = A.reshape(n, -1).astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise GNAdvisorError(f"Y in {name} must contain only finite values, got NaN or inf; clean the file")
    return "values", values


def _n_label_classes(raw_y: tuple[str, np.ndarray] | None) -> int | None:
    if raw_y is None or raw_y[0] != "labels":
        return None
    return int(raw_y[1].max()) + 1


def _image_shape(X: np.ndarray, kind: str) -> tuple[int, int, int] | None:
    """(C, H, W) of the source images, if the source is image-shaped."""
    if kind == "digits":
        return (1, 8, 8)
    if X.ndim == 3:
        return (1, X.shape[1], X.shape[2])
    if X.ndim == 4:
        return tuple(int(s) for s in X.shape[1:])  # type: ignore[return-value]
    return None


def _fit_shape(X: np.ndarray, shape: tuple[int, ...] | None, image: tuple[int, int, int] | None,
               name: str, notes: list[str]) -> tuple[np.ndarray, tuple[int, ...]]:
    native = tuple(X.shape[1:])
    d = math.prod(native)
    if shape is None:
        return X, native
    if math.prod(shape) == d:
        if shape != native:
            notes.append(f"reshaped samples from {_fmt(native)} to {_fmt(shape)}")
        return X.reshape(X.shape[0], *shape), shape
    if image is None or len(shape) not in (2, 3):
        hint = f" or an image shape (C, H, W) to resize" if image is not None else ""
        raise GNAdvisorError(
            f"input_shape must have {d} entries to fit {name} (samples of shape {_fmt(native)}), "
            f"got {shape} with {math.prod(shape)}; use an input_shape with {d} entries{hint}"
        )
    c_in, h_in, w_in = image
    c_out, (h, w) = (shape[0], shape[1:]) if len(shape) == 3 else (1, shape)
    if not (c_out == c_in or c_in == 1 or c_out == 1):
        raise GNAdvisorError(
            f"input_shape must have 1 or {c_in} channels (or the source 1 channel) to resize {name} "
            f"images of shape {_fmt(image)}, got {shape}; use ({c_in}, H, W)"
        )
    t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64)).reshape(X.shape[0], c_in, h_in, w_in)
    shrink = h < h_in or w < w_in
    t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
    how = f"bilinear{' (anti-aliased)' if shrink else ''} resize {h_in}x{w_in} -> {h}x{w}"
    if c_out != c_in:
        if c_in == 1:
            t = t.repeat(1, c_out, 1, 1)
            how += f", grey channel repeated {c_out} times"
        else:
            t = t.mean(dim=1, keepdim=True)
            how += f", {c_in} channels averaged to grey"
    notes.append(how)
    return t.reshape(X.shape[0], *shape).numpy(), shape


def _standardize(flat: np.ndarray, notes: list[str]) -> np.ndarray:
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    const = std == 0
    out = (flat - mean) / np.where(const, 1.0, std)
    extra = f"; {int(const.sum())} constant feature(s) set to 0" if const.any() else ""
    notes.append(f"standardized: per-feature zero mean, unit (population) variance{extra}")
    return out


def _whiten(flat: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
    n, d = flat.shape
    U, s, Vt = np.linalg.svd(flat, full_matrices=False)
    if s.size == 0 or s[0] == 0.0:
        raise GNAdvisorError(f"whiten needs data with a non-zero entry, {name} is all zeros; drop whiten")
    r = int(np.sum(s**2 > s[0] ** 2 * d * np.finfo(np.float64).eps))
    out = U[:, :r] @ Vt[:r]
    sigma = "I/n" if r == d else f"P/n (P the rank-{r} projector onto the data's span)"
    notes.append(f"whitened (X <- U V^T, uncentred): rank {r} of {d}, Sigma = X^T X / n = {sigma}, "
                 f"kappa(Sigma) = 1 over its non-zero spectrum")
    return out


def _make_targets(targets: str | None, kind: str, raw_y: tuple[str, np.ndarray] | None,
                  n_classes_raw: int | None, output_dim: int | None, n: int, seed: int, name: str,
                  notes: list[str]) -> tuple[np.ndarray | None, int | None]:
    if targets is None:
        targets = "onehot" if kind == "synthetic" else ("labels" if raw_y is not None else "none")
    if targets == "none":
        return None, None
    if targets == "labels":
        assert raw_y is not None
        what, values = raw_y
        if what == "labels":
            assert n_classes_raw is not None
            k = n_classes_raw if output_dim is None else output_dim
            if k < n_classes_raw:
                raise GNAdvisorError(
                    f"output_dim must be at least the {n_classes_raw} classes of {name}, got {output_dim}; "
                    f"drop it, or use targets='onehot' for random labels with output_dim classes"
                )
            return np.eye(k)[values], k
        if output_dim is not None and output_dim != values.shape[1]:
            raise GNAdvisorError(
                f"output_dim must equal the {values.shape[1]} target columns of {name}, got {output_dim}; drop it"
            )
        return values, None
    k = _DEFAULT_K if output_dim is None else output_dim
    rng = _rng(seed, 1)
    if targets == "onehot":
        notes.append(f"targets: one-hot of uniformly random classes (k = {k}, seed {seed})")
        return np.eye(k)[rng.integers(0, k, size=n)], k
    notes.append(f"targets: i.i.d. N(0, 1), k = {k} (seed {seed})")
    return rng.standard_normal((n, k)), None
