"""Train a copy of a model on the MSE loss: full-batch GD, minibatch SGD or Adam, in float64.

Loss convention (used everywhere in gnadvisor, including the forecast module and the SNIP/GraSP
scores)::

    L(theta) = (1 / (2 n)) * sum_i || f(x_i; theta) - y_i ||^2

so that its Gauss-Newton matrix is ``G = (1/n) sum_i J_i^T J_i`` (gn-theory §1) and one GD step
is ``theta <- theta - lr * grad L``. For linear least squares ``f(x) = W x`` the GD iterate is
``W_t = W_* + (W_0 - W_*) (I - lr * Sigma)^t`` with ``Sigma = X^T X / n``; it converges iff
``lr < 2 / lambda_max(Sigma)``, at a rate set by ``kappa`` (Zhao, Singh & Lucchi 2024).

Pruned models (``torch.nn.utils.prune``) train their ``weight_orig`` parameters while the
``weight_mask`` buffers stay fixed, so pruned weights remain exactly zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from gnadvisor._checks import (
    GNAdvisorError,
    check_choice,
    check_positive_float,
    check_positive_int,
)
from gnadvisor.pruning._base import _pruning_hooks, check_xy, clone_model, mse_loss, refresh_pruned_weights

__all__ = ["TrainResult", "train", "OPTIMIZERS"]

#: Optimisers :func:`train` accepts.
OPTIMIZERS = ("gd", "sgd", "adam")
_SGD_BATCH = 64


@dataclass(frozen=True, eq=False)
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    losses : numpy.ndarray
        Full-data training loss ``L`` at steps ``loss_steps``: before step 0, every
        ``record_every`` steps, and after the last step. With ``record_every=1`` its length is
        ``steps + 1``. From the first non-finite loss on, entries are ``inf``.
    final_loss : float
        Loss after the last step (``inf`` if diverged).
    steps : int
        Requested number of optimiser steps.
    optimizer : str
        ``"gd"``, ``"sgd"`` or ``"adam"``.
    lr : float
        Learning rate.
    diverged : bool
        Whether a non-finite loss stopped training early.
    batch_size : int
        Samples per step (``n`` for full batch).
    seed : int
        Seed used for batch order and any randomness in the model.
    loss_steps : numpy.ndarray
        Step index of each entry of ``losses``.
    steps_completed : int
        Optimiser steps taken (``steps`` unless diverged).
    model : torch.nn.Module
        The trained float64 copy (at the divergence point if diverged).
    """

    losses: np.ndarray
    final_loss: float
    steps: int
    optimizer: str
    lr: float
    diverged: bool
    batch_size: int
    seed: int
    loss_steps: np.ndarray
    steps_completed: int
    model: nn.Module


