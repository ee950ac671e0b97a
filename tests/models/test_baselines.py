"""Baselines are the authors' networks: their key lists (buffers and order included) and parameter counts,
strict loading of their released weights and parity with their test outputs (golden tensors made with
the authors' code), the counts their papers print, and the model contract (shapes, odd sizes, padding,
batch independence, one training step)."""

from __future__ import annotations

import fnmatch
import json

import numpy as np
import pytest
import torch

from ramit.config import ConfigError
from ramit.errors import CheckpointError
from ramit.models import build_model, list_models, load_weights
from ramit.models.baselines import BASELINE_NAMES, BASELINE_TASKS, build_baseline
from ramit.models.baselines.padding import pad_to_multiple
from ramit.models.baselines.swinir import shifted_window_mask
from ramit.models.complexity import count_params, paper_gmacs, paper_params


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # the tensors here are tiny: a second intra-op thread only adds synchronisation, and on a busy 2-core
    # box oversubscribed OpenMP threads made this file ~10x slower
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def combos():
    for name, tasks in BASELINE_TASKS.items():
        for task in tasks:
            for scale in (2, 3, 4) if task == "sr" else (None,):
                yield name, task, scale


def _params(cases):
    return [pytest.param(*c, id="-".join(f"x{v}" if isinstance(v, int) else v for v in c if v)) for c in cases]


# ----------------------------------------------------------------------------- the authors' key lists

# keys file (shared/golden/baselines) -> the build_model call that must reproduce it exactly
KEY_FILES = {
    "keys_IMDN_x2.json": ("IMDN", "sr", 2),
    "keys_IMDN_x3.json": ("IMDN", "sr", 3),
    "keys_IMDN_x4.json": ("IMDN", "sr", 4),
    "keys_SwinIR-S_x2.json": ("SwinIR-light", "sr", 2),
    "keys_SwinIR-S_x3.json": ("SwinIR-light", "sr", 3),
    "keys_SwinIR-S_x4.json": ("SwinIR-light", "sr", 4),
    "keys_SwinIR-M_cdn.json": ("SwinIR-M", "cdn", None),
    "keys_DnCNN_dncnn25.json": ("DnCNN-S", "gdn", None),
    "keys_DnCNN_colorblind.json": ("DnCNN", "cdn", None),
    "keys_PReNet_Rain100H.json": ("PReNet", "dr", None),
    "keys_PReNet_Rain100L.json": ("PReNet", "dr", None),
    "keys_Retinexformer_LOLv1.json": ("Retinexformer", "lle", None),
}


@pytest.fixture(scope="module")
def baseline_golden(golden_dir):
    d = golden_dir / "baselines"
    if not d.is_dir():
        pytest.skip(f"needs {d}")
    return d


@pytest.mark.parametrize("keys_file", sorted(KEY_FILES))
def test_state_dict_is_the_authors(baseline_golden, keys_file):
    spec = json.loads((baseline_golden / keys_file).read_text())
    model = build_model(*KEY_FILES[keys_file])
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert ours == spec["keys"]  # names, shapes, dtypes and order, buffers included
    assert count_params(model) == spec["params"]
    buffers = [k for k, _ in model.named_buffers() if k in model.state_dict()]
    assert sorted(buffers) == sorted(spec["buffer_keys"])


def test_swinir_buffers_hold_the_authors_values(baseline_golden):
    # a strict load overwrites them with the file's values; they must be what the model would compute
    model = build_model("SwinIR-light", "sr", 2)
    sd = model.state_dict()
    mask = sd["layers.0.residual_group.blocks.1.attn_mask"]
    assert torch.equal(mask, shifted_window_mask(64, 64, 8, 4))
    assert set(mask.unique().tolist()) == {0.0, -100.0}
    idx = sd["layers.0.residual_group.blocks.0.attn.relative_position_index"]
    r, c = np.arange(64) // 8, np.arange(64) % 8  # token (row, col) inside an 8x8 window
    expected = (r[:, None] - r[None, :] + 7) * 15 + (c[:, None] - c[None, :] + 7)
    np.testing.assert_array_equal(idx.numpy(), expected)
    assert build_model("SwinIR-M", "cdn").state_dict()["layers.5.residual_group.blocks.5.attn_mask"].shape == (256, 64, 64)


