"""Independent references for the pruning comparison: hand-made masks, brute-force Jacobians
restricted to the kept entries, a hand-written masked GD loop, hand-rolled rank correlations.

Nothing here calls gnadvisor: masks are chosen by sorting scores directly, Jacobians come from
``torch.autograd.functional.jacobian`` of a function of the *kept entries only* (pruned entries are
constants, not parameters), eigenvalues from numpy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

EPS = float(np.finfo(np.float64).eps)


def weight_names(model: nn.Module) -> list[str]:
    """Qualified names of the weights of every Linear/Conv layer (the prunable tensors)."""
    return [f"{n}.weight" if n else "weight" for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]


def prune_lowest(scores: dict[str, torch.Tensor], s: float, scope: str) -> dict[str, torch.Tensor]:
    """Keep-masks pruning floor(s * numel) lowest scores per tensor, or floor(s * total) overall."""
    if scope == "layer":
        out = {}
        for name, sc in scores.items():
            flat = sc.reshape(-1)
            k = int(math.floor(round(s * flat.numel(), 9)))
            keep = torch.ones(flat.numel(), dtype=torch.bool)
            keep[torch.argsort(flat, stable=True)[:k]] = False
            out[name] = keep.reshape(sc.shape)
        return out
    flat = torch.cat([sc.reshape(-1) for sc in scores.values()])
    k = int(math.floor(round(s * flat.numel(), 9)))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[torch.argsort(flat, stable=True)[:k]] = False
    out, start = {}, 0
    for name, sc in scores.items():
        out[name] = keep[start:start + sc.numel()].reshape(sc.shape)
        start += sc.numel()
    return out


def magnitude_masks(model: nn.Module, s: float, scope: str = "layer") -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return prune_lowest({n: params[n].detach().abs() for n in weight_names(model)}, s, scope)


def snip_masks(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, s: float) -> dict[str, torch.Tensor]:
    """SNIP (Lee et al. 2019) with L = (1/(2n)) sum ||f - y||^2: prune the lowest |dL/dw * w| globally."""
    names = weight_names(model)
    params = {n: p.detach().clone().requires_grad_(n in names) for n, p in model.named_parameters()}
    loss = 0.5 * ((functional_call(model, params, (X,)) - Y) ** 2).sum() / X.shape[0]
    grads = torch.autograd.grad(loss, [params[n] for n in names])
    return prune_lowest({n: (g * params[n]).abs().detach() for n, g in zip(names, grads)}, s, "global")


def _split(model: nn.Module, masks: dict[str, torch.Tensor]):
    """theta = [kept entries of every masked weight, then every other parameter], and a rebuild function."""
    named = dict(model.named_parameters())
    order = list(named)
    pieces, shapes = [], []
    for n in order:
        p = named[n].detach()
        pieces.append(p[masks[n]] if n in masks else p.reshape(-1))
        shapes.append(p.shape)
    theta0 = torch.cat(pieces).clone()

    def rebuild(theta: torch.Tensor) -> dict[str, torch.Tensor]:
        out, start = {}, 0
        for n, shape, piece in zip(order, shapes, pieces):
            chunk = theta[start:start + piece.numel()]
            start += piece.numel()
            if n in masks:
                w = torch.zeros(shape, dtype=theta.dtype)
                out[n] = w.index_put((masks[n],), chunk)  # pruned entries are the constant 0
            else:
                out[n] = chunk.reshape(shape)
        return out

    return theta0, rebuild


def kept_jacobian(model: nn.Module, masks: dict[str, torch.Tensor], X: torch.Tensor) -> np.ndarray:
    """d f / d theta_kept (n*k x p_kept), pruned entries held at 0 and not differentiated."""
    theta0, rebuild = _split(model, masks)
    return torch.autograd.functional.jacobian(
        lambda th: functional_call(model, rebuild(th), (X,)).reshape(-1), theta0).numpy()


def all_jacobian(model: nn.Module, masks: dict[str, torch.Tensor], X: torch.Tensor) -> np.ndarray:
    """d f / d theta over every entry (pruned ones included) of the masked network."""
    named = dict(model.named_parameters())
    values = {n: (p.detach() * masks[n] if n in masks else p.detach()) for n, p in named.items()}
    order = list(values)
    theta0 = torch.cat([values[n].reshape(-1) for n in order])

    def f(th):
        out, start = {}, 0
        for n in order:
            out[n] = th[start:start + values[n].numel()].reshape(values[n].shape)
            start += values[n].numel()
        return functional_call(model, out, (X,)).reshape(-1)

    return torch.autograd.functional.jacobian(f, theta0).numpy()


def spectrum_from_jacobian(J: np.ndarray, n: int) -> dict:
    """Non-zero spectrum of G = J^T J / n via the smaller Gram; cut max(p, nk) * eps * lambda_max."""
    M = J @ J.T if J.shape[0] <= J.shape[1] else J.T @ J
    ev = np.linalg.eigvalsh(M / n)[::-1]
    keep = ev[ev > max(J.shape) * EPS * ev[0]]
    return {"kappa": keep[0] / keep[-1], "lambda_max": keep[0], "lambda_min": keep[-1], "rank": keep.size}


class KeptOnly(nn.Module):
    """``model`` re-parametrised by the kept entries alone: pruned weights are not parameters at all."""

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]):
        super().__init__()
        object.__setattr__(self, "_model", model)  # not a submodule: its parameters do not count
        theta0, self._rebuild = _split(model, masks)
        self.theta = nn.Parameter(theta0)

    def forward(self, x):
        return functional_call(self._model, self._rebuild(self.theta), (x,))


def gd_losses(model: nn.Module, masks: dict[str, torch.Tensor], X, Y, lr: float, steps: int) -> list[float]:
    """Full-batch GD on (1/(2n)) sum ||f - y||^2 over the kept entries; losses before each step and at the end."""
    theta, rebuild = _split(model, masks)
    theta = theta.clone().requires_grad_(True)
    losses = []
    for _ in range(steps + 1):
        loss = 0.5 * ((functional_call(model, rebuild(theta), (X,)) - Y) ** 2).sum() / X.shape[0]
        losses.append(loss.item())
        (g,) = torch.autograd.grad(loss, theta)
        with torch.no_grad():
            theta -= lr * g
    return losses


def average_ranks(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    r = np.empty(x.size)
    for i, v in enumerate(x):
        r[i] = (x < v).sum() + ((x == v).sum() + 1) / 2
    return r


def spearman(x, y) -> float:
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / math.sqrt((rx**2).sum() * (ry**2).sum()))


def kendall_tau_b(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    conc = disc = tx = ty = 0
    for i in range(x.size):
        for j in range(i + 1, x.size):
            a, b = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if a == 0 and b == 0:
                continue
            if a == 0:
                tx += 1
            elif b == 0:
                ty += 1
            elif a == b:
                conc += 1
            else:
                disc += 1
    return (conc - disc) / math.sqrt((conc + disc + tx) * (conc + disc + ty))
