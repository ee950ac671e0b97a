"""Running a restoration model on one test image: whole image (the authors' way), tiles, self-ensemble.

The official test runs every image whole, fp32, without test-time augmentation, and the project's
models pad the input themselves (symmetric pad to a multiple of 32, then crop), so the default path
here is just ``model(lq)``. The other paths exist for users with big images or small GPUs and are
recorded in the result JSON's ``protocol`` so a number made with them is never mistaken for the
official one:

* ``tile``: SwinIR/KAIR-style overlapping tiles whose outputs are averaged where they overlap. RAMiT's
  channel self-attention and H-RAMi are *global* (they pool over the whole feature map), so a tiled
  output is not the whole-image output, even far from tile seams; see tests/evaluate/test_inference.py
  for the measured gap.
* ``self_ensemble``: the x8 geometric ensemble (4 rotations x flip), averaged after undoing each
  transform.
* ``precision``: bf16/fp16 autocast, on CUDA only (CPU autocast is slow and not what anyone reports).
"""

from __future__ import annotations

import contextlib

import torch

from ramit.errors import RamitError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RamitError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def check_options(precision: str, device: torch.device, tile: int | None, overlap: int) -> None:
    """Raise RamitError for option combinations `restore` cannot honour (call before heavy work)."""
    if precision not in PRECISIONS:
        raise RamitError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if PRECISIONS[precision] is not None and device.type != "cuda":
        raise RamitError(f"precision {precision} is only supported on CUDA (device is {device})")
    if tile is not None:
        if tile <= 0:
            raise RamitError(f"tile must be a positive number of input pixels, got {tile}")
        if not 0 <= overlap < tile:
            raise RamitError(f"tile_overlap must be in [0, tile), got {overlap} with tile {tile}")


def _autocast(precision: str, device: torch.device):
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def _model_scale(model) -> int:
    return int(getattr(model, "scale", 1) or 1)


def _forward_tiled(model, x: torch.Tensor, tile: int | None, overlap: int) -> torch.Tensor:
    if tile is None:
        return model(x).float()
    b, c, h, w = x.shape
    s = _model_scale(model)
    th, tw = min(tile, h), min(tile, w)
    stride = tile - overlap

    def starts(n: int, t: int) -> list[int]:
        # Regular grid plus a last tile flush with the border, so every pixel is covered.
        idx = list(range(0, n - t, stride)) + [n - t]
        return sorted(set(idx))

    out = None
    weight = None
    for i in starts(h, th):
        for j in starts(w, tw):
            y = model(x[..., i : i + th, j : j + tw]).float()
            if out is None:
                out = y.new_zeros(b, y.shape[1], h * s, w * s)
                weight = y.new_zeros(1, 1, h * s, w * s)
            out[..., i * s : (i + th) * s, j * s : (j + tw) * s] += y
            weight[..., i * s : (i + th) * s, j * s : (j + tw) * s] += 1
    return out / weight


# The 8 dihedral transforms as (forward, inverse) on [...,H,W] tensors.
def _dihedral(k: int):
    rot, flip = k % 4, k >= 4

    def fwd(t):
        t = t.flip(-1) if flip else t
        return torch.rot90(t, rot, dims=(-2, -1))

    def inv(t):
        t = torch.rot90(t, -rot, dims=(-2, -1))
        return t.flip(-1) if flip else t

    return fwd, inv


@torch.no_grad()
def restore(
    model: torch.nn.Module,
    lq: torch.Tensor,
    *,
    tile: int | None = None,
    tile_overlap: int = 32,
    self_ensemble: bool = False,
    precision: str = "fp32",
    device: str | torch.device = "auto",
) -> torch.Tensor:
    """Restore one image. ``lq``: float [C,h,w] or [1,C,h,w] in [0,1] units (noise may leave that
    range). Returns the unclamped float32 result [1,C,h*s,w*s] on the CPU."""
    dev = resolve_device(device)
    check_options(precision, dev, tile, tile_overlap)
    if lq.dim() == 3:
        lq = lq[None]
    if lq.dim() != 4 or lq.shape[0] != 1:
        raise RamitError(f"restore takes one image [C,h,w] or [1,C,h,w], got {tuple(lq.shape)}")
    x = lq.to(dev, torch.float32)
    model.to(dev).eval()
    with _autocast(precision, dev):
        if not self_ensemble:
            y = _forward_tiled(model, x, tile, tile_overlap)
        else:
            y = None
            for k in range(8):
                fwd, inv = _dihedral(k)
                yk = inv(_forward_tiled(model, fwd(x), tile, tile_overlap))
                y = yk if y is None else y + yk
            y = y / 8
    return y.float().cpu()
