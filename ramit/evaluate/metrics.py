"""PSNR and SSIM with the conventions of the RAMiT test code (BasicSR/SwinIR lineage).

The official procedure (spec/ARCHITECTURE.md §7) is reproduced number for number:

* inputs are uint8 images; the border is cropped *before* any colour conversion;
* Y is BT.601 luma, ``16 + (65.481 R + 128.553 G + 24.966 B)`` with R, G, B in [0, 1], evaluated in
  float32 exactly like BasicSR's ``to_y_channel`` (the official scores are computed on those float32
  values, so we round to float32 too) and never rounded to an integer;
* a 1-channel image scored on Y (Set14's ``bridge`` in an RGB set) is replicated to 3 channels first,
  which is what reading it as RGB does in the official pipeline;
* PSNR is ``10 log10(255^2 / MSE)`` in float64 over all pixels and channels, ``inf`` when MSE = 0;
* SSIM uses an 11x11 Gaussian window (sigma 1.5), the *valid* region only (the official code filters
  with a border and then drops 5 pixels on each side, so the border mode never matters),
  C1 = (0.01*255)^2, C2 = (0.03*255)^2, per channel, averaged over channels.

Deliberate difference to BasicSR: BasicSR subtracts float32 Y planes and averages in float32; we
subtract and average in float64 (the spec asks for float64 PSNR). The two differ by ~1e-6 dB.

The filtering is a separable float64 convolution in torch (exactly the outer-product window OpenCV
uses, applied as two 1-D passes), which is several times faster than scikit-image and agrees with it
to ~1e-12 (tests/evaluate/test_metrics.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["psnr", "ssim", "to_y", "to_uint8", "prepare", "gaussian_kernel_1d"]

_Y_WEIGHTS_RGB = np.array([65.481, 128.553, 24.966], dtype=np.float32)
SSIM_WIN = 11
SSIM_SIGMA = 1.5
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


def _as_hwc(img) -> np.ndarray:
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu().numpy()
    a = np.asarray(img)
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
    # Same operation order as BasicSR: scale to [0,1] in float32, dot, +16, back to [0,1], x255.
    f = a.astype(np.float32) / np.float32(255.0)
    y = (f @ _Y_WEIGHTS_RGB + np.float32(16.0)) / np.float32(255.0)
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


def psnr(a, b, crop_border: int = 0, y_channel: bool = False) -> float:
    """PSNR in dB of two uint8 images (0-255 scale) with the official crop/Y conventions."""
    x, y = prepare(a, b, crop_border, y_channel)
    mse = float(np.mean((x - y) ** 2, dtype=np.float64))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(255.0 * 255.0 / mse)


def gaussian_kernel_1d(size: int = SSIM_WIN, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """OpenCV's ``getGaussianKernel(size, sigma)``: normalised exp(-x^2 / 2 sigma^2), float64."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


_KERNEL = gaussian_kernel_1d()


def _filter_valid(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of [N,1,H,W], valid region only (H-10, W-10)."""
    k = _KERNEL.to(x.device)
    x = torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1))
    return torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1))


def ssim(a, b, crop_border: int = 0, y_channel: bool = False) -> float:
    """Mean SSIM of two uint8 images (per channel, then averaged) with the official conventions."""
    x, y = prepare(a, b, crop_border, y_channel)
    h, w, _ = x.shape
    if h < SSIM_WIN or w < SSIM_WIN:
        raise ValueError(f"SSIM needs at least {SSIM_WIN}x{SSIM_WIN} pixels after cropping, got {h}x{w}")
    # Channels become the batch: one filter call per statistic for all channels at once.
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[:, None]
    ty = torch.from_numpy(np.ascontiguousarray(y.transpose(2, 0, 1)))[:, None]
    stats = _filter_valid(torch.cat([tx, ty, tx * tx, ty * ty, tx * ty], dim=0))
    n = tx.shape[0]
    mu1, mu2, sxx, syy, sxy = stats.split(n, dim=0)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1, s2, s12 = sxx - mu1_sq, syy - mu2_sq, sxy - mu12
    smap = ((2 * mu12 + C1) * (2 * s12 + C2)) / ((mu1_sq + mu2_sq + C1) * (s1 + s2 + C2))
    per_channel = smap.mean(dim=(1, 2, 3))
    return float(per_channel.mean())


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
