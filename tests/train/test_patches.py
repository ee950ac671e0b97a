"""Training crops: aligned, augmented like the authors, blind noise, deterministic per (seed, epoch, index)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ramit.data.patches import PatchDataset
from ramit.errors import DataError


def make_pairs(root, scale=2, n=3, size=(40, 56), seed=0):
    """HQ images with LQ = HQ subsampled by `scale` (pixel (y*s, x*s)), so alignment is checkable."""
    rng = np.random.default_rng(seed)
    (root / "HQ").mkdir(parents=True)
    (root / "LQ").mkdir()
    for i in range(n):
        hq = rng.integers(0, 256, (size[0] * scale, size[1] * scale, 3), dtype=np.uint8)
        Image.fromarray(hq).save(root / "HQ" / f"im{i}.png")
        Image.fromarray(hq[::scale, ::scale]).save(root / "LQ" / f"im{i}.png")
    return root


def test_sr_crops_are_aligned_and_augmented(tmp_path):
    ds = PatchDataset([make_pairs(tmp_path / "d")], task="sr", scale=2, patch=16, seed=1, epoch_length=64)
    assert len(ds) == 64 and ds.n_images == 3
    orientations = set()
    for k in range(64):
        lq, hq = ds[k]
        assert lq.shape == (3, 16, 16) and hq.shape == (3, 32, 32) and lq.dtype == torch.float32
        # whatever flip/rotation was drawn, it was applied to both crops in the same way
        # (LQ = HQ[::2, ::2]; a flip or rotation moves the sampling phase to another pixel of the 2x2 cell)
        assert any(torch.equal(hq[:, dy::2, dx::2], lq) for dy in (0, 1) for dx in (0, 1))
        orientations.add(tuple(hq[0, 0, :2].tolist()))
    assert len(orientations) > 16


def test_augmentation_covers_flips_and_rotations(tmp_path):
    # one image with distinct corners: the corner that lands at the crop's top-left tells the transform
    d = tmp_path / "d"
    (d / "HQ").mkdir(parents=True)
    (d / "LQ").mkdir()
    img = np.zeros((8, 8, 3), np.uint8)
    img[0, 0], img[0, -1], img[-1, 0], img[-1, -1] = 10, 20, 30, 40
    Image.fromarray(img).save(d / "HQ" / "a.png")
    Image.fromarray(img).save(d / "LQ" / "a.png")
    ds = PatchDataset([d], task="lle", patch=8, seed=3, epoch_length=400)
    seen = {}
    for k in range(400):
        lq, hq = ds[k]
        t = lq[0].mul(255).round().int()
        key = (int(t[0, 0]), int(t[0, -1]))
        seen[key] = seen.get(key, 0) + 1
    assert len(seen) == 8  # 4 rotations x 2 flips, each roughly 1/8 of the time
    assert min(seen.values()) > 400 / 8 * 0.5


def test_deterministic_by_seed_epoch_index_and_stateless_keys(tmp_path):
    d = make_pairs(tmp_path / "d")
    a = PatchDataset([d], task="sr", scale=2, patch=16, seed=9, epoch_length=30)
    b = PatchDataset([d], task="sr", scale=2, patch=16, seed=9, epoch_length=30)
    b.set_epoch(2)
    for k in (0, 7, 29):
        assert all(torch.equal(x, y) for x, y in zip(a[(2, k, 16)], b[k]))  # same (seed, epoch, index)
    assert not torch.equal(a[(2, 0, 16)][0], a[(3, 0, 16)][0])  # new epoch, new crops
    c = PatchDataset([d], task="sr", scale=2, patch=16, seed=10, epoch_length=30)
    assert not torch.equal(a[(2, 0, 16)][0], c[(2, 0, 16)][0])
    assert a[(0, 0, 24)][0].shape == (3, 24, 24)  # patch size per progressive stage
    # every image appears epoch_length / n times per epoch
    assert np.bincount(a.order(5), minlength=3).tolist() == [10, 10, 10]


@pytest.mark.parametrize("task,chans", [("cdn", 3), ("gdn", 1)])
def test_blind_noise_unclipped(tmp_path, task, chans):
    d = tmp_path / "d"
    (d / "HQ").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / "HQ" / "a.png")
    ds = PatchDataset([d], task=task, patch=32, seed=0, epoch_length=200, sigma_range=(0, 50))
    sigmas = []
    for k in range(200):
        lq, hq = ds[k]
        assert lq.shape == hq.shape == (chans, 32, 32)
        sigmas.append(float((lq - hq).std()) * 255)
    sigmas = np.array(sigmas)
    assert sigmas.min() < 5 and sigmas.max() > 45 and 20 < sigmas.mean() < 30  # ~U[0, 50]
    lq, hq = ds[int(np.argmax(sigmas))]
    assert lq.min() < 0 or lq.max() > 1  # not clipped, as the authors


def test_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no HQ"):
        PatchDataset([tmp_path], task="sr", scale=2)
    d = make_pairs(tmp_path / "d", size=(8, 8))
    with pytest.raises(DataError, match="smaller than the 16px"):
        PatchDataset([d], task="sr", scale=2, patch=16)[0]
    with pytest.raises(DataError, match="HQ is"):
        PatchDataset([d], task="sr", scale=3)
