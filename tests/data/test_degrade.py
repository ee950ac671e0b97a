"""Embedded sets, degrade_dataset output layout/manifest/rerun, load_pairs, image I/O."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ramit.data.degrade import add_test_noise, degrade_dataset, imresize, rgb2gray
from ramit.data.fetch import fetch_datasets
from ramit.data.io import read_array, read_image, write_array, write_png
from ramit.data.pairs import load_pairs
from ramit.data.registry import load_registry
from ramit.errors import DataError
from ramit.io import sha256_file

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "params" / "datasets.yaml"


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    d = tmp_path_factory.mktemp("raw")
    t0 = time.perf_counter()
    fetch_datasets(["EmbeddedTrain", "EmbeddedTest"], data_dir=d, registry=REGISTRY)
    assert time.perf_counter() - t0 < 10
    return d


def test_embedded_sets_disjoint_and_sized(raw):
    reg = load_registry(REGISTRY)
    train_src = {e.source for e in reg.get("EmbeddedTrain").embedded}
    test_src = {e.source for e in reg.get("EmbeddedTest").embedded}
    assert train_src.isdisjoint(test_src)
    test = [read_image(p) for p in sorted((raw / "EmbeddedTest" / "HR").glob("*.png"))]
    assert len(test) == 4 and all(t.shape == (96, 96, 3) for t in test)
    train = [read_image(p) for p in sorted((raw / "EmbeddedTrain" / "HR").glob("*.png"))]
    assert len(train) == 4 and all(min(t.shape[:2]) >= 256 for t in train)  # room for x4 patches


def test_sr_test_recipe(raw, tmp_path):
    out = degrade_dataset("x3", "EmbeddedTest", data_dir=raw, out=tmp_path / "x3", registry=REGISTRY)
    pairs = load_pairs(out)
    assert [p.name for p in pairs] == ["camera", "chelsea_fur", "chelsea_head", "color"]
    hr = read_image(raw / "EmbeddedTest" / "HR" / "color.png")
    lr = read_image(out / "LQ" / "color.png")
    assert np.array_equal(lr, imresize(hr, 1 / 3)) and lr.shape == (32, 32, 3)
    assert pairs[-1].hq.shape == (96, 96, 3) and pairs[-1].lq.dtype == np.float32
    assert np.array_equal(pairs[-1].lq, lr.astype(np.float32) / 255)


def test_sr_crop_of_non_divisible_hr():
    from ramit.data.degrade import _make_one

    hr = np.random.default_rng(0).integers(0, 256, (50, 37, 3), dtype=np.uint8)
    hq, lq = _make_one("sr", 4, None, False, False, "odd", hr, None)
    assert lq.shape == (12, 9, 3) and hq.shape == (48, 36, 3)
    assert np.array_equal(lq, imresize(hr, 0.25)[:12, :9])  # resize the full HR, then crop the LR
    assert np.array_equal(hq, hr[:48, :36])


def test_denoising_and_gray(raw, tmp_path):
    out = degrade_dataset("gdn_s25", "EmbeddedTest", data_dir=raw, out=tmp_path / "g", registry=REGISTRY)
    hq = read_image(out / "HQ" / "color.png")
    rgb = read_image(raw / "EmbeddedTest" / "HR" / "color.png")
    assert hq.shape == (96, 96, 1) and np.array_equal(hq, rgb2gray(rgb))
    lq = read_array(out / "LQ" / "color.npy")
    assert np.array_equal(lq, add_test_noise(hq.astype(np.float32) / 255, 25))
    cdn = degrade_dataset("cdn_s50", "EmbeddedTest", data_dir=raw, out=tmp_path / "c", registry=REGISTRY)
    p = load_pairs(cdn)[0]
    assert p.lq.shape == (96, 96, 3) and p.lq.min() < 0  # unclipped noisy float input


def test_manifest_and_rerun_is_a_no_op(raw, tmp_path):
    out = tmp_path / "lle"
    degrade_dataset("lle", "EmbeddedTest", data_dir=raw, out=out, registry=REGISTRY)
    man = json.loads((out / "manifest.json").read_text())
    assert man["params"]["task"] == "lle" and man["params"]["synthetic_seed"] == 0
    for rel, rec in man["files"].items():
        assert sha256_file(out / rel) == rec["sha256"]
    assert sorted(man["files"]) == sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    degrade_dataset("lle", "EmbeddedTest", data_dir=raw, out=out, registry=REGISTRY)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes  # nothing rewritten
    # a fresh build elsewhere is byte-identical (seeded synthetic degradation)
    again = degrade_dataset("lle", "EmbeddedTest", data_dir=raw, out=tmp_path / "lle2", registry=REGISTRY)
    assert json.loads((again / "manifest.json").read_text())["files"] == man["files"]
    # a damaged output is rebuilt, and leftovers of an interrupted run are cleared
    (out / "LQ" / "color.png").write_bytes(b"x")
    (tmp_path / ".lle.tmp-dead").mkdir()
    degrade_dataset("lle", "EmbeddedTest", data_dir=raw, out=out, registry=REGISTRY)
    assert sha256_file(out / "LQ" / "color.png") == man["files"]["LQ/color.png"]["sha256"]
    assert not list(tmp_path.glob(".lle.tmp-*"))


def test_train_mode(raw, tmp_path):
    # training sets are uint8 HxWxC .npy arrays (memory-mapped by the trainer), test sets stay PNG
    sr = degrade_dataset("x3", "EmbeddedTrain", data_dir=raw, out=tmp_path / "x3", train=True, registry=REGISTRY)
    hq, lq = np.load(sr / "HQ" / "coffee.npy"), np.load(sr / "LQ" / "coffee.npy")
    assert hq.dtype == lq.dtype == np.uint8
    assert hq.shape == (399, 600, 3) and lq.shape == (133, 200, 3) and np.array_equal(lq, imresize(hq, 1 / 3))
    src = read_image(raw / "EmbeddedTrain" / "HR" / "coffee.png")
    assert np.array_equal(hq, src[:399])
    man = json.loads((sr / "manifest.json").read_text())
    assert man["params"]["format"] == 2 and man["params"]["train"] is True
    assert sorted(man["files"]) == sorted(p.relative_to(sr).as_posix() for p in sr.rglob("*.npy"))
    assert all(sha256_file(sr / rel) == rec["sha256"] for rel, rec in man["files"].items())
    assert not list(sr.rglob("*.png")) and not list(tmp_path.glob(".x3.tmp-*"))
    gdn = degrade_dataset("gdn", "EmbeddedTrain", data_dir=raw, out=tmp_path / "gdn", train=True, registry=REGISTRY)
    g = np.load(gdn / "HQ" / "coffee.npy")
    assert not (gdn / "LQ").exists() and g.shape == (400, 600, 1) and np.array_equal(g, rgb2gray(src))
    dr = degrade_dataset("dr", "EmbeddedTrain", data_dir=raw, out=tmp_path / "dr", train=True, registry=REGISTRY)
    a, b = np.load(dr / "LQ" / "ihc.npy"), np.load(dr / "HQ" / "ihc.npy")
    assert a.shape == b.shape and (a >= b).all() and (a != b).mean() > 0.01  # screen-blended streaks
    with pytest.raises(DataError, match="test set"):
        degrade_dataset("x2", "EmbeddedTest", data_dir=raw, out=tmp_path / "bad", train=True, registry=REGISTRY)
    with pytest.raises(DataError, match="unknown setting"):
        degrade_dataset("x5", "EmbeddedTest", data_dir=raw, out=tmp_path / "bad", registry=REGISTRY)


def test_degrade_needs_a_fetched_dataset(tmp_path):
    with pytest.raises(DataError, match="ramit fetch Set5"):
        degrade_dataset("x2", "Set5", data_dir=tmp_path, out=tmp_path / "o", registry=REGISTRY)


def test_load_pairs_errors(tmp_path):
    write_png(tmp_path / "HQ" / "a.png", np.zeros((4, 4, 3), np.uint8))
    write_array(tmp_path / "LQ" / "b.npy", np.zeros((4, 4, 3)))
    with pytest.raises(DataError, match="only in LQ: \\['b'\\], only in HQ: \\['a'\\]"):
        load_pairs(tmp_path)
    with pytest.raises(DataError, match="missing LQ"):
        load_pairs(tmp_path / "HQ")


def test_read_image_modes(tmp_path):
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(tmp_path / "g.bmp")
    assert read_image(tmp_path / "g.bmp").shape == (3, 4, 1)
    rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.tif")
    assert np.array_equal(read_image(tmp_path / "c.tif"), rgb)
    Image.fromarray(np.zeros((4, 4), np.uint16) + 300).save(tmp_path / "d.png")
    with pytest.raises(DataError, match="16-bit"):
        read_image(tmp_path / "d.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    with pytest.raises(DataError, match="palette"):
        read_image(tmp_path / "p.png")
    with pytest.raises(DataError, match="not found"):
        read_image(tmp_path / "missing.png")
    write_png(tmp_path / "o.png", rgb)
    assert np.array_equal(read_image(tmp_path / "o.png"), rgb) and not list(tmp_path.glob(".o.png*"))