# ----------------------------------------------------------------------------- released weights: parity

# golden case -> (build_model args, checkpoint under checkpoints/baselines)
GOLDEN = {
    "IMDN_x2": (("IMDN", "sr", 2), "IMDN_x2.pth"),
    "IMDN_x3": (("IMDN", "sr", 3), "IMDN_x3.pth"),
    "IMDN_x4": (("IMDN", "sr", 4), "IMDN_x4.pth"),
    "DnCNN_dncnn25": (("DnCNN-S", "gdn", None), "dncnn_25.pth"),
    "PReNet_Rain100H": (("PReNet", "dr", None), "PReNet/logs/Rain100H/PReNet6/net_latest.pth"),
    "PReNet_Rain100L": (("PReNet", "dr", None), "PReNet/logs/Rain100L/PReNet6/net_latest.pth"),
}


def _loaded(checkpoints_mirror, case):
    args, ckpt = GOLDEN[case]
    model = build_model(*args).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    load_weights(model, checkpoints_mirror / "baselines" / ckpt)  # strict; `module.` stripped for IMDN
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items() if v.is_floating_point())
    return model


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_released_weights_reproduce_the_authors_outputs(baseline_golden, checkpoints_mirror, case):
    model = _loaded(checkpoints_mirror, case)
    meta = json.loads((baseline_golden / case / "meta.json").read_text())
    assert meta["checkpoint"]["sha256"]  # the golden output was made from this very file
    # input.pt is what the authors' script feeds the network: [0,1] RGB (or gray), the noise already
    # added for DnCNN; our models take exactly that, so no mapping is needed
    x = torch.load(baseline_golden / case / "input.pt")
    ref = torch.load(baseline_golden / case / "output.pt")
    with torch.no_grad():
        y = model(x)
    assert y.shape == ref.shape
    assert (y - ref).abs().max().item() <= 1e-4


@pytest.mark.parametrize("case", ["PReNet_Rain100H", "PReNet_Rain100L"])
def test_prenet_stages_and_truncating_quantisation(baseline_golden, checkpoints_mirror, case):
    model = _loaded(checkpoints_mirror, case)
    x = torch.load(baseline_golden / case / "input.pt")
    with torch.no_grad():
        stages = torch.stack(model.stage_outputs(x))
    assert (stages - torch.load(baseline_golden / case / "output_stages.pt")).abs().max() <= 1e-4
    # the authors store uint8(255 * clamp(x)) (truncation); our evaluator rounds, so scores differ a little
    scaled = stages[-1].clamp(0, 1) * 255
    truncated = scaled.to(torch.uint8)
    # equal, except where the value sits on an integer step within float noise (CPU kernels differ)
    off = truncated.int() - torch.load(baseline_golden / case / "output_uint8.pt").int()
    on_step = (scaled - scaled.round()).abs() < 255 * 1e-4
    assert off.abs().max() <= 1 and bool(on_step[off != 0].all()) and (off != 0).float().mean() < 1e-3
    rounded = (stages[-1].clamp(0, 1) * 255).round().to(torch.uint8)
    diff = rounded.int() - truncated.int()
    assert diff.min() == 0 and diff.max() == 1 and diff.sum() > 0


def test_wrong_scale_checkpoint_names_file_and_key(checkpoints_mirror):
    path = checkpoints_mirror / "baselines" / "IMDN_x3.pth"
    with pytest.raises(CheckpointError) as e:
        load_weights(build_model("IMDN", "sr", 2), path)
    msg = str(e.value)
    assert str(path) in msg and "IMDN sr x2" in msg
    assert "'upsampler.0.weight' has shape [27,64,3,3] in the file, [12,64,3,3] in the model" in msg


