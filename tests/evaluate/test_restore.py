"""`ramit restore`: real models on real image files, in and out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ramit.cli import app
from ramit.data.imresize import imresize
from ramit.errors import DataError, RamitError
from ramit.evaluate.metrics import psnr, to_uint8
from ramit.evaluate.restore import restore_images
from ramit.models import build_model, save_weights


def _photo(h=40, w=56, seed=0) -> np.ndarray:
    """A smooth gradient with texture: an image bicubic and networks both have something to do on."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 4 + 30 * k) % 256 for k in range(3)], -1).astype(float)
    base += np.random.default_rng(seed).normal(0, 20, base.shape) + 20 * np.sin(yy / 3.0)[..., None]
    return base.clip(0, 255).astype(np.uint8)


def _save(path: Path, arr: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path, **kw)
    return path


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def test_bicubic_x2_png_round_trip_equals_imresize(tmp_path):
    img = _photo()
    src = _save(tmp_path / "in/photo.png", img)
    done = restore_images(src, tmp_path / "out", model="Bicubic", task="sr", scale=2)
    out = _read(tmp_path / "out/photo.png")
    assert [d.out for d in done] == [tmp_path / "out/photo.png"]
    assert out.shape == (80, 112, 3) and done[0].out_shape == (80, 112, 3)
    want = to_uint8(torch.from_numpy(imresize(img / 255.0, 2).astype(np.float32).transpose(2, 0, 1)))
    np.testing.assert_array_equal(out, want)


def test_folder_of_two_images_with_a_trained_slimsr_found_in_runs(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = build_model("RAMiT-slimSR", "sr", scale=2).eval()
    save_weights(net, tmp_path / "runs/RAMiT-slimSR/x2/model.safetensors")
    a, b = _photo(24, 32, 1), _photo(20, 24, 2)
    _save(tmp_path / "in/a.png", a)
    _save(tmp_path / "in/b.jpg", b, quality=95)
    (tmp_path / "in/notes.txt").write_text("not an image")
    monkeypatch.chdir(tmp_path)  # the default weights are looked up under ./runs
    done = restore_images("in", "out", model="RAMiT-slimSR", task="sr", scale=2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert [d.out_shape for d in done] == [(48, 64, 3), (40, 48, 3)]
    with torch.no_grad():
        want = to_uint8(net(torch.from_numpy(a.transpose(2, 0, 1) / 255.0).float()[None]))
    np.testing.assert_array_equal(_read(tmp_path / "out/a.png"), want)
    # tiles go through ramit.evaluate.inference.restore: same shape, different pixels (global attention)
    tiled = restore_images("in/b.jpg", "tiled", model="RAMiT-slimSR", task="sr", scale=2, tile=16, tile_overlap=8)
    assert tiled[0].out_shape == (40, 48, 3)
    assert not np.array_equal(_read(tmp_path / "tiled/b.png"), _read(tmp_path / "out/b.png"))


def test_released_slimsr_beats_bicubic(tmp_path, monkeypatch, checkpoints_mirror):
    from skimage import data as skdata

    from ramit.evaluate.released import fetch_weights

    fetch_weights(["RAMiT-slimSR_X2.pth"], out=tmp_path / "weights/released", mirror=str(checkpoints_mirror))
    hr = skdata.astronaut()[100:196, 160:256]
    _save(tmp_path / "lr.png", imresize(hr, 0.5))
    monkeypatch.chdir(tmp_path)  # no --checkpoint: the registry names weights/released/RAMiT-slimSR_X2.pth
    restore_images("lr.png", "sr", model="RAMiT-slimSR", task="sr", scale=2)
    restore_images("lr.png", "bic", model="Bicubic", task="sr", scale=2)
    ours, bic = (psnr(_read(tmp_path / d / "lr.png"), hr, crop_border=2, y_channel=True) for d in ("sr", "bic"))
    assert ours > bic + 1.0, (ours, bic)


def test_gray_denoiser_takes_gray_images_and_refuses_rgb(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "dncnn.safetensors"
    save_weights(build_model("DnCNN", "gdn"), ckpt)
    gray = _photo()[..., :1]
    _save(tmp_path / "gray/g.png", gray)
    done = restore_images(tmp_path / "gray/g.png", tmp_path / "out", model="DnCNN", task="gdn", checkpoint=ckpt)
    assert done[0].out_shape == (40, 56, 1) and _read(tmp_path / "out/g.png").shape == (40, 56)
    restore_images(tmp_path / "gray/g.png", tmp_path / "ens", model="DnCNN", task="gdn", checkpoint=ckpt,
                   self_ensemble=True)
    assert _read(tmp_path / "ens/g.png").shape == (40, 56)
    _save(tmp_path / "rgb/c.png", _photo())
    with pytest.raises(DataError, match=r"c\.png: image is RGB but the grayscale denoiser \(gdn\) takes a gray"):
        restore_images(tmp_path / "rgb", tmp_path / "out2", model="DnCNN", task="gdn", checkpoint=ckpt)
    with pytest.raises(DataError, match=r"g\.png: image is gray but this model takes an RGB image"):
        restore_images(tmp_path / "gray", tmp_path / "out3", model="Bicubic", task="sr", scale=2)
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


def test_bad_inputs_fail_with_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in this folder"):
        restore_images("empty", "out", model="Bicubic", task="sr", scale=2)
    _save(tmp_path / "dup/x.png", _photo())
    _save(tmp_path / "dup/x.bmp", _photo())
    with pytest.raises(DataError, match="x.bmp and x.png would both be written as x.png"):
        restore_images("dup", "out", model="Bicubic", task="sr", scale=2)
    _save(tmp_path / "one.png", _photo())
    with pytest.raises(RamitError, match=r"no weights for RAMiT-1 x2: .*runs/RAMiT-1/x2/model\.safetensors.*"
                                         r"ramit fetch-weights RAMiT-1_X2\.pth"):
        restore_images("one.png", "out", model="RAMiT-1", task="sr", scale=2)
    with pytest.raises(RamitError, match="task sr needs --scale 2, 3 or 4"):
        restore_images("one.png", "out", model="Bicubic", task="sr")


def test_cli_restore(tmp_path):
    src = _save(tmp_path / "p.png", _photo())
    r = CliRunner().invoke(app, ["restore", str(src), "--out", str(tmp_path / "o"), "--model", "Bicubic",
                                 "--task", "sr", "--scale", "3"])
    assert r.exit_code == 0, r.output
    assert "56x40 -> " in r.output and "168x120" in r.output
    assert _read(tmp_path / "o/p.png").shape == (120, 168, 3)
    r = CliRunner().invoke(app, ["restore", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o"),
                                 "--model", "Bicubic", "--task", "sr", "--scale", "2"])
    assert r.exit_code == 2 and "error:" in r.output and "missing.png: no such file or folder" in r.output
