"""Options shared by several commands, defined once."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

import click

seed_option = click.option("--seed", type=int, default=0, show_default=True,
                           help="Random seed (data subsampling, initialisation, search); same seed, same output.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object to stdout instead of tables.")
csv_option = click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True),
                          help="Also write the table as CSV to this file ('-' for stdout).")
device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                             help="Where to compute; auto uses CUDA when available.")
out_option = click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
                          help="Directory for plots (PNG) and result files.")
storage_option = click.option(
    "--storage", default=None, metavar="URL",
    help="Optuna storage shared by runs and workers: a SQLAlchemy URL (sqlite:///study.db, "
         "postgresql+psycopg2://user:pw@host/db, ...) or a journal file (journal:///path/study.log). "
         "Default: in memory.")
input_dim_option = click.option("--input-dim", type=click.IntRange(min=1), default=None,
                                help="Input size d of synthetic data (default 64).")
output_dim_option = click.option("--output-dim", type=click.IntRange(min=1), default=None,
                                 help="Number of outputs k: classes of synthetic data (default 10), or the "
                                      "network's outputs for data without targets.")


def data_options(default_samples: int, file_default: str = "all rows of a file",
                 shape_default: str = "from the model's first layer") -> Callable:
    """--data, --samples, --input-shape, --whiten, --standardize (the defaults' wording per command)."""

    def deco(f: Callable) -> Callable:
        f = click.option("--standardize", is_flag=True, help="Standardise each input feature (zero mean, unit variance).")(f)
        f = click.option("--whiten", is_flag=True,
                         help="Whiten the inputs (X <- U V^T of the thin SVD, so Sigma = I/n on its range, kappa(Sigma) = 1).")(f)
        f = click.option("--input-shape", default=None,
                         help=f"Per-sample input shape, e.g. 64 or 1,8,8 or 3,32,32 (default: {shape_default}).")(f)
        f = click.option("--samples", "n_samples", type=click.IntRange(min=1), default=None,
                         help=f"Number of samples n, subsampled with --seed [default: {default_samples} for digits "
                              f"and synthetic data, {file_default}].")(f)
        f = click.option("--data", "data", default="digits", show_default=True,
                         help="digits (scikit-learn's bundled digits), synthetic (Gaussian), or a .npy/.npz/.pt/.csv file.")(f)
        return f

    return deco


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return _clean(value.item())
        except (ValueError, RuntimeError):
            return str(value)
    return value


def echo_json(obj: Any) -> None:
    """Print a JSON-safe version of ``obj`` (inf -> "inf", nan -> null)."""
    click.echo(json.dumps(_clean(obj), indent=2))


def write_csv(frame, path: str | None) -> None:
    """Write a pandas DataFrame to ``path`` ('-' = stdout)."""
    if not path:
        return
    if path == "-":
        frame.to_csv(sys.stdout, index=False)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)


def fmt(x: Any, digits: int = 4) -> str:
    """Numbers for tables: 4 significant digits, inf/nan spelled out."""
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf"
        return f"{x:.{digits}g}" if 1e-3 <= abs(x) < 1e5 or x == 0 else f"{x:.{digits - 1}e}"
    return str(x)


def table(rows: list[list[Any]], header: list[str], left: tuple[int, ...] = (0,)) -> str:
    """A plain aligned text table; columns in ``left`` are left-aligned, the others right-aligned."""
    cells = [[str(h) for h in header]] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
              for r in cells[1:]]
    return "\n".join(lines)
