"""RAMiT: Reciprocal Attention Mixing Transformer (arXiv 2305.11474), written from the project spec.

The module layout and state_dict names match the authors' released checkpoints exactly, so their
`.pth` files load with `strict=True`. `RAMiT.forward` runs the authors' *test-engine* path (edge-repeating
symmetric padding to a multiple of 32, normalisation, network, de-normalisation, crop), because that is
what their published numbers were measured with (see spec 2.17: CHSA is global, so the padding content
changes every output pixel).

Data flow (spec 2.17):

    x -> pad -> normalise -> shallow -> stage1 -> down1 -> stage2 -> down2 -> stage3
                               |          |                  |                  |
                               +----------+---- bottleneck --+------------------+
                                                    |
                                                  stage4 -> o4 * H-RAMi(m1, m2, m3, m4) + f0
                                                    -> to_target (-> + xn if scale 1) -> de-normalise -> crop

Two implementations compute the same function with the same parameters (`impl=`, or `set_impl` later):

* `"reference"`: the spec transcribed literally, NCHW maps, `nn.Conv2d` everywhere, attention as explicit
  matmul, bias add, softmax. It is the baseline the tests and `benchmarks/bench_model.py` compare with.
* `"fast"` (default): the same graph on channels_last maps (NHWC memory). Then LayerNorm over channels is a
  plain `layer_norm` on a permuted *view*, 1x1 convolutions go straight to oneDNN (`Pointwise`), the shift
  and the window partition are one row gather each way (`_window_order`), and SPSA is one fused
  `F.scaled_dot_product_attention` on strided q, k, v views (explicit matmuls with more than one CPU
  thread, where torch's flash kernel does not scale). Without autograd (evaluation), activations and
  residual sums ride on the convolutions as oneDNN post-ops (`conv_act`, `conv_add`).

`compile_model` wraps either in `torch.compile` with a persistent Inductor cache (off unless asked for).
"""

from __future__ import annotations

import functools
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

IMPLS = ("fast", "reference")

# Per-task input statistics the released checkpoints were trained with (spec 3). SR picks by scale.
IMG_NORM: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "sr2": ((0.4485, 0.4375, 0.4045), (0.2397, 0.2290, 0.2389)),
    "sr3": ((0.4485, 0.4375, 0.4045), (0.2373, 0.2265, 0.2367)),
    "sr4": ((0.4485, 0.4375, 0.4045), (0.2352, 0.2244, 0.2349)),
    "cdn": ((0.4775, 0.4515, 0.4047), (0.2442, 0.2367, 0.2457)),
    "gdn": ((0.4539,), (0.2326,)),
    "lle": ((0.1687, 0.1599, 0.1526), (0.1142, 0.1094, 0.1094)),
    "dr": ((0.5110, 0.5105, 0.4877), (0.2313, 0.2317, 0.2397)),
}


