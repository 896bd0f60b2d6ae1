"""The model zoo every spectrum route is compared on, plus a naive brute-force reference.

Each case builds (model, X) in float64 from a seed. ``naive_gn_eigenvalues`` is deliberately
plain (one autograd call per output entry, numpy eigvalsh), independent of gnadvisor's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune


class ResidualLinear(nn.Module):
    """h -> (W + beta * I_rect) h (paper Eq. 7)."""

    def __init__(self, d_in: int, d_out: int, beta: float):
        super().__init__()
        self.lin = nn.Linear(d_in, d_out, bias=False)
        self.register_buffer("eye", torch.eye(d_out, d_in))
        self.beta = beta

    def forward(self, h):
        return self.lin(h) + self.beta * h @ self.eye.T


class Custom(nn.Module):
    """A custom module: its own parameters used non-linearly, plus a weight used twice."""

    def __init__(self, d: int, m: int, k: int):
        super().__init__()
        self.inp = nn.Linear(d, m)
        self.shared = nn.Linear(m, m)
        self.scale = nn.Parameter(torch.rand(m) + 0.5)
        self.out = nn.Linear(m, k)

    def forward(self, x):
        h = torch.tanh(self.inp(x)) * self.scale
        h = torch.nn.functional.gelu(self.shared(h))
        h = torch.sin(self.shared(h))  # the same Linear applied twice
        return self.out(h)


@dataclass
class Case:
    name: str
    build: Callable[[], tuple[nn.Module, torch.Tensor]]
    linear: bool = False  # linear in x: the Kronecker route applies
    full_rank: bool = True  # the Gram is full rank (Lanczos can then be compared on lambda_min)
    expected_rank: int | None = None


def _seed(s: int) -> torch.Generator:
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


def linear_chain(d=5, m=7, k=3, depth=2, n=40, seed=0, scale_features=False):
    _seed(seed)
    dims = [d] + [m] * depth + [k]
    net = nn.Sequential(*[nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:])]).double()
    X = torch.randn(n, d, dtype=torch.float64)
    if scale_features:
        X = X * torch.logspace(0, 1, d, dtype=torch.float64)
    return net, X


def residual_linear(seed=1):
    _seed(seed)
    net = nn.Sequential(ResidualLinear(4, 6, 0.5), ResidualLinear(6, 6, 0.5), ResidualLinear(6, 3, 0.5)).double()
    return net, torch.randn(30, 4, dtype=torch.float64)


def leaky_one_hidden(alpha=0.2, seed=2, d=4, m=9, k=3, n=25):
    _seed(seed)
    net = nn.Sequential(nn.Linear(d, m, bias=False), nn.LeakyReLU(alpha), nn.Linear(m, k, bias=False)).double()
    return net, torch.randn(n, d, dtype=torch.float64)


def mlp(act: type[nn.Module], seed=3):
    _seed(seed)
    net = nn.Sequential(nn.Linear(5, 12), act(), nn.Linear(12, 10), act(), nn.Linear(10, 3)).double()
    return net, torch.randn(20, 5, dtype=torch.float64)


def small_cnn(seed=4):
    _seed(seed)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2), nn.Tanh(),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 3),
    ).double()
    return net, torch.randn(12, 2, 6, 6, dtype=torch.float64)


def batchnorm_mlp(seed=5):
    _seed(seed)
    net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 6), nn.BatchNorm1d(6),
                        nn.Tanh(), nn.Linear(6, 2)).double()
    net.train()
    return net, torch.randn(16, 5, dtype=torch.float64)


def pruned_mlp(seed=6):
    _seed(seed)
    net = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    for mod in (net[0], net[2], net[4]):
        prune.l1_unstructured(mod, "weight", amount=0.4)
    return net, torch.randn(15, 6, dtype=torch.float64)


def custom(seed=7):
    _seed(seed)
    return Custom(4, 6, 2).double(), torch.randn(14, 4, dtype=torch.float64)


class LastStepLSTM(nn.Module):
    """nn.LSTM has no vmap batching rule (in-place kernels) and linearize replays it wrongly."""

    def __init__(self, d: int, h: int, k: int):
        super().__init__()
        self.rnn = nn.LSTM(d, h, batch_first=True)
        self.out = nn.Linear(h, k)

    def forward(self, x):
        return self.out(self.rnn(x)[0][:, -1])


def lstm(seed=8):
    _seed(seed)
    return LastStepLSTM(3, 4, 2).double(), torch.randn(10, 4, 3, dtype=torch.float64)


def prelu_mlp(seed=9):
    """nn.PReLU's backward has no vmap rule for a per-sample Jacobian."""
    _seed(seed)
    net = nn.Sequential(nn.Linear(4, 5, bias=False), nn.PReLU(), nn.Linear(5, 2, bias=False)).double()
    return net, torch.randn(10, 4, dtype=torch.float64)


CASES = [
    Case("linear", lambda: linear_chain(), linear=True, expected_rank=15),
    Case("linear-raw-data", lambda: linear_chain(scale_features=True, seed=11), linear=True, expected_rank=15),
    # m < k: q = min(r=6, m=2, k=4) = 2, rank = q (r + k - q) = 16 (gn-theory Sec. 3)
    Case("linear-m<k", lambda: linear_chain(d=6, m=2, k=4, depth=2, n=30, seed=12), linear=True,
         full_rank=False, expected_rank=16),
    Case("residual", residual_linear, linear=True, expected_rank=12),
    Case("leaky", leaky_one_hidden),
    Case("relu-mlp", lambda: mlp(nn.ReLU)),
    Case("tanh-mlp", lambda: mlp(nn.Tanh)),
    Case("gelu-mlp", lambda: mlp(nn.GELU)),
    Case("cnn", small_cnn),
    Case("batchnorm", batchnorm_mlp, full_rank=False),
    Case("pruned", pruned_mlp),
    Case("custom", custom),
    Case("lstm", lstm),
    Case("prelu", prelu_mlp),
]


def naive_jacobian(model: nn.Module, X: torch.Tensor, params: list[torch.Tensor] | None = None) -> np.ndarray:
    """J (n*k x p), one torch.autograd.grad call per output entry of the full batch."""
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    out = model(X).reshape(-1)
    rows = []
    for r in range(out.numel()):
        grads = torch.autograd.grad(out[r], params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]))
    return torch.stack(rows).detach().numpy()


def naive_gn_eigenvalues(J: np.ndarray, n: int) -> np.ndarray:
    """Descending eigenvalues of J J^T / n (numpy), no rank cut."""
    return np.linalg.eigvalsh(J @ J.T / n)[::-1]
