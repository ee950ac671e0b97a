"""Training crops: random aligned LQ/HQ patches with the authors' augmentation, deterministic by index.

Sample `k` of epoch `e` depends only on (seed, e, k): which image (the epoch's shuffled order), the
crop position, the flip/rotation and the blind noise are all drawn from a generator seeded with
those three numbers. Exact resume and DDP sharding therefore need no sampler or worker RNG state:
a step just asks for its indices (see `ramit.train.schedule.Schedule.local_indices`).

* SR / LLE / DR: `<dir>/LQ/<name>` with `<dir>/HQ/<name>`; the HQ crop is the LQ crop x scale.
* CDN / GDN: `<dir>/HQ/*` only; the input is HQ + N(0, sigma/255), sigma ~ U[sigma_range] per
  sample, not clipped (the authors' `dataset.py`). GDN uses one channel (cv2 RGB->gray if needed).
* Augmentation: horizontal flip with p = 0.5, then rotation by 0/90/180/270 degrees.

Storage. `ramit degrade --train` writes uint8 HxWxC `.npy` arrays; they are memory-mapped, never
decoded: building the dataset reads only the 128-byte headers, and a sample maps its image, copies the
crop out and unmaps it. Memory per process stays at one crop whatever the dataset size, and the pages
come from the OS page cache, which every rank and DataLoader worker on the machine shares (DIV2K x2 is
8.3 GB of arrays: read from disk once per machine, not decoded once per rank and per resume). Handles
are reopened per sample rather than kept (`max_open`, default 0): keeping them open makes a crop ~1.6x
faster (benchmarks/bench_train.py; still far more crops per second than a GPU step consumes either
way), but holds one file descriptor per image and lets every process's RSS grow to the whole dataset's
mapped pages (shared, but summed per process by RSS-based accounting such as SLURM's). The dataset
pickles without its mappings, so workers started by spawn/forkserver receive paths, not pixels.
Hand-made PNG (BMP, TIFF...) folders still work: they are decoded into memory at start, as before.
Both kinds give the same samples, bit for bit.
"""

from __future__ import annotations

import mmap
import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ramit.data.degrade import rgb2gray
from ramit.data.io import IMAGE_SUFFIXES, list_images, read_image
from ramit.errors import DataError

DENOISING = ("cdn", "gdn")
ARRAY_EXT = ".npy"


def _list_images(d: Path) -> list[Path]:
    return list(list_images(d, IMAGE_SUFFIXES + (ARRAY_EXT,)).values())


class _InMemory:
    """A decoded image, already in the model's channels."""

    def __init__(self, arr: np.ndarray):
        self.arr = arr
        self.shape = arr.shape

    def view(self, cache=None) -> np.ndarray:
        return self.arr

    def to_model(self, crop: np.ndarray) -> np.ndarray:
        return crop


