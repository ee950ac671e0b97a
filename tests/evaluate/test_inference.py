"""`restore`: whole image, tiles, x8 self-ensemble, precision handling.

The tiling and ensemble bookkeeping is checked exactly with small real modules whose correct output is
known in closed form; the RAMiT test measures how far tiling moves a real restoration (channel
attention and H-RAMi pool over the whole image, so tiles cannot reproduce it exactly).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ramit.errors import RamitError
from ramit.evaluate.inference import (PrecisionWarning, describe_precision, precision_check, restore,
                                     tf32_state)
from ramit.evaluate.metrics import psnr, to_uint8


class PointwiseUp(nn.Module):
    """Nearest x2 upsampling of a per-pixel colour map: every output pixel depends on one input pixel,
    so any correct tiling must reproduce the whole-image output."""

    scale = 2
    in_chans = 3

    def forward(self, x):
        y = torch.sin(3 * x) + x.mean(dim=1, keepdim=True) * x
        return nn.functional.interpolate(y, scale_factor=2, mode="nearest")


class Asymmetric(nn.Module):
    """A fixed non-symmetric 3x3 conv: not equivariant to flips/rotations, so the ensemble matters."""

    scale = 1
    in_chans = 1

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(9.0).view(1, 1, 3, 3) / 36)

    def forward(self, x):
        return self.conv(x)


def test_tiles_reassemble_exactly_for_a_pointwise_model():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 45, 70)
    m = PointwiseUp()
    whole = restore(m, x, device="cpu")
    assert whole.shape == (1, 3, 90, 140)
    for tile, overlap in [(16, 4), (20, 0), (32, 28), (64, 8), (100, 32)]:
        tiled = restore(m, x, tile=tile, tile_overlap=overlap, device="cpu")
        assert tiled.shape == whole.shape
        # Stride 4 (32/28) sums up to 64 float32 copies per pixel: allow that round-off.
        torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5 if tile - overlap < 8 else 1e-6)


def test_self_ensemble_is_the_mean_of_the_8_dihedral_transforms():
    torch.manual_seed(1)
    x = torch.rand(1, 1, 9, 13)
    m = Asymmetric()
    # Independent construction: transpose/flip written out instead of rot90.
    outs = []
    for transpose in (False, True):
        for fh in (False, True):
            for fw in (False, True):
                t = x.transpose(-1, -2) if transpose else x
                t = t.flip(-2) if fh else t
                t = t.flip(-1) if fw else t
                y = m(t)
                y = y.flip(-1) if fw else y
                y = y.flip(-2) if fh else y
                y = y.transpose(-1, -2) if transpose else y
                outs.append(y)
    expected = torch.stack(outs).mean(0)
    got = restore(m, x, self_ensemble=True, device="cpu")
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(got, restore(m, x, device="cpu"), atol=1e-3)


def test_bad_arguments_are_clear_errors():
    x = torch.rand(1, 3, 8, 8)
    m = PointwiseUp()
    with pytest.raises(RamitError, match="only supported on CUDA"):
        restore(m, x, precision="bf16", device="cpu")
    with pytest.raises(RamitError, match="precision must be one of"):
        restore(m, x, precision="fp8", device="cpu")
    with pytest.raises(RamitError, match="tile_overlap"):
        restore(m, x, tile=8, tile_overlap=8, device="cpu")
    with pytest.raises(RamitError, match="one image"):
        restore(m, torch.rand(2, 3, 8, 8), device="cpu")


class RecordsTF32(nn.Module):
    """Identity that notes the TF32 switches in force while it runs (and can fail on demand)."""

    scale = 1
    in_chans = 3

    def __init__(self, fail=False):
        super().__init__()
        self.fail, self.seen = fail, []

    def forward(self, x):
        self.seen.append(tf32_state())
        if self.fail:
            raise ValueError("boom")
        return x


@pytest.fixture
def tf32_allowed():
    """Both TF32 switches on (what a user's `allow_tf32 = True` leaves), put back as found afterwards."""
    from ramit.evaluate.inference import _tf32_apply, _tf32_set, _tf32_snapshot

    saved = _tf32_snapshot()
    _tf32_set(True)
    yield
    _tf32_apply(saved)


def test_fp32_runs_with_tf32_off_and_restores_the_switches(tf32_allowed):
    assert tf32_state() == {"tf32_matmul": True, "tf32_cudnn_conv": True}
    m = RecordsTF32()
    restore(m, torch.rand(1, 3, 8, 8), device="cpu", self_ensemble=True)
    assert m.seen == [{"tf32_matmul": False, "tf32_cudnn_conv": False}] * 8
    assert tf32_state() == {"tf32_matmul": True, "tf32_cudnn_conv": True}  # restored
    with pytest.raises(ValueError, match="boom"):
        restore(RecordsTF32(fail=True), torch.rand(1, 3, 8, 8), device="cpu")
    assert tf32_state() == {"tf32_matmul": True, "tf32_cudnn_conv": True}  # restored on error too
    rec = describe_precision("fp32", "cpu")
    assert rec == {"precision": "fp32", "autocast_dtype": None, "tf32_matmul": False, "tf32_cudnn_conv": False}
    assert describe_precision("bf16", "cpu")["autocast_dtype"] == "bfloat16"
    assert describe_precision("tf32", "cpu")["tf32_cudnn_conv"] is True
    assert tf32_state() == {"tf32_matmul": True, "tf32_cudnn_conv": True}
    with pytest.raises(RamitError, match="only supported on CUDA"):
        restore(m, torch.rand(1, 3, 8, 8), precision="tf32", device="cpu")


def test_precision_check_warns_past_a_hundredth_of_a_db():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = precision_check("baby", 38.005, 38.000, "bf16")
    assert ok["within_tolerance"] and ok["delta_db"] == pytest.approx(0.005) and ok["tolerance_db"] == 0.01
    with pytest.warns(PrecisionWarning, match=r"fp16 changes the PSNR of 'baby' by -0\.0200 dB"):
        bad = precision_check("baby", 37.98, 38.0, "fp16")
    assert not bad["within_tolerance"] and bad["psnr_fp32"] == 38.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TF32 exists on CUDA only")
def test_fp32_on_cuda_matches_the_cpu_without_tf32(tf32_allowed):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 64, 1), nn.GELU(), nn.Conv2d(64, 3, 3, padding=1))
    x = torch.rand(1, 3, 64, 64)
    cpu = restore(m, x, device="cpu")
    assert (restore(m, x, device="cuda") - cpu).abs().max() < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="half-precision autocast is CUDA-only")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_on_cuda_stays_close(precision):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GELU(), nn.Conv2d(16, 3, 3, padding=1))
    x = torch.rand(1, 3, 40, 40)
    ref = restore(m, x, device="cuda")
    got = restore(m, x, precision=precision, device="cuda")
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    assert (got - ref).abs().max() < 2e-2


