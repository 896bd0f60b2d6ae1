"""Reproduce the trends of Zhao, Singh & Lucchi (NeurIPS 2024), Fig. 2 and Fig. 3.

Deep linear networks at Kaiming-normal initialisation (gain 1, bias-free) on whitened
scikit-learn digits (n = 1797, d = 64, k = 10; whitening X <- U V^T from the SVD of the
uncentred X, so Sigma = I / n and kappa(Sigma) = 1; targets are irrelevant for the GN matrix).
For every depth (number of hidden layers) and width:

* the exact kappa(G) from ``gnadvisor.gn_spectrum`` (Kronecker route, k*d = 640),
* the Lemma 2 convex-combination bound and the naive max bound (``gnadvisor.bounds``),

averaged over seeds (geometric mean), for several fixed widths (Fig. 2 / Fig. 3) and for width
proportional to depth (``width = width_per_layer * depth``). A bound that is vacuous for some
seed (the max bound when a width equals d = 64: square products are numerically singular) is
left out of the plot at that point. Writes ``fig2_fig3.csv`` (one row per run) and
``fig2_fig3.png`` (two log-scale panels) into ``--out``, and prints a summary of the trends.

Usage
-----
    python examples/reproduce_fig2_fig3.py --out out/fig23           # full (a few minutes)
    python examples/reproduce_fig2_fig3.py --out out/fig23 --quick   # seconds
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gnadvisor as gna  # noqa: E402
from gnadvisor.bounds import lemma2, lemma2_max  # noqa: E402

FIELDS = ["setting", "width", "depth", "seed", "kappa", "lemma2", "lemma2_max", "lemma2_valid",
          "lemma2_max_valid", "rank", "seconds"]


def whitened_digits() -> np.ndarray:
    """scikit-learn digits (bundled, no download), whitened as in the paper: X <- U V^T."""
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float64)
    U, _, Vt = np.linalg.svd(X, full_matrices=False)
    return U @ Vt


def linear_net(d: int, width: int, depth: int, k: int, seed: int) -> tuple[nn.Module, list[np.ndarray]]:
    """Bias-free linear net, ``depth`` hidden layers, Kaiming-normal (fan_in, gain 1) weights."""
    g = torch.Generator().manual_seed(seed)
    dims = [d] + [width] * depth + [k]
    layers = []
    for i, o in zip(dims[:-1], dims[1:]):
        layer = nn.Linear(i, o, bias=False).double()
        with torch.no_grad():
            layer.weight.copy_(torch.randn(o, i, generator=g, dtype=torch.float64) / math.sqrt(i))
        layers.append(layer)
    net = nn.Sequential(*layers)
    return net, [layer.weight.detach().numpy().copy() for layer in layers]


def run_one(X: np.ndarray, setting: str, width: int, depth: int, seed: int, k: int = 10) -> dict:
    t0 = time.perf_counter()
    net, Ws = linear_net(X.shape[1], width, depth, k, seed)
    spec = gna.gn_spectrum(net, torch.from_numpy(X), method="kronecker")
    b2, bmax = lemma2(Ws, X), lemma2_max(Ws, X)
    return {"setting": setting, "width": width, "depth": depth, "seed": seed,
            "kappa": float(spec.condition_number), "lemma2": b2.value, "lemma2_max": bmax.value,
            "lemma2_valid": b2.valid, "lemma2_max_valid": bmax.valid, "rank": int(spec.rank),
            "seconds": round(time.perf_counter() - t0, 3)}


def geo_mean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


def summarise(rows: list[dict]) -> dict[tuple[str, int, int], dict[str, float]]:
    """Geometric means over seeds, keyed by (setting, width, depth)."""
    groups: dict[tuple[str, int, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["setting"], r["width"], r["depth"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        out[key] = {name: geo_mean([r[name] for r in rs]) if all(r[name] for r in rs) else math.nan
                    for name in ("kappa", "lemma2", "lemma2_max")}
    return out


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    widths = sorted({w for (s, w, _) in summary if s == "fixed width"})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, setting in zip(axes, ("fixed width", "width prop. to depth")):
        groups = widths if setting == "fixed width" else [None]
        for i, w in enumerate(groups):
            keys = sorted(k for k in summary if k[0] == setting and (w is None or k[1] == w))
            depth = [k[2] for k in keys]
            label = f"m={w}" if w is not None else "m ∝ depth"
            c = colors[i % len(colors)]
            ax.plot(depth, [summary[k]["kappa"] for k in keys], "o-", color=c,
                    label=f"kappa(G), {label}")
            ax.plot(depth, [summary[k]["lemma2"] for k in keys], "s--", color=c, alpha=0.8,
                    label=f"Lemma 2, {label}")
            ax.plot(depth, [summary[k]["lemma2_max"] for k in keys], "^:", color=c, alpha=0.6,
                    label=f"max bound, {label}")
        ax.set_yscale("log")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("depth (hidden layers)")
        ax.set_title(f"whitened digits, linear nets, {setting}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if setting == "fixed width" else 1)
    axes[0].set_ylabel("condition number (geometric mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(summary: dict) -> list[str]:
    """The trends of Fig. 2 / Fig. 3, checked on the measured numbers."""
    lines = []
    fixed = sorted({k[1] for k in summary if k[0] == "fixed width"})
    depths = sorted({k[2] for k in summary if k[0] == "fixed width"})
    dmin, dmax = depths[0], depths[-1]

    def val(s, w, dep, name="kappa"):
        return summary[(s, w, dep)][name]

    grow = all(val("fixed width", w, dmax) > val("fixed width", w, dmin) for w in fixed)
    lines.append(f"kappa grows with depth at fixed width: {'yes' if grow else 'NO'} ("
                 + ", ".join(f"m={w}: {val('fixed width', w, dmin):.3g} -> "
                             f"{val('fixed width', w, dmax):.3g}" for w in fixed) + ")")
    wider = all(val("fixed width", a, dep) > val("fixed width", b, dep)
                for dep in depths for a, b in zip(fixed[:-1], fixed[1:]))
    lines.append(f"kappa falls with width at every depth: {'yes' if wider else 'NO'} (depth "
                 f"{dmax}: " + ", ".join(f"{val('fixed width', w, dmax):.3g}" for w in fixed) + ")")
    prop = sorted(k for k in summary if k[0] == "width prop. to depth")
    if prop:
        kp = [summary[k]["kappa"] for k in prop]
        narrow = val("fixed width", fixed[0], dmax)
        lines.append(f"width prop. to depth keeps kappa nearly flat: kappa {kp[0]:.3g} -> "
                     f"{kp[-1]:.3g} (x{kp[-1] / kp[0]:.2f}) from depth {prop[0][2]} to {prop[-1][2]}, "
                     f"vs x{narrow / val('fixed width', fixed[0], dmin):.2f} at m={fixed[0]}")
    ratios = [v["lemma2"] / v["kappa"] for v in summary.values()]
    ratios_max = [v["lemma2_max"] / v["kappa"] for v in summary.values()
                  if not math.isnan(v["lemma2_max"])]
    ok = all(r >= 1 - 1e-9 for r in ratios + ratios_max)
    lines.append(f"both bounds >= kappa everywhere: {'yes' if ok else 'NO'}; Lemma 2 / kappa in "
                 f"[{min(ratios):.2f}, {max(ratios):.2f}], max bound / kappa in "
                 f"[{min(ratios_max):.2f}, {max(ratios_max):.3g}]")
    looser = [v["lemma2_max"] / v["lemma2"] for v in summary.values()
              if not math.isnan(v["lemma2_max"])]
    deepest = [summary[("fixed width", w, dmax)] for w in fixed]
    def times(v: dict) -> str:
        return "vacuous" if math.isnan(v["lemma2_max"]) else f"x{v['lemma2_max'] / v['lemma2']:.3g}"

    n_vacuous = sum(1 for v in summary.values() if math.isnan(v["lemma2_max"]))
    lines.append(f"max bound looser than Lemma 2, more so when deep: ratio max/Lemma 2 in "
                 f"[{min(looser):.2f}, {max(looser):.3g}] (vacuous in {n_vacuous} of "
                 f"{len(summary)} settings); at depth {dmax}: "
                 + ", ".join(f"m={w}: {times(v)}" for w, v in zip(fixed, deepest)))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("out/fig2_fig3"),
                   help="output directory for the CSV and PNG (created if missing)")
    p.add_argument("--quick", action="store_true", help="2 widths, depths 1-4, 1 seed")
    p.add_argument("--seeds", type=int, default=None, help="seeds per setting (default 3, 1 quick)")
    p.add_argument("--max-depth", type=int, default=None, help="deepest net (default 10, 4 quick)")
    p.add_argument("--widths", type=int, nargs="+", default=None,
                   help="fixed widths (default 64 128 256 512; 64 256 quick)")
    p.add_argument("--width-per-layer", type=int, default=64,
                   help="width = width_per_layer * depth in the proportional setting (default 64)")
    args = p.parse_args(argv)
    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    max_depth = args.max_depth if args.max_depth is not None else (4 if args.quick else 10)
    widths = args.widths if args.widths is not None else ([64, 256] if args.quick else [64, 128, 256, 512])
    for name, v in (("--seeds", seeds), ("--max-depth", max_depth),
                    ("--width-per-layer", args.width_per_layer), *(("--widths", w) for w in widths)):
        if v < 1:
            p.error(f"{name} must be a positive integer, got {v}")
    args.out.mkdir(parents=True, exist_ok=True)

    X = whitened_digits()
    rows = []
    for depth in range(1, max_depth + 1):
        for seed in range(seeds):
            for w in widths:
                rows.append(run_one(X, "fixed width", w, depth, seed))
            rows.append(run_one(X, "width prop. to depth", args.width_per_layer * depth, depth, seed))
        print(f"depth {depth} done", file=sys.stderr)

    csv_path = args.out / "fig2_fig3.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(rows)
    png_path = args.out / "fig2_fig3.png"
    plot(summary, png_path)
    print(f"n = {X.shape[0]}, d = {X.shape[1]}, k = 10, whitened (kappa(Sigma) = 1), "
          f"Kaiming-normal init, {seeds} seed(s), geometric means")
    for line in report(summary):
        print("- " + line)
    print(f"wrote {csv_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
