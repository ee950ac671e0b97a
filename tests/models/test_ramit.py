"""RAMiT network: parity with the official golden outputs, exact key lists, ablation switches, shapes."""

from __future__ import annotations

import json

import pytest
import torch

from ramit.models import build_model, list_models, load_weights
from ramit.models.ramit import pad_symmetric, set_impl

ABLATIONS = ["RAMiT-abl-spsa-only", "RAMiT-abl-chsa-only", "RAMiT-abl-heads-2-2", "RAMiT-abl-heads-1-3",
             "RAMiT-abl-no-helper", "RAMiT-abl-no-hrami", "RAMiT-abl-mobivari-v1"]
TASK_OF_KEY = {"x2": ("sr", 2), "x3": ("sr", 3), "x4": ("sr", 4), "cdn": ("cdn", None), "gdn": ("gdn", None),
               "lle": ("lle", None), "dr": ("dr", None)}


def _n_params(m):
    return sum(p.numel() for p in m.parameters())


def _golden(golden_dir, case):
    meta = json.loads((golden_dir / case / "meta.json").read_text())
    api = meta["api"]
    model = build_model(api["name"], api["task"], scale=api["scale"], in_chans=api["in_chans"]).eval()
    load_weights(model, golden_dir / case / "state_dict.pt")
    x = torch.load(golden_dir / case / "input.pt")
    with torch.no_grad():
        y = model(x)
    return y, torch.load(golden_dir / case / "output.pt"), torch.load(golden_dir / case / "output_uint8.pt")


def test_golden_ramit1_x2(golden_dir):
    y, ref, ref_u8 = _golden(golden_dir, "RAMiT-1_x2")
    assert y.shape == ref.shape
    diff = (y - ref).abs().max().item()
    assert diff <= 1e-4, f"max |ours - official| = {diff}"
    u8 = (y.clamp(0, 1) * 255).round().to(torch.uint8)
    assert (u8.int() - ref_u8.int()).abs().max() <= 1  # informative: round-off may flip a .5 case


def test_golden_slimsr_x2(golden_dir):
    y, ref, _ = _golden(golden_dir, "RAMiT-slimSR_x2")
    assert (y - ref).abs().max().item() <= 1e-4


def test_state_dict_matches_official_key_lists(golden_dir):
    files = sorted(golden_dir.glob("keys_*.json"))
    assert len(files) == 16
    for f in files:
        spec = json.loads(f.read_text())
        task, scale = TASK_OF_KEY[spec["task"]]
        model = build_model(spec["variant"], task, scale=scale)
        got = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()]
        assert got == spec["keys"], f.name
        assert _n_params(model) == spec["num_params"], f.name
        assert (model.in_chans, model.scale) == (spec["in_chans"], spec["scale"]), f.name


def test_normalisation_constants_are_not_checkpoint_entries():
    model = build_model("RAMiT", "lle")
    assert not any("mean" in k or "std" in k for k in model.state_dict())
    assert model.img_mean.flatten().tolist() == pytest.approx([0.1687, 0.1599, 0.1526])


def _attn_params(dim, nh, ratio, ws=8):
    d, l2 = dim // nh, int(nh * ratio)
    l1 = nh - l2
    sp = (l1 * d) ** 2 + l1 * d + l1 + (2 * ws - 1) ** 2 * l1 if l1 else 0
    ch = (l2 * d) ** 2 + l2 * d + l2 if l2 else 0
    return sp + ch