def test_ramit_checkpoint_into_imdn_is_refused(checkpoints_mirror):
    path = checkpoints_mirror / "pretrained" / "RAMiT-1_X2.pth"
    with pytest.raises(CheckpointError, match=r"RAMiT-1_X2.pth does not fit IMDN sr x2: key 'fea_conv.weight' "
                                              r"\(shape \[64,3,3,3\]\) is missing from the file"):
        load_weights(build_model("IMDN", "sr", 2), path)


def test_rain100l_weights_load_into_the_same_architecture_but_differ(checkpoints_mirror):
    h = _loaded(checkpoints_mirror, "PReNet_Rain100H").state_dict()
    low = _loaded(checkpoints_mirror, "PReNet_Rain100L").state_dict()
    assert h.keys() == low.keys() and not torch.equal(h["conv0.0.weight"], low["conv0.0.weight"])


# ----------------------------------------------------------------------------- what the papers print

# (name, task, scale, params in the paper's convention, printed params, its last digit, printed Mult-Adds
# in the paper's "G")
PRINTED = [
    ("SwinIR-light", "sr", 2, 877_752, 878e3, 1e3, 195.6),  # SwinIR Table 3 (lightweight SR)
    ("SwinIR-light", "sr", 3, 885_867, 886e3, 1e3, 87.2),
    ("SwinIR-light", "sr", 4, 897_228, 897e3, 1e3, 49.6),
    ("IMDN", "sr", 2, 694_404, 694e3, 1e3, 158.8),  # IMDN Table (and baselines_published.csv: 694K)
    ("IMDN", "sr", 3, 703_059, 703e3, 1e3, 71.5),
    ("IMDN", "sr", 4, 715_176, 715e3, 1e3, 40.9),
    ("Retinexformer", "lle", None, 1_605_701, 1.61e6, 1e4, 15.57),  # Retinexformer Table 1
    ("PReNet", "dr", None, 168_963, 0.168e6, 1e3, None),  # PReNet: 0.168M, no Mult-Adds printed
]


@pytest.mark.parametrize("name,task,scale,ours,printed,digit,gmacs", PRINTED,
                         ids=[f"{c[0]}-{c[1]}{c[2] or ''}" for c in PRINTED])
def test_counts_in_the_papers_conventions_match_what_they_print(name, task, scale, ours, printed, digit, gmacs):
    model = build_model(name, task, scale)
    assert paper_params(model) == ours
    assert abs(ours - printed) < digit  # printed rounded (or cut) to its last digit
    if gmacs is not None:
        assert abs(paper_gmacs(model) - gmacs) <= 0.051, paper_gmacs(model)


@pytest.mark.parametrize(
    "name,task,exact",
    [
        # the colour key files' counts minus 2 input channels of the first conv and 2 outputs of the last
        ("DnCNN", "gdn", 668_227 - 2 * 64 * 9 - 2 * (64 * 9 + 1)),  # KAIR dncnn_gray_blind
        ("SwinIR-M", "gdn", 11_504_163 - 2 * 180 * 9 - 2 * (180 * 9 + 1)),  # SwinIR 004_grayDN
        ("SwinIR-light", "cdn", 905_283),  # not a published model: SwinIR-S body + denoising head
        ("SwinIR-light", "gdn", 903_121),
    ],
)
def test_param_count_without_a_key_file(name, task, exact):
    assert count_params(build_baseline(name, task)) == exact


def test_warm_start_heads_are_exactly_the_scale_dependent_keys():
    for name in ("SwinIR-light", "IMDN"):
        x2, x3 = build_model(name, "sr", 2).state_dict(), build_model(name, "sr", 3).state_dict()
        assert x2.keys() == x3.keys()
        differ = {k for k in x2 if x2[k].shape != x3[k].shape}
        heads = type(build_model(name, "sr", 2)).warm_start_head
        named = {k for k in x2 if any(fnmatch.fnmatch(k, p) for p in heads)}
        assert differ == named and named, (name, differ, named)


