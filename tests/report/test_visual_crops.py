"""The crop rule (ramit.evaluate.crops) and the report's visual strip built from crops instead of full images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from report_tree import HQ, _png, _scene, build, result
from ramit.errors import DataError
from ramit.evaluate.crops import crop_box, cut, pick_images, read_box, save_crops

MAGENTA = np.array([255, 0, 255], np.uint8)


def _textured(h=100, w=120, at=(60, 80), side=30, seed=0) -> np.ndarray:
    img = np.full((h, w, 3), 128, np.uint8)
    y, x = at
    img[y:y + side, x:x + side] = np.random.default_rng(seed).integers(0, 256, (side, side, 3))
    return img


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_crop_box_finds_the_texture_on_the_scale_grid(scale):
    img = _textured()
    top, left, h, w = crop_box(img, 40, scale)
    assert top % scale == 0 and left % scale == 0
    assert h == w == (40 // scale) * scale
    # the whole 30x30 textured block lies inside the 40x40 window (up to the stride of the search)
    assert top <= 60 + 10 and top + h >= 60 + 30 - 10 and left <= 80 + 10 and left + w >= 80 + 30 - 10
    assert crop_box(img.copy(), 40, scale) == (top, left, h, w)         # a function of the pixels alone
    lq = img[::scale, ::scale]
    assert cut(lq, (top, left, h, w), scale).shape[:2] == (h // scale, w // scale)


def test_crop_box_on_small_gray_images_and_bad_arguments():
    gray = _textured(30, 50, at=(5, 10), side=20)[..., :1]
    assert crop_box(gray, 128, 4) == (0, 0, 28, 48)   # shrunk to the image, on the x4 grid
    flat = np.zeros((64, 64, 3), np.uint8)
    assert crop_box(flat, 32, 2) == (0, 0, 32, 32)   # ties: the top-left-most window
    with pytest.raises(ValueError, match="size and scale must be positive"):
        crop_box(flat, 0, 2)
    assert pick_images(["c", "a", "b", "d", "e"], 3) == ["a", "b", "c"]


def test_save_crops_writes_the_restored_region_and_its_box(tmp_path):
    hq = _textured()
    restored = np.clip(hq.astype(int) + 7, 0, 255).astype(np.uint8)
    png = save_crops(tmp_path / "Set5_crops", "img", restored, hq, size=40, scale=2)
    box = read_box(tmp_path / "Set5_crops/img.json")
    assert box == crop_box(hq, 40, 2)
    with Image.open(png) as im:
        np.testing.assert_array_equal(np.asarray(im), cut(restored, box))
    meta = json.loads((tmp_path / "Set5_crops/img.json").read_text())
    assert meta["scale"] == 2 and meta["hq_shape"] == [100, 120]
    with pytest.raises(DataError, match="restored image is 50x60 but the reference is 100x120"):
        save_crops(tmp_path / "x", "img", restored[::2, ::2], hq, size=40, scale=2)


def _strip_tree(root: Path):
    gt = _scene(0)
    _png(root / "data/degraded/x2/Set5/HQ/img.png", gt)
    _png(root / "data/degraded/x2/Set5/LQ/img.png", gt[::2, ::2])
    for m in ("RAMiT", "SwinIR-light", "Bicubic"):
        result(root, "trained", m, "x2", "Set5", 30.0, 0.9, per_image={"img": 30.0})
    return gt


def _colours(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).reshape(-1, 3)


def test_visual_strip_from_crops_and_full_images(tmp_path):
    gt = _strip_tree(tmp_path)
    # RAMiT kept only crops, painted magenta so the strip's use of them is visible in its pixels
    save_crops(tmp_path / "results/trained/RAMiT/x2/Set5_crops", "img", np.broadcast_to(MAGENTA, gt.shape), gt,
               size=48, scale=2)
    save_crops(tmp_path / "results/trained/SwinIR-light/x2/Set5_crops", "img", gt, gt, size=48, scale=2)
    _png(tmp_path / "results/trained/Bicubic/x2/Set5_images/img.png", gt)  # full image: cut with the same box
    build(tmp_path, params=None, references=None)
    fig = tmp_path / "reports/figures/visual_trained_sr_x2.png"
    assert fig.stat().st_size > 10_000
    assert (np.abs(_colours(fig).astype(int) - MAGENTA).sum(1) < 10).sum() > 1000
    text = (tmp_path / "reports/README.md").read_text()
    assert "Set5/img at x2, from saved crops+images" in text
    assert "no saved output" not in text


def test_strip_uses_the_recorded_box_and_drops_crops_of_another_region(tmp_path):
    gt = _strip_tree(tmp_path)
    save_crops(tmp_path / "results/trained/RAMiT/x2/Set5_crops", "img", gt, gt, size=48, scale=2)
    other = tmp_path / "results/trained/SwinIR-light/x2/Set5_crops"
    save_crops(other, "img", np.broadcast_to(MAGENTA, gt.shape), gt, size=48, scale=2)
    meta = json.loads((other / "img.json").read_text())
    meta["box"] = [0, 0, 48, 48] if meta["box"][:2] != [0, 0] else [HQ - 48, HQ - 48, 48, 48]
    (other / "img.json").write_text(json.dumps(meta))
    build(tmp_path, params=None, references=None)
    fig = tmp_path / "reports/figures/visual_trained_sr_x2.png"
    assert (np.abs(_colours(fig).astype(int) - MAGENTA).sum(1) < 10).sum() == 0
    text = (tmp_path / "reports/README.md").read_text()
    assert "no saved output (or crop of this region) for Bicubic, SwinIR-light" in text
