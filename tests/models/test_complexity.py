"""count_params / count_macs: exact parameter counts; MACs = convolutions + attention matmuls, both paths."""

from __future__ import annotations

import json

import torch
from torch import nn

from ramit.models import build_model
from ramit.models.complexity import count_macs, count_params
from ramit.models.ramit import set_attn_impl


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
    set_attn_impl(model, "reference")
    reference = count_macs(model, (3, 40, 56))
    assert fused == reference == convs + attn
    assert not any(model._forward_hooks for model in model.modules())  # ptflops' hooks stay off our model