def test_nonlearned_have_no_parameters():
    assert count_params(build_baseline("Bicubic", "sr", 4)) == 0
    assert count_params(build_baseline("Identity", "lle")) == 0


# ----------------------------------------------------------------------------- building

@pytest.mark.parametrize("name,task,scale", _params(combos()))
def test_build_every_combination(name, task, scale):
    model = build_baseline(name, task, scale)
    assert model.scale == (scale or 1)
    assert model.in_chans == (1 if task == "gdn" else 3)
    assert (model.task, model.model_name) == (task, name)


def test_names_cover_the_design_contract():
    assert {"Bicubic", "Identity", "SwinIR-light", "IMDN", "DnCNN"} <= set(BASELINE_NAMES)
    covered = {t for tasks in BASELINE_TASKS.values() for t in tasks}
    assert covered == {"sr", "cdn", "gdn", "lle", "dr"}


def test_build_rejects_bad_requests():
    with pytest.raises(KeyError):
        build_baseline("EDSR", "sr", 2)
    with pytest.raises(ConfigError, match="IMDN.*not 'cdn'"):
        build_baseline("IMDN", "cdn")
    with pytest.raises(ConfigError, match="scale"):
        build_baseline("SwinIR-light", "sr", 8)
    with pytest.raises(ConfigError, match="scale"):
        build_baseline("DnCNN", "gdn", 2)
    with pytest.raises(ConfigError, match="DnCNN-S.*not 'cdn'"):
        build_baseline("DnCNN-S", "cdn")


def test_dncnn_depths_and_overrides():
    assert build_baseline("DnCNN", "gdn").depth == 20 and build_baseline("DnCNN-S", "gdn").depth == 17
    assert count_params(build_baseline("DnCNN", "gdn", depth=17)) == count_params(build_baseline("DnCNN-S", "gdn"))


def test_build_model_dispatches_to_baselines():
    assert set(BASELINE_NAMES) <= set(list_models())
    model = build_model("IMDN", "sr", 3)
    assert type(model).__name__ == "IMDN" and model.scale == 3
    assert count_params(build_model("PReNet", "dr")) == 168_963
    assert build_model("SwinIR-light", "gdn").in_chans == 1
    with pytest.raises(ValueError, match="DnCNN"):
        build_model("DnCNN", "lle")


# ----------------------------------------------------------------------------- forward contract

FORWARD_CASES = [
    ("SwinIR-light", "sr", 3),
    ("IMDN", "sr", 4),
    ("DnCNN", "cdn", None),
    ("Retinexformer", "lle", None),
    ("PReNet", "dr", None),
]


@pytest.mark.parametrize("name,task,scale", _params(FORWARD_CASES))
def test_forward_odd_sizes_and_batch_independence(name, task, scale):
    torch.manual_seed(0)
    model = build_baseline(name, task, scale).eval()
    s, c = model.scale, model.in_chans
    with torch.no_grad():
        # 17x29: not a multiple of any window or stride; batch 2 must equal two single-image runs
        x = torch.rand(2, c, 17, 29)
        y = model(x)
        assert y.shape == (2, c, 17 * s, 29 * s) and y.dtype == torch.float32 and torch.isfinite(y).all()
        torch.testing.assert_close(y, torch.cat([model(x[:1]), model(x[1:])]), rtol=1e-5, atol=1e-5)
        # 5x3 is smaller than one window / the reflect pad: the documented minimum is 1x1
        assert model(torch.rand(1, c, 5, 3)).shape == (1, c, 5 * s, 3 * s)
        assert model(torch.rand(1, c, 40, 56)).shape == (1, c, 40 * s, 56 * s)


