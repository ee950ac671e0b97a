"""Image and array files as the rest of the pipeline sees them: uint8 HxWxC images, float32 arrays.

Everything downstream assumes 8-bit data (the authors' loaders divide by 255), so inputs that are not
8-bit are refused with a clear error instead of being silently truncated or re-scaled.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ramit.errors import DataError
from ramit.io import atomic_path

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")


def list_images(d: str | os.PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> dict[str, Path]:
    """{stem: path} of the image files in folder `d`, sorted; two files with one stem are an error."""
    d = Path(d)
    if not d.is_dir():
        raise DataError(f"{d}: folder not found")
    out: dict[str, Path] = {}
    for p in sorted(d.iterdir()):
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."):
            if p.stem in out:
                raise DataError(f"{d}: {out[p.stem].name} and {p.name} are the same image twice; keep one")
            out[p.stem] = p
    return out


# PIL modes that are 8 bits per channel and map to 1 or 3 channels without any colour decision.
_GRAY_MODES = {"L"}
_RGB_MODES = {"RGB"}


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG/BMP/TIFF (anything Pillow opens) as uint8 HxWxC: gray -> HxWx1, colour -> HxWx3.

    16-bit, float, palette, alpha and bilevel images raise DataError: converting them would need a
    choice (scaling, background colour, palette) that the benchmark never makes.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in _GRAY_MODES or mode in _RGB_MODES:
                arr = np.asarray(im.convert(mode))  # forces the decode while the file is open
            else:
                raise DataError(
                    f"{path}: unsupported image mode {mode!r} (only 8-bit gray 'L' and 8-bit 'RGB' are "
                    f"accepted; 16-bit, float, palette, alpha and 1-bit images must be converted explicitly)"
                )
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except DataError:
        raise
    except Exception as e:  # Pillow raises several unrelated types for corrupt/unknown files
        raise DataError(f"{path}: cannot read image: {e}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr, dtype=np.uint8)


def write_png(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write a uint8 HxW, HxWx1 or HxWx3 array as PNG, atomically (temp file + rename)."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise DataError(f"{path}: write_png needs uint8 data, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise DataError(f"{path}: write_png needs HxW, HxWx1 or HxWx3, got shape {arr.shape}")
    with atomic_path(path, suffix=".png") as tmp:
        # compress_level fixed so that the same pixels always give the same bytes (manifest sha256s)
        Image.fromarray(np.ascontiguousarray(arr)).save(tmp, format="PNG", compress_level=6)


def read_array(path: str | os.PathLike) -> np.ndarray:
    """Read a `.npy` array written by `write_array` (float32), refusing pickled objects."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: array file not found") from None
    except ValueError as e:
        raise DataError(f"{path}: not a plain .npy array: {e}") from None
    if arr.dtype != np.float32:
        raise DataError(f"{path}: expected float32, got {arr.dtype}")
    return arr


def write_array(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write `arr` as float32 `.npy`, atomically."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