def test_ramit_tiled_differs_from_whole_by_a_bounded_amount(golden_dir, datasets_mirror):
    """RAMiT-1 x2, a 56x56 LR crop of Set5 bird, 32-pixel tiles with 8-pixel overlap (4 tiles).

    Measured on this crop: max |tiled - whole| 0.042 (11 grey levels after quantisation), mean 8.2e-4
    (in [0,1] units), PSNR change -0.008 dB. The difference is not confined to the seams (mean 4e-4 in
    the middle of a tile): CHSA and H-RAMi are global, so every output pixel of a tile sees only that
    tile's statistics. The bounds below leave ~2x headroom.
    """
    from ramit.data.io import read_image
    from ramit.models import build_model, load_weights

    m = build_model("RAMiT-1", "sr", scale=2)
    load_weights(m, golden_dir / "RAMiT-1_x2" / "state_dict.pt")
    lr = read_image(datasets_mirror / "Set5" / "LR_bicubic" / "X2" / "bird.png")[40:96, 40:96]
    hr = read_image(datasets_mirror / "Set5" / "HR" / "bird.png")[80:192, 80:192]
    x = torch.from_numpy(lr.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    whole = restore(m, x, device="cpu")
    tiled = restore(m, x, tile=32, tile_overlap=8, device="cpu")
    d = (tiled - whole).abs()
    assert d.max() < 0.1
    assert d.mean() < 2e-3
    assert d.mean() > 1e-5  # global attention: tiles do change the result
    dpsnr = psnr(to_uint8(tiled), hr, 2, True) - psnr(to_uint8(whole), hr, 2, True)
    assert abs(dpsnr) < 0.2
