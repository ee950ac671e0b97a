"""MATLAB `imresize(I, scale, 'bicubic')`, bit for bit.

The test LR images of the benchmark were made by MATLAB (RAMiT's `bicubic_kernel.m`, and DIV2K's
official bicubic LR), so the low-resolution inputs a reproduction feeds its models must match MATLAB
exactly, not merely "a bicubic". What MATLAB does, and what this module copies:

* output size `ceil(scale * in)` per dimension;
* Keys cubic kernel with a = -0.5; when shrinking, the kernel is stretched by 1/scale (antialiasing)
  and its weights normalised to sum to 1 per output pixel;
* out-of-range taps are mirrored (`[1..n, n..1]` repeated), and weight columns that are zero for
  every output pixel are dropped;
* the dimension with the smaller scale factor is resized first (rows first on a tie);
* for uint8 input the result of the first pass is rounded to uint8 (round half away from zero,
  saturating) before the second pass, and the final result is rounded the same way; every sum is
  float64. Floating input stays floating, with no rounding.

Each pass gathers the (at most 4/scale + 3) taps of every output row or column with numpy fancy
indexing; there is no per-pixel Python loop.
"""

from __future__ import annotations

import math

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def _contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's `contributions()` for 'bicubic': (out_len, taps) float64 weights and 0-based indices."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    # Output pixel x maps to u in input space (1-based, pixel centres), as MATLAB computes it.
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if antialias else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # Mirror the out-of-range taps the way MATLAB's `aux = [1:n, n:-1:1]` lookup does.
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    src = aux[np.mod(idx.astype(np.int64) - 1, aux.size)]
    keep = np.any(w != 0, axis=0)  # MATLAB drops tap columns that are zero for every output pixel
    return w[:, keep], src[:, keep]


def _round_uint8(x: np.ndarray) -> np.ndarray:
    # MATLAB's double -> uint8 conversion: round half away from zero, then saturate.
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def _resize_dim(img: np.ndarray, dim: int, out_len: int, scale: float) -> np.ndarray:
    w, src = _contributions(img.shape[dim], out_len, scale)
    x = np.moveaxis(np.asarray(img, dtype=np.float64), dim, 0)
    bshape = (out_len,) + (1,) * (x.ndim - 1)
    # One vectorised gather per tap, accumulated in tap order: the same float64 sums, in the same
    # order, as MATLAB's resize loop, which keeps .5 ties landing on the same side.
    out = w[:, 0].reshape(bshape) * x[src[:, 0]]
    for k in range(1, w.shape[1]):
        out += w[:, k].reshape(bshape) * x[src[:, k]]
    return np.moveaxis(out, 0, dim)


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """Resize an HxW or HxWxC image by `scale` exactly as MATLAB `imresize(img, scale, 'bicubic')`.

    uint8 in -> uint8 out (rounded after each of the two passes, as MATLAB does); float in -> float64
    out (no rounding, no clipping). `scale` may be below 1 (antialiased shrink) or above 1.
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize expects HxW or HxWxC, got shape {img.shape}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    is_uint8 = img.dtype == np.uint8
    if not (is_uint8 or np.issubdtype(img.dtype, np.floating)):
        raise ValueError(f"imresize handles uint8 or floating images, got {img.dtype}")
    out_shape = [int(math.ceil(scale * n)) for n in img.shape[:2]]
    # Both dimensions share one scale here, so MATLAB's stable sort of the scales keeps rows first.
    out = img
    for dim in (0, 1):
        out = _resize_dim(out, dim, out_shape[dim], scale)
        if is_uint8:
            out = _round_uint8(out)
    return out