def img_norm_stats(task: str, scale: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    key = f"sr{scale}" if task == "sr" else task
    if key not in IMG_NORM:
        raise ValueError(f"no normalisation constants for task {task!r} scale {scale}; known: {sorted(IMG_NORM)}")
    return IMG_NORM[key]


def pad_symmetric(x: torch.Tensor, unit: int) -> torch.Tensor:
    """Pad bottom/right to a multiple of `unit`, mirroring *with* the edge pixel (torchvision 'symmetric')."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % unit, (-w) % unit
    if ph > h or pw > w:
        raise ValueError(f"input {h}x{w} is too small: symmetric padding to a multiple of {unit} needs at least "
                         f"{unit // 2} px per side")
    if ph:
        x = torch.cat([x, x[..., h - ph:, :].flip(-2)], dim=-2)
    if pw:
        x = torch.cat([x, x[..., :, w - pw:].flip(-1)], dim=-1)
    return x


def _check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


def _cat_channels(*maps: torch.Tensor) -> torch.Tensor:
    # An empty branch (0 heads) is left out: cat with a 0-channel tensor would also drop channels_last.
    maps = [m for m in maps if m.shape[1]]
    return maps[0] if len(maps) == 1 else torch.cat(maps, dim=1)


# ------------------------------------------------------------------------------------ small layers
def _onednn_map(x: torch.Tensor) -> bool:
    """A float32 CPU map in channels_last memory, eager: what the oneDNN calls below are for."""
    return (not torch.compiler.is_compiling() and x.device.type == "cpu" and x.dtype == torch.float32
            and torch.backends.mkldnn.is_available()
            and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())


class Pointwise(nn.Conv2d):
    """A 1x1 convolution (an `nn.Conv2d`, so the checkpoint keys are unchanged).

    On a channels_last float CPU map it calls oneDNN directly: torch's own heuristic sends single-thread,
    batch-1 1x1 convolutions to its im2col GEMM, which is ~2.3x slower on these shapes.
    """

    def __init__(self, in_ch: int, out_ch: int, bias: bool = True, groups: int = 1):
        super().__init__(in_ch, out_ch, 1, bias=bias, groups=groups)

    def forward(self, x):
        # Under torch.compile the plain conv is traced instead: Inductor picks its own conv kernels.
        if _onednn_map(x):
            return torch.ops.aten.mkldnn_convolution(x, self.weight, self.bias, [0, 0], [1, 1], [1, 1], self.groups)
        return super().forward(x)


# oneDNN post-ops for the activations the network uses: (attr, scalars, algorithm).
def _post_op(act: nn.Module) -> tuple[str, list, str]:
    if isinstance(act, nn.LeakyReLU):
        return "leaky_relu", [act.negative_slope], ""
    if isinstance(act, nn.GELU):
        return "gelu", [], act.approximate  # "none" is the exact erf GELU
    raise TypeError(f"no oneDNN post-op for {type(act).__name__}")


def _fusable(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    # oneDNN's conv+post-op kernels have no autograd formula: inference (or frozen weights) only. The fused
    # call bypasses the conv module, so a module with hooks (a MACs counter, a feature probe) takes the
    # plain path, where its hooks run.
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad)
    hooked = bool(conv._forward_hooks or conv._forward_pre_hooks
                  or nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks)
    return not needs_grad and not hooked and _onednn_map(x)


def _conv_args(conv: nn.Conv2d) -> tuple:
    return conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups


def conv_act(conv: nn.Conv2d, x: torch.Tensor, act: nn.Module) -> torch.Tensor:
    """`act(conv(x))`; at inference on a channels_last CPU map one oneDNN call with `act` as a post-op."""
    if _fusable(conv, x):
        return torch.ops.mkldnn._convolution_pointwise(x, *_conv_args(conv), *_post_op(act))
    return act(conv(x))


def conv_add(conv: nn.Conv2d, x: torch.Tensor, other: torch.Tensor, act: Optional[nn.Module] = None) -> torch.Tensor:
    """`act(conv(x) + other)` (no `act`: the sum); at inference the sum is a oneDNN post-op of the conv.

    (torch's binary-fusion op takes only ReLU as a following unary post-op, so `act` stays a separate call.)
    """
    if _fusable(conv, x) and other.shape == (x.shape[0], conv.out_channels, *x.shape[2:]) \
            and other.is_contiguous(memory_format=torch.channels_last):
        y = torch.ops.mkldnn._convolution_pointwise.binary(x, other, *_conv_args(conv), "add", None, None, [], None)
    else:
        y = conv(x) + other
    return act(y) if act is not None else y


class ReshapeLayerNorm(nn.Module):
    """LayerNorm over channels at every pixel of an NCHW map (the key `.norm` is the checkpoint's).

    On a channels_last map both permutes are views, so this costs only the normalisation.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class MobiVari1(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 (MobileNet-v1-like) with inner and outer residuals."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.dw_conv = nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch)
        self.pw_conv = Pointwise(in_ch, out_ch)
        self.act = nn.LeakyReLU()
        self.residual = in_ch == out_ch

    def forward(self, x):
        z = conv_act(self.pw_conv, conv_act(self.dw_conv, x, self.act) + x, self.act)
        return z + x if self.residual else z


def mobivari2_width(in_ch: int, exp_factor: float, groups: int) -> int:
    # The official rounding always adds channels, a whole group when already divisible (76 -> 80).
    q = int(in_ch * exp_factor)
    return q + (groups - q % groups)


class MobiVari2(nn.Module):
    """Grouped 1x1 expansion, depthwise 3x3 + pointwise 1x1 (MobileNet-v2-like), no final activation.

    `u = LReLU(exp_conv(x))`, `z = pw_conv(LReLU(dw_conv(u) + u))`, output `z + x` if in == out else `z`.
    """

    def __init__(self, in_ch: int, out_ch: int, exp_factor: float, expand_groups: int):
        super().__init__()
        exp_ch = mobivari2_width(in_ch, exp_factor, expand_groups)
        # Registration order dw, pw, exp reproduces the checkpoint's key order.
        self.dw_conv = nn.Conv2d(exp_ch, exp_ch, 3, padding=1, groups=exp_ch)
        self.pw_conv = Pointwise(exp_ch, out_ch)
        self.exp_conv = Pointwise(in_ch, exp_ch, groups=expand_groups)
        self.act = nn.LeakyReLU()
        self.residual = in_ch == out_ch

    def forward(self, x):
        u = conv_act(self.exp_conv, x, self.act)
        # Unlike MobiVari1, the activation comes *after* the inner residual sum (dw(u) + u); placing it on
        # dw(u) alone (the v1 pattern) loads strictly but ruins the released v2 checkpoints (Set5 x2 ~18 dB).
        v = conv_add(self.dw_conv, u, u, self.act)
        return conv_add(self.pw_conv, v, x) if self.residual else self.pw_conv(v)


def make_mobivari(mv_ver: int, in_ch: int, out_ch: int, exp_factor: float, expand_groups: int) -> nn.Module:
    if mv_ver == 1:
        return MobiVari1(in_ch, out_ch)
    if mv_ver == 2:
        return MobiVari2(in_ch, out_ch, exp_factor, expand_groups)
    raise ValueError(f"mv_ver must be 1 or 2, got {mv_ver!r}")


class NoLayer(nn.Module):
    """Stands in for an attention branch with zero heads: no parameters, an empty channel slice out."""

    def forward(self, qkv, *args, **kwargs):
        b, _, _, h, w = qkv.shape
        return qkv.new_zeros(b, 0, h, w)


# ----------------------------------------------------------------------------------------- attention
def _window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """[B, G, c, H, W] -> [B*nW, G, ws*ws, c]; windows batch-major then row-major, tokens row-major."""
    b, g, c, h, w = x.shape
    x = x.view(b, g, c, h // ws, ws, w // ws, ws).permute(0, 3, 5, 1, 4, 6, 2)
    return x.reshape(-1, g, ws * ws, c)


def _window_merge(x: torch.Tensor, ws: int, b: int, h: int, w: int) -> torch.Tensor:
    """[B*nW, G, ws*ws, c] -> [B, G*c, H, W] with head-major channels (h*c + j)."""
    g, c = x.shape[1], x.shape[3]
    x = x.view(b, h // ws, w // ws, g, ws, ws, c).permute(0, 3, 6, 1, 4, 2, 5)
    return x.reshape(b, g * c, h, w)


def _unit(x: torch.Tensor, dim: int, scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """`F.normalize(x, dim=dim)` (same eps), times `scale` if given: one pass over x, the reciprocal on the norms."""
    inv = torch.linalg.vector_norm(x, dim=dim, keepdim=True).clamp_min(1e-12).reciprocal()
    return x * (inv if scale is None else inv * scale)


@functools.lru_cache(maxsize=64)
def _window_order(b: int, h: int, w: int, ws: int, shift: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices into [B*H*W] tokens: pixel order -> windows (batch-major, rolled by -shift, row-major
    windows, row-major tokens), and back. (A gather along dim 0 of a 2-D view is torch's fastest one.)"""
    pixels = torch.arange(h * w).view(h, w)
    if shift:
        pixels = torch.roll(pixels, (-shift, -shift), dims=(0, 1))
    one = pixels.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1)
    to_windows = (torch.arange(b)[:, None] * (h * w) + one).reshape(-1)
    return to_windows.to(device), torch.argsort(to_windows).to(device)


def _explicit_attention(q: torch.Tensor, bias: torch.Tensor) -> bool:
    # torch's CPU flash kernel gets slower, not faster, with a second thread at 64 tokens x 16 dims
    # (benchmarks/README.md); explicit batched matmuls scale. And with a bias that needs a gradient (training)
    # SDPA falls back to its math kernel anyway, plus a -inf-safe softmax on top. Compiled graphs keep SDPA
    # (Inductor lowers it, and reading the thread count would break the graph).
    if torch.compiler.is_compiling() or q.device.type != "cpu":
        return False
    return torch.get_num_threads() > 1 or (torch.is_grad_enabled() and bias.requires_grad)


class SpatialSelfAttention(nn.Module):
    """SPSA: shifted-window cosine attention with relative position bias; the shift has NO mask (spec 2.3)."""

    def __init__(self, num_heads: int, head_dim: int, window_size: int, impl: str = "fast"):
        super().__init__()
        self.num_heads, self.head_dim, self.window_size = num_heads, head_dim, window_size
        self.impl = _check_impl(impl)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
        coords = coords.flatten(1)  # [2, ws*ws], token t = r*ws + c
        rel = coords[:, :, None] - coords[:, None, :] + window_size - 1
        # Persistent: the released checkpoints contain it.
        self.register_buffer("relative_position_index", rel[0] * (2 * window_size - 1) + rel[1])
        self.proj = Pointwise(num_heads * head_dim, num_heads * head_dim)

    def _bias(self) -> torch.Tensor:
        n = self.window_size ** 2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)  # [heads, n, n]

    def _scale(self) -> torch.Tensor:
        return torch.clamp(self.logit_scale, max=math.log(100.0)).exp()

    def forward(self, qkv: torch.Tensor, shift: int, helper: Optional[torch.Tensor] = None) -> torch.Tensor:
        """qkv [B, heads, 3d, H, W]; helper = previous block's CHSA output [B, L2*d, H, W] or None."""
        if self.impl == "reference":
            return self._forward_reference(qkv, shift, helper)
        return self._forward_fast(qkv, shift, helper)

    def _forward_fast(self, qkv, shift, helper):
        """channels_last maps in and out; tokens move between pixel and window order in one gather each way."""
        b, nh, _, h, w = qkv.shape
        d, ws = self.head_dim, self.window_size
        # (Compiled, the index build is traced into the graph, where Inductor folds it: no cache wrapper there.)
        order = _window_order.__wrapped__ if torch.compiler.is_compiling() else _window_order
        to_windows, to_pixels = order(b, h, w, ws, shift, qkv.device)
        # [B*H*W, heads*3d] is a view of the channels_last map; the gather is the roll *and* the partition.
        t = qkv.permute(0, 3, 4, 1, 2).reshape(b * h * w, nh * 3 * d).index_select(0, to_windows)
        t = t.view(-1, ws * ws, nh, 3, d)  # [B*nW, n, heads, (q, k, v), d]
        # Cosine attention: q^.k^T * scale == (q^ * scale).k^T, so the scale rides on q's normalisation,
        # and q and k are normalised in one pass (factor: scale for q, 1 for k).
        scale = self._scale()
        factor = torch.cat([scale, torch.ones_like(scale)], dim=1).to(t.dtype)  # [heads, 2, 1]
        qk = _unit(t[..., :2, :], -1, factor)
        q, k, v = qk[..., 0, :].transpose(1, 2), qk[..., 1, :].transpose(1, 2), t[..., 2, :].transpose(1, 2)
        if helper is not None:
            # Averaging over CHSA heads commutes with roll and partition, so do it on the smaller map.
            g = helper.permute(0, 2, 3, 1).reshape(b * h * w, -1, d).mean(1).index_select(0, to_windows)
            v = v * g.view(-1, 1, ws * ws, d)
        bias = self._bias().unsqueeze(0).to(q.dtype)  # 4-D: with a 3-D mask SDPA takes its slow math kernel
        if _explicit_attention(q, bias):
            o = (q @ k.transpose(-2, -1)).add_(bias).softmax(dim=-1) @ v
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
        # proj is 1x1, blind to pixel order: apply it in window order, then one gather back (merge + roll).
        o = o.transpose(1, 2).reshape(b, h, w, nh * d).permute(0, 3, 1, 2)
        o = self.proj(o).permute(0, 2, 3, 1).reshape(b * h * w, nh * d).index_select(0, to_pixels)
        return o.view(b, h, w, nh * d).permute(0, 3, 1, 2)

    def _forward_reference(self, qkv, shift, helper):
        """The spec's steps one by one (kept for the parity test and the benchmark baseline)."""
        b, nh, _, h, w = qkv.shape
        d, ws = self.head_dim, self.window_size
        if shift:
            qkv = torch.roll(qkv, (-shift, -shift), dims=(3, 4))
        windows = _window_partition(qkv, ws)  # [B*nW, heads, ws*ws, 3d]
        q, k, v = windows[..., :d], windows[..., d:2 * d], windows[..., 2 * d:]
        if helper is not None:
            g = helper.view(b, -1, d, h, w)
            if shift:
                g = torch.roll(g, (-shift, -shift), dims=(3, 4))
            v = v * _window_partition(g, ws).mean(1, keepdim=True)
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * self._scale() + self._bias().unsqueeze(0)
        o = attn.softmax(dim=-1) @ v
        o = self.proj(_window_merge(o, ws, b, h, w))
        if shift:
            o = torch.roll(o, (shift, shift), dims=(2, 3))
        return o


class ChannelSelfAttention(nn.Module):
    """CHSA: global cosine attention between channels of each head (d x d scores), no windows (spec 2.4)."""

    def __init__(self, num_heads: int, head_dim: int, impl: str = "fast"):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.impl = _check_impl(impl)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.proj = Pointwise(num_heads * head_dim, num_heads * head_dim)

    def _scale(self) -> torch.Tensor:
        return torch.clamp(self.logit_scale, max=math.log(100.0)).exp()

    def forward(self, qkv: torch.Tensor, helper: Optional[torch.Tensor] = None) -> torch.Tensor:
        """qkv [B, heads, 3d, H, W]; helper = previous block's SPSA output [B, L1*d, H, W] or None."""
        if self.impl == "reference":
            return self._forward_reference(qkv, helper)
        return self._forward_fast(qkv, helper)

    def _forward_fast(self, qkv, helper):
        """channels_last maps in and out: q, k, v stay strided token views [B, HW, heads, d], no copy."""
        b, nh, _, h, w = qkv.shape
        d = self.head_dim
        t = qkv.permute(0, 3, 4, 1, 2).reshape(b, h * w, nh, 3 * d)
        q, k, v = t[..., :d], t[..., d:2 * d], t[..., 2 * d:]
        if helper is not None:
            v = v * helper.mean(1).view(b, h * w, 1, 1)
        q, k = _unit(q, 1), _unit(k, 1)
        attn = (q.permute(0, 2, 3, 1) @ k.transpose(1, 2) * self._scale()).softmax(dim=-1)  # [B, heads, d, d]
        o = v.transpose(1, 2) @ attn.transpose(-2, -1)  # [B, heads, HW, d] == (attn @ v)^T
        return self.proj(o.transpose(1, 2).reshape(b, h, w, nh * d).permute(0, 3, 1, 2))

    def _forward_reference(self, qkv, helper):
        b, nh, _, h, w = qkv.shape
        d = self.head_dim
        t = qkv.reshape(b, nh, 3 * d, h * w)
        q, k, v = t[:, :, :d], t[:, :, d:2 * d], t[:, :, 2 * d:]
        if helper is not None:
            v = v * helper.mean(1, keepdim=True).view(b, 1, 1, h * w)
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = (attn * self._scale()).softmax(dim=-1)
        return self.proj((attn @ v).view(b, nh * d, h, w))


# ------------------------------------------------------------------------------------------- blocks
class QKVProjection(nn.Module):
    def __init__(self, dim: int, qkv_bias: bool):
        super().__init__()
        self.qkv = Pointwise(dim, 3 * dim, bias=qkv_bias)

    def forward(self, x):
        return self.qkv(x)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_ratio: float):
        super().__init__()
        self.hidden = Pointwise(dim, int(dim * hidden_ratio))
        self.act = nn.GELU()  # exact (erf) GELU, as the checkpoints were trained with
        self.out = Pointwise(int(dim * hidden_ratio), dim)

    def forward(self, x):
        return self.out(conv_act(self.hidden, x, self.act))


class DRAMiTBlock(nn.Module):
    """Dimensional reciprocal attention block: SPSA and CHSA heads in parallel, MobiVari mixer, post-norm."""

    def __init__(self, dim: int, num_heads: int, chsa_head_ratio: float, window_size: int, shift: int,
                 hidden_ratio: float, qkv_bias: bool, mv_ver: int, exp_factor: float, expand_groups: int,
                 impl: str = "fast"):
        super().__init__()
        self.num_heads, self.head_dim, self.shift = num_heads, dim // num_heads, shift
        self.ch_heads = int(num_heads * chsa_head_ratio)
        self.sp_heads = num_heads - self.ch_heads
        self.qkv_proj = QKVProjection(dim, qkv_bias)
        self.sp_attn = (SpatialSelfAttention(self.sp_heads, self.head_dim, window_size, impl)
                        if self.sp_heads else NoLayer())
        self.ch_attn = ChannelSelfAttention(self.ch_heads, self.head_dim, impl) if self.ch_heads else NoLayer()
        self.mobivari = make_mobivari(mv_ver, dim, dim, exp_factor, expand_groups)
        self.norm1 = ReshapeLayerNorm(dim)
        self.ffn = FeedForward(dim, hidden_ratio)
        self.norm2 = ReshapeLayerNorm(dim)

    def forward(self, x, sp_prev=None, ch_prev=None):
        b, _, h, w = x.shape
        qkv = self.qkv_proj(x).view(b, self.num_heads, 3 * self.head_dim, h, w)  # head-major (spec 2.2)
        sp = self.sp_attn(qkv[:, :self.sp_heads], self.shift, helper=ch_prev)
        ch = self.ch_attn(qkv[:, self.sp_heads:], helper=sp_prev)
        m = self.mobivari(_cat_channels(sp, ch))
        a = self.norm1(m) + x
        out = self.norm2(self.ffn(a)) + a
        return out, sp, ch, m


class EncoderStage(nn.Module):
    """`depth` D-RAMiT blocks; odd blocks shift by ws/2; the reciprocal helper is threaded within the stage."""

    def __init__(self, depth: int, dim: int, num_heads: int, chsa_head_ratio: float, window_size: int,
                 hidden_ratio: float, qkv_bias: bool, mv_ver: int, exp_factor: float, expand_groups: int,
                 helper: bool, impl: str = "fast"):
        super().__init__()
        self.blocks = nn.ModuleDict({
            f"block{i}": DRAMiTBlock(dim, num_heads, chsa_head_ratio, window_size,
                                     0 if i % 2 == 0 else window_size // 2, hidden_ratio, qkv_bias, mv_ver,
                                     exp_factor, expand_groups, impl)
            for i in range(depth)})
        # With one branch empty there is nothing to pass across (spec 2.5).
        ch_heads = int(num_heads * chsa_head_ratio)
        self.helper = helper and 0 < ch_heads < num_heads

    def forward(self, x):
        sp = ch = None
        for blk in self.blocks.values():
            x, sp, ch, m = blk(x, sp, ch) if self.helper else blk(x)
        return x, m


class ShallowModule(nn.Module):
    def __init__(self, in_chans: int, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, dim, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class Downsizing(nn.Module):
    """Space-to-depth by 2 (position-major channels, not pixel_unshuffle's order), LN, MobiVari 4C -> C."""

    def __init__(self, dim: int, mv_ver: int, exp_factor: float, expand_groups: int):
        super().__init__()
        self.norm = ReshapeLayerNorm(4 * dim)
        self.reduction = make_mobivari(mv_ver, 4 * dim, dim, exp_factor, expand_groups)

    def forward(self, x):
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]], dim=1)
        return self.reduction(self.norm(x))


class Bottleneck(nn.Module):
    """Brings the three encoder outputs back to full resolution (pixel shuffle) and fuses them."""

    def __init__(self, dim: int, mv_ver: int, exp_factor: float, expand_groups: int):
        super().__init__()
        self.act = nn.LeakyReLU()
        self.mobivari = make_mobivari(mv_ver, dim + dim // 4 + dim // 16, dim, exp_factor, expand_groups)
        self.norm = ReshapeLayerNorm(dim)

    def forward(self, f0, o1, o2, o3):
        f1 = F.max_pool2d(f0, 2)
        f2 = F.max_pool2d(f1, 2)
        b1 = o1 + self.act(f0)
        b2 = F.pixel_shuffle(o2 + self.act(f1), 2)
        b3 = F.pixel_shuffle(o3 + self.act(f2), 4)
        return self.norm(self.mobivari(torch.cat([b1, b2, b3], dim=1)))


class HRAMi(nn.Module):
    """Hierarchical reciprocal attention mixing: the four stages' mixer maps -> one gate for stage 4."""

    def __init__(self, dim: int, mv_ver: int, exp_factor: float, expand_groups: int):
        super().__init__()
        self.mobivari = make_mobivari(mv_ver, 2 * dim + dim // 4 + dim // 16, dim, exp_factor, expand_groups)

    def forward(self, m1, m2, m3, m4):
        return self.mobivari(torch.cat([m1, F.pixel_shuffle(m2, 2), F.pixel_shuffle(m3, 4), m4], dim=1))


class Reconstruction(nn.Module):
    def __init__(self, dim: int, out_chans: int, scale: int, tail_mv: int, mv_ver: int, exp_factor: float,
                 expand_groups: int):
        super().__init__()
        self.mobivari = nn.Sequential(OrderedDict(
            (f"mobivari{i}", make_mobivari(mv_ver, dim, dim, exp_factor, expand_groups)) for i in range(tail_mv)))
        self.conv = nn.Conv2d(dim, out_chans * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale) if scale > 1 else nn.Identity()
        self.final_conv = nn.Conv2d(out_chans, out_chans, 3, padding=1)

    def forward(self, x):
        return self.final_conv(self.shuffle(self.conv(self.mobivari(x))))


# ------------------------------------------------------------------------------------------- network
class RAMiT(nn.Module):
    """The full network; `forward` takes [B, C, h, w] in [0, 1] and returns [B, C, h*s, w*s], unclamped.

    Hyper-parameters (spec 1 and 2.9; the named variants live in `variants.yaml`):
      dim, depths, num_heads          width, blocks per stage (4 stages), heads per stage
      chsa_head_ratio                 share of heads doing channel attention (0 -> SPSA only, 1 -> CHSA only)
      mv_ver                          MobiVari 1 (RAMiT-1) or 2 at every mixing site
      exp_factor, expand_groups       MobiVari2 of the reconstruction head (the spec file's values)
      block_exp_factor/_groups        MobiVari2 of blocks and Downsizing (hard-coded 1.2/4 officially)
      bottleneck_exp_factor/_groups   MobiVari2 of Bottleneck and H-RAMi (1.2/4, slimSR 2.0/1, slimLLE 1.2/3)
      helper                          reciprocal helper on/off (official: on for SR/LLE, off for DN/DR)
      hrami                           H-RAMi gate on/off (off: o4 + f0, no attn_mix parameters)
      img_mean, img_std               per-task normalisation (not in the state_dict)
      impl                            "fast" (channels_last, oneDNN 1x1, fused SDPA) or "reference" (module doc)
    """

    # State-dict keys whose shape depends on the scale: re-initialised when x3/x4 warm-start from x2.
    warm_start_head: tuple[str, ...] = ("to_target.*",)

    def __init__(self, *, in_chans: int = 3, out_chans: Optional[int] = None, scale: int = 1, task: str = "sr",
                 dim: int = 64, depths: Sequence[int] = (6, 4, 4, 6), num_heads: Sequence[int] = (4, 4, 4, 4),
                 chsa_head_ratio: float = 0.25, window_size: int = 8, hidden_ratio: float = 2.0,
                 qkv_bias: bool = True, mv_ver: int = 2, exp_factor: float = 1.2, expand_groups: int = 4,
                 block_exp_factor: float = 1.2, block_expand_groups: int = 4,
                 bottleneck_exp_factor: float = 1.2, bottleneck_expand_groups: int = 4, tail_mv: int = 2,
                 helper: bool = True, hrami: bool = True, img_mean: Optional[Sequence[float]] = None,
                 img_std: Optional[Sequence[float]] = None, impl: str = "fast"):
        super().__init__()
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(f"depths and num_heads need 4 entries, got {list(depths)} and {list(num_heads)}")
        self.impl = _check_impl(impl)
        if not 0.0 <= chsa_head_ratio <= 1.0:
            raise ValueError(f"chsa_head_ratio must be in [0, 1], got {chsa_head_ratio}")
        if scale not in (1, 2, 3, 4):
            raise ValueError(f"scale must be 1, 2, 3 or 4, got {scale}")
        out_chans = in_chans if out_chans is None else out_chans
        if img_mean is None or img_std is None:
            img_mean, img_std = img_norm_stats(task, scale)
        if len(img_mean) != in_chans or len(img_std) != in_chans:
            raise ValueError(f"img_mean/img_std have {len(img_mean)}/{len(img_std)} entries for {in_chans} channels")
        self.in_chans, self.out_chans, self.scale, self.task = in_chans, out_chans, scale, task
        self.hrami = hrami
        # Padding unit: two 2x downsizings, then whole windows (spec 2.17).
        self.unit = 2 ** (len(depths) - 2) * window_size
        self.register_buffer("img_mean", torch.tensor(img_mean, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("img_std", torch.tensor(img_std, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)

        def stage(i):
            return EncoderStage(depths[i], dim, num_heads[i], chsa_head_ratio, window_size, hidden_ratio, qkv_bias,
                                mv_ver, block_exp_factor, block_expand_groups, helper, impl)

        self.shallow = ShallowModule(in_chans, dim)
        self.stage1 = stage(0)
        self.down1 = Downsizing(dim, mv_ver, block_exp_factor, block_expand_groups)
        self.stage2 = stage(1)
        self.down2 = Downsizing(dim, mv_ver, block_exp_factor, block_expand_groups)
        self.stage3 = stage(2)
        self.bottleneck = Bottleneck(dim, mv_ver, bottleneck_exp_factor, bottleneck_expand_groups)
        self.stage4 = stage(3)
        self.attn_mix = HRAMi(dim, mv_ver, bottleneck_exp_factor, bottleneck_expand_groups) if hrami else None
        self.to_target = Reconstruction(dim, out_chans, scale, tail_mv, mv_ver, exp_factor, expand_groups)

    def forward_features(self, xn: torch.Tensor) -> torch.Tensor:
        """The network proper on a normalised input whose sides are multiples of `self.unit`."""
        f0 = self.shallow(xn)
        o1, m1 = self.stage1(f0)
        o2, m2 = self.stage2(self.down1(o1))
        o3, m3 = self.stage3(self.down2(o2))
        o4, m4 = self.stage4(self.bottleneck(f0, o1, o2, o3))
        if self.attn_mix is not None:
            o4 = o4 * self.attn_mix(m1, m2, m3, m4)
        r = self.to_target(o4 + f0)
        if self.scale == 1:
            r = r + xn  # global residual, in normalised units
        return r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_symmetric(x, self.unit)
        mean, std = self.img_mean.to(x.dtype), self.img_std.to(x.dtype)
        xn = (x - mean) / std
        if self.impl == "fast":  # every layer keeps the layout it is given
            xn = xn.contiguous(memory_format=torch.channels_last)
        r = self.forward_features(xn)
        y = r * std.to(r.dtype) + mean.to(r.dtype)
        y = y[:, :, :h * self.scale, :w * self.scale]
        return y.contiguous() if self.impl == "fast" else y


def set_impl(model: nn.Module, impl: str) -> nn.Module:
    """Switch every RAMiT part of `model` between the fast and the reference path (same weights, same function)."""
    _check_impl(impl)
    for m in model.modules():
        if isinstance(m, (RAMiT, SpatialSelfAttention, ChannelSelfAttention)):
            m.impl = impl
    return model


def compile_model(model: nn.Module, cache_dir: Optional[str | Path] = None, *, inference: bool = False,
                  **compile_kwargs) -> nn.Module:
    """`torch.compile(model)` with Inductor's on-disk caches kept in one persistent folder.

    Compiling RAMiT takes minutes on a CPU; with the FX-graph and kernel caches on disk a second process
    compiling the same model and input shape reuses the artefacts. The folder is `cache_dir`, else
    `$TORCHINDUCTOR_CACHE_DIR` if the caller set it, else `~/.cache/ramit/inductor`. Off by default
    everywhere (train recipe `compile: true`, evaluate `compile: true` turn it on): it pays only for long
    runs at few input sizes.

    `inference=True` (evaluation: eval mode, no autograd, weights fixed) freezes the weights into the
    graph, which is what lets Inductor's CPU backend prepack them for oneDNN and fuse activations and
    residual sums into the convolutions; without it the compiled graph calls torch's im2col convolution
    and is no faster than fast eager (RAMiT-1 x2 128x128, 1 thread: 1.09x fast eager, frozen 1.27x).
    The price: a frozen graph holds oneDNN tensors, which Inductor cannot pickle, so it bypasses the
    FX-graph cache and every process compiles again (the kernel cache still shortens it, ~95 -> ~80 s).
    Each new input size compiles its own graph (`dynamic=False`: RAMiT's window partition is shape
    arithmetic that specialises anyway), so the recompile limit is raised to what a test set has.
    """
    folder = cache_dir or os.environ.get("TORCHINDUCTOR_CACHE_DIR") or Path.home() / ".cache" / "ramit" / "inductor"
    Path(folder).mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)  # read by Inductor when it first writes a cache entry
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    if inference:
        compile_kwargs.setdefault("dynamic", False)
        # Process-wide, because Inductor reads it when the first call compiles (`torch.compile(options=...)`
        # does not reach the freezing pass: measured, same graph). It only touches graphs compiled without
        # autograd, so a training graph in the same process is unaffected.
        inductor_config.freezing = True
        # One graph per padded input size; past the limit Dynamo would silently run the rest eagerly.
        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
    return torch.compile(model, **compile_kwargs)
