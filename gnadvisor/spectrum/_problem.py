"""Turn (model, X, options) into a checked, private, float64 problem that every route consumes.

The user's model is never modified: a deep copy is taken, pruning re-parametrisations are
folded into plain parameters (their masks recorded), batch norm is put into the requested
mode, and all parameters are detached so that routes differentiate only the selected ones.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import prune

from .._checks import GNAdvisorError, check_choice

ParamSelector = Union[None, str, Sequence[str], Callable[[str, torch.Tensor], bool]]
MaskOption = Union[str, Mapping[str, torch.Tensor]]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise GNAdvisorError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GNAdvisorError("device='cuda' was requested but no CUDA GPU is available; use device='cpu' or 'auto'")
    return torch.device(device)


def memory_budget(device: torch.device, max_memory: float | str | None) -> int:
    """Bytes a route may use for its dense matrices (half of what is free, unless given)."""
    if max_memory is not None:
        return parse_bytes(max_memory)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: line.split()[1] for line in fh}
        return int(int(info["MemAvailable"]) * 1024 * 0.5)
    except (OSError, KeyError, ValueError):  # pragma: no cover - non-Linux
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(pages * 0.25)


def parse_bytes(value: float | str) -> int:
    """``"4GB"``, ``"512MB"``, ``2e9`` -> bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    if isinstance(value, str):
        s = value.strip().upper().replace("IB", "B")
        for suffix, mult in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)):
            if s.endswith(suffix):
                try:
                    v = float(s[: -len(suffix)])
                except ValueError:
                    break
                if v > 0:
                    return int(v * mult)
                break
    raise GNAdvisorError(f"max_memory must be a positive number of bytes or a size like '4GB', got {value!r}")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass
class Problem:
    """A checked, private copy of the user's model and data, ready for a route.

    ``names`` are the differentiated parameters, ``cols[name]`` the kept flat coordinates
    (``None`` = all), so a route's Jacobian has ``n_params = sum(len(cols))`` columns.
    Rows are ordered ``i * n_outputs + c`` (sample i, output c).
    """

    model: nn.Module
    X: torch.Tensor
    device: torch.device
    names: list[str]
    values: dict[str, torch.Tensor]
    cols: dict[str, torch.Tensor | None]
    n_samples: int
    n_outputs: int
    n_params: int
    coordinates: str
    display_names: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _independent: bool | None = None
    _saved_bytes: dict[bool, int] = field(default_factory=dict)
    _vmap_ok: bool = True
    _without_cudnn: bool | None = None

    # -- evaluation -------------------------------------------------------------------
    def call(self, params: Mapping[str, torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        """``model(X)`` with ``params`` substituted.

        On CUDA, recurrent modules run without cuDNN: cuDNN's RNN kernels refuse a backward
        pass in eval mode and cannot run on torch.func's wrapped tensors; the native kernels
        compute the same function with plain differentiable ops.
        """
        if self._without_cudnn is None:  # decided once: call() is on every forward pass
            self._without_cudnn = self.device.type == "cuda" and any(
                isinstance(m, nn.RNNBase) for m in self.model.modules())
        if self._without_cudnn:
            with torch.backends.cudnn.flags(enabled=False):
                return functional_call(self.model, dict(params), (X,))
        return functional_call(self.model, dict(params), (X,))

    def f(self, params: Mapping[str, torch.Tensor], X: torch.Tensor | None = None) -> torch.Tensor:
        """Full-batch output, flattened to (n * k,), with ``params`` substituted."""
        X = self.X if X is None else X
        return self.call(params, X).reshape(-1)

    def f_single(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Output (k,) for one sample (used under vmap)."""
        return self.call(params, x.unsqueeze(0)).reshape(-1)

    def select_cols(self, name: str, jac: torch.Tensor) -> torch.Tensor:
        """Flatten a per-parameter Jacobian (rows, *shape) to (rows, kept columns)."""
        flat = jac.reshape(jac.shape[0], -1)
        idx = self.cols[name]
        return flat if idx is None else flat.index_select(1, idx)

    def n_cols(self, name: str) -> int:
        idx = self.cols[name]
        return self.values[name].numel() if idx is None else int(idx.numel())

    @property
    def n_rows(self) -> int:
        return self.n_samples * self.n_outputs

    @property
    def independent(self) -> bool:
        """True when each sample's output depends on that sample alone (no train-mode BN)."""
        if self._independent is None:
            self._independent = _samples_independent(self)
        return self._independent

    def saved_bytes(self, full_batch: bool) -> int:
        """Bytes autograd saves for one backward pass: of the full batch, or of one sample.

        Measured once (saved-tensor hooks on a forward with every parameter requiring grad); a
        backward needs about this much again for the gradients of those activations. The row
        chunks of the block-wise Jacobians are sized with it, so that vmapped backward passes
        stay inside the memory budget.
        """
        if full_batch not in self._saved_bytes:
            params = {n: v.detach().requires_grad_(True) for n, v in self.values.items()}
            seen: dict[int, int] = {}

            def pack(t: torch.Tensor) -> torch.Tensor:
                try:  # storages shared by several saved views count once
                    key = t.untyped_storage().data_ptr()
                except (RuntimeError, NotImplementedError):
                    key = id(t)
                seen[key] = max(seen.get(key, 0), t.numel() * t.element_size())
                return t

            X = self.X if full_batch else self.X[:1]
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                out = self.call(params, X)
            del out
            self._saved_bytes[full_batch] = max(1, sum(seen.values()))
        return self._saved_bytes[full_batch]

    def jacobian_rows(self, names: list[str], r0: int, r1: int, batched: Callable[[], dict]) -> dict[str, torch.Tensor]:
        """Rows ``r0:r1`` of J for the tensors ``names``: ``{name: (r1 - r0, *shape)}``.

        ``batched()`` is the fast torch.func computation (vmap over samples or cotangents). Some
        modules have no batching rule (e.g. ``nn.LSTM``'s in-place kernels, ``nn.PReLU``'s
        backward); then the rows come from plain autograd, one backward pass per row (per sample
        when samples are independent), and a note says so. Out-of-memory errors are not caught.
        """
        if self._vmap_ok:
            try:
                return batched()
            except torch.OutOfMemoryError:
                raise
            except (RuntimeError, NotImplementedError) as exc:
                self._vmap_ok = False
                first = (str(exc).strip().splitlines() or [""])[0][:160]
                self.notes.append(
                    f"torch.func's vmap cannot batch this model ({type(exc).__name__}: {first}); Jacobian rows "
                    "were computed by plain autograd, one backward pass per row (exact, slower)")
        return self._rows_by_autograd(names, r0, r1)

    def _rows_by_autograd(self, names: list[str], r0: int, r1: int) -> dict[str, torch.Tensor]:
        k = self.n_outputs
        params = {nm: self.values[nm].detach().requires_grad_(True) for nm in names}
        plist = [params[nm] for nm in names]
        out = {nm: torch.zeros((r1 - r0,) + tuple(params[nm].shape), dtype=torch.float64, device=self.device)
               for nm in names}

        def fill(y: torch.Tensor, rows: range, offset: int) -> None:
            for r in rows:
                grads = torch.autograd.grad(y[r - offset], plist, retain_graph=True, allow_unused=True)
                for nm, g in zip(names, grads):
                    if g is not None:
                        out[nm][r - r0] = g

        with torch.enable_grad():
            if self.independent:
                for i in range(r0 // k, (r1 - 1) // k + 1):
                    y = self.f_single(params, self.X[i])
                    fill(y, range(max(r0, i * k), min(r1, (i + 1) * k)), i * k)
            else:
                fill(self.f(params), range(r0, r1), 0)
        return out

    def vjp_sq_norms(self, v: torch.Tensor) -> dict[str, float]:
        """``||(J^T v)_name||^2`` per parameter (kept columns), via one full-batch vjp."""
        params = {n: self.values[n] for n in self.names}
        _, vjp_fn = torch.func.vjp(lambda p: self.f(p), params)
        (grads,) = vjp_fn(v)
        out = {}
        for n in self.names:
            g = grads[n].reshape(-1)
            idx = self.cols[n]
            if idx is not None:
                g = g.index_select(0, idx)
            out[n] = float((g * g).sum())
        return out


def _samples_independent(problem: Problem) -> bool:
    n = problem.n_samples
    if n == 1:
        return True
    X = problem.X
    X2 = X.clone()
    if X.is_floating_point():
        gen = torch.Generator(device="cpu").manual_seed(1234)
        noise = torch.randn(X[0].shape, generator=gen, dtype=X.dtype).to(X.device)
        X2[0] = X[0] * 1.7 + noise
    else:
        X2[0] = torch.remainder(X[0] + 1, int(X.max()) + 1)
    with torch.no_grad():
        y1 = problem.f({}, X).reshape(n, -1)[1:]
        y2 = problem.f({}, X2).reshape(n, -1)[1:]
    scale = float(y1.abs().max()) + 1e-300
    return float((y1 - y2).abs().max()) <= 1e-12 * scale


def _deepcopy_module(model: nn.Module) -> nn.Module:
    """deepcopy that tolerates non-leaf tensor attributes (e.g. the ``weight`` that
    torch.nn.utils.prune recomputes on each forward): they are copied detached."""
    memo: dict[int, Any] = {}
    for mod in model.modules():
        for value in vars(mod).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(model, memo)


def _fold_pruning(model: nn.Module) -> dict[str, torch.Tensor]:
    """Replace torch.nn.utils.prune re-parametrisations by plain parameters; return masks.

    The effective weight ``w = w_orig * mask`` becomes the parameter, so derivatives are taken
    w.r.t. the weights the network actually uses (gn-theory Sec. 7).
    """
    masks: dict[str, torch.Tensor] = {}
    for mod_name, module in model.named_modules():
        hooks = [h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]
        for hook in hooks:
            names = [h._tensor_name for h in hook._pruning_methods] if isinstance(hook, prune.PruningContainer) else [hook._tensor_name]
            for tname in dict.fromkeys(names):
                if not hasattr(module, tname + "_mask"):
                    continue
                mask = getattr(module, tname + "_mask").detach().clone().bool()
                orig = getattr(module, tname + "_orig")
                trainable = orig.requires_grad
                prune.remove(module, tname)
                getattr(module, tname).requires_grad_(trainable)
                full = f"{mod_name}.{tname}" if mod_name else tname
                masks[full] = mask
    return masks


def _select(names: list[str], tensors: dict[str, torch.Tensor], params: ParamSelector,
            aliases: dict[str, str]) -> list[str]:
    if params is None or params == "all":
        return names
    if params == "weights":
        return [n for n in names if n.rsplit(".", 1)[-1] == "weight" and tensors[n].ndim >= 2]
    if isinstance(params, str):
        raise GNAdvisorError(f"params must be None, 'all', 'weights', a list of parameter names or a callable; got {params!r}")
    if callable(params):
        return [n for n in names if params(aliases.get(n, n), tensors[n])]
    chosen = []
    for p in params:
        key = aliases.get(p, p)
        # accept the pruning alias 'layer.weight_orig' for 'layer.weight'
        if key.endswith("_orig") and key[: -len("_orig")] in tensors:
            key = key[: -len("_orig")]
        if key not in tensors:
            shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
            raise GNAdvisorError(f"params names {p!r}, which is not a trainable parameter of the model; available: {shown}")
        chosen.append(key)
    return [n for n in names if n in chosen]


def build_problem(
    model: nn.Module,
    X: Any,
    *,
    device: str | torch.device = "auto",
    coordinates: str = "kept",
    batchnorm: str = "train",
    params: ParamSelector = None,
    masks: MaskOption = "auto",
) -> Problem:
    """Check the inputs and build the :class:`Problem` (see :func:`gnadvisor.gn_spectrum`)."""
    if not isinstance(model, nn.Module):
        raise GNAdvisorError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_choice("coordinates", coordinates, ("kept", "all"))
    check_choice("batchnorm", batchnorm, ("train", "eval"))
    dev = resolve_device(device)

    if isinstance(X, np.ndarray):
        X = torch.from_numpy(X)
    if not isinstance(X, torch.Tensor):
        raise GNAdvisorError(f"X must be a torch.Tensor or numpy array of shape (n_samples, ...), got {type(X).__name__}")
    if X.ndim < 1 or X.shape[0] < 1:
        raise GNAdvisorError(f"X must have shape (n_samples, ...) with n_samples >= 1, got shape {tuple(X.shape)}")
    if X.is_floating_point():
        if not torch.isfinite(X).all():
            raise GNAdvisorError("X contains NaN or infinite values; clean or impute the data first")
        X = X.detach().to(device=dev, dtype=torch.float64)
    else:  # integer inputs (token ids for an embedding, say) stay integers
        X = X.detach().to(device=dev)

    try:
        m = _deepcopy_module(model)
    except Exception as exc:  # noqa: BLE001 - user code
        raise GNAdvisorError(f"the model could not be copied (copy.deepcopy failed: {_first_line(exc)})") from None
    trainable_before = {n for n, p in m.named_parameters() if p.requires_grad}
    # zeroed-and-frozen pruning (weights set to 0 and their gradients masked by a tensor hook)
    hooked_zeros = {
        n for n, p in model.named_parameters()
        if p.requires_grad and p.ndim >= 2 and (getattr(p, "_backward_hooks", None) or getattr(p, "_post_accumulate_grad_hooks", None))
        and bool((p == 0).any()) and not bool((p == 0).all())
    }
    prune_masks = _fold_pruning(m)
    aliases = {n: n[: -len("_orig")] for n in trainable_before if n.endswith("_orig")}

    m.eval()  # dropout off; batch norm is set explicitly below
    if batchnorm == "train":
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                # full-batch statistics, no running-stat updates (as torch.func's replace_all_batch_norm_modules_)
                mod.running_mean = None
                mod.running_var = None
                mod.num_batches_tracked = None
                mod.track_running_stats = False
    m.to(device=dev, dtype=torch.float64)

    for name, t in list(m.named_parameters()) + list(m.named_buffers()):
        if t.is_floating_point() and not torch.isfinite(t).all():
            kind = "parameter" if isinstance(t, nn.Parameter) else "buffer"
            raise GNAdvisorError(f"{kind} {name!r} contains NaN or infinite values; the GN matrix is undefined for such weights")

    tensors: dict[str, torch.Tensor] = {}
    all_names: list[str] = []
    for name, prm in m.named_parameters():
        trainable = prm.requires_grad
        prm.requires_grad_(False)
        if trainable:
            all_names.append(name)
            tensors[name] = prm.detach()
    if not all_names:
        raise GNAdvisorError("the model has no trainable parameters (all have requires_grad=False); nothing to differentiate")
    names = _select(all_names, tensors, params, {v: v for v in aliases.values()} | aliases)
    if not names:
        raise GNAdvisorError(f"the parameter selection params={params!r} matched no trainable parameter")

    mask_map: dict[str, torch.Tensor] = dict(prune_masks)
    if isinstance(masks, str):
        check_choice("masks", masks, ("auto", "zeros"))
        for n in names:
            if n in hooked_zeros and n not in mask_map:
                mask_map[n] = tensors[n] != 0
        if masks == "zeros":
            for n in names:
                t = tensors[n]
                if t.ndim >= 2 and n not in mask_map and bool((t == 0).any()):
                    mask_map[n] = t != 0
    elif isinstance(masks, Mapping):
        for key, mk in masks.items():
            n = aliases.get(key, key)
            if n not in tensors:
                raise GNAdvisorError(f"masks names {key!r}, which is not a trainable parameter of the model")
            mk = torch.as_tensor(mk).to(dev).bool()
            if tuple(mk.shape) != tuple(tensors[n].shape):
                raise GNAdvisorError(f"mask for {key!r} has shape {tuple(mk.shape)}, the parameter has {tuple(tensors[n].shape)}")
            mask_map[n] = mk
    else:
        raise GNAdvisorError(f"masks must be 'auto', 'zeros' or a dict name -> bool tensor, got {type(masks).__name__}")

    cols: dict[str, torch.Tensor | None] = {}
    for n in names:
        mk = mask_map.get(n)
        if coordinates == "kept" and mk is not None:
            cols[n] = mk.reshape(-1).to(dev).nonzero().reshape(-1)
        else:
            cols[n] = None

    problem = Problem(
        model=m, X=X, device=dev, names=names, values={n: tensors[n] for n in names}, cols=cols,
        n_samples=int(X.shape[0]), n_outputs=0, n_params=0, coordinates=coordinates,
        display_names={n: (n + "_orig" if n in prune_masks and n + "_orig" in trainable_before else n) for n in names},
    )
    problem.n_params = sum(problem.n_cols(n) for n in names)
    if problem.n_params == 0:
        raise GNAdvisorError("every selected coordinate is pruned; no kept coordinates to differentiate (try coordinates='all')")

    try:
        with torch.no_grad():
            out = problem.call({}, X)
    except Exception as exc:  # noqa: BLE001 - user code
        raise GNAdvisorError(
            f"the model could not be applied to inputs of shape {tuple(X.shape)} ({_first_line(exc)}); "
            "check the input shape the model expects"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise GNAdvisorError(f"the model must return a tensor of shape (n_samples, n_outputs), it returned {type(out).__name__}")
    if out.ndim < 1 or out.shape[0] != X.shape[0]:
        raise GNAdvisorError(
            f"the model output has shape {tuple(out.shape)}; its first dimension must be the {X.shape[0]} samples"
        )
    if not torch.isfinite(out).all():
        raise GNAdvisorError("the model output contains NaN or infinite values on these inputs; the GN matrix is undefined")
    problem.n_outputs = int(out[0].numel())
    if problem.n_outputs == 0:
        raise GNAdvisorError("the model output has no entries per sample")
    if prune_masks:
        problem.notes.append(f"pruning masks found on {len(prune_masks)} tensor(s); coordinates={coordinates}")
    return problem
