"""Degraded inputs and scoring references, made the way the authors made them.

Test sets (`setting` = x2/x3/x4, cdn_s15/25/50, gdn_s15/25/50, lle, dr), per image:

* SR (PROTOCOL §2.1, `bicubic_kernel.m`): LR = `imresize(HR, 1/s)` cropped to floor(h/s) x floor(w/s);
  the HQ reference is the HR cropped top-left to LR*s. We resize the HR as stored in `data/raw`, which
  for Set14 comic/ppt3/zebra and all of BSD100 is one row or column short of the original (see
  shared/datasets/README.md): the last LR row/column can differ slightly from the authors'. A 1-channel
  HR (Set14 bridge) is replicated to RGB, since the SR models read RGB.
* CDN: HQ = the RGB image; LQ = float32 `HQ/255 + add_test_noise` (HxWxC .npy, not clipped).
* GDN: HQ = `rgb2gray(RGB)` (the authors' GDN "BSD68" is CBSD68 through this), or the image itself
  when it is already gray (Set12); LQ likewise a float32 .npy.
* LLE / DR: real paired sets are copied (decoded and re-written as PNG); the embedded sets get the
  seeded synthetic degradations `synthetic_low_light` / `synthetic_rain`.

Training sets (`train=True`, `setting` = model key x2/x3/x4/cdn/gdn/lle/dr): SR gives HQ (cropped to a
multiple of s) + LQ = imresize(HQ, 1/s); cdn/gdn give HQ only (gdn in gray, HxWx1, so the trainer
converts nothing; it draws the noise); lle/dr give pairs as above. They are written as uint8 HxWxC
`.npy` arrays, not PNG: the trainer memory-maps them instead of decoding every image into every rank's
memory at every start (`ramit.data.patches`). The price is disk: DIV2K x2 takes 8.3 GB instead of
~4 GB of PNG.

Output `out/HQ/<name>.png|.npy`, `out/LQ/<name>.png|.npy`, `out/manifest.json` (params + sha256 + size of
every file) is built in a temporary folder beside `out` and renamed onto it at the end, so an
interrupted run leaves no half-made set; a rerun with the same params and inputs finds `manifest.json`
matching and does nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ramit.data.imresize import imresize
from ramit import settings
from ramit.errors import DataError, RamitError

__all__ = ["imresize", "rgb2gray", "add_test_noise", "synthetic_low_light", "synthetic_rain", "write_train_array",
           "degrade_dataset"]

SYNTHETIC_SEED = 0
FORMAT_VERSION = 1
TRAIN_FORMAT_VERSION = 2  # 2: uint8 .npy arrays (1 was PNG); a set made as PNG is rebuilt once


# ------------------------------------------------------------------------------------ primitives
def rgb2gray(img: np.ndarray) -> np.ndarray:
    """OpenCV `cvtColor(img, COLOR_RGB2GRAY)` for uint8 RGB, bit for bit; returns HxWx1 uint8.

    OpenCV 4.x/5.x compute 8-bit gray in 15-bit fixed point: (9798 R + 19235 G + 3735 B + 2^14) >> 15
    (checked against opencv-python-headless 4.10 and 5.0 on all 2^24 colours). The often-quoted 14-bit
    (4899, 9617, 1868) variant is OpenCV 3's and differs on 0.26% of colours.
    """
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb2gray expects uint8 HxWx3, got {img.dtype} {img.shape}")
    r, g, b = (img[..., i].astype(np.int32) for i in range(3))
    y = (r * 9798 + g * 19235 + b * 3735 + (1 << 14)) >> 15
    return y.astype(np.uint8)[..., None]


def noise_field(shape_chw: Tuple[int, int, int], sigma: float) -> np.ndarray:
    """The official test noise field, float32 CxHxW: `torch.manual_seed(0); torch.randn(C,H,W) * sigma / 255`.

    A private generator seeded 0 draws exactly the numbers the default CPU generator gives after
    `torch.manual_seed(0)`, without disturbing the caller's global RNG state.
    """
    import torch

    gen = torch.Generator(device="cpu")
    gen.manual_seed(0)
    noise = torch.randn(tuple(int(s) for s in shape_chw), generator=gen, dtype=torch.float32) * sigma / 255
    return noise.numpy()


def add_test_noise(img: np.ndarray, sigma: float, layout: str = "hwc") -> np.ndarray:
    """Noisy float32 copy of a clean float image in [0,1] units, as the official test makes it.

    The noise is drawn in CxHxW order (as the authors' CHW tensors), whatever `layout` the image is in
    ("hwc", the pipeline's layout, or "chw"); it is added, not clipped and not quantised.
    """
    img = np.asarray(img, dtype=np.float32)
    if img.ndim != 3 or layout not in ("hwc", "chw"):
        raise ValueError(f"add_test_noise expects a 3-D image and layout 'hwc' or 'chw', got {img.shape}, {layout!r}")
    if layout == "hwc":
        h, w, c = img.shape
        return img + noise_field((c, h, w), sigma).transpose(1, 2, 0)
    return img + noise_field(img.shape, sigma)


def _rng(seed: int, name: str) -> np.random.Generator:
    # Per-image stream: results do not depend on which other images are in the set or their order.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def synthetic_low_light(img: np.ndarray, seed: int, name: str) -> np.ndarray:
    """Seeded low-light version of a uint8 RGB image (for the embedded sets only; LOL is captured).

    x in [0,1] -> alpha * x**gamma (gamma ~ U[1.5, 2.5], alpha ~ U[0.15, 0.35]) -> Poisson shot noise at
    a photon count per unit intensity ~ U[200, 600] plus Gaussian read noise (sigma ~ U[0.005, 0.015])
    -> clip, round to uint8.
    """
    rng = _rng(seed, name)
    gamma, alpha = rng.uniform(1.5, 2.5), rng.uniform(0.15, 0.35)
    peak, read = rng.uniform(200, 600), rng.uniform(0.005, 0.015)
    x = img.astype(np.float64) / 255.0
    signal = alpha * x ** gamma
    y = rng.poisson(signal * peak) / peak + rng.normal(0.0, read, size=x.shape)
    return np.clip(np.floor(y * 255.0 + 0.5), 0, 255).astype(np.uint8)


def synthetic_rain(img: np.ndarray, seed: int, name: str) -> np.ndarray:
    """Seeded rain streaks blended onto a uint8 RGB image (for the embedded sets only).

    Sparse uniform noise (density ~ U[0.002, 0.006]) is motion-blurred along a line of length
    ~ U{15..35} px at an angle ~ U[-30, 30] degrees from vertical (a sum of shifted copies, float64),
    scaled to a peak brightness ~ U[0.6, 0.9] and screen-blended: out = 1 - (1 - x)(1 - streaks).
    """
    rng = _rng(seed, name)
    h, w = img.shape[:2]
    density, length = rng.uniform(0.002, 0.006), int(rng.integers(15, 36))
    angle, strength = np.deg2rad(rng.uniform(-30, 30)), rng.uniform(0.6, 0.9)
    drops = (rng.random((h, w)) < density) * rng.uniform(0.5, 1.0, size=(h, w))
    t = np.arange(length) - (length - 1) / 2
    dy = np.round(t * np.cos(angle)).astype(int)
    dx = np.round(t * np.sin(angle)).astype(int)
    pad = length
    canvas = np.zeros((h + 2 * pad, w + 2 * pad))
    for oy, ox in zip(dy, dx):  # one vectorised shift-and-add per kernel tap
        canvas[pad + oy:pad + oy + h, pad + ox:pad + ox + w] += drops
    streaks = canvas[pad:pad + h, pad:pad + w]
    if streaks.max() > 0:
        streaks = strength * streaks / streaks.max()
    x = img.astype(np.float64) / 255.0
    y = 1 - (1 - x) * (1 - streaks[..., None])
    return np.clip(np.floor(y * 255.0 + 0.5), 0, 255).astype(np.uint8)


# -------------------------------------------------------------------------------------- settings
def _condition(setting: str, train: bool) -> Dict:
    """{task, scale, sigma} a set is made for: a setting key, or with `train` a model key (ramit.settings)."""
    try:
        if train:
            return {"task": settings.key_task(setting), "scale": settings.key_scale(setting), "sigma": None}
        st = settings.parse_setting(setting)
    except RamitError as e:
        raise DataError(str(e)) from None
    return {"task": st.task, "scale": st.scale if st.task == "sr" else None, "sigma": st.sigma}


def _to_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def _to_gray(img: np.ndarray) -> np.ndarray:
    return img if img.shape[2] == 1 else rgb2gray(img)


def _make_one(task, scale, sigma, train, synthetic, name, hq, lq):
    """-> (hq uint8, lq uint8 | float32 | None) for one image."""
    if task == "sr":
        hr = _to_rgb(hq)
        if train:
            h, w = hr.shape[:2]
            hr = hr[: h - h % scale, : w - w % scale]
            return hr, imresize(hr, 1 / scale)
        h, w = hr.shape[:2]
        lr = imresize(hr, 1 / scale)[: h // scale, : w // scale]
        return hr[: lr.shape[0] * scale, : lr.shape[1] * scale], lr
    if task in ("cdn", "gdn"):
        clean = _to_rgb(hq) if task == "cdn" else _to_gray(hq)
        if train:
            return clean, None
        return clean, add_test_noise(clean.astype(np.float32) / 255.0, sigma)
    # lle / dr
    if synthetic:
        clean = _to_rgb(hq)
        fn = synthetic_low_light if task == "lle" else synthetic_rain
        return clean, fn(clean, SYNTHETIC_SEED, name)
    if lq.shape != hq.shape:
        raise DataError(f"{name}: LQ {lq.shape} and HQ {hq.shape} differ in size")
    return hq, lq


def write_train_array(path: Path, arr: np.ndarray) -> None:
    """uint8 HxWxC `.npy`, atomically: the layout `ramit.data.patches` memory-maps."""
    from ramit.io import atomic_path

    arr = np.ascontiguousarray(arr)
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise DataError(f"{path}: training arrays are uint8 HxWxC, got {arr.dtype} {arr.shape}")
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)


def _manifest_matches(out: Path, params: Dict) -> bool:
    try:
        data = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if data.get("params") != params:
        return False
    for rel, rec in data.get("files", {}).items():
        try:
            if (out / rel).stat().st_size != rec["bytes"]:
                return False
        except OSError:
            return False
    return True


def _check_use(ds, dataset: str, task: str, train: bool) -> None:
    if task not in ds.tasks:
        raise DataError(f"dataset {dataset} is not used for task {task} (registry tasks: {ds.tasks})")
    if train and ds.role != "train":
        raise DataError(f"dataset {dataset} is a test set; --train needs a training set")
    if not train and ds.role != "test":
        raise DataError(f"dataset {dataset} is a training set; drop --train only for test sets")


def _sources(ds, dataset: str, ds_dir: Path, installed: dict, task: str, synthetic: bool):
    """(HQ files, LQ files, {relpath: sha256} of every input); every input must be a verified file."""
    from ramit.data.io import list_images

    hq_files = list_images(ds_dir / ds.layout["hq"])
    lq_files: Dict[str, Path] = {}
    if task in ("lle", "dr") and not synthetic:
        if not ds.paired:
            raise DataError(f"dataset {dataset} has no LQ folder for task {task}")
        lq_files = list_images(ds_dir / ds.layout["lq"])
        if set(lq_files) != set(hq_files):
            raise DataError(f"dataset {dataset}: LQ/HQ names differ: {sorted(set(lq_files) ^ set(hq_files))[:5]}")
    inputs = {}
    for f in list(hq_files.values()) + list(lq_files.values()):
        rel = f.relative_to(ds_dir).as_posix()
        if rel not in installed:
            raise DataError(f"{f} is not part of the verified install of {dataset}; rerun `ramit fetch {dataset}`")
        inputs[rel] = installed[rel]["sha256"]
    return hq_files, lq_files, inputs


def _write_set(tmp: Path, hq_files, lq_files, p: Dict, train: bool, synthetic: bool) -> None:
    """Every degraded pair into `tmp/HQ`, `tmp/LQ`, and `tmp/manifest.json` (sha256 + size of each)."""
    from ramit.data.io import read_image, write_array, write_png
    from ramit.io import sha256_file, write_json

    for name, hq_path in hq_files.items():
        hq = read_image(hq_path)
        lq = read_image(lq_files[name]) if name in lq_files else None
        hq_out, lq_out = _make_one(p["task"], p["scale"], p["sigma"], train, synthetic, name, hq, lq)
        for sub, arr in (("HQ", hq_out), ("LQ", lq_out)):
            if arr is None:
                continue
            if train:
                write_train_array(tmp / sub / f"{name}.npy", arr)
            elif arr.dtype == np.uint8:
                write_png(tmp / sub / f"{name}.png", arr)
            else:
                write_array(tmp / sub / f"{name}.npy", arr)
    files = {f.relative_to(tmp).as_posix(): {"sha256": sha256_file(f), "bytes": f.stat().st_size}
             for f in sorted(tmp.rglob("*")) if f.is_file()}
    write_json(tmp / "manifest.json", {"params": p, "files": files})


def _publish(tmp: Path, out: Path) -> None:
    """Rename the finished temp folder onto `out` (an older `out` is moved away first)."""
    if out.exists():
        old = out.parent / f".{out.name}.tmp-old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def degrade_dataset(
    setting: str,
    dataset: str,
    data_dir: str | os.PathLike = "data/raw",
    out: str | os.PathLike = None,
    train: bool = False,
    registry: str | os.PathLike = "params/datasets.yaml",
    manual_dir: str | os.PathLike | None = None,
) -> Path:
    """Write `out/HQ`, `out/LQ` and `out/manifest.json` for one (setting, dataset); see module doc.

    The dataset is read where `ramit fetch` verified it: the download cache `data_dir` or, for manual
    sets, `manual_dir` (default data/manual)."""
    from ramit.data.fetch import installed_dataset
    from ramit.data.registry import load_registry

    if out is None:
        raise DataError("degrade_dataset: `out` is required")
    out = Path(out)
    reg = load_registry(registry)
    ds = reg.get(dataset)
    p = _condition(setting, train)
    _check_use(ds, dataset, p["task"], train)
    ds_dir, installed = installed_dataset(dataset, downloads=data_dir, manual=manual_dir, reg=reg)
    synthetic = ds.kind == "embedded" and p["task"] in ("lle", "dr")
    hq_files, lq_files, inputs = _sources(ds, dataset, ds_dir, installed, p["task"], synthetic)
    params = {"format": TRAIN_FORMAT_VERSION if train else FORMAT_VERSION, "setting": setting, "dataset": dataset,
              "train": bool(train), **p, "synthetic_seed": SYNTHETIC_SEED if synthetic else None,
              "noise": "torch.manual_seed(0); randn(C,H,W)*sigma/255, unclipped" if p["sigma"] else None,
              "inputs": inputs}
    if _manifest_matches(out, params):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):  # leftovers of an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _write_set(tmp, hq_files, lq_files, params, train, synthetic)
        _publish(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
