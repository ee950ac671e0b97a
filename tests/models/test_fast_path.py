"""The fast path (channels_last, oneDNN 1x1, fused SDPA) and the reference path compute the same function.

Every variant and ablation of variants.yaml, every task it is built for, batch 2, an odd input size that
is no multiple of the window (so the symmetric padding and the shifted windows' wrap-around are exercised).
"""

from __future__ import annotations

import pytest
import torch

from ramit.models import build_model
from ramit.models.ramit import IMPLS, set_impl
from ramit.models.variants import allowed_tasks, variant_names

SIZE = (37, 29)
# Shorter stages keep the test fast; two blocks per stage still cover a plain and a shifted block, the helper
# handed across blocks, and every other switch of the variant (width, heads, MobiVari, H-RAMi, groups).
DEPTHS = (2, 1, 1, 2)


def _cases():
    for name in variant_names():
        for task in allowed_tasks(name):
            for scale in ((2, 3, 4) if task == "sr" else (None,)):
                if name.startswith("RAMiT-abl") and (task, scale) != ("sr", 2):
                    continue  # an ablation changes one switch of RAMiT: one task covers it
                yield pytest.param(name, task, scale, id=f"{name}-{task}{scale or ''}")


def _model(name, task, scale):
    torch.manual_seed(0)
    m = build_model(name, task, scale=scale, depths=DEPTHS)
    with torch.no_grad():  # non-trivial bias and scales, so a wrong window or head order shows
        for mod in m.modules():
            if hasattr(mod, "relative_position_bias_table"):
                mod.relative_position_bias_table.normal_(0, 0.5)
            if hasattr(mod, "logit_scale"):
                mod.logit_scale.uniform_(1.5, 3.0)
    return m


def _run(m, impl, x):
    set_impl(m, impl)
    m.zero_grad(set_to_none=True)
    xi = x.clone().requires_grad_()
    y = m(xi)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    grads = {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}
    return y.detach(), xi.grad, grads


@pytest.fixture(autouse=True)
def _one_thread():
    # Two threads on a shared 2-core machine spin against other jobs; the check is numeric, not timing.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name, task, scale", list(_cases()))
def test_fast_and_reference_agree_forward_and_backward(name, task, scale):
    m = _model(name, task, scale).train()
    x = torch.rand(2, m.in_chans, *SIZE, generator=torch.Generator().manual_seed(1))
    y_f, gx_f, g_f = _run(m, "fast", x)
    y_r, gx_r, g_r = _run(m, "reference", x)
    s = scale or 1
    assert y_f.shape == y_r.shape == (2, m.out_chans, SIZE[0] * s, SIZE[1] * s)
    assert (y_f - y_r).abs().max().item() <= 1e-5
    # Gradients are sums over many pixels in another order: compare relative to each tensor's largest entry.
    assert (gx_f - gx_r).abs().max().item() <= 1e-3 * gx_r.abs().max().item() + 1e-6
    assert g_f.keys() == g_r.keys() == {k for k, p in m.named_parameters()}
    for k in g_r:
        tol = 1e-2 * g_r[k].abs().max().item() + 1e-6
        assert (g_f[k] - g_r[k]).abs().max().item() <= tol, k


def test_impl_switch_is_checked_and_keeps_the_state_dict():
    ref = build_model("RAMiT-1", "sr", scale=2, impl="reference")
    fast = build_model("RAMiT-1", "sr", scale=2)
    assert fast.impl == "fast" and set(IMPLS) == {"fast", "reference"}
    assert [(k, v.shape) for k, v in ref.state_dict().items()] == [(k, v.shape) for k, v in fast.state_dict().items()]
    with pytest.raises(ValueError, match="impl must be one of"):
        set_impl(fast, "sdpa")
