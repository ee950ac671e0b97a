"""Degraded test/validation sets as (LQ, HQ) pairs, read from a `ramit degrade` output folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np

from ramit.data.io import read_array, read_image
from ramit.errors import DataError


@dataclass
class Pair:
    name: str
    lq: np.ndarray  # float32 HxWxC in [0,1] units (noisy inputs may fall outside [0,1])
    hq: np.ndarray  # uint8 HxWxC scoring reference


def load_pairs(directory: str | os.PathLike) -> List[Pair]:
    """All pairs of `directory/{LQ,HQ}`, sorted by name. LQ `.png` -> /255 float32; `.npy` as stored."""
    d = Path(directory)
    lq_dir, hq_dir = d / "LQ", d / "HQ"
    for sub in (lq_dir, hq_dir):
        if not sub.is_dir():
            raise DataError(f"{d}: missing {sub.name}/ folder (is this a `ramit degrade` output?)")
    lq = {p.stem: p for p in lq_dir.iterdir() if p.suffix in (".png", ".npy")}
    hq = {p.stem: p for p in hq_dir.iterdir() if p.suffix == ".png"}
    if len(lq) != len([p for p in lq_dir.iterdir() if p.suffix in (".png", ".npy")]):
        raise DataError(f"{lq_dir}: the same name exists as both .png and .npy")
    if set(lq) != set(hq):
        only_lq, only_hq = sorted(set(lq) - set(hq)), sorted(set(hq) - set(lq))
        raise DataError(f"{d}: LQ and HQ names do not match (only in LQ: {only_lq[:5]}, only in HQ: {only_hq[:5]})")
    if not hq:
        raise DataError(f"{d}: no image pairs found")
    pairs = []
    for name in sorted(hq):
        p = lq[name]
        x = read_array(p) if p.suffix == ".npy" else read_image(p).astype(np.float32) / 255.0
        pairs.append(Pair(name=name, lq=x, hq=read_image(hq[name])))
    return pairs
