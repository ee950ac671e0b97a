"""PSNR/SSIM against scikit-image, which implements the same definitions independently.

scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`
uses a truncate of 3.5 -> radius int(3.5*1.5 + 0.5) = 5 -> an 11x11 window, filters with 'reflect'
borders and then averages only the interior (5 pixels cropped per side). That interior is exactly the
valid region the official code keeps after cv2.filter2D, so the border modes never enter and the two
must agree to float64 round-off. We compare on the very arrays our metric scores (`prepare`), and
separately check our Y conversion against skimage's `rgb2ycbcr`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ramit.evaluate.metrics import prepare, psnr, ssim, to_uint8, to_y

TOL = 1e-6


def _sk_psnr(x, y):
    return peak_signal_noise_ratio(x, y, data_range=255)


def _sk_ssim(x, y):
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if x.shape[2] == 1:
        return structural_similarity(x[..., 0], y[..., 0], **kw)
    return structural_similarity(x, y, channel_axis=-1, **kw)


def _degrade(a: np.ndarray, rng, amp=12) -> np.ndarray:
    noise = rng.integers(-amp, amp + 1, size=a.shape)
    return np.clip(a.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def _check_pair(a, b, crop, y):
    x, z = prepare(a, b, crop, y)
    assert x.dtype == np.float64
    dp = abs(psnr(a, b, crop, y) - _sk_psnr(x, z))
    ds = abs(ssim(a, b, crop, y) - _sk_ssim(x, z))
    assert dp < TOL, (crop, y, dp)
    assert ds < TOL, (crop, y, ds)
    return dp, ds


@pytest.mark.parametrize("crop", [0, 2, 4])
@pytest.mark.parametrize("y", [False, True])
def test_random_rgb_matches_skimage(crop, y):
    rng = np.random.default_rng(crop * 10 + y)
    a = rng.integers(0, 256, size=(61, 77, 3), dtype=np.uint8)
    b = _degrade(a, rng, amp=30)
    _check_pair(a, b, crop, y)


@pytest.mark.parametrize("shape", [(50, 40), (50, 40, 1)])
@pytest.mark.parametrize("crop", [0, 3])
def test_random_gray_matches_skimage(shape, crop):
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, size=shape, dtype=np.uint8)
    b = _degrade(a, rng)
    x, z = prepare(a, b, crop)
    assert x.shape[2] == 1
    _check_pair(a, b, crop, False)


@pytest.mark.parametrize("y", [False, True])
def test_real_image_matches_skimage(y):
    rng = np.random.default_rng(3)
    a = skdata.astronaut()[100:260, 150:330]  # natural content: smooth areas and edges
    b = _degrade(a, rng, amp=6)
    _check_pair(a, b, 4, y)


def test_real_sr_pair_matches_skimage(datasets_mirror):
    from ramit.data.io import read_image

    hr = read_image(datasets_mirror / "Set5" / "HR" / "butterfly.png")
    lr = read_image(datasets_mirror / "Set5" / "LR_bicubic" / "X2" / "butterfly.png")
    up = np.repeat(np.repeat(lr, 2, axis=0), 2, axis=1)  # crude but real upsampling: large errors at edges
    hr = hr[: up.shape[0], : up.shape[1]]
    for y in (False, True):
        _check_pair(up, hr, 2, y)
    assert 15 < psnr(up, hr, 2, True) < 35


def test_y_conversion_is_bt601_unrounded():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    ours = to_y(a)[..., 0]
    ref = rgb2ycbcr(a)[..., 0]  # float64, same BT.601 formula, 0-255 scale output
    assert ours.dtype == np.float32
    # float32 round-off of values up to 235 is ~1.5e-5
    assert np.max(np.abs(ours - ref)) < 5e-5
    assert not np.allclose(ours, np.round(ours))  # not quantised to integers
    assert ref.min() >= 16 - 1e-9 and ref.max() <= 235 + 1e-9


def test_crop_happens_before_y():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(30, 30, 3), dtype=np.uint8)
    b = _degrade(a, rng)
    # Corrupt only the border: a crop of 3 must make the scores blind to it.
    a2 = a.copy()
    a2[:3] = 0
    a2[:, -3:] = 255
    assert psnr(a2, b, 3, True) == psnr(a, b, 3, True)
    assert ssim(a2, b, 3, True) == ssim(a, b, 3, True)
    assert psnr(a2, b, 0, True) < psnr(a, b, 0, True)


def test_gray_in_rgb_set_is_scored_as_replicated_rgb():
    rng = np.random.default_rng(2)
    g = rng.integers(0, 256, size=(40, 40, 1), dtype=np.uint8)
    out = _degrade(np.repeat(g, 3, axis=2), rng)
    rep = np.repeat(g, 3, axis=2)
    assert psnr(out, g, 2, True) == psnr(out, rep, 2, True)
    assert ssim(out, g, 2, True) == ssim(out, rep, 2, True)
    # Y of a replicated gray value v is 16 + 219 v / 255.
    np.testing.assert_allclose(to_y(g)[..., 0], 16 + 219 * g[..., 0].astype(np.float64) / 255.0, atol=5e-5)


def test_identical_images():
    a = skdata.astronaut()[:64, :64]
    assert psnr(a, a) == math.inf
    assert ssim(a, a, 4, True) == pytest.approx(1.0, abs=1e-12)


def test_bad_shapes_raise():
    a = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(ValueError):
        psnr(a, np.zeros((20, 21, 3), np.uint8))
    with pytest.raises(ValueError):
        ssim(a, a, crop_border=5)  # 10x10 left: smaller than the window
    with pytest.raises(ValueError, match="uint8"):
        psnr(a.astype(np.float32) / 255, a.astype(np.float32) / 255)  # the classic [0,1] mix-up


def test_to_uint8_matches_official_numpy_rounding():
    rng = np.random.default_rng(4)
    t = torch.from_numpy(rng.uniform(-0.2, 1.2, size=(1, 3, 17, 19)).astype(np.float32))
    ours = to_uint8(t)
    ref = np.round(np.clip(t[0].numpy(), 0, 1) * np.float32(255)).astype(np.uint8).transpose(1, 2, 0)
    assert ours.dtype == np.uint8 and ours.shape == (17, 19, 3)
    np.testing.assert_array_equal(ours, ref)


def test_to_uint8_rounds_half_to_even():
    # Values whose float32 product with 255 is exactly k + 0.5: half-to-even and half-up disagree.
    k = torch.arange(0, 255, dtype=torch.float32)
    v = (k + 0.5) / 255
    exact = (v * 255) == k + 0.5
    assert exact.sum() > 50
    k, v = k[exact], v[exact]
    ours = torch.from_numpy(to_uint8(v.view(1, 1, -1))[0, :, 0].astype(np.int64))
    expected = torch.where(k % 2 == 0, k, k + 1).long()
    assert torch.equal(ours, expected)
