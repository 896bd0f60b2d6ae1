"""Does pruning at initialisation worsen GN conditioning and slow training? (paper Fig. 1, 13-17)

Setup: a 3-hidden-layer ReLU MLP (64 -> 64 -> 64 -> 64 -> 10, no biases, Kaiming-normal init,
``gnadvisor.search.ArchSpec(depth=3, width=64)``) on the bundled scikit-learn digits (n samples,
pixels / 16, one-hot targets); every pruning scheme of ``gnadvisor.pruning.SCHEMES`` at sparsities
0, 0.1, ..., 0.9; for each seed the model is re-initialised and random masks re-drawn. kappa is
the pseudo-condition number of the Gauss-Newton matrix on the kept coordinates (the GN that
governs training of the pruned net) and, with ``--coordinates both``, on all coordinates (the
paper's convention). Each pruned model is trained with minibatch SGD (batches of 64, masks
fixed) on (1/(2n)) sum ||f - y||^2 with lr = 1 / lambda_max of the seed's dense GN, the same lr
for every scheme and sparsity.

A second, smaller run is a control for the fixed lr: pruning also shrinks lambda_max, so with
one lr for all cells a pruned net takes relatively smaller steps. Re-training the magnitude cells
with lr = 1 / lambda_max of each cell's own kept GN (``lr="auto-cell"``: on the quadratic model
the slowest direction then contracts by 1 - 1/kappa per step) shows whether the slowdown
survives when only kappa differs.

What you should see: the markdown table of the README, then a short, data-driven statement of
whether kappa rises with magnitude-pruning sparsity and whether training slows.

Run:  python examples/prune_digits.py            (the README table)
      python examples/prune_digits.py --quick    (a few seconds, for the test-suite)
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from scipy import stats


def _f(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}" if 1e-2 <= abs(x) < 1e4 or x == 0 else f"{x:.2e}"


def markdown_table(res) -> str:
    """One line per (scheme, sparsity): kappa (kept, and all if computed), lambdas, loss."""
    both = "all" in res.coordinates
    steps = res.train_steps
    head = ["scheme", "sparsity", "kappa (kept) mean ± std", "lambda_max", "lambda_min≠0"]
    if both:
        head.append("kappa (all) mean ± std")
    if steps:
        head.append(f"loss after {steps} steps ± std")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for r in (r for r in res.rows if r.coordinates == "kept"):
        cells = [r.scheme, f"{r.sparsity:g}", f"{_f(r.condition_number)} ± {_f(r.condition_number_std)}",
                 _f(r.lambda_max), _f(r.lambda_min)]
        if both:
            a = res.row(r.scheme, r.sparsity, "all")
            cells.append(f"{_f(a.condition_number)} ± {_f(a.condition_number_std)}")
        if steps:
            cells.append(f"{r.final_loss:.3f} ± {r.final_loss_std:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def control_table(res) -> str:
    """Magnitude cells trained with lr = 1/lambda_max of each cell."""
    lines = ["| sparsity | kappa (kept) | lr = 1/lambda_max | loss after "
             f"{res.train_steps} steps ± std |", "|---|---:|---:|---:|"]
    for r in res.rows:
        lines.append(f"| {r.sparsity:g} | {_f(r.condition_number)} | {_f(r.lr)} | "
                     f"{r.final_loss:.3f} ± {r.final_loss_std:.3f} |")
    return "\n".join(lines)


def finding(res, control=None) -> str:
    """Whether kappa rises with magnitude sparsity and training slows, computed from the rows."""
    out = []
    for c in res.coordinates:
        rows = [res.row("dense", 0.0, c)] + [r for r in res.rows if r.scheme == "magnitude" and r.coordinates == c]
        s = [r.sparsity for r in rows]
        k = [r.condition_number for r in rows]
        rho = stats.spearmanr(s, k).statistic
        mono = all(b >= a for a, b in zip(k, k[1:]))
        out.append(f"- kappa ({c} coordinates) vs magnitude sparsity: Spearman {rho:+.2f}, "
                   f"{'monotone' if mono else 'not monotone'}; {_f(k[0])} dense -> {_f(k[-1])} at s = {s[-1]:g} "
                   f"(x{k[-1] / k[0]:.3g}).")
    if res.train_steps:
        rows = [res.row("dense", 0.0)] + [r for r in res.rows if r.scheme == "magnitude" and r.coordinates == "kept"]
        loss = [r.final_loss for r in rows]
        rho = stats.spearmanr([r.sparsity for r in rows], loss).statistic
        out.append(f"- loss after {res.train_steps} steps vs magnitude sparsity: Spearman {rho:+.2f}; "
                   f"{loss[0]:.3f} dense -> {loss[-1]:.3f} at s = {rows[-1].sparsity:g}.")
        for c, rc in res.rank_correlation.items():
            out.append(f"- all {rc.n_cells} cells (every scheme and sparsity), kappa ({c}) vs loss: Spearman "
                       f"{rc.spearman:+.2f} (p = {rc.spearman_pvalue:.2g}), Kendall {rc.kendall:+.2f}.")
    if control is not None:
        loss = [r.final_loss for r in control.rows]
        rho = stats.spearmanr([r.sparsity for r in control.rows], loss).statistic
        rc = control.rank_correlation["kept"]
        out.append(f"- control, magnitude cells with lr = 1/lambda_max per cell: loss vs sparsity Spearman {rho:+.2f} "
                   f"({loss[0]:.3f} dense -> {loss[-1]:.3f} at s = {control.rows[-1].sparsity:g}); kappa vs loss "
                   f"Spearman {rc.spearman:+.2f}.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--coordinates", choices=["kept", "all", "both"], default="both")
    p.add_argument("--sparsities", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    p.add_argument("--schemes", default=None, help="comma-separated (default: all)")
    p.add_argument("--quick", action="store_true", help="tiny run for the test-suite")
    args = p.parse_args(argv)
    if args.quick:
        args.width, args.samples, args.seeds, args.steps = 8, 16, 2, 5
        args.sparsities, args.schemes = "0,0.5,0.8", "magnitude,random"

    import gnadvisor as gna
    from gnadvisor.pruning import compare_pruning
    from gnadvisor.search import ArchSpec

    spec = ArchSpec(family="mlp", depth=3, width=args.width, activation="relu", input_dim=64, output_dim=10)
    ds = gna.load_data("digits", n_samples=args.samples, seed=0)
    t0 = time.perf_counter()
    res = compare_pruning(
        spec, ds.X, ds.Y, schemes=args.schemes.split(",") if args.schemes else None,
        sparsities=[float(s) for s in args.sparsities.split(",")], seeds=args.seeds,
        coordinates=args.coordinates, train_steps=args.steps, optimizer="sgd", lr="auto",
        progress=lambda done, total, what: print(f"\r{done}/{total} {what:<32}", end="", file=sys.stderr),
    )
    control = compare_pruning(
        spec, ds.X, ds.Y, schemes=["magnitude"], sparsities=[float(s) for s in args.sparsities.split(",")],
        seeds=args.seeds, coordinates="kept", train_steps=args.steps, optimizer="sgd", lr="auto-cell",
        progress=lambda done, total, what: print(f"\rcontrol {done}/{total} {what:<32}", end="", file=sys.stderr),
    )
    elapsed = time.perf_counter() - t0
    print(file=sys.stderr)
    print(f"{spec.describe()}, digits n = {ds.n_samples}, seeds {list(res.seeds)}, {args.steps} SGD steps "
          f"(batch 64), lr = 1/lambda_max(dense GN) per seed = {', '.join(f'{v:.4g}' for v in res.lrs)}\n")
    print(markdown_table(res))
    print("\nControl: magnitude pruning trained with lr = 1/lambda_max of each cell's kept GN:\n")
    print(control_table(control))
    print()
    print(finding(res, control))
    print(f"\n(both compare_pruning calls took {elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
