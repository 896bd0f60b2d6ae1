"""The Gram route: K = (1/n) J J^T (nk x nk) formed without materialising J.

Two rules, summed parameter block by parameter block (gn-theory Sec. 6):

* **structured rule** for ``nn.Linear`` layers applied once to 2-D inputs, when samples are
  independent. Row ``(i, c)`` of J w.r.t. ``W`` is ``g_ic a_i^T`` with
  ``g_ic = d f_c(x_i) / d z_i``, so the layer adds ``(Gamma Gamma^T) o (A A^T (x) 1_kk)``
  (plus ``Gamma Gamma^T`` for the bias). All ``g`` come from k backward passes of the summed
  outputs through zero "probe" tensors added to each layer's output: cost
  ``O((nk)^2 * out)`` instead of ``O((nk)^2 * in * out)``.
* **block-wise rule** for every other parameter (conv, norm layers, embeddings, custom
  modules, pruned weights on kept coordinates, or anything under train-mode batch norm):
  per-sample Jacobians (``vmap(jacrev)``), or full-batch ``jacrev`` when samples are coupled,
  computed a group of parameters at a time within a memory budget and accumulated as
  ``J_b J_b^T``.

Each structured block is checked against one exact full-batch vector-Jacobian product
(``||J_b^T v||^2``); a block that fails (a weight reused elsewhere in ``forward``, say) is
recomputed by the block-wise rule, so the structured shortcut can never give a wrong number.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.func import jacrev, vmap

from ._problem import Problem

_CHECK_RTOL = 1e-9


def gram_matrix(problem: Problem, *, budget: int) -> tuple[torch.Tensor, list[str]]:
    """Return ``K = J J^T / n`` (float64, rows ``i*k + c``) and notes on how it was built."""
    n, k = problem.n_samples, problem.n_outputs
    N = n * k
    dev = problem.device
    K = torch.zeros(N, N, dtype=torch.float64, device=dev)
    notes: list[str] = []
    gen = torch.Generator(device="cpu").manual_seed(0)
    v = torch.randn(N, generator=gen, dtype=torch.float64).to(dev)
    ref = problem.vjp_sq_norms(v)  # exact ||(J^T v)_b||^2 per parameter, for the checks

    handled: set[str] = set()
    if problem.independent:
        layers = _linear_layers(problem)
        if layers:
            probes = _linear_probes(problem, layers)
            for mod_name, (gamma, acts, w_name, b_name) in probes.items():
                if not _structured_check(problem, gamma, acts, w_name, b_name, v, ref):
                    notes.append(f"layer {mod_name!r}: structured rule failed its exactness check; used the block-wise rule")
                    continue
                _add_linear_block(K, problem, gamma, acts, w_name, b_name, budget)
                handled.update(x for x in (w_name, b_name) if x is not None)
    others = [nm for nm in problem.names if nm not in handled]
    if handled:
        notes.append(f"structured nn.Linear rule for {len(handled)} tensor(s)")
    if others:
        _add_blockwise(K, problem, others, budget, v, ref)
        notes.append(
            f"block-wise {'per-sample' if problem.independent else 'full-batch (samples coupled)'} "
            f"Jacobians for {len(others)} tensor(s)"
        )
    K.triu_()  # structured blocks filled the upper triangle, block-wise ones the whole matrix
    K += K.triu(1).T
    K /= n
    return K, notes


# ---------------------------------------------------------------------------- structured rule
def _linear_layers(problem: Problem) -> dict[str, tuple[nn.Linear, str | None, str | None]]:
    counts: dict[int, int] = {}
    for _, prm in problem.model.named_parameters(remove_duplicate=False):
        counts[id(prm)] = counts.get(id(prm), 0) + 1
    selected = set(problem.names)
    layers = {}
    for mod_name, mod in problem.model.named_modules():
        if not isinstance(mod, nn.Linear):
            continue
        prefix = f"{mod_name}." if mod_name else ""
        w = prefix + "weight" if prefix + "weight" in selected and counts.get(id(mod.weight), 0) == 1 else None
        b = None
        if mod.bias is not None and prefix + "bias" in selected and counts.get(id(mod.bias), 0) == 1:
            b = prefix + "bias"
        if w or b:
            layers[mod_name] = (mod, w, b)
    return layers


def _linear_probes(problem: Problem, layers: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor, str | None, str | None]]:
    """Gamma (n*k x out) and inputs A (n x in) for each Linear layer used exactly once on 2-D input."""
    n, k = problem.n_samples, problem.n_outputs
    record: dict[str, list] = {name: [] for name in layers}
    handles = []

    def make_hook(name: str) -> Callable:
        def hook(module, inputs, output):
            delta = torch.zeros_like(output, requires_grad=True)
            record[name].append((inputs[0].detach(), delta))
            return output + delta
        return hook

    for name, (mod, _, _) in layers.items():
        handles.append(mod.register_forward_hook(make_hook(name)))
    try:
        with torch.enable_grad():
            Y = problem.model(problem.X).reshape(n, k)
            usable = {
                name: rec[0] for name, rec in record.items()
                if len(rec) == 1 and rec[0][0].ndim == 2 and rec[0][0].shape[0] == n
            }
            if not usable:
                return {}
            names = list(usable)
            deltas = [usable[nm][1] for nm in names]
            gammas = [torch.zeros(n, k, d.shape[1], dtype=torch.float64, device=problem.device) for d in deltas]
            for c in range(k):
                grads = torch.autograd.grad(Y[:, c].sum(), deltas, retain_graph=c < k - 1, allow_unused=True)
                for g_store, g in zip(gammas, grads):
                    if g is not None:
                        g_store[:, c, :] = g
    finally:
        for h in handles:
            h.remove()
    out = {}
    for nm, gamma in zip(names, gammas):
        _, w, b = layers[nm]
        out[nm] = (gamma.reshape(n * k, -1), usable[nm][0].to(torch.float64), w, b)
    return out


def _structured_check(problem: Problem, gamma: torch.Tensor, acts: torch.Tensor, w_name: str | None,
                      b_name: str | None, v: torch.Tensor, ref: dict[str, float]) -> bool:
    """||(J^T v)_W||^2 from Gamma and A must equal the exact vjp (one rule-breaking use fails it)."""
    n, k = problem.n_samples, problem.n_outputs
    U = (v.reshape(n, k, 1) * gamma.reshape(n, k, -1)).sum(1)  # u_i = sum_c v_ic g_ic
    ok = True
    if w_name is not None:
        gw = (U.T @ acts).reshape(-1)  # (out*in,)
        idx = problem.cols[w_name]
        if idx is not None:
            gw = gw.index_select(0, idx)
        ok &= _close(float((gw * gw).sum()), ref[w_name])
    if b_name is not None:
        gb = U.sum(0)
        ok &= _close(float((gb * gb).sum()), ref[b_name])
    return ok


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= _CHECK_RTOL * max(abs(a), abs(b)) + 1e-300


def _row_block(N: int, budget: int) -> int:
    return max(1, min(N, budget // max(1, 4 * N * 8)))


def _add_linear_block(K: torch.Tensor, problem: Problem, gamma: torch.Tensor, acts: torch.Tensor,
                      w_name: str | None, b_name: str | None, budget: int) -> None:
    n, k = problem.n_samples, problem.n_outputs
    N = n * k
    masked = w_name is not None and problem.cols[w_name] is not None
    factor = None
    if w_name is not None and not masked:
        factor = acts @ acts.T
        if b_name is not None:
            factor += 1.0
    elif b_name is not None:
        factor = torch.ones(n, n, dtype=torch.float64, device=K.device)
    if factor is not None:
        # upper triangle only (K is mirrored once at the end): half the flops of Gamma Gamma^T
        B = max(k, _row_block(N, budget) // k * k)
        for r0 in range(0, N, B):
            r1 = min(N, r0 + B)
            T = gamma[r0:r1] @ gamma[r0:].T  # (b, N - r0)
            rows_i = torch.arange(r0, r1, device=K.device) // k
            T.view(r1 - r0, n - r0 // k, k).mul_(factor[:, r0 // k:].index_select(0, rows_i).unsqueeze(-1))
            K[r0:r1, r0:] += T
    if masked:
        # kept coordinates of a pruned weight: explicit rows g_ic (x) a_i, a chunk of output units at a time
        out_dim, in_dim = gamma.shape[1], acts.shape[1]
        keep = torch.zeros(out_dim * in_dim, dtype=torch.bool, device=K.device)
        keep[problem.cols[w_name]] = True
        keep = keep.view(out_dim, in_dim)
        step = max(1, min(out_dim, (budget // 4) // max(1, N * in_dim * 8)))
        g3 = gamma.view(n, k, out_dim)
        for o0 in range(0, out_dim, step):
            o1 = min(out_dim, o0 + step)
            Jw = (g3[:, :, o0:o1, None] * acts[:, None, None, :]).reshape(N, -1)
            Jw = Jw[:, keep[o0:o1].reshape(-1)]
            if Jw.shape[1]:
                K.addmm_(Jw, Jw.T)


# ---------------------------------------------------------------------------- block-wise rule
def _groups(problem: Problem, names: list[str], budget_j: int) -> list[tuple[list[str], int]]:
    """Group tensors so one group's J (N x cols) fits half of ``budget_j`` (the other half is
    for the backward passes that fill it); returns (names, col_chunk)."""
    budget_j = max(1, budget_j // 2)
    N = problem.n_rows
    groups: list[tuple[list[str], int]] = []
    cur: list[str] = []
    cur_bytes = 0
    for nm in names:
        b = N * problem.n_cols(nm) * 8
        if b > budget_j:
            if cur:
                groups.append((cur, 0))
                cur, cur_bytes = [], 0
            groups.append(([nm], max(1, budget_j // (N * 8))))
            continue
        if cur and cur_bytes + b > budget_j:
            groups.append((cur, 0))
            cur, cur_bytes = [], 0
        cur.append(nm)
        cur_bytes += b
    if cur:
        groups.append((cur, 0))
    return groups


def _block_jacobian(problem: Problem, names: list[str], budget_j: int,
                    cols: slice | None = None) -> torch.Tensor:
    """J restricted to ``names`` (N x kept cols, optionally a column slice), in row chunks.

    Per-sample ``vmap(jacrev)`` when samples are independent; otherwise rows of the
    full-batch Jacobian from one ``vjp`` applied to chunks of one-hot cotangents.
    """
    n, k = problem.n_samples, problem.n_outputs
    N = n * k
    params = {nm: problem.values[nm] for nm in names}
    numel = sum(problem.values[nm].numel() for nm in names)
    # per Jacobian row: the parameter gradients (~6 copies in flight) and, for the backward
    # pass behind it, the gradients of the saved activations (~2x what the forward saves) --
    # of the whole batch when samples are coupled (train-mode batch norm), else of one sample.
    n_cols = sum(problem.n_cols(nm) for nm in names)
    if cols is not None:
        n_cols = len(range(n_cols)[cols])
    act = problem.saved_bytes(full_batch=not problem.independent)
    per_row = 6 * numel * 8 + 2 * act
    rows_per_chunk = max(1, min(N, (budget_j - N * n_cols * 8) // per_row, 2048))  # what J itself leaves
    J = torch.empty(N, n_cols, dtype=torch.float64, device=problem.device)

    def put(jac: dict, r0: int, rows: int) -> None:
        pos = 0
        for nm in names:
            block = problem.select_cols(nm, jac[nm].reshape(rows, -1))
            if cols is None:
                J[r0 : r0 + rows, pos : pos + block.shape[1]] = block
                pos += block.shape[1]
            else:
                parts.append(block)
        if cols is not None:
            J[r0 : r0 + rows] = torch.cat(parts, dim=1)[:, cols]
            parts.clear()

    parts: list[torch.Tensor] = []
    if problem.independent:
        fn = vmap(jacrev(problem.f_single), in_dims=(None, 0))
        step = max(1, rows_per_chunk // k)
        for s in range(0, n, step):
            b = min(step, n - s)
            jac = problem.jacobian_rows(names, s * k, (s + b) * k,
                                        lambda: fn(params, problem.X[s : s + step]))
            put(jac, s * k, b * k)
    else:
        state: dict[str, Any] = {}

        def rows(r0: int, r1: int) -> dict:
            if "batched" not in state:
                _, vjp_fn = torch.func.vjp(lambda p: problem.f(p), params)
                state["batched"] = vmap(vjp_fn)
            cot = torch.zeros(r1 - r0, N, dtype=torch.float64, device=problem.device)
            cot[torch.arange(r1 - r0), torch.arange(r0, r1)] = 1.0
            (jac,) = state["batched"](cot)
            return jac

        for r0 in range(0, N, rows_per_chunk):
            r1 = min(N, r0 + rows_per_chunk)
            jac = problem.jacobian_rows(names, r0, r1, lambda: rows(r0, r1))
            put(jac, r0, r1 - r0)
    return J


def _add_blockwise(K: torch.Tensor, problem: Problem, names: list[str], budget: int,
                   v: torch.Tensor, ref: dict[str, float]) -> None:
    N = problem.n_rows
    # what the Gram (K), its mirror and the eigensolver leave of the budget goes to J blocks
    budget_j = max(budget - 3 * N * N * 8, budget // 4, 1 << 20)
    for group, col_chunk in _groups(problem, names, budget_j):
        if col_chunk == 0:
            J = _block_jacobian(problem, group, budget_j)
            _check_block(J, v, sum(ref[g] for g in group), group)
            K.addmm_(J, J.T)
            continue
        # one tensor too large for the budget: recompute it for each slice of its columns
        (nm,) = group
        sq = 0.0
        for c0 in range(0, problem.n_cols(nm), col_chunk):
            J = _block_jacobian(problem, group, budget_j, slice(c0, c0 + col_chunk))
            sq += float(((J.T @ v) ** 2).sum())
            K.addmm_(J, J.T)
        _check_block(None, v, ref[nm], group, got=sq)


def _check_block(J: torch.Tensor | None, v: torch.Tensor, expected: float, group: list[str],
                 got: float | None = None) -> None:
    if got is None:
        got = float(((J.T @ v) ** 2).sum())
    if not _close(got, expected):
        raise RuntimeError(
            f"internal check failed for parameters {group}: per-sample Jacobians disagree with the "
            "full-batch vjp (do samples interact in forward?); use method='jacobian' and please report this model"
        )
