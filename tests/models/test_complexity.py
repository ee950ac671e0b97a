"""count_params / count_macs: exact parameter counts; MACs = convolutions + attention matmuls, both paths."""

from __future__ import annotations

import json

import torch
from torch import nn

from ramit.models import build_model
from ramit.models.complexity import count_macs, count_params
from ramit.models.ramit import set_impl


def test_params_match_official_counts(golden_dir):
    rows = [json.loads(f.read_text()) for f in golden_dir.glob("keys_RAMiT-1_*.json")]
    tasks = {"x2": ("sr", 2), "x3": ("sr", 3), "x4": ("sr", 4), "cdn": ("cdn", None), "gdn": ("gdn", None)}
    for r in rows:
        task, scale = tasks[r["task"]]
        assert count_params(build_model("RAMiT-1", task, scale=scale)) == r["num_params"]


def _conv_macs(model, x):
    total = []

    def hook(mod, inp, out):
        total.append(mod.weight.numel() * out.shape[-2] * out.shape[-1] * out.shape[0]
                     + (out.numel() if mod.bias is not None else 0))

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return sum(total)


def _attention_macs(depths, dim, side, heads=4, ratio=0.25, ws=8):
    """q.k^T and A.v of every block: SPSA (ws^2 keys per token) and CHSA (d x d per pixel)."""
    d, l2 = dim // heads, int(heads * ratio)
    l1 = heads - l2
    sides = (side, side // 2, side // 4, side)
    return sum(n * (2 * l1 * s * s * ws * ws * d + 2 * l2 * d * d * s * s) for n, s in zip(depths, sides))


def test_macs_include_attention_for_fused_and_reference_paths():
    model = build_model("RAMiT-1", "sr", scale=2, depths=(2, 1, 1, 2)).eval()
    x = torch.rand(1, 3, 40, 56)  # padded to 64x64 inside
    convs = _conv_macs(model, x)
    attn = _attention_macs((2, 1, 1, 2), 64, 64)
    fused = count_macs(model, (3, 40, 56))
    set_impl(model, "reference")
    reference = count_macs(model, (3, 40, 56))
    assert fused == reference == convs + attn
    assert not any(model._forward_hooks for model in model.modules())  # ptflops' hooks stay off our model


def _layer_macs(model, x):
    """Conv and Linear MACs by module hooks: (weights only, bias additions, LayerNorm elements)."""
    weights, biases, norms = [], [], []

    def hook(mod, inp, out):
        if isinstance(mod, nn.LayerNorm):
            norms.append(inp[0].numel())
            return
        per_output = mod.weight.numel() // mod.weight.shape[0] if isinstance(mod, nn.Linear) else \
            mod.weight[0].numel()
        weights.append(per_output * out.numel())
        biases.append(out.numel() if mod.bias is not None else 0)

    kinds = (nn.Conv2d, nn.Linear, nn.LayerNorm)
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return sum(weights), sum(biases), sum(norms)


def test_macs_without_attention_without_bias_and_with_layer_norms():
    # two STLs of 60 channels, 6 heads, on a 16x16 input (4 windows of 64 tokens, no padding)
    model = build_model("SwinIR-light", "sr", scale=2, depths=(2,), num_heads=(6,), pad_to_next_window=False).eval()
    weights, biases, norms = _layer_macs(model, torch.rand(1, 3, 16, 16))
    attention = 2 * 4 * (2 * 64 * 64 * 60)  # blocks x windows x (q.k^T + A.v)
    shape = (3, 16, 16)
    assert count_macs(model, shape) == weights + biases + attention
    assert count_macs(model, shape, attention=False) == weights + biases
    assert count_macs(model, shape, attention=False, bias=False) == weights
    assert count_macs(model, shape, bias=False, layer_norm_ops=5) == weights + attention + 5 * norms


def test_paper_counts_follow_each_models_convention():
    from ramit.models.complexity import FIELD_CONVENTION, counting_rule, paper_gmacs, paper_input_size, paper_params

    ramit = build_model("RAMiT-1", "sr", scale=2, depths=(1, 1, 1, 1))
    assert paper_params(ramit) == count_params(ramit) and counting_rule(ramit) == FIELD_CONVENTION.rule
    assert paper_input_size(ramit) == (360, 640)
    swinir = build_model("SwinIR-light", "sr", scale=3)
    # the SwinIR authors' flops() image size, not the 1280x720 their caption names
    assert paper_input_size(swinir) == (344, 248)
    assert paper_params(swinir) == count_params(swinir) - 24 * 225 * 6
    assert "bias tables" in counting_rule(swinir)
    imdn = build_model("IMDN", "sr", scale=3)
    assert paper_input_size(imdn) == (240, 427)
    assert paper_gmacs(imdn) * 1e9 == count_macs(imdn, (3, 240, 427), bias=False)


def test_profile_json_carries_the_paper_convention_counts():
    from ramit.evaluate.profile import paper_counts

    swinir = build_model("SwinIR-light", "sr", scale=2)
    got = paper_counts(swinir, (360, 640), macs=1)
    assert got["paper_params"] == 877_752 and got["paper_macs_input_size"] == [520, 368]
    assert abs(got["paper_gmacs"] - 195.6) < 0.05 and "bias tables" in got["paper_counting"]
    ramit = build_model("RAMiT-1", "sr", scale=2, depths=(1, 1, 1, 1))
    # RAMiT's own rule is the report's: the count already made is reused, not repeated
    assert paper_counts(ramit, (360, 640), macs=123_000_000_000)["paper_gmacs"] == 123.0
