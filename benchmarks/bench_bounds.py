"""How much cheaper are the closed-form bounds than the exact Gauss-Newton kappa?

Question
    The architecture search scores most trials by the closed-form bounds of
    ``gnadvisor.bounds`` and only a few by an exact spectrum. Are the bounds cheap enough?
    Targets (issue 4): Lemma 2 for depth 20, width 512, d = 64, k = 10 in under 50 ms; and for
    d = 1024, width 1024, depth 10, k = 10 (k*d = 10240) at least 10x cheaper than the exact
    Kronecker-route kappa.

Setup
    Deep linear nets (bias-free ``nn.Linear``, float64, Kaiming-normal weights, seed 0) on
    Gaussian inputs with an anisotropic covariance (n >= d, so Sigma has full rank). The peer
    is ``gnadvisor.gn_spectrum(net, X, method="kronecker")`` in the same process on the same
    inputs: the full spectrum where k*d is small, the kappa-only mode (``full=False``: Lanczos
    for lambda_max, Cholesky + inverse Lanczos for lambda_min) at k*d = 10240 unless
    ``--exact-full``. A bound's time counts only if it agrees with the peer, i.e.
    ``bound >= exact kappa``; otherwise the script exits with status 1. Warm-up, then the median
    (and min) of ``--repeats`` runs; the large exact spectrum runs once (``--exact-repeats``).

What you should see
    Lemma 2 in a few tens of milliseconds for the first case (dominated by 20 products
    512x512 @ 512x64), and one to two orders of magnitude below the exact kappa for the
    second. Lemma 2 <= its max form <= ... and the layer-wise bound far above both when deep.
    With several busy processes on few cores, multi-threaded BLAS can slow small products down
    badly; ``--blas-threads 1`` (needs threadpoolctl) pins it and is reported in the header.

Usage
    python benchmarks/bench_bounds.py            # full run (about a minute on 2 cores)
    python benchmarks/bench_bounds.py --quick    # small sizes, a few seconds
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gnadvisor as gna  # noqa: E402
from gnadvisor.bounds import layerwise, lemma2, lemma2_max  # noqa: E402


@dataclass(frozen=True)
class Case:
    label: str
    d: int
    width: int
    depth: int
    k: int
    n: int
    exact_full: bool


FULL_CASES = [
    Case("A", d=64, width=512, depth=20, k=10, n=1000, exact_full=True),
    Case("B", d=1024, width=1024, depth=10, k=10, n=2048, exact_full=False),
]
QUICK_CASES = [
    Case("A-quick", d=16, width=128, depth=6, k=4, n=200, exact_full=True),
    Case("B-quick", d=64, width=64, depth=4, k=10, n=128, exact_full=False),
]


def make_problem(case: Case, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, nn.Module]:
    rng = np.random.default_rng(seed)
    dims = [case.d] + [case.width] * case.depth + [case.k]
    Ws = [rng.standard_normal((o, i)) / np.sqrt(i) for i, o in zip(dims[:-1], dims[1:])]
    X = rng.standard_normal((case.n, case.d)) * rng.uniform(0.5, 2.0, size=case.d)
    net = nn.Sequential(*[nn.Linear(W.shape[1], W.shape[0], bias=False) for W in Ws]).double()
    with torch.no_grad():
        for layer, W in zip(net, Ws):
            layer.weight.copy_(torch.from_numpy(W))
    return Ws, X, net


def timed(fn: Callable[[], Any], repeats: int, warmup: int) -> tuple[Any, list[float]]:
    for _ in range(warmup):
        fn()
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    info = [f"{i['internal_api']}={i['num_threads']}" for i in threadpool_info()
            if i.get("user_api") == "blas"]
    return ", ".join(sorted(set(info))) or "unknown"


def run(cases: list[Case], repeats: int, exact_repeats: int, exact_full: bool | None) -> int:
    rows, ok = [], True
    targets = []
    for case in cases:
        Ws, X, net = make_problem(case)
        Xt = torch.from_numpy(X)
        full = case.exact_full if exact_full is None else exact_full
        big = not case.exact_full  # the expensive exact case runs --exact-repeats times, cold
        spec, t_exact = timed(lambda: gna.gn_spectrum(net, Xt, method="kronecker", full=full),
                              repeats=exact_repeats if big else max(exact_repeats, 3),
                              warmup=0 if big else 1)
        kappa = float(spec.condition_number)
        exact_med = statistics.median(t_exact)
        rows.append((case, f"exact kappa (gn_spectrum kronecker, full={full})",
                     t_exact, kappa, None))
        for name, fn in (("lemma2", lemma2), ("lemma2_max", lemma2_max), ("layerwise", layerwise)):
            b, t = timed(lambda fn=fn: fn(Ws, X), repeats=repeats, warmup=1)
            agree = b.value is None or b.value >= kappa * (1 - 1e-9)
            ok &= agree
            rows.append((case, name if agree else f"{name} DISAGREES", t, b.value,
                         exact_med / statistics.median(t)))
            if name == "lemma2":
                targets.append((case, statistics.median(t), exact_med / statistics.median(t)))

    print("## gnadvisor.bounds vs exact Gauss-Newton kappa\n")
    print(f"- device: CPU, {cpu_name()}, {os.cpu_count()} logical cores; BLAS threads: "
          f"{blas_threads()}; torch threads: {torch.get_num_threads()}")
    print(f"- dtype: float64; python {platform.python_version()}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}, torch {torch.__version__}, gnadvisor {gna.__version__}")
    print(f"- timings: median (min) of {repeats} runs after 1 warm-up; the kappa-only exact "
          f"kappa {exact_repeats} run(s), no warm-up\n")
    print("| case | d | width | depth | k | k*d | method | median ms | min ms | value | "
          "value / kappa | speed-up vs exact |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for case, method, t, value, speedup in rows:
        exact = next(v for c, m, _, v, _ in rows if c is case and m.startswith("exact"))
        val = "vacuous" if value is None else f"{value:.4g}"
        ratio = "-" if value is None else f"{value / exact:.3g}"
        sp = "-" if speedup is None else f"{speedup:.0f}x"
        print(f"| {case.label} | {case.d} | {case.width} | {case.depth} | {case.k} | "
              f"{case.d * case.k} | {method} | {1e3 * statistics.median(t):.1f} | "
              f"{1e3 * min(t):.1f} | {val} | {ratio} | {sp} |")
    print()
    for case, med, speedup in targets:
        if (case.d, case.width, case.depth, case.k) == (64, 512, 20, 10):
            print(f"- target Lemma 2 < 50 ms (depth 20, width 512, d 64, k 10): "
                  f"{'PASS' if med < 0.05 else 'FAIL'} ({1e3 * med:.1f} ms median)")
        if (case.d, case.width, case.depth, case.k) == (1024, 1024, 10, 10):
            print(f"- target Lemma 2 >= 10x cheaper than exact kappa at k*d = 10240: "
                  f"{'PASS' if speedup >= 10 else 'FAIL'} ({speedup:.0f}x)")
    if not ok:
        print("- some bound is below the exact kappa: its time does not count (see DISAGREES)")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (CI): a few seconds")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per bound (default 15, 5 quick)")
    p.add_argument("--exact-repeats", type=int, default=1,
                   help="timed runs of the large (kappa-only) exact kappa (default 1)")
    p.add_argument("--exact-full", action="store_true",
                   help="full eigendecomposition for the exact kappa in every case")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="limit BLAS and torch threads (BLAS needs threadpoolctl)")
    args = p.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be a positive integer")
    if args.exact_repeats < 1:
        p.error("--exact-repeats must be a positive integer")
    repeats = args.repeats or (5 if args.quick else 15)
    cases = QUICK_CASES if args.quick else FULL_CASES
    exact_full = True if args.exact_full else None
    limiter: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if args.blas_threads is not None:
        if args.blas_threads < 1:
            p.error("--blas-threads must be a positive integer")
        torch.set_num_threads(args.blas_threads)
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            p.error("--blas-threads needs the threadpoolctl package")
        limiter = threadpool_limits(limits=args.blas_threads, user_api="blas")
    with limiter:
        return run(cases, repeats, args.exact_repeats, exact_full)


if __name__ == "__main__":
    sys.exit(main())