def train(
    model: nn.Module,
    X: Any,
    Y: Any,
    *,
    steps: int,
    optimizer: str = "gd",
    lr: float,
    batch_size: int | None = None,
    seed: int = 0,
    record_every: int = 1,
    keep_masks: bool = True,
) -> TrainResult:
    """Train a float64 deep copy of ``model`` on ``L = (1/(2n)) sum_i ||f(x_i) - y_i||^2``.

    Parameters
    ----------
    model : torch.nn.Module
        Model to train; never modified (a copy is trained and returned in the result).
    X : torch.Tensor or array
        Inputs ``(n, ...)``.
    Y : torch.Tensor or array
        Targets ``(n, k)``, the shape of the model's output.
    steps : int
        Number of optimiser steps (0 only evaluates the loss).
    optimizer : {"gd", "sgd", "adam"}, default "gd"
        ``"gd"``: full-batch gradient descent ``theta <- theta - lr * grad L``. ``"sgd"``:
        minibatch SGD with constant ``lr``, no momentum; each epoch visits a seeded permutation
        of the samples in batches of ``batch_size`` (default 64; the last batch of an epoch may be
        smaller; the batch loss uses ``1/(2b)``). ``"adam"``: ``torch.optim.Adam`` with default
        betas, full batch unless ``batch_size`` is given.
    lr : float
        Learning rate, finite and > 0.
    batch_size : int, optional
        Minibatch size for ``"sgd"``/``"adam"``; values above ``n`` mean full batch. ``"gd"`` is
        always full batch and accepts only ``None`` or ``n``.
    seed : int, default 0
        Seeds batch order and, inside a forked RNG (global state untouched), any randomness in
        the model such as dropout. Same inputs and seed give identical results.
    record_every : int, default 1
        Record the full-data loss every this many steps (plus before the first and after the
        last). With minibatches each record costs one extra full-data forward pass.
    keep_masks : bool, default True
        Keep ``torch.nn.utils.prune`` masks fixed (pruned weights stay exactly 0). ``False``
        removes the reparametrisation first: training starts from the pruned weights (zeros) but
        they may grow back.

    Returns
    -------
    TrainResult
        Loss curve, divergence flag and the trained model.

    Raises
    ------
    GNAdvisorError
        For a bad ``steps``, ``optimizer``, ``lr``, ``batch_size``, ``seed`` or ``record_every``,
        mis-shaped or non-finite data, a model output that does not match ``Y``, or a model
        without trainable parameters.

    Notes
    -----
    Divergence: when a loss (full-data or minibatch) is NaN or inf, training stops, ``diverged``
    is True, and ``losses`` holds ``inf`` from that step on (the curve keeps its full length).

    The loss is evaluated in the model's training mode (batch norm uses batch statistics); the
    extra full-data evaluations for recording leave batch-norm running statistics untouched.

    References
    ----------
    Zhao, Singh & Lucchi (2024): the GN condition number governs the convergence of gradient
    methods on the MSE loss.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> X = torch.tensor([[1.0], [2.0]]); Y = 2 * X
    >>> net = nn.Linear(1, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.zero_()
    >>> res = train(net, X, Y, steps=2, lr=0.2)  # Sigma = 2.5, W_t = 2 - 2 (1 - 0.5)^t
    >>> res.losses.round(4).tolist()
    [5.0, 1.25, 0.3125]
    >>> net.weight.item()  # the input model is untouched
    0.0
    """
    if not isinstance(model, nn.Module):
        raise GNAdvisorError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    steps = check_positive_int("steps", steps, allow_zero=True)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    lr = check_positive_float("lr", lr)
    seed = check_positive_int("seed", seed, allow_zero=True)
    record_every = check_positive_int("record_every", record_every)
    X, Y = check_xy(X, Y)
    n = X.shape[0]
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
        if optimizer == "gd" and batch_size != n:
            raise GNAdvisorError(
                f"batch_size must be None or n = {n} for optimizer='gd' (full batch), got {batch_size}; "
                f"use optimizer='sgd' for minibatches"
            )
    elif optimizer == "sgd":
        batch_size = _SGD_BATCH
    batch_size = n if batch_size is None else min(batch_size, n)
    full_batch = batch_size == n

    net = clone_model(model).to(torch.float64)
    if not keep_masks:
        for module in net.modules():
            for name in [h._tensor_name for h in _pruning_hooks(module)]:
                prune.remove(module, name)
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise GNAdvisorError("model must have trainable parameters (requires_grad=True), got none")
    opt: torch.optim.Optimizer
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.SGD(params, lr=lr)

    record = set(range(0, steps + 1, record_every)) | {steps}
    loss_steps = np.array(sorted(record), dtype=np.int64)
    recorded: dict[int, float] = {}
    diverged_at: int | None = None

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        batches = _batches(n, batch_size, gen)
        for t in range(steps):
            if not full_batch and t in record:
                recorded[t] = _full_loss(net, X, Y)
                if not math.isfinite(recorded[t]):
                    diverged_at = t
                    break
            idx = next(batches)
            xb, yb = (X, Y) if idx is None else (X[idx], Y[idx])
            opt.zero_grad(set_to_none=True)
            loss = mse_loss(net(xb), yb)
            value = float(loss.detach())
            if full_batch and t in record:
                recorded[t] = value
            if not math.isfinite(value):
                diverged_at = t
                break
            loss.backward()
            opt.step()
        if diverged_at is None:
            recorded[steps] = _full_loss(net, X, Y)
            if not math.isfinite(recorded[steps]):
                diverged_at = steps
    refresh_pruned_weights(net)

    cut = steps + 1 if diverged_at is None else diverged_at
    losses = np.array([recorded[s] if s < cut else math.inf for s in loss_steps], dtype=np.float64)
    return TrainResult(
        losses=losses,
        final_loss=float(losses[-1]),
        steps=steps,
        optimizer=optimizer,
        lr=lr,
        diverged=diverged_at is not None,
        batch_size=batch_size,
        seed=seed,
        loss_steps=loss_steps,
        steps_completed=steps if diverged_at is None else diverged_at,
        model=net,
    )


def _batches(n: int, batch_size: int, gen: torch.Generator):
    """Endless minibatch indices: seeded permutation per epoch; ``None`` means all samples."""
    if batch_size == n:
        while True:
            yield None
    while True:
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            yield perm[start:start + batch_size]


def _full_loss(net: nn.Module, X: torch.Tensor, Y: torch.Tensor) -> float:
    """Full-data loss in the current mode, leaving buffers (batch-norm statistics) untouched."""
    saved = [(b, b.detach().clone()) for b in net.buffers()]
    with torch.no_grad():
        value = float(mse_loss(net(X), Y))
        for b, copy_ in saved:
            b.copy_(copy_)
    return value
