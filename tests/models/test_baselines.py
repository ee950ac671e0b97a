"""Baseline models: parameter counts against their papers, the model contract (shapes, odd sizes,
padding, batch independence), one training step, and the non-learned references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ramit.config import ConfigError
from ramit.models.baselines import BASELINE_NAMES, BASELINE_TASKS, build_baseline
from ramit.models.baselines.padding import pad_to_multiple


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # the tensors here are tiny: a second intra-op thread only adds synchronisation, and on a busy 2-core
    # box oversubscribed OpenMP threads made this file ~10x slower
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def combos():
    for name, tasks in BASELINE_TASKS.items():
        for task in tasks:
            for scale in (2, 3, 4) if task == "sr" else (None,):
                yield name, task, scale


LEARNED = [c for c in combos() if c[0] not in ("Bicubic", "Identity")]
# one representative per learned model and head type, for the (slower) forward/backward checks
FORWARD_CASES = [
    ("SwinIR-light", "sr", 3),
    ("IMDN", "sr", 4),
    ("DnCNN", "cdn", None),
    ("Retinexformer", "lle", None),
    ("PReNet", "dr", None),
]


def _params(cases):
    return [pytest.param(*c, id="-".join(f"x{v}" if isinstance(v, int) else v for v in c if v)) for c in cases]


# ----------------------------------------------------------------------------- parameter counts

# (name, task, scale, exact count of this implementation, count stated by the paper, source)
PAPER_COUNTS = [
    # SwinIR paper Table 3 (lightweight SR); it leaves out the relative position bias tables, see below
    ("SwinIR-light", "sr", 2, 910_152, 878_000, "SwinIR Tab. 3"),
    ("SwinIR-light", "sr", 3, 918_267, 886_000, "SwinIR Tab. 3"),
    ("SwinIR-light", "sr", 4, 929_628, 897_000, "SwinIR Tab. 3"),
    ("IMDN", "sr", 2, 694_404, 694_000, "IMDN Tab. 2"),
    ("IMDN", "sr", 3, 703_059, 703_000, "IMDN Tab. 2"),
    ("IMDN", "sr", 4, 715_176, 715_000, "IMDN Tab. 2"),
    ("DnCNN", "gdn", None, 556_032, 556_000, "cited for DnCNN (gray) in lightweight DN tables"),
    ("Retinexformer", "lle", None, 1_605_701, 1_610_000, "Retinexformer Tab. 1 (1.61M)"),
    ("PReNet", "dr", None, 168_963, 168_000, "PReNet Tab. (0.168M)"),
]


@pytest.mark.parametrize(
    "name,task,scale,exact,paper,source", PAPER_COUNTS, ids=[f"{c[0]}-{c[1]}{c[2] or ''}" for c in PAPER_COUNTS]
)
def test_param_count_matches_paper(name, task, scale, exact, paper, source):
    model = build_baseline(name, task, scale)
    assert n_params(model) == exact
    # SwinIR's stated counts exclude the 24 relative-position tables (24 x 225 x 6 = 32,400 params)
    stated_convention = model.paper_param_count() if name == "SwinIR-light" else n_params(model)
    assert abs(stated_convention - paper) / paper < 0.01, (stated_convention, paper, source)


@pytest.mark.parametrize(
    "name,task,exact",
    [
        # no paper states these: lightweight SwinIR with the scale-1 residual head, and colour DnCNN
        ("SwinIR-light", "cdn", 905_283),
        ("SwinIR-light", "gdn", 903_121),
        ("DnCNN", "cdn", 558_336),
    ],
)
def test_param_count_without_stated_value(name, task, exact):
    assert n_params(build_baseline(name, task)) == exact


def test_nonlearned_have_no_parameters():
    assert n_params(build_baseline("Bicubic", "sr", 4)) == 0
    assert n_params(build_baseline("Identity", "lle")) == 0


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


def test_overrides_reach_the_constructor():
    model = build_baseline("DnCNN", "gdn", depth=20)
    assert n_params(model) == 556_032 + 3 * (64 * 64 * 9 + 2 * 64)


def test_build_model_dispatches_to_baselines():
    models = pytest.importorskip("ramit.models")
    if not hasattr(models, "build_model"):
        pytest.skip("ramit.models.build_model is not written yet")
    assert set(BASELINE_NAMES) <= set(models.list_models())
    model = models.build_model("IMDN", "sr", 3)
    assert type(model).__name__ == "IMDN" and model.scale == 3
    assert n_params(models.build_model("PReNet", "dr")) == 168_963
    assert models.build_model("SwinIR-light", "gdn").in_chans == 1
    with pytest.raises(ValueError, match="DnCNN"):
        models.build_model("DnCNN", "lle")


def test_count_macs_matches_the_closed_form():
    complexity = pytest.importorskip("ramit.models.complexity")
    # IMDN at 16x16: only convolutions (weights + one per output for the bias), CCA's 1x1 convs on 1x1 maps
    px, nf, d, r = 16 * 16, 64, 16, 48
    conv = lambda cin, cout, k, n: (cin * k * k + 1) * cout * n  # noqa: E731
    block = conv(nf, nf, 3, px) + 2 * conv(r, nf, 3, px) + conv(r, d, 3, px) + conv(4 * d, nf, 1, px)
    block += conv(nf, 4, 1, 1) + conv(4, nf, 1, 1)
    total = conv(3, nf, 3, px) + 6 * block + conv(6 * nf, nf, 1, px) + conv(nf, nf, 3, px) + conv(nf, 12, 3, px)
    assert complexity.count_macs(build_baseline("IMDN", "sr", 2), (3, 16, 16)) == total


# ----------------------------------------------------------------------------- forward contract

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
        ("SwinIR-light", "gdn", "conv_last"),
        ("DnCNN", "gdn", "body.47"),
        ("PReNet", "dr", "f_out"),
    ],
)
def test_residual_models_return_input_when_the_last_conv_is_zero(name, task, last):
    # checks the residual wiring and that normalisation is undone exactly (not only approximately)
    model = build_baseline(name, task).eval()
    conv = model.get_submodule(last)
    with torch.no_grad():
        for p in conv.parameters():
            p.zero_()
        x = torch.rand(1, model.in_chans, 13, 11) * 1.2 - 0.1  # unclipped noisy inputs leave [0, 1]
        torch.testing.assert_close(model(x), x, rtol=0, atol=1e-6)


def test_swinir_shifted_windows_do_not_leak_across_the_wrap():
    # The cyclic shift puts the image's bottom rows next to its top rows; the Swin mask must keep them
    # apart. 24x24 input (no padding, 3 windows per axis), one regular + one shifted layer: the top-left
    # 2x2 output then depends on rows/cols 0..16 only (3x3 convs, the masked shifted window, the regular
    # windows 0..15); without the mask rows/cols 20..23 would leak in.
    torch.manual_seed(0)
    model = build_baseline("SwinIR-light", "cdn", depths=(2,), num_heads=(6,)).eval()
    x = torch.rand(1, 3, 24, 24, requires_grad=True)
    model(x)[0, :, :2, :2].sum().backward()
    assert x.grad[0, :, :17, :17].abs().sum() > 0
    assert x.grad[0, :, 17:, :].abs().max() == 0 and x.grad[0, :, :, 17:].abs().max() == 0


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
