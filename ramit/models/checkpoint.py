"""Loading official `.pth` checkpoints and our `.safetensors` strictly, with one clear error per problem."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ramit.errors import CheckpointError
from ramit.io import atomic_path

# Containers other training frameworks wrap a state_dict in.
_WRAPPER_KEYS = ("model", "state_dict", "params")


def describe_model(model: nn.Module) -> str:
    name = getattr(model, "model_name", None) or type(model).__name__
    task = getattr(model, "task", None)
    scale = getattr(model, "scale", None)
    if task is None:
        return name
    return f"{name} {task} x{scale}" if task == "sr" else f"{name} {task}"


def _shape(t) -> str:
    return "[" + ",".join(str(s) for s in t.shape) + "]"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, unwrapped from common containers and DDP's `module.` prefix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, text file, foreign pickle: all "not a checkpoint" to the user
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner  # e.g. {'params': state_dict, 'iter': 3}: the extra entries are training state
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: not a state_dict (found {type(obj).__name__})")
    bad = next((k for k, v in obj.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise CheckpointError(f"{path}: entry {bad!r} is a {type(obj[bad]).__name__}, not a tensor")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def check_state_dict(sd: Mapping[str, torch.Tensor], model: nn.Module, source: str) -> None:
    """Raise CheckpointError at the first key (in model order) that is missing or has another shape."""
    target = model.state_dict()
    what = f"{source} does not fit {describe_model(model)}"
    for k, v in target.items():
        if k not in sd:
            raise CheckpointError(f"{what}: key {k!r} (shape {_shape(v)}) is missing from the file")
        if sd[k].shape != v.shape:
            raise CheckpointError(f"{what}: key {k!r} has shape {_shape(sd[k])} in the file, {_shape(v)} in the model")
    extra = [k for k in sd if k not in target]
    if extra:
        raise CheckpointError(f"{what}: key {extra[0]!r} (shape {_shape(sd[extra[0]])}) is not in the model"
                              + (f" (+{len(extra) - 1} more unexpected keys)" if len(extra) > 1 else ""))


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load an official `.pth` (any container) or our `.safetensors` into `model` with strict=True."""
    sd = read_state_dict(path)
    check_state_dict(sd, model, str(path))
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit {describe_model(model)}: {e}") from None
    return model


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write the state_dict (official key names) as safetensors, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", **(metadata or {})})
    return path
