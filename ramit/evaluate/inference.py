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
* ``precision``: ``fp32`` is IEEE fp32: TF32 is switched off for cuBLAS matmuls *and* cuDNN
  convolutions while the model runs (cuDNN allows TF32 by default, and RAMiT's qkv/proj/FFN are 1x1
  convs, so a plain "fp32" GPU run was largely TF32) and restored afterwards. ``tf32`` allows it,
  ``bf16``/``fp16`` run under autocast (TF32 off for what autocast keeps in fp32). Reduced precisions
  run on CUDA only (CPU autocast is slow and not what anyone reports; TF32 is a GPU format).
  `describe_precision` is the record of what ran, for the result JSON; `precision_check` compares a
  reduced-precision score with fp32 and warns past 0.01 dB.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from ramit.errors import RamitError

PRECISIONS = {"fp32": None, "tf32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
TF32_ALLOWED = {"fp32": False, "tf32": True, "bf16": False, "fp16": False}
PRECISION_TOLERANCE_DB = 0.01  # the Set5 reference: a reduced precision that moves PSNR more is not "the same"


class PrecisionWarning(UserWarning):
    """A reduced-precision evaluation scores differently from fp32."""


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
    if precision != "fp32" and device.type != "cuda":
        raise RamitError(f"precision {precision} is only supported on CUDA (device is {device})")
    if tile is not None:
        if tile <= 0:
            raise RamitError(f"tile must be a positive number of input pixels, got {tile}")
        if not 0 <= overlap < tile:
            raise RamitError(f"tile_overlap must be in [0, tile), got {overlap} with tile {tile}")


# ------------------------------------------------------------------------------------ TF32 switches
def _new_tf32_api() -> bool:
    # torch >= 2.9 has per-backend `fp32_precision`; mixing it with the legacy `allow_tf32` makes the
    # legacy getters raise, so a torch that has it is driven through it alone.
    try:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision  # noqa: B018
        return True
    except (AttributeError, RuntimeError):
        return False


def _tf32_snapshot() -> tuple:
    if _new_tf32_api():
        return ("new", torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
    return ("legacy", torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)


def _tf32_apply(snapshot: tuple) -> None:
    api, matmul, conv = snapshot
    if api == "new":
        torch.backends.cuda.matmul.fp32_precision = matmul
        torch.backends.cudnn.conv.fp32_precision = conv
    else:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = conv


def _tf32_set(allowed: bool) -> None:
    if _new_tf32_api():
        mode = "tf32" if allowed else "ieee"
        _tf32_apply(("new", mode, mode))
    else:
        _tf32_apply(("legacy", allowed, allowed))


def tf32_state() -> dict:
    """Whether cuBLAS matmuls and cuDNN convolutions may use TF32 right now."""
    api, matmul, conv = _tf32_snapshot()
    if api == "new":  # "none" inherits from the generic setting, whose default is "ieee"
        try:
            generic = torch._C._get_fp32_precision_getter("generic", "all")
        except (AttributeError, RuntimeError):
            generic = "ieee"
        matmul = (generic if matmul == "none" else matmul) == "tf32"
        conv = (generic if conv == "none" else conv) == "tf32"
    return {"tf32_matmul": bool(matmul), "tf32_cudnn_conv": bool(conv)}


@contextlib.contextmanager
def precision_mode(precision: str, device: torch.device):
    """Run a block in `precision`; yields the record of what runs (see `describe_precision`).

    The TF32 switches are process-wide: they are set on entry and restored on exit, even on error."""
    if precision not in PRECISIONS:
        raise RamitError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    saved = _tf32_snapshot()
    try:
        _tf32_set(TF32_ALLOWED[precision])
        dtype = PRECISIONS[precision]
        record = {"precision": precision, "autocast_dtype": str(dtype).replace("torch.", "") if dtype else None,
                  **tf32_state()}
        amp = (torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None
               else contextlib.nullcontext())
        with amp:
            yield record
    finally:
        _tf32_apply(saved)


def describe_precision(precision: str, device: str | torch.device = "auto") -> dict:
    """What `restore(..., precision=precision)` runs with: precision, autocast dtype and the TF32
    switches. The evaluator writes it into the result JSON's `protocol`."""
    with precision_mode(precision, resolve_device(device)) as record:
        return dict(record)


def precision_check(name: str, psnr_reduced: float, psnr_fp32: float, precision: str,
                    tolerance_db: float = PRECISION_TOLERANCE_DB) -> dict:
    """Compare the PSNR of one image at a reduced precision with fp32; warn past `tolerance_db`."""
    delta = float(psnr_reduced) - float(psnr_fp32)
    ok = abs(delta) <= tolerance_db
    if not ok:
        warnings.warn(PrecisionWarning(
            f"{precision} changes the PSNR of {name!r} by {delta:+.4f} dB against fp32 (tolerance "
            f"{tolerance_db} dB): its scores are not comparable with fp32 ones"), stacklevel=2)
    return {"image": name, "precision": precision, "psnr": float(psnr_reduced), "psnr_fp32": float(psnr_fp32),
            "delta_db": delta, "tolerance_db": tolerance_db, "within_tolerance": ok}


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
    with precision_mode(precision, dev):
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
