"""Load a user's model: ``FILE.py:NAME``, ``package.module:NAME``, or a saved module file.

Loading a Python file or a pickled module **runs its code**: only load models you trust.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import math
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._checks import GNAdvisorError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """``'{"width": 128}'`` -> dict; a one-line error for anything but a JSON object."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GNAdvisorError(f"--kwargs must be a JSON object such as '{{\"width\": 128}}': {exc.msg} at column {exc.colno}") from None
    if not isinstance(value, dict):
        raise GNAdvisorError(f"--kwargs must be a JSON object such as '{{\"width\": 128}}', got {type(value).__name__}")
    return value


def load_model(target: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Build or load the model named by ``target``.

    Parameters
    ----------
    target : str
        ``path/to/file.py:NAME`` (NAME a factory function or an ``nn.Module`` class),
        ``package.module:NAME`` for installed code, or a file saved with ``torch.save(module)``
        (``.pt``/``.pth``) or a ``torch.export`` archive (``.pt2``, exported in eval mode with a
        dynamic batch dimension). TorchScript archives are refused with an explanation: torch.func
        cannot differentiate them.
    kwargs : dict, optional
        Keyword arguments for the factory or class.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    GNAdvisorError
        Missing file or attribute, a factory that raises, or something that is not a module.
    """
    kwargs = kwargs or {}
    if ":" in target and not Path(target).exists():
        where, name = target.rsplit(":", 1)
        if not name.isidentifier():
            raise GNAdvisorError(f"model {target!r}: {name!r} after ':' is not a Python name")
        if where.endswith(".py") or "/" in where or "\\" in where:
            module = _import_file(Path(where))
        else:
            try:
                module = importlib.import_module(where)
            except ImportError as exc:
                raise GNAdvisorError(f"model {target!r}: cannot import module {where!r} ({_first_line(exc)})") from None
            except Exception as exc:  # noqa: BLE001 - user code
                raise GNAdvisorError(f"model {target!r}: importing {where!r} raised {_first_line(exc)}") from None
        if not hasattr(module, name):
            raise GNAdvisorError(f"model {target!r}: {where} has no attribute {name!r}" + _candidates(module))
        return _call(getattr(module, name), target, kwargs)
    path = Path(target)
    if not path.exists():
        raise GNAdvisorError(
            f"model {target!r}: no such file; give FILE.py:NAME, package.module:NAME, or a saved .pt/.pt2 file"
        )
    if path.suffix == ".py":
        raise GNAdvisorError(f"model {target!r}: a Python file needs the factory or class to use, as FILE.py:NAME"
                             + _candidates(_import_file(path)))
    if kwargs:
        raise GNAdvisorError("--kwargs applies to FILE.py:NAME or package.module:NAME, not to a saved model file")
    return _load_saved(path)


def _candidates(module) -> str:
    """``"; factories and module classes there: a, b"`` for an error message ('' when none)."""
    found = sorted(n for n, v in vars(module).items()
                   if not n.startswith("_") and (inspect.isfunction(v) or (inspect.isclass(v) and issubclass(v, nn.Module))))
    return f"; factories and module classes there: {', '.join(found)}" if found else ""


def _import_file(path: Path):
    if not path.is_file():
        raise GNAdvisorError(f"model file {str(path)!r} does not exist")
    key = f"{path.resolve()}:{path.stat().st_mtime_ns}"
    mod_name = f"gnadvisor_user_{abs(hash(key))}"
    if mod_name in sys.modules:  # the same file, unchanged: reuse it (classes stay identical, pickling works)
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise GNAdvisorError(f"model file {str(path)!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    parent = str(path.resolve().parent)
    sys.path.insert(0, parent)  # let the file import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - user code
        sys.modules.pop(mod_name, None)
        raise GNAdvisorError(f"model file {str(path)!r} raised while loading: {_first_line(exc)}") from None
    finally:
        if sys.path and sys.path[0] == parent:
            sys.path.pop(0)
    return module


def _call(obj: Any, target: str, kwargs: dict[str, Any]) -> nn.Module:
    if isinstance(obj, nn.Module):
        if kwargs:
            raise GNAdvisorError(f"model {target!r} is a module instance; --kwargs cannot be applied to it")
        return obj
    if not callable(obj):
        raise GNAdvisorError(f"model {target!r} is a {type(obj).__name__}, not a factory function or nn.Module class")
    try:
        model = obj(**kwargs)
    except TypeError as exc:
        raise GNAdvisorError(f"model {target!r} could not be called with kwargs {kwargs}: {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - user code
        raise GNAdvisorError(f"model {target!r} raised {_first_line(exc)} when called") from None
    if not isinstance(model, nn.Module):
        raise GNAdvisorError(f"model {target!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _load_saved(path: Path) -> nn.Module:
    try:
        if path.suffix == ".pt2":
            return torch.export.load(str(path)).module()
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
            if any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names):
                raise GNAdvisorError(
                    f"{str(path)!r} is a TorchScript archive; TorchScript modules cannot be differentiated with "
                    "torch.func: save the model with torch.save(model) or torch.export (.pt2, exported in eval mode)"
                )
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except GNAdvisorError:
        raise
    except Exception as exc:  # noqa: BLE001 - arbitrary files
        raise GNAdvisorError(f"model file {str(path)!r} could not be loaded: {_first_line(exc)}") from None
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, dict):
        raise GNAdvisorError(
            f"{str(path)!r} holds a state dict, not a model; give the model as FILE.py:NAME and the file as --weights"
        )
    raise GNAdvisorError(f"{str(path)!r} holds a {type(obj).__name__}, not a torch.nn.Module")


def load_state(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a checkpoint (state dict, or a dict with ``state_dict``/``model_state_dict``) into a copy."""
    import copy

    p = Path(path)
    if not p.is_file():
        raise GNAdvisorError(f"checkpoint {str(p)!r} does not exist")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise GNAdvisorError(f"checkpoint {str(p)!r} could not be read: {_first_line(exc)}") from None
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise GNAdvisorError(f"checkpoint {str(p)!r} is not a state dict of tensors")
    new = copy.deepcopy(model)
    try:
        new.load_state_dict(obj)
    except RuntimeError as exc:
        # torch lists the missing / unexpected keys and size mismatches on the following lines
        details = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
        detail = "; ".join(details)
        if len(detail) > 400:
            detail = detail[:400] + " ..."
        raise GNAdvisorError(f"checkpoint {str(p)!r} does not fit the model: {detail or _first_line(exc)}") from None
    return new


def infer_input_shape(model: nn.Module) -> tuple[int, ...] | None:
    """The per-sample input shape when the first parameterised layer makes it unambiguous.

    ``nn.Linear(in, ...)`` first -> ``(in,)``. Convolutions leave the spatial size open, so
    ``None`` is returned for them (give ``--input-shape``).
    """
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            return (mod.in_features,)
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)):
            return None
    return None


