"""Visual crops for the report when full restored images are not kept (`evaluate.save_images: false`).

Every model's crop of an image must show the same region, so the box is a pure function of the HQ
reference alone: the `size` x `size` window with the most gradient energy (edges and texture, where
restorations differ), its corner on the `scale` grid so that the matching LQ region is exactly
`box / scale`. Ties go to the top-left-most window, so the box never depends on anything but the
reference pixels.

    box = crop_box(hq, CROP_SIZE, scale)
    save_crops(out_dir, name, restored, hq, CROP_SIZE, scale)   # <out_dir>/<name>.png + <name>.json

The report reads `<name>.json` for the box and crops the ground truth and the degraded input itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

CROP_SIZE = 128    # HQ pixels: large enough to judge texture, small enough to keep every image's crop
CROP_IMAGES = 4    # images per test set that get a crop (the first ones by name)


def pick_images(names, n: int = CROP_IMAGES) -> list[str]:
    """The images of a test set that get a crop: the first `n` by name, so every model picks the same."""
    return sorted(names)[:n]


def _energy(hq: np.ndarray) -> np.ndarray:
    g = np.asarray(hq, dtype=np.float64)
    g = g.mean(axis=2) if g.ndim == 3 else g
    e = np.zeros_like(g)
    e[:, 1:] += np.abs(np.diff(g, axis=1))
    e[1:, :] += np.abs(np.diff(g, axis=0))
    return e


def crop_box(hq: np.ndarray, size: int, scale: int = 1) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the most textured window of `hq` (HxW or HxWxC).

    The window is `size` square, shrunk to the image when the image is smaller, and rounded down to a
    multiple of `scale`; top and left are multiples of `scale` too, so the LQ crop of an SR input is
    `(top // scale, left // scale, h // scale, w // scale)` with no rounding.
    """
    if size <= 0 or scale <= 0:
        raise ValueError(f"crop_box: size and scale must be positive, got size={size}, scale={scale}")
    H, W = hq.shape[:2]
    h = max(scale, (min(size, H) // scale) * scale)
    w = max(scale, (min(size, W) // scale) * scale)
    if h > H or w > W:
        raise ValueError(f"crop_box: image {H}x{W} is smaller than one {scale}x{scale} LQ pixel")
    ii = np.pad(_energy(hq).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    stride = max(scale, (max(h, w) // 8 // scale) * scale)
    tops = np.arange(0, H - h + 1, stride)
    lefts = np.arange(0, W - w + 1, stride)
    y, x = tops[:, None], lefts[None, :]
    sums = ii[y + h, x + w] - ii[y, x + w] - ii[y + h, x] + ii[y, x]
    i, j = np.unravel_index(int(np.argmax(sums)), sums.shape)  # argmax: first maximum, row-major
    return int(tops[i]), int(lefts[j]), int(h), int(w)


def cut(img: np.ndarray, box: tuple[int, int, int, int], scale: int = 1) -> np.ndarray:
    """The region `box` (HQ coordinates) of `img`; `scale` > 1 cuts the matching region of an LQ image."""
    top, left, h, w = (int(v) // scale for v in box)
    return img[top:top + h, left:left + w]


def save_crops(out_dir: str | os.PathLike, name: str, restored: np.ndarray, hq: np.ndarray,
               size: int = CROP_SIZE, scale: int = 1) -> Path:
    """Write the crop of `restored` (uint8, same shape as `hq`) as `<out_dir>/<name>.png` and the box
    as `<out_dir>/<name>.json`; return the PNG path."""
    from ramit.data.io import write_png
    from ramit.errors import DataError
    from ramit.io import write_json

    restored, hq = np.asarray(restored), np.asarray(hq)
    if restored.shape[:2] != hq.shape[:2]:
        raise DataError(f"{name}: restored image is {restored.shape[0]}x{restored.shape[1]} but the reference "
                        f"is {hq.shape[0]}x{hq.shape[1]}; crops need both on the same grid")
    box = crop_box(hq, size, scale)
    out = Path(out_dir)
    png = out / f"{name}.png"
    write_png(png, np.ascontiguousarray(cut(restored, box)))
    write_json(out / f"{name}.json", {"name": name, "box": list(box), "size": size, "scale": scale,
                                      "hq_shape": list(hq.shape[:2]), "rule": "crop_box: max gradient energy"})
    return png


def read_box(meta: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """The box recorded by `save_crops`, or None when the sidecar is absent or unreadable."""
    try:
        box = json.loads(Path(meta).read_text(encoding="utf-8"))["box"]
        top, left, h, w = (int(v) for v in box)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return top, left, h, w
