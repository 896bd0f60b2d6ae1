"""Input checks and their one-line messages, in one place.

Every public entry point validates its inputs here once; internals trust them.
Each message says which parameter, what must hold, what came in, and how to fix it.
"""

from __future__ import annotations

from typing import Any, Iterable


class GNAdvisorError(ValueError):
    """A user-facing error: one line, actionable. The CLI prints it without a traceback."""


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise :class:`GNAdvisorError`."""
    allowed = list(allowed)
    if value not in allowed:
        raise GNAdvisorError(
            f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}"
        )
    return value


def check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """Return ``value`` as int if it is a positive (or non-negative) integer."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok:
        ok = value >= 0 if allow_zero else value > 0
    if not ok:
        what = "a non-negative" if allow_zero else "a positive"
        raise GNAdvisorError(f"{name} must be {what} integer, got {value!r}")
    return int(value)


def check_fraction(name: str, value: Any, *, low: float = 0.0, high: float = 1.0,
                   high_inclusive: bool = False) -> float:
    """Return ``value`` as float if low <= value < high (or <= high)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GNAdvisorError(f"{name} must be a number in [{low}, {high}], got {value!r}") from None
    ok = low <= v <= high if high_inclusive else low <= v < high
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise GNAdvisorError(f"{name} must lie in [{low}, {high}{bracket}, got {value!r}")
    return v


def check_positive_float(name: str, value: Any) -> float:
    """Return ``value`` as float if it is a finite number > 0, else raise :class:`GNAdvisorError`."""
    ok = not isinstance(value, (bool, str))
    if ok:
        try:
            v = float(value)
        except (TypeError, ValueError):
            ok = False
        else:
            ok = v > 0 and v != float("inf")
    if not ok:
        raise GNAdvisorError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Return ``value`` as float if it is a finite real number within the given bounds.

    Like :func:`check_real` with open or closed ends: ``low``/``high`` of None mean unbounded
    on that side, ``*_inclusive=False`` excludes the end. Booleans and strings are rejected.
    """
    import math
    import numbers

    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    ok = ok and math.isfinite(v)
    if ok and low is not None:
        ok = v >= low if low_inclusive else v > low
    if ok and high is not None:
        ok = v <= high if high_inclusive else v < high
    if not ok:
        if low is not None and high is not None:
            where = (f"in {'[' if low_inclusive else '('}{low:g}, {high:g}"
                     f"{']' if high_inclusive else ')'}")
        elif low is not None:
            where = f"{'>=' if low_inclusive else '>'} {low:g}"
        elif high is not None:
            where = f"{'<=' if high_inclusive else '<'} {high:g}"
        else:
            where = "finite"
        raise GNAdvisorError(f"{name} must be a number {where}, got {value!r}")
    return v


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (``true``/``false`` in YAML and JSON), else raise."""
    if not isinstance(value, bool):
        raise GNAdvisorError(f"{name} must be true or false, got {value!r}")
    return value


def check_known_keys(name: str, keys: Iterable[Any], allowed: Iterable[str]) -> None:
    """Raise :class:`GNAdvisorError` naming any key of ``keys`` not in ``allowed``, and the allowed keys."""
    allowed = list(allowed)
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise GNAdvisorError(
            f"unknown key{plural} {', '.join(map(repr, unknown))} in {name}; "
            f"allowed keys: {', '.join(allowed)}"
        )


def check_real(name: str, value: Any, *, low: float | None = None,
               high: float | None = None) -> float:
    """Return ``value`` as a finite float, optionally with ``low <= value <= high``."""
    ok = not isinstance(value, bool)
    try:
        v = float(value)
    except (TypeError, ValueError):
        ok = False
    if ok:
        ok = v == v and v not in (float("inf"), float("-inf"))
    if ok and low is not None:
        ok = v >= low
    if ok and high is not None:
        ok = v <= high
    if not ok:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise GNAdvisorError(f"{name} must be a finite number in [{lo}, {hi}], got {value!r}")
    return v


def check_matrix(name: str, value: Any, *, ndim: int = 2) -> "np.ndarray":
    """Return ``value`` (numpy array or torch tensor) as a finite float64 numpy array.

    It must have exactly ``ndim`` dimensions, none of them empty.
    """
    import numpy as np

    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise GNAdvisorError(
            f"{name} must be a numeric array or tensor, got {type(value).__name__}") from None
    if arr.ndim != ndim or arr.size == 0:
        raise GNAdvisorError(
            f"{name} must be a non-empty {ndim}-D array, got shape {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise GNAdvisorError(f"{name} must contain only finite values, got NaN or inf")
    return arr