def conv_channels(model: nn.Module) -> int | None:
    """in_channels of the first convolution, when the model starts with one."""
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            return None
        if isinstance(mod, nn.Conv2d):
            return mod.in_channels
    return None


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``"1,28,28"`` -> (1, 28, 28)."""
    if not text:
        return None
    try:
        shape = tuple(int(t) for t in text.replace("x", ",").split(",") if t.strip())
    except ValueError:
        raise GNAdvisorError(f"--input-shape must be comma-separated positive integers such as 1,28,28, got {text!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise GNAdvisorError(f"--input-shape must be comma-separated positive integers such as 1,28,28, got {text!r}")
    return shape


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def data_for_model(model: nn.Module, source: str = "digits", *, n_samples: int | None = None,
                   input_shape: tuple[int, ...] | None = None, whiten: bool = False,
                   standardize: bool = False, seed: int = 0, default_samples: int = 500,
                   targets_file: str | Path | None = None):
    """Load data shaped for ``model``: the explicit ``input_shape``, else the first layer's.

    ``targets_file``: targets from their own file, as :func:`gnadvisor.load_data` (one row per
    sample of the source before subsampling, so the subsample keeps matching rows).

    ``n_samples=None`` takes ``default_samples`` of digits/synthetic data and every row of a file.
    Digits feed a model that starts with ``Conv2d(C, ...)`` as C x 8 x 8 images (the grey channel
    repeated). Anything still ambiguous is a one-line error asking for ``--input-shape``.
    """
    from .data import load_data

    if n_samples is None and source in ("digits", "synthetic"):
        n_samples = default_samples
    shape = input_shape or infer_input_shape(model)
    if shape is None:
        channels = conv_channels(model)
        if channels is not None and source == "digits":
            shape = (channels, 8, 8)
        elif source in ("digits", "synthetic"):
            raise GNAdvisorError(
                "cannot infer the model's input shape from its first layer; give --input-shape, e.g. 3,32,32"
            )
    kwargs: dict[str, Any] = {}
    if source == "synthetic" and shape is not None:
        kwargs["input_shape"] = shape
    elif shape is not None:
        kwargs["input_shape"] = shape
    if targets_file is not None:
        kwargs["targets_file"] = targets_file
    try:
        return load_data(source, n_samples=n_samples, whiten=whiten, standardize=standardize, seed=seed, **kwargs)
    except GNAdvisorError as exc:
        if input_shape is None and shape is not None and str(exc).startswith("input_shape must have"):
            # the shape came from the model, not from the user: say what does not fit
            raise GNAdvisorError(
                f"the model takes inputs of shape {','.join(map(str, shape))} (read from its first layer) but the "
                f"data {source!r} does not fit that shape ({exc}); give data of that width, or --input-shape if "
                "the first layer is not the input"
            ) from None
        raise
