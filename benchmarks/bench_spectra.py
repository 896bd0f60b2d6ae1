"""How much faster is gnadvisor's automatic route than materialising the Jacobian?

Question: wall time, peak memory and kappa of ``gn_spectrum(method="auto")`` against the
plain reference route ``method="jacobian"`` (torch.func Jacobian, then the smaller Gram),
same machine, same run, same inputs (scikit-learn digits, 64 features, 10 outputs):

  (a) MLP 64-256-256-10 ReLU (with biases), n = 500
  (b) MLP 64-512-512-10 ReLU (with biases), n = 1000  (n*k = 10^4, p ~ 3.0e5)

Each measurement runs in a fresh child process so that its peak resident memory (ru_maxrss)
is its own; a warm-up call on 20 samples precedes the timed one (same for every route).
Times are medians over ``--repeats``. kappa must agree between routes before a
time counts. In (b) the jacobian route needs n*k*p*8 bytes for J alone (> 20 GB): it is not
run; its requirement is printed instead.

Usage: python benchmarks/bench_spectra.py [--quick] [--repeats 3] [--device cuda --max-jacobian-gb 60]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import statistics
import time


def _measure(conn, width: int, n: int, method: str, full: bool, threads: int, device: str) -> None:
    import torch
    from sklearn.datasets import load_digits

    import gnadvisor as gna

    torch.set_num_threads(threads)
    X = torch.tensor(load_digits().data[:n], dtype=torch.float64) / 16.0
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU(),
        torch.nn.Linear(width, 10),
    ).double()
    # warm-up on 20 samples outside the timed call (thread pools, BLAS/LAPACK and CUDA
    # initialisation), the same for every route
    gna.gn_spectrum(net, X[:20], method=method, full=full, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    s = gna.gn_spectrum(net, X, method=method, full=full, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    conn.send((dt, peak, s.condition_number, s.method, s.rank, s.n_params))
    conn.close()


def run(width: int, n: int, method: str, full: bool, threads: int, device: str = "cpu") -> tuple:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_measure, args=(child, width, n, method, full, threads, device))
    p.start()
    out = parent.recv()
    p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: times after a warm-up, peak = torch.cuda.max_memory_allocated")
    ap.add_argument("--max-jacobian-gb", type=float, default=8.0,
                    help="skip the jacobian reference when J alone needs more than this")
    args = ap.parse_args()

    import numpy
    import torch

    cases = [("a", 256, 500), ("b", 512, 1000)]
    if args.quick:
        cases = [("a", 32, 60), ("b", 64, 100)]
    rows = []
    for label, width, n in cases:
        results = {}
        variants = [("auto", True), ("auto", False), ("jacobian", True)]
        for method, full in variants:
            p_est = 64 * width + width + width * width + width + width * 10 + 10
            need_j = n * 10 * p_est * 8
            if method == "jacobian" and need_j > args.max_jacobian_gb * 2**30:
                results[(method, full)] = None
                rows.append((label, f"MLP 64-{width}-{width}-10", n, "jacobian", "full", "not run",
                             f"J alone needs {need_j / 2**30:.1f} GB", "-", "-"))
                continue
            reps = 1 if method == "jacobian" else args.repeats
            meas = [run(width, n, method, full, args.threads, args.device) for _ in range(reps)]
            dt = statistics.median(m[0] for m in meas)
            peak = max(m[1] for m in meas)
            kappa, used, rank, p = meas[0][2], meas[0][3], meas[0][4], meas[0][5]
            results[(method, full)] = kappa
            rows.append((label, f"MLP 64-{width}-{width}-10", n, f"{method} -> {used}",
                         "full spectrum" if full else "kappa only", f"{dt:.2f} s", f"{peak / 2**30:.2f} GB",
                         f"{kappa:.10e}", f"{rank}/{p}"))
        ref = results.get(("jacobian", True))
        for key in (("auto", True), ("auto", False)):
            if ref is not None and abs(results[key] - ref) > 1e-8 * ref:
                raise SystemExit(f"kappa disagrees in case ({label}) {key}: {results[key]} vs jacobian {ref}")
        if ref is not None:
            t_j = next(float(r[5].split()[0]) for r in rows if r[0] == label and r[3].startswith("jacobian"))
            for r in [r for r in rows if r[0] == label and r[3].startswith("auto")]:
                rows.append((label, "", "", f"speed-up {r[4]}", "", f"{t_j / float(r[5].split()[0]):.1f}x", "", "", ""))
    where = (f"cuda ({torch.cuda.get_device_name(0)})" if args.device == "cuda"
             else f"cpu ({platform.processor() or platform.machine()})")
    peak_what = "peak GPU memory allocated" if args.device == "cuda" else "peak RSS"
    print(f"device: {where}, {args.threads} CPU threads, float64, "
          f"torch {torch.__version__}, numpy {numpy.__version__}, python {platform.python_version()}")
    print()
    print(f"| case | model | n | route | output | wall time | {peak_what} | kappa | rank/params |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")


if __name__ == "__main__":
    main()