@pytest.fixture(scope="module")
def ramit_x2():
    torch.manual_seed(0)
    return build_model("RAMiT", "sr", scale=2)


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_builds_runs_and_differs(name, ramit_x2):
    torch.manual_seed(0)
    model = build_model(name, "sr", scale=2)
    x = torch.rand(1, 3, 40, 56)
    y = model(x)
    assert y.shape == (1, 3, 80, 112) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

    n, n0, blocks = _n_params(model), _n_params(ramit_x2), sum((6, 4, 4, 6))
    ratio = {"RAMiT-abl-spsa-only": 0.0, "RAMiT-abl-chsa-only": 1.0, "RAMiT-abl-heads-2-2": 0.5,
             "RAMiT-abl-heads-1-3": 0.75}.get(name)
    if ratio is not None:
        assert n - n0 == blocks * (_attn_params(64, 4, ratio) - _attn_params(64, 4, 0.25))
        branch = model.stage1.blocks.block0.ch_attn if ratio == 0 else model.stage1.blocks.block0.sp_attn
        if ratio in (0.0, 1.0):
            assert not list(branch.parameters()) and not model.stage1.helper
    elif name == "RAMiT-abl-no-hrami":
        assert model.attn_mix is None and n == n0 - _n_params(ramit_x2.attn_mix)
    elif name == "RAMiT-abl-mobivari-v1":
        assert n == _n_params(build_model("RAMiT-1", "sr", scale=2))
    elif name == "RAMiT-abl-no-helper":
        assert n == n0
        model.load_state_dict(ramit_x2.state_dict())
        with torch.no_grad():
            assert (model(x) - ramit_x2(x)).abs().max() > 1e-4  # same weights, helper off: another function


def test_hrami_off_skips_the_gate():
    torch.manual_seed(0)
    on = build_model("RAMiT-1", "cdn", depths=(1, 1, 1, 1)).eval()
    off = build_model("RAMiT-1", "cdn", depths=(1, 1, 1, 1), hrami=False).eval()
    off.load_state_dict({k: v for k, v in on.state_dict().items() if not k.startswith("attn_mix.")})
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(on(x), off(x))


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(1)
    m = build_model("RAMiT", "sr", scale=3, depths=(2, 2, 2, 2)).eval()
    with torch.no_grad():  # non-trivial position bias and scales so the paths really differ if wrong
        for mod in m.modules():
            if hasattr(mod, "relative_position_bias_table"):
                mod.relative_position_bias_table.normal_(0, 0.5)
    return m


def test_odd_size_and_batch_equal_per_image_runs(small_model):
    x = torch.rand(3, 3, 17, 29)
    with torch.no_grad():
        yb = small_model(x)
        ys = torch.cat([small_model(x[i:i + 1]) for i in range(3)])
    assert yb.shape == (3, 3, 51, 87)
    assert (yb - ys).abs().max() <= 1e-5


def test_fused_and_reference_attention_agree(small_model):
    x = torch.rand(2, 3, 40, 56)
    with torch.no_grad():
        fused = small_model(x)
        set_impl(small_model, "reference")
        try:
            ref = small_model(x)
        finally:
            set_impl(small_model, "fast")
    assert (fused - ref).abs().max() <= 1e-5


def test_symmetric_padding_repeats_the_edge():
    x = torch.arange(20.0).view(1, 1, 4, 5)
    p = pad_symmetric(x, 8)
    assert p.shape == (1, 1, 8, 8)
    assert torch.equal(p[0, 0, 4:, :5], x[0, 0].flip(0))      # rows 4..7 mirror rows 3..0
    assert torch.equal(p[0, 0, :4, 5:], x[0, 0, :, 2:].flip(1))  # cols 5..7 mirror cols 4..2
    with pytest.raises(ValueError, match="too small"):
        pad_symmetric(torch.zeros(1, 1, 15, 40), 32)


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="allowed: .*RAMiT-1"):
        build_model("RAMiT-2", "sr", scale=2)
    with pytest.raises(ValueError, match="allowed: sr"):
        build_model("RAMiT-slimSR", "lle")
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        build_model("RAMiT", "sr", scale=8)
    with pytest.raises(ValueError, match="allowed: sr, cdn"):
        build_model("RAMiT", "deblur")
    assert "RAMiT-abl-no-hrami" in list_models()
    gdn = build_model("RAMiT", "gdn")
    assert (gdn.in_chans, gdn.scale, gdn.task) == (1, 1, "gdn")