def test_swinir_m_forward():
    torch.manual_seed(0)
    model = build_baseline("SwinIR-M", "cdn", depths=(2,), num_heads=(6,)).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 13, 21)).shape == (1, 3, 13, 21)


@pytest.mark.parametrize("name,task,scale", _params(FORWARD_CASES))
def test_one_training_step_changes_weights(name, task, scale):
    torch.manual_seed(0)
    model = build_baseline(name, task, scale).train()
    s, c = model.scale, model.in_chans
    x, target = torch.rand(2, c, 9, 14), torch.rand(2, c, 9 * s, 14 * s)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = torch.nn.functional.l1_loss(model(x), target)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    params = dict(model.named_parameters())
    assert all(p.grad is not None for p in params.values()), "some parameter is not in the graph"
    # a unit can be dead at init (e.g. IMDN's 4-channel CCA squeeze after a ReLU), so its grad is 0
    live = {k for k, p in params.items() if p.grad.abs().max() > 0}
    changed = {k for k, p in params.items() if not torch.equal(p, before[k])}
    assert changed == live and len(live) >= 0.9 * len(params)


@pytest.mark.parametrize(
    "name,task,last",
    [
        ("SwinIR-light", "cdn", "conv_last"),
        ("SwinIR-M", "gdn", "conv_last"),
        ("DnCNN", "gdn", "model.38"),
        ("DnCNN-S", "gdn", "model.32"),
        ("PReNet", "dr", "conv"),
    ],
)
def test_residual_models_return_input_when_the_last_conv_is_zero(name, task, last):
    # checks the residual wiring and that normalisation is undone exactly (not only approximately)
    overrides = {"depths": (1,), "num_heads": (6,)} if name == "SwinIR-M" else {}
    model = build_baseline(name, task, **overrides).eval()
    conv = model.get_submodule(last)
    with torch.no_grad():
        for p in conv.parameters():
            p.zero_()
        x = torch.rand(1, model.in_chans, 13, 11) * 1.2 - 0.1  # unclipped noisy inputs leave [0, 1]
        torch.testing.assert_close(model(x), x, rtol=0, atol=1e-6)


def test_swinir_shifted_windows_do_not_leak_across_the_wrap():
    # The cyclic shift puts the image's bottom rows next to its top rows; the Swin mask must keep them
    # apart. 24x24 input padded to the pure model size (no extra window), one regular + one shifted
    # layer: the top-left 2x2 output then depends on rows/cols 0..16 only (3x3 convs, the masked shifted
    # window, the regular windows 0..15); without the mask rows/cols 20..23 would leak in.
    torch.manual_seed(0)
    model = build_baseline("SwinIR-light", "cdn", depths=(2,), num_heads=(6,), pad_to_next_window=False).eval()
    x = torch.rand(1, 3, 24, 24, requires_grad=True)
    model(x)[0, :, :2, :2].sum().backward()
    assert x.grad[0, :, :17, :17].abs().sum() > 0
    assert x.grad[0, :, 17:, :].abs().max() == 0 and x.grad[0, :, :, 17:].abs().max() == 0


def test_swinir_pads_to_the_next_window_like_the_authors_test_script():
    torch.manual_seed(0)
    model = build_baseline("SwinIR-light", "sr", 2, depths=(2,), num_heads=(6,)).eval()
    plain = build_baseline("SwinIR-light", "sr", 2, depths=(2,), num_heads=(6,), pad_to_next_window=False).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 48, 40)  # already multiples of 8: the script still adds a mirrored window
    with torch.no_grad():
        y = model(x)
        rows = torch.cat([x, x.flip(2)], 2)[:, :, :56]  # main_test_swinir.py: mirror to the next multiple
        padded = torch.cat([rows, rows.flip(3)], 3)[..., :48]
        assert torch.equal(y, plain(padded)[..., :96, :80])
        assert (y - plain(x)).abs().max() > 1e-3  # the extra window changes the result


