"""How long does the exact GN spectrum of a ResNet-20 on 1000 CIFAR-shaped inputs take?

Question (issue 6): wall time and peak memory of ``gn_spectrum`` / ``score_model`` for the
ResNet-20 of ``examples/models/resnet_cifar.py`` (~270k parameters, batch norm) on ``n``
Gaussian CIFAR-shaped inputs (3x32x32; the GN matrix depends on the inputs only, no labels
needed), n*k = 10 n. Batch norm in training mode couples the samples (full-batch statistics:
every Jacobian row depends on the whole batch), in eval mode it does not.

Variants per batch-norm mode: the full spectrum, kappa only (``full=False``), and the whole
``score_model`` report (plus one spectrum per layer). The naive baseline -- materialising the
n*k x p Jacobian -- is printed as its memory requirement (n*k*p*8 bytes), and run when it fits
``--max-jacobian-gb``.

Usage::

    python benchmarks/bench_resnet20.py --n 1000 --device cpu --variants kappa --batchnorm eval
    python benchmarks/bench_resnet20.py --n 1000 --device cuda --max-jacobian-gb 60
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gnadvisor as gna  # noqa: E402


def _model(blocks: int, width: int) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("resnet_cifar", ROOT / "examples" / "models" / "resnet_cifar.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    return mod.make_model(blocks=blocks, width=width)


def _peak(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--batchnorm", default="eval,train", help="comma list of train, eval")
    ap.add_argument("--variants", default="full,kappa,score", help="comma list of full, kappa, score, jacobian")
    ap.add_argument("--blocks", type=int, default=3, help="basic blocks per stage (3 = ResNet-20)")
    ap.add_argument("--width", type=int, default=16, help="channels of the first stage")
    ap.add_argument("--max-jacobian-gb", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = _model(args.blocks, args.width)
    p = sum(q.numel() for q in model.parameters())
    g = torch.Generator().manual_seed(1)
    X = torch.randn(args.n, 3, 32, 32, generator=g, dtype=torch.float64)
    if args.device == "cuda":  # CUDA context and kernels warmed up outside the timings
        gna.gn_spectrum(model, X[:8], device="cuda")
        torch.cuda.synchronize()
    need_j = args.n * 10 * p * 8 / 2**30
    where = (f"cuda ({torch.cuda.get_device_name(0)})" if args.device == "cuda"
             else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    print(f"ResNet (blocks/stage {args.blocks}, width {args.width}): {p} parameters, n = {args.n}, "
          f"n*k = {10 * args.n}; device {where}; torch {torch.__version__}; float64")
    print(f"materialised Jacobian alone: {need_j:.1f} GB")
    print()
    print("| batch norm | variant | route | wall time | peak memory | kappa | lambda_max | lambda_min | rank |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for bn in args.batchnorm.split(","):
        for variant in args.variants.split(","):
            if variant == "jacobian" and need_j > args.max_jacobian_gb:
                print(f"| {bn} | jacobian | not run | - | J needs {need_j:.1f} GB | - | - | - | - |")
                continue
            if args.device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            if variant == "score":
                rep = gna.score_model(model, X, device=args.device, batchnorm=bn)
                s = rep.spectrum
                extra = f" (+{len(rep.layers)} layer spectra)"
            else:
                method = "jacobian" if variant == "jacobian" else "auto"
                s = gna.gn_spectrum(model, X, device=args.device, batchnorm=bn, method=method,
                                    full=(variant != "kappa"))
                extra = ""
            if args.device == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            print(f"| {bn} | {variant}{extra} | {s.method} | {dt:.1f} s | {_peak(args.device):.2f} GB | "
                  f"{s.condition_number:.6e} | {s.lambda_max:.6e} | {s.lambda_min:.6e} | {s.rank} |", flush=True)


if __name__ == "__main__":
    main()
