"""The CUDA path against the CPU reference (skipped without a GPU; CI has none).

Every route on the GPU must give the spectrum that the plain jacobian route gives on the CPU,
to the same float64 tolerance as the CPU routes (test_spectrum_routes.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gnadvisor as gna
from gnadvisor import Route

from cases import CASES

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

RTOL = 1e-8


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


@pytest.mark.parametrize("route", [r for r in Route], ids=lambda r: f"route={r.value}")
@pytest.mark.parametrize("case", CASES, ids=[f"case={c.name}" for c in CASES])
def test_cuda_route_matches_cpu_reference(route, case):
    model, X = case.build()
    ref = gna.gn_spectrum(model, X, method="jacobian", device="cpu")
    if route is Route.KRONECKER and not case.linear:
        return
    s = gna.gn_spectrum(model, X, method=route.value, device="cuda")
    assert s.device.startswith("cuda") and s.method == route.value
    assert _rel(s.lambda_max, ref.lambda_max) < RTOL
    if route is Route.LANCZOS:
        return
    assert s.rank == ref.rank
    assert _rel(s.condition_number, ref.condition_number) < 1e-7
    np.testing.assert_allclose(s.eigenvalues, ref.eigenvalues, rtol=1e-7, atol=1e-11 * ref.lambda_max)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cuda_kappa_only_and_auto(case):
    model, X = case.build()
    ref = gna.gn_spectrum(model, X, method="jacobian", device="cpu")
    s = gna.gn_spectrum(model, X, device="cuda", full=False)
    assert _rel(s.lambda_max, ref.lambda_max) < RTOL
    assert _rel(s.condition_number, ref.condition_number) < 1e-6


def test_model_and_inputs_already_on_the_gpu_are_left_alone():
    model, X = CASES[5].build()  # relu mlp
    ref = gna.gn_spectrum(model, X, device="cpu")
    model_gpu, X_gpu = model.to("cuda"), X.to("cuda")
    before = [p.detach().clone() for p in model_gpu.parameters()]
    s = gna.gn_spectrum(model_gpu, X_gpu, device="auto")
    assert s.device.startswith("cuda")
    assert _rel(s.condition_number, ref.condition_number) < 1e-7
    assert all(torch.equal(a, b) for a, b in zip(before, model_gpu.parameters()))
    assert next(model_gpu.parameters()).device.type == "cuda"


def test_gram_forecast_and_score_on_cuda_match_cpu():
    model, X = CASES[6].build()  # tanh mlp
    k = model(X).shape[1]
    Y = torch.randn(X.shape[0], k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    K_cpu = gna.gn_gram(model, X, device="cpu")
    K_gpu = gna.gn_gram(model, X, device="cuda")
    assert K_gpu.device.type == "cuda"
    torch.testing.assert_close(K_gpu.cpu(), K_cpu, rtol=1e-10, atol=1e-12 * float(K_cpu.abs().max()))
    f_cpu = gna.gn_forecast(model, X, Y, steps=25, device="cpu")
    f_gpu = gna.gn_forecast(model, X, Y, steps=25, device="cuda")
    np.testing.assert_allclose(f_gpu.losses, f_cpu.losses, rtol=1e-9)
    r_cpu = gna.score_model(model, X, device="cpu")
    r_gpu = gna.score_model(model, X, device="cuda")
    assert _rel(r_gpu.spectrum.condition_number, r_cpu.spectrum.condition_number) < 1e-7
    for a, b in zip(r_gpu.layers, r_cpu.layers):
        assert a.name == b.name and _rel(a.condition_number, b.condition_number) < 1e-6
