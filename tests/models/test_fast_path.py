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


def _close(a: torch.Tensor, b: torch.Tensor, rel: float, floor: float) -> bool:
    """Within `rel` of b's largest entry, or `floor` where b is ~0 (a bias whose gradient cancels out)."""
    return (a.double() - b.double()).abs().max().item() <= rel * b.double().abs().max().item() + floor


@pytest.mark.parametrize("name, task, scale", list(_cases()))
def test_fast_and_reference_agree_forward_and_backward(name, task, scale):
    m = _model(name, task, scale).train()
    x = torch.rand(2, m.in_chans, *SIZE, generator=torch.Generator().manual_seed(1))
    y_f, gx_f, g_f = _run(m, "fast", x)
    y_r, gx_r, g_r = _run(m, "reference", x)
    s = scale or 1
    assert y_f.shape == y_r.shape == (2, m.out_chans, SIZE[0] * s, SIZE[1] * s)
    assert (y_f - y_r).abs().max().item() <= 1e-5
    assert g_f.keys() == g_r.keys() == {k for k, p in m.named_parameters()}
    # In float64 rounding cannot hide a wrong window, head or roll in the backward: the two paths must agree
    # to 1e-9. (In float32, sharp attention makes some gradients ill-conditioned: both paths are ~1e-3 off
    # the float64 values there, so a float32 fast-vs-reference comparison would only measure that noise.)
    m64 = m.double()
    y6f, gx6f, g6f = _run(m64, "fast", x.double())
    y6r, gx6r, g6r = _run(m64, "reference", x.double())
    assert (y6f - y6r).abs().max().item() <= 1e-10
    assert _close(gx6f, gx6r, 1e-9, 1e-12)
    for k in g6r:
        assert _close(g6f[k], g6r[k], 1e-9, 1e-12), k
    # float32 fast gradients (oneDNN's own conv backward) stay within the float32 noise of the exact ones.
    assert _close(gx_f, gx6r, 1e-2, 1e-6)
    for k in g6r:
        assert _close(g_f[k], g6r[k], 1e-2, 1e-6), k


INFERENCE_CASES = [("RAMiT", "sr", 2), ("RAMiT-1", "cdn", None), ("RAMiT-slimSR", "sr", 3), ("RAMiT-slimLLE", "lle", None),
                   ("RAMiT-1", "gdn", None)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name, task, scale", INFERENCE_CASES)
def test_fast_inference_kernels_agree_with_reference(name, task, scale, threads):
    """Without autograd the fast path fuses activations and residual sums into oneDNN convolutions, and with
    more than one thread it computes SPSA with explicit matmuls instead of SDPA: both must give the same
    function, and the multi-thread branch the same gradients."""
    m = _model(name, task, scale).eval()
    x = torch.rand(2, m.in_chans, *SIZE, generator=torch.Generator().manual_seed(2))
    torch.set_num_threads(threads)
    with torch.no_grad():
        y_f = set_impl(m, "fast")(x)
        y_r = set_impl(m, "reference")(x)
    assert (y_f - y_r).abs().max().item() <= 1e-5
    if threads > 1:
        m64 = m.double()
        y6f, gx6f, g6f = _run(m64, "fast", x.double())
        y6r, gx6r, g6r = _run(m64, "reference", x.double())
        assert (y6f - y6r).abs().max().item() <= 1e-10 and _close(gx6f, gx6r, 1e-9, 1e-12)
        for k in g6r:
            assert _close(g6f[k], g6r[k], 1e-9, 1e-12), k


def test_impl_switch_is_checked_and_keeps_the_state_dict():
    ref = build_model("RAMiT-1", "sr", scale=2, impl="reference")
    fast = build_model("RAMiT-1", "sr", scale=2)
    assert fast.impl == "fast" and set(IMPLS) == {"fast", "reference"}
    assert [(k, v.shape) for k, v in ref.state_dict().items()] == [(k, v.shape) for k, v in fast.state_dict().items()]
    with pytest.raises(ValueError, match="impl must be one of"):
        set_impl(fast, "sdpa")
