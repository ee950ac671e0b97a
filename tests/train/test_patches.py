"""Training crops: aligned, augmented like the authors, blind noise, deterministic per (seed, epoch, index)."""

from __future__ import annotations

import os
from pathlib import Path

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


# ------------------------------------------------------------- memory-mapped .npy training sets
ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "params" / "datasets.yaml"


@pytest.fixture(scope="module")
def embedded_raw(tmp_path_factory):
    from ramit.data.fetch import fetch_datasets

    d = tmp_path_factory.mktemp("raw")
    fetch_datasets(["EmbeddedTrain"], data_dir=d, registry=REGISTRY)
    return d


def as_png_folder(npy_dir: Path, png_dir: Path) -> Path:
    """The same pixels as a hand-made PNG folder (what PatchDataset decoded into memory before)."""
    for f in npy_dir.rglob("*.npy"):
        out = png_dir / f.relative_to(npy_dir).with_suffix(".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        a = np.load(f)
        Image.fromarray(a[..., 0] if a.shape[2] == 1 else a).save(out)
    return png_dir


def assert_same_samples(a: PatchDataset, b: PatchDataset, keys) -> None:
    for key in keys:
        (la, ha), (lb, hb) = a[key], b[key]
        assert torch.equal(la, lb) and torch.equal(ha, hb), key


@pytest.mark.parametrize("key,task,scale,chans", [
    ("x2", "sr", 2, 3), ("x3", "sr", 3, 3), ("x4", "sr", 4, 3), ("cdn", "cdn", 1, 3), ("gdn", "gdn", 1, 1),
    ("lle", "lle", 1, 3), ("dr", "dr", 1, 3), ("cdn", "gdn", 1, 3)])  # last: gray model on an RGB set
def test_memory_mapped_arrays_give_the_png_samples(embedded_raw, tmp_path, key, task, scale, chans):
    from ramit.data.degrade import degrade_dataset

    npy = degrade_dataset(key, "EmbeddedTrain", data_dir=embedded_raw, out=tmp_path / "npy", train=True,
                          registry=REGISTRY)
    stored = [np.load(f, mmap_mode="r") for f in sorted((npy / "HQ").iterdir())]
    assert len(stored) == 4 and all(a.dtype == np.uint8 and a.shape[2] == chans for a in stored)
    assert not list(npy.rglob("*.png"))
    png = as_png_folder(npy, tmp_path / "png")
    kw = dict(task=task, scale=scale, patch=24, seed=5, epoch_length=40)
    mapped, decoded = PatchDataset([npy], **kw), PatchDataset([png], **kw)
    assert all(type(s).__name__ == "_Mapped" for s in mapped.hq + mapped.lq)
    assert all(type(s).__name__ == "_InMemory" for s in decoded.hq + decoded.lq)
    assert [Path(n).stem for n in mapped.names] == [Path(n).stem for n in decoded.names]
    keys = [(e, k, p) for e in (0, 3) for k in range(0, 40, 3) for p in (24, 48)]
    assert_same_samples(mapped, decoded, keys)
    lq, hq = mapped[(0, 0, 48)]
    assert lq.shape == (1 if task == "gdn" else 3, 48, 48) and hq.shape[1:] == (48 * scale, 48 * scale)
    cached = PatchDataset([npy], **kw, max_open=2)  # LRU of open mappings: same samples
    assert_same_samples(cached, decoded, keys)
    assert len(cached._open) == 2


def test_mapped_dataset_pickles_without_its_mappings_and_keeps_no_files_open(embedded_raw, tmp_path):
    import pickle

    from ramit.data.degrade import degrade_dataset

    npy = degrade_dataset("x2", "EmbeddedTrain", data_dir=embedded_raw, out=tmp_path / "x2", train=True,
                          registry=REGISTRY)
    fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    before = fds()
    ds = PatchDataset([npy], task="sr", scale=2, patch=32, epoch_length=16, max_open=8)
    for k in range(16):
        ds[k]
    assert fds() - before == len(ds._open) == 8  # 4 HQ + 4 LQ mappings, one descriptor each
    blob = pickle.dumps(ds)
    assert len(blob) < 100_000  # headers and paths, not the images
    assert_same_samples(pickle.loads(blob), ds, range(16))
    ds._open = None
    reopen = PatchDataset([npy], task="sr", scale=2, patch=32, epoch_length=16)
    for k in range(16):
        reopen[k]
    assert fds() == before  # default: mapped and unmapped per sample


def test_array_errors_name_the_file(tmp_path):
    d = tmp_path / "d"
    (d / "HQ").mkdir(parents=True)
    np.save(d / "HQ" / "a.npy", np.zeros((40, 40, 3), np.float32))
    with pytest.raises(DataError, match=r"a\.npy: expected a uint8 HxWx1 or HxWx3"):
        PatchDataset([d], task="cdn")
    np.save(d / "HQ" / "a.npy", np.zeros((40, 40, 1), np.uint8))
    with pytest.raises(DataError, match="1 channels, the model takes 3"):
        PatchDataset([d], task="cdn")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(d / "HQ" / "a.png")
    with pytest.raises(DataError, match="a.npy and a.png are the same image twice"):
        PatchDataset([d], task="gdn")
    (d / "HQ" / "a.png").unlink()
    full = (d / "HQ" / "a.npy").read_bytes()
    (d / "HQ" / "a.npy").write_bytes(full[:-10])
    with pytest.raises(DataError, match=r"a\.npy: truncated"):
        PatchDataset([d], task="gdn")
    (d / "HQ" / "a.npy").write_bytes(full)
    (d / "HQ" / "b.npy").write_bytes(b"not an array")
    with pytest.raises(DataError, match=r"b\.npy: not a readable \.npy array"):
        PatchDataset([d], task="gdn")