def test_swinir_trains_on_the_patch_as_given_and_tests_with_the_extra_window():
    # The authors' training feeds 64x64 patches straight to the network (its check_image_size pads only
    # to a multiple); the extra mirrored window belongs to their test script.
    torch.manual_seed(0)
    model = build_baseline("SwinIR-light", "sr", 2, depths=(2,), num_heads=(6,))
    seen = []
    model.conv_first.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    x = torch.rand(2, 3, 32, 32)
    out = model.train()(x)
    assert out.shape == (2, 3, 64, 64) and seen == [(32, 32)]
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 3, 64, 64) and seen[-1] == (40, 40)
    model.train()(torch.rand(1, 3, 30, 27))  # training input off the window grid: to the multiple only
    assert seen[-1] == (32, 32)


def test_swinir_uses_its_mask_buffer_only_at_img_size():
    # the authors use the stored attn_mask when the (padded) input is img_size, else a fresh one
    torch.manual_seed(0)
    model = build_baseline("SwinIR-light", "sr", 2, depths=(2,), num_heads=(6,)).eval()
    x_at, x_other = torch.rand(1, 3, 56, 56), torch.rand(1, 3, 40, 40)  # padded to 64 (img_size) / 48
    with torch.no_grad():
        before_at, before_other = model(x_at), model(x_other)
        model.layers[0].residual_group.blocks[1].attn_mask.zero_()
        assert not torch.equal(model(x_at), before_at)
        assert torch.equal(model(x_other), before_other)


# ----------------------------------------------------------------------------- non-learned references

def test_bicubic_equals_imresize_exactly():
    from ramit.data.degrade import imresize

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((2, 3, 9, 14))).to(torch.float32)
    for scale in (2, 3, 4):
        y = build_baseline("Bicubic", "sr", scale)(x)
        assert y.shape == (2, 3, 9 * scale, 14 * scale) and y.dtype == torch.float32
        for i in range(2):
            ref = imresize(x[i].double().numpy().transpose(1, 2, 0), scale)
            np.testing.assert_array_equal(y[i].numpy(), ref.transpose(2, 0, 1).astype(np.float32))


def test_bicubic_gray_and_unclamped():
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4:, :] = 1.0  # a step edge: the cubic kernel overshoots on both sides
    y = build_baseline("Bicubic", "sr", 2, in_chans=1)(x)
    assert y.shape == (1, 1, 16, 16)
    assert y.max() > 1.0 and y.min() < 0.0


def test_identity_returns_the_input():
    x = torch.randn(2, 1, 7, 9)
    y = build_baseline("Identity", "gdn")(x)
    assert torch.equal(y, x) and y.data_ptr() != x.data_ptr()


# ----------------------------------------------------------------------------- padding helper

@pytest.mark.parametrize("mode", ["symmetric", "reflect"])
@pytest.mark.parametrize("h,w,m", [(17, 29, 8), (3, 5, 8), (9, 2, 4), (8, 16, 8)])
def test_pad_to_multiple_matches_numpy(mode, h, w, m):
    x = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)
    y = pad_to_multiple(x, m, mode)
    ph, pw = (-h) % m, (-w) % m
    assert y.shape[-2:] == (h + ph, w + pw)
    np.testing.assert_array_equal(y[0, 0].numpy(), np.pad(x[0, 0].numpy(), ((0, ph), (0, pw)), mode=mode))


def test_pad_always_adds_a_window_to_exact_multiples():
    x = torch.arange(8 * 5, dtype=torch.float32).view(1, 1, 8, 5)
    y = pad_to_multiple(x, 8, "symmetric", always=True)
    assert y.shape[-2:] == (16, 8)
    np.testing.assert_array_equal(y[0, 0].numpy(), np.pad(x[0, 0].numpy(), ((0, 8), (0, 3)), mode="symmetric"))
