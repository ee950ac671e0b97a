"""Training crops: random aligned LQ/HQ patches with the authors' augmentation, deterministic by index.

Sample `k` of epoch `e` depends only on (seed, e, k): which image (the epoch's shuffled order), the
crop position, the flip/rotation and the blind noise are all drawn from a generator seeded with
those three numbers. Exact resume and DDP sharding therefore need no sampler or worker RNG state:
a step just asks for its indices (see `ramit.train.schedule.Schedule.local_indices`).

* SR / LLE / DR: `<dir>/LQ/<name>.png` with `<dir>/HQ/<name>.png`; the HQ crop is the LQ crop x scale.
* CDN / GDN: `<dir>/HQ/*.png` only; the input is HQ + N(0, sigma/255), sigma ~ U[sigma_range] per
  sample, not clipped (the authors' `dataset.py`). GDN uses one channel (cv2 RGB->gray if needed).
* Augmentation: horizontal flip with p = 0.5, then rotation by 0/90/180/270 degrees.

Images are cached in memory as uint8 (DIV2K x2: ~2 GB for HQ+LQ), shared copy-on-write by workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ramit.data.io import read_image
from ramit.errors import DataError

DENOISING = ("cdn", "gdn")
IMAGE_EXTS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")


def _rgb2gray(img: np.ndarray) -> np.ndarray:
    try:  # the project's one definition, once the data engineer's module provides it
        from ramit.data.degrade import rgb2gray

        return rgb2gray(img)
    except ImportError:  # cv2.cvtColor(RGB2GRAY): fixed-point BT.601 weights, rounded
        x = img.astype(np.uint32)
        y = (x[..., 0] * 4899 + x[..., 1] * 9617 + x[..., 2] * 1868 + 8192) >> 14
        return y.astype(np.uint8)[..., None]


def _list_images(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))


class PatchDataset(Dataset):
    """Map-style dataset of (lq, hq) float32 CHW tensors in [0, 1] units.

    `ds[k]` uses the current `set_epoch`/`set_patch`; `ds[(epoch, k, patch)]` is the stateless form
    the training loop uses, so DataLoader workers never need to be told about epochs or stages.
    """

    def __init__(self, dirs: Sequence[str | os.PathLike], task: str, scale: int = 1, patch: int = 64,
                 seed: int = 9725, epoch_length: int | None = None,
                 sigma_range: Tuple[float, float] = (0.0, 50.0), in_chans: int | None = None):
        if task not in ("sr", "cdn", "gdn", "lle", "dr"):
            raise DataError(f"unknown task {task!r}")
        self.task, self.scale, self.patch, self.seed = task, int(scale), int(patch), int(seed)
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        self.in_chans = in_chans or (1 if task == "gdn" else 3)
        self.denoising = task in DENOISING
        self.hq: list[np.ndarray] = []
        self.lq: list[np.ndarray] = []
        self.names: list[str] = []
        for d in dirs:
            self._load_dir(Path(d))
        if not self.hq:
            raise DataError(f"no training images found in {', '.join(map(str, dirs))}")
        self.epoch = 0
        self.epoch_length = int(epoch_length or len(self.hq))
        self._perm_cache: tuple[int, np.ndarray] | None = None

    def _load_dir(self, d: Path) -> None:
        hq_dir, lq_dir = d / "HQ", d / "LQ"
        if not hq_dir.is_dir():
            raise DataError(f"{d}: no HQ/ folder (expected a `ramit degrade --train` directory)")
        files = _list_images(hq_dir)
        if not files:
            raise DataError(f"{hq_dir}: no images")
        if not self.denoising and not lq_dir.is_dir():
            raise DataError(f"{d}: no LQ/ folder, needed for task {self.task!r}")
        for f in files:
            hq = read_image(f)
            hq = self._channels(hq, f)
            if self.denoising:
                lq = None
            else:
                lqf = lq_dir / f.name
                if not lqf.is_file():
                    raise DataError(f"{lqf}: missing LQ partner of {f}")
                lq = self._channels(read_image(lqf), lqf)
                want = (lq.shape[0] * self.scale, lq.shape[1] * self.scale)
                if hq.shape[:2] != want:
                    raise DataError(f"{f}: HQ is {hq.shape[1]}x{hq.shape[0]} but LQ x{self.scale} gives "
                                    f"{want[1]}x{want[0]}")
                self.lq.append(lq)
            self.hq.append(hq)
            self.names.append(f"{d.name}/{f.name}")

    def _channels(self, img: np.ndarray, path: Path) -> np.ndarray:
        if img.shape[2] == self.in_chans:
            return img
        if self.in_chans == 1 and img.shape[2] == 3:
            return np.ascontiguousarray(_rgb2gray(img))
        raise DataError(f"{path}: {img.shape[2]} channels, the model takes {self.in_chans}")

    @property
    def n_images(self) -> int:
        return len(self.hq)

    def __len__(self) -> int:
        return self.epoch_length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_patch(self, patch: int) -> None:
        self.patch = int(patch)

    def order(self, epoch: int) -> np.ndarray:
        """Image index of every sample of `epoch`: each image `epoch_length / n` times, shuffled."""
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch], spawn_key=(0,))))
            self._perm_cache = (epoch, rng.permutation(self.epoch_length) % self.n_images)
        return self._perm_cache[1]

    def __getitem__(self, key) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(key, tuple):
            epoch, k, patch = key
        else:
            epoch, k, patch = self.epoch, key, self.patch
        return self.sample(int(epoch), int(k), int(patch))

    def sample(self, epoch: int, k: int, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= k < self.epoch_length:
            raise IndexError(k)
        i = int(self.order(epoch)[k])
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch, k], spawn_key=(1,))))
        s = self.scale
        hq = self.hq[i]
        src = hq if self.denoising else self.lq[i]
        h, w = src.shape[:2]
        if h < patch or w < patch:
            raise DataError(f"{self.names[i]}: input {w}x{h} is smaller than the {patch}px training patch")
        y = int(rng.integers(0, h - patch + 1))
        x = int(rng.integers(0, w - patch + 1))
        hq_c = hq[y * s:(y + patch) * s, x * s:(x + patch) * s]
        lq_c = hq_c if self.denoising else src[y:y + patch, x:x + patch]
        flip = rng.random() < 0.5
        rot = int(rng.integers(0, 4))
        lq_c, hq_c = (self._augment(a, flip, rot) for a in (lq_c, hq_c))
        # numpy only: small torch ops in a worker fight the trainer for the intra-op thread pool
        hq_f = hq_c.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
        if self.denoising:
            sigma = rng.uniform(*self.sigma_range)
            lq_f = hq_f + rng.standard_normal(hq_f.shape, dtype=np.float32) * np.float32(sigma / 255.0)  # not clipped
        else:
            lq_f = lq_c.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
        return torch.from_numpy(np.ascontiguousarray(lq_f)), torch.from_numpy(np.ascontiguousarray(hq_f))

    @staticmethod
    def _augment(a: np.ndarray, flip: bool, rot: int) -> np.ndarray:
        if flip:
            a = a[:, ::-1]
        if rot:
            a = np.rot90(a, rot, axes=(0, 1))
        return np.ascontiguousarray(a)


class StepBatches:
    """Batch sampler for a DataLoader: step by step from `start` to the schedule's end, this rank's
    `(epoch, k, patch)` keys. Resuming at step n is just `StepBatches(schedule, n, rank)`."""

    def __init__(self, schedule, start: int, rank: int = 0):
        self.schedule, self.start, self.rank = schedule, start, rank

    def __iter__(self) -> Iterable[list[tuple[int, int, int]]]:
        for it in range(self.start, self.schedule.total_iters):
            p = self.schedule.at(it)
            yield [(p.epoch, k, p.patch) for k in self.schedule.local_indices(p, self.rank)]

    def __len__(self) -> int:
        return max(0, self.schedule.total_iters - self.start)
