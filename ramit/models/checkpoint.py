"""Loading official `.pth` checkpoints and our `.safetensors` strictly, with one clear error per problem."""

from __future__ import annotations

import os
import pickletools
import zipfile
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


# Globals a plain state_dict pickle may reference; anything else is an object the file wants to rebuild.
_STATE_DICT_GLOBALS = ("torch.", "collections.", "_codecs.", "numpy.", "builtins.", "__builtin__.", "copyreg.")

# What to use instead of a known pickled-module file: class name suffix -> hint.
_STATE_DICT_RELEASES = {
    "DnCNN": "for DnCNN sigma 25 use KAIR's state_dict release dncnn_25.pth "
             "(https://github.com/cszn/KAIR/raw/master/model_zoo/dncnn_25.pth; `ramit fetch-weights dncnn_25.pth`, "
             "model DnCNN-S, setting gdn_s25)",
}


def _pickle_streams(path: Path) -> list[bytes]:
    """The pickle byte streams of a torch file (zip: data.pkl; legacy: the file itself), unexecuted."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return [z.read(n) for n in z.namelist() if n.endswith("data.pkl")]
    return [path.read_bytes()]


def pickled_globals(path: str | os.PathLike) -> list[str]:
    """Every class/function a torch file's pickles name (`module.name`), read without unpickling.

    A legacy file is several pickles in a row (magic, protocol, sys info, the object) followed by raw
    storage bytes; the scan stops at the first stream that is not a pickle.
    """
    import io

    found: list[str] = []
    for data in _pickle_streams(Path(path)):
        stream = io.BytesIO(data)
        for _ in range(4):
            strings: list[str] = []
            try:
                for op, arg, _pos in pickletools.genops(stream):
                    if op.name == "GLOBAL":
                        found.append(arg.replace(" ", "."))
                    elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.append(f"{strings[-2]}.{strings[-1]}")
                    elif isinstance(arg, str):
                        strings.append(arg)
            except Exception:  # noqa: BLE001 - past the pickles: raw tensor bytes
                break
    return found


def _pickled_module_error(path: Path) -> CheckpointError | None:
    """The error for a file that pickles a whole nn.Module (or other object) instead of a state_dict."""
    try:
        names = pickled_globals(path)
    except OSError:
        return None
    modules = [n for n in names if n.startswith("torch.nn.")]
    if not modules:
        return None  # some other foreign object: the generic "not a readable checkpoint" says enough
    top = next((n for n in names if not n.startswith(_STATE_DICT_GLOBALS)), modules[0])
    hint = next((h for suffix, h in _STATE_DICT_RELEASES.items() if top.endswith(suffix)),
                "get the authors' state_dict release, or convert this file once where you trust it: "
                "torch.save(torch.load(f, weights_only=False).state_dict(), 'weights.pth')")
    return CheckpointError(
        f"{path}: a whole pickled nn.Module (class {top}), not a state_dict; loading it would run code "
        f"stored in the file, so it is refused (weights_only=True). Instead, {hint}")


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
        module_error = _pickled_module_error(path) if not path.suffix == ".safetensors" else None
        if module_error is not None:
            raise module_error from None
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