class _Mapped:
    """A uint8 HxWxC `.npy` file; `view()` maps it (nothing is read until a crop is copied out)."""

    def __init__(self, path: Path, in_chans: int):
        self.path = path
        try:
            with open(path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read(fh)
                self.offset = fh.tell()
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a readable .npy array ({e})") from None
        if dtype != np.uint8 or fortran or len(shape) != 3 or shape[2] not in (1, 3):
            raise DataError(f"{path}: expected a uint8 HxWx1 or HxWx3 C-order array (as `ramit degrade "
                            f"--train` writes), got {dtype} {shape}{' Fortran-order' if fortran else ''}")
        if shape[2] != in_chans and not (in_chans == 1 and shape[2] == 3):
            raise DataError(f"{path}: {shape[2]} channels, the model takes {in_chans}")
        if path.stat().st_size < self.offset + int(np.prod(shape)):
            raise DataError(f"{path}: truncated ({path.stat().st_size} bytes for a {shape} array); "
                            f"rerun `ramit degrade --train`")
        self.shape = (shape[0], shape[1], in_chans)
        self.stored = tuple(shape)
        self.gray = shape[2] == 3 and in_chans == 1

    def view(self, cache: "OrderedDict | None" = None) -> np.ndarray:
        arr = cache.get(self.path) if cache is not None else None
        if arr is None:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            finally:
                os.close(fd)  # mmap holds its own duplicate; unmapped when the last view is dropped
            arr = np.frombuffer(m, np.uint8, count=int(np.prod(self.stored)), offset=self.offset).reshape(self.stored)
            if cache is not None:
                cache[self.path] = arr
        elif cache is not None:
            cache.move_to_end(self.path)
        return arr

    def to_model(self, crop: np.ndarray) -> np.ndarray:
        # rgb2gray is per pixel, so converting the crop equals cropping the converted image
        return rgb2gray(crop) if self.gray else crop


class PatchDataset(Dataset):
    """Map-style dataset of (lq, hq) float32 CHW tensors in [0, 1] units.

    `ds[k]` uses the current `set_epoch`/`set_patch`; `ds[(epoch, k, patch)]` is the stateless form
    the training loop uses, so DataLoader workers never need to be told about epochs or stages.
    `max_open` > 0 keeps that many mapped `.npy` files open per process (least recently used
    closed first); 0 maps and unmaps per sample (see the module doc).
    """

    def __init__(self, dirs: Sequence[str | os.PathLike], task: str, scale: int = 1, patch: int = 64,
                 seed: int = 9725, epoch_length: int | None = None,
                 sigma_range: Tuple[float, float] = (0.0, 50.0), in_chans: int | None = None,
                 max_open: int = 0):
        if task not in ("sr", "cdn", "gdn", "lle", "dr"):
            raise DataError(f"unknown task {task!r}")
        self.task, self.scale, self.patch, self.seed = task, int(scale), int(patch), int(seed)
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        self.in_chans = in_chans or (1 if task == "gdn" else 3)
        self.denoising = task in DENOISING
        self.max_open = int(max_open)
        self.hq: list = []
        self.lq: list = []
        self.names: list[str] = []
        for d in dirs:
            self._load_dir(Path(d))
        if not self.hq:
            raise DataError(f"no training images found in {', '.join(map(str, dirs))}")
        self.epoch = 0
        self.epoch_length = int(epoch_length or len(self.hq))
        self._perm_cache: tuple[int, np.ndarray] | None = None
        self._open: OrderedDict | None = None

    def _load_dir(self, d: Path) -> None:
        hq_dir, lq_dir = d / "HQ", d / "LQ"
        if not hq_dir.is_dir():
            raise DataError(f"{d}: no HQ/ folder (expected a `ramit degrade --train` directory)")
        files = _list_images(hq_dir)
        if not files:
            raise DataError(f"{hq_dir}: no images")
        if not self.denoising and not lq_dir.is_dir():
            raise DataError(f"{d}: no LQ/ folder, needed for task {self.task!r}")
        partners = {} if self.denoising else {f.stem: f for f in _list_images(lq_dir)}
        for f in files:
            hq = self._source(f)
            if not self.denoising:
                lqf = partners.get(f.stem)
                if lqf is None:
                    raise DataError(f"{lq_dir / f.name}: missing LQ partner of {f}")
                lq = self._source(lqf)
                want = (lq.shape[0] * self.scale, lq.shape[1] * self.scale)
                if hq.shape[:2] != want:
                    raise DataError(f"{f}: HQ is {hq.shape[1]}x{hq.shape[0]} but LQ x{self.scale} gives "
                                    f"{want[1]}x{want[0]}")
                self.lq.append(lq)
            self.hq.append(hq)
            self.names.append(f"{d.name}/{f.name}")

    def _source(self, path: Path):
        if path.suffix == ARRAY_EXT:
            return _Mapped(path, self.in_chans)
        img = read_image(path)
        if img.shape[2] == self.in_chans:
            return _InMemory(img)
        if self.in_chans == 1 and img.shape[2] == 3:
            return _InMemory(np.ascontiguousarray(rgb2gray(img)))
        raise DataError(f"{path}: {img.shape[2]} channels, the model takes {self.in_chans}")

    def __getstate__(self) -> dict:
        # open mappings stay in the process that made them (pickling one would copy the whole image)
        return {**self.__dict__, "_open": None}

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

    def _crop(self, src, y: int, x: int, size: int) -> np.ndarray:
        cache = None
        if self.max_open > 0:
            if self._open is None:
                self._open = OrderedDict()
            cache = self._open
        view = src.view(cache)
        crop = src.to_model(view[y:y + size, x:x + size])
        if cache is not None and len(cache) > self.max_open:
            cache.popitem(last=False)
        return crop

    def sample(self, epoch: int, k: int, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= k < self.epoch_length:
            raise IndexError(k)
        i = int(self.order(epoch)[k])
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch, k], spawn_key=(1,))))
        s = self.scale
        src = self.hq[i] if self.denoising else self.lq[i]
        h, w = src.shape[:2]
        if h < patch or w < patch:
            raise DataError(f"{self.names[i]}: input {w}x{h} is smaller than the {patch}px training patch")
        y = int(rng.integers(0, h - patch + 1))
        x = int(rng.integers(0, w - patch + 1))
        hq_c = self._crop(self.hq[i], y * s, x * s, patch * s)
        lq_c = hq_c if self.denoising else self._crop(src, y, x, patch)
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
