#!/usr/bin/env bash
# The CUDA checks, as one script for a lent GPU machine (CI has no GPU):
#   bash benchmarks/gpu_checks.sh OUTDIR
# 1. the CUDA tests (every route on the GPU against the CPU reference),
# 2. ResNet-20 on 1000 CIFAR-shaped inputs (eval-mode batch norm), then train mode at n = 200,
# 3. `gnadvisor suggest --depth 20 --device cuda`,
# 4. bench_spectra on the GPU, the materialised-Jacobian baseline included.
# Each step has its own time limit so that one slow step cannot eat the others.
set -u
OUT=${1:-gpu-checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
step() { local name=$1 limit=$2; shift 2; echo "=== $name (limit ${limit}s)"; local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"; echo "=== $name: rc=${PIPESTATUS[0]} in $((SECONDS - t0)) s"; }
nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
step cuda-tests 120 $PY -m pytest -q -p no:cacheprovider -o addopts="" tests/spectrum/test_spectrum_cuda.py -x
step resnet20-eval 160 $PY benchmarks/bench_resnet20.py --device cuda --n 1000 --batchnorm eval --variants kappa,full,jacobian --max-jacobian-gb 60
step suggest-cuda 90 $PY -m gnadvisor.cli.main suggest --depth 20 --device cuda
step resnet20-train 80 $PY benchmarks/bench_resnet20.py --device cuda --n 200 --batchnorm train --variants kappa
step bench-spectra 120 $PY benchmarks/bench_spectra.py --device cuda --repeats 1 --max-jacobian-gb 60
