"""PSNR and SSIM with the conventions of the RAMiT test code (BasicSR/SwinIR lineage).

The official procedure (spec/ARCHITECTURE.md §7) is reproduced number for number:

* inputs are uint8 images; the border is cropped *before* any colour conversion;
* Y is BT.601 luma, ``16 + (65.481 R + 128.553 G + 24.966 B)`` with R, G, B in [0, 1], with the
  dtype path of BasicSR's ``to_y_channel`` (float64 arithmetic, result stored as float32; the official
  scores are computed on those float32 values, so we keep that rounding) and never rounded to an
  integer;
* a 1-channel image scored on Y (Set14's ``bridge`` in an RGB set) is replicated to 3 channels first,
  which is what reading it as RGB does in the official pipeline;
* PSNR is ``10 log10(255^2 / MSE)`` in float64 over all pixels and channels, ``inf`` when MSE = 0;
* SSIM uses an 11x11 Gaussian window (sigma 1.5), the *valid* region only (the official code filters
  with a border and then drops 5 pixels on each side, so the border mode never matters),
  C1 = (0.01*255)^2, C2 = (0.03*255)^2, per channel, averaged over channels.

Deliberate difference to BasicSR: BasicSR subtracts float32 Y planes and averages in float32; we
subtract and average in float64 (the spec asks for float64 PSNR). The two differ by ~1e-6 dB.

The filtering is a separable float64 filter (the outer-product window OpenCV uses, applied as two
1-D scipy passes, valid region kept); it agrees with scikit-image to ~1e-14
(tests/evaluate/test_metrics.py; speed: benchmarks/bench_metrics.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import correlate1d

__all__ = ["psnr", "ssim", "psnr_ssim", "to_y", "to_uint8", "prepare", "gaussian_kernel_1d"]

_Y_WEIGHTS_RGB = np.array([65.481, 128.553, 24.966], dtype=np.float64)
SSIM_WIN = 11
SSIM_SIGMA = 1.5
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


def _as_hwc(img) -> np.ndarray:
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu().numpy()
    a = np.asarray(img)
    if a.dtype != np.uint8:
        # The scores are defined on quantised 0-255 images; a float [0,1] image would score nonsense.
        raise ValueError(f"expected a uint8 image (quantise with to_uint8 first), got {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {a.shape}")
    return a


def to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 Y of an RGB HxWx3 image on the 0-255 scale, float32 as BasicSR computes it (HxWx1)."""
    a = _as_hwc(img)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.shape[2] != 3:
        raise ValueError(f"Y channel needs an RGB image, got {a.shape[2]} channels")
    # BasicSR's exact dtype path: [0,1] in float32; the dot with Python-float weights (and +16, /255)
    # happens in float64; the result is cast to float32 and scaled by 255 in float32.
    f = a.astype(np.float32) / np.float32(255.0)
    y = ((f.astype(np.float64) @ _Y_WEIGHTS_RGB + 16.0) / 255.0).astype(np.float32)
    return (y * np.float32(255.0))[..., None]


def prepare(a, b, crop_border: int = 0, y_channel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The two float64 HxWxC arrays that are actually compared (crop, then optional Y)."""
    a, b = _as_hwc(a), _as_hwc(b)
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"image sizes differ: {a.shape} vs {b.shape}")
    # A gray image next to an RGB one is read as RGB by the official loader: replicate it (on the Y
    # route `to_y` replicates, so only the RGB/gray routes need it here).
    if not y_channel and a.shape[2] != b.shape[2]:
        if a.shape[2] == 1:
            a = np.repeat(a, b.shape[2], axis=2)
        elif b.shape[2] == 1:
            b = np.repeat(b, a.shape[2], axis=2)
        else:
            raise ValueError(f"channel counts differ: {a.shape} vs {b.shape}")
    if crop_border:
        c = int(crop_border)
        a, b = a[c:-c, c:-c], b[c:-c, c:-c]
    if y_channel:
        a, b = to_y(a), to_y(b)
    return a.astype(np.float64), b.astype(np.float64)


def gaussian_kernel_1d(size: int = SSIM_WIN, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """OpenCV's ``getGaussianKernel(size, sigma)``: normalised exp(-x^2 / 2 sigma^2), float64."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


_KERNEL = gaussian_kernel_1d()


def _filter_valid(x: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter over the last two axes, valid region only (H-10, W-10).

    scipy's 1-D correlation, then the 5-pixel border dropped (its border mode never reaches the kept
    region). Measured on the BSD100 workload it beats both torch's conv2d (whose float64 1-channel CPU
    path is ~8x slower) and a numpy shift-and-add.
    """
    r = len(_KERNEL) // 2
    y = correlate1d(x, _KERNEL, axis=-2, mode="constant")[..., r:-r, :]
    return correlate1d(y, _KERNEL, axis=-1, mode="constant")[..., r:-r]


def _ssim_prepared(x: np.ndarray, y: np.ndarray) -> float:
    h, w, c = x.shape
    if h < SSIM_WIN or w < SSIM_WIN:
        raise ValueError(f"SSIM needs at least {SSIM_WIN}x{SSIM_WIN} pixels after cropping, got {h}x{w}")
    # Channels-first, and all five statistics of all channels filtered in one pass.
    tx, ty = x.transpose(2, 0, 1), y.transpose(2, 0, 1)
    stats = _filter_valid(np.concatenate([tx, ty, tx * tx, ty * ty, tx * ty], axis=0))
    mu1, mu2, sxx, syy, sxy = np.split(stats, 5, axis=0)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1, s2, s12 = sxx - mu1_sq, syy - mu2_sq, sxy - mu12
    smap = ((2 * mu12 + C1) * (2 * s12 + C2)) / ((mu1_sq + mu2_sq + C1) * (s1 + s2 + C2))
    return float(smap.reshape(c, -1).mean(axis=1).mean())


def _psnr_prepared(x: np.ndarray, y: np.ndarray) -> float:
    mse = float(np.mean((x - y) ** 2, dtype=np.float64))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(255.0 * 255.0 / mse)


def psnr(a, b, crop_border: int = 0, y_channel: bool = False) -> float:
    """PSNR in dB of two uint8 images (0-255 scale) with the official crop/Y conventions."""
    return _psnr_prepared(*prepare(a, b, crop_border, y_channel))


def ssim(a, b, crop_border: int = 0, y_channel: bool = False) -> float:
    """Mean SSIM of two uint8 images (per channel, then averaged) with the official conventions."""
    return _ssim_prepared(*prepare(a, b, crop_border, y_channel))


def psnr_ssim(a, b, crop_border: int = 0, y_channel: bool = False) -> tuple[float, float]:
    """Both scores, cropping and converting once."""
    x, y = prepare(a, b, crop_border, y_channel)
    return _psnr_prepared(x, y), _ssim_prepared(x, y)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """The official output quantisation: clamp(0,1) -> x255 -> round half to even -> uint8, as HxWxC.

    Accepts [C,H,W] or [1,C,H,W]; the arithmetic is done in float32 like the official numpy code.
    """
    t = t.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_uint8 takes one image, got batch {t.shape[0]}")
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"expected [C,H,W] or [1,C,H,W], got {tuple(t.shape)}")
    t = t.float().cpu().clamp(0, 1) * 255.0
    return torch.round(t).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
