"""SwinIR, lightweight configuration (Liang et al., "SwinIR: Image Restoration Using Swin Transformer",
ICCVW 2021, arXiv 2108.10257), written from the paper's description.

Structure (paper Fig. 2): a 3x3 conv for shallow features; K residual Swin Transformer blocks (RSTB),
each L Swin transformer layers (STL) followed by a 3x3 conv and a residual connection; a 3x3 conv after
the body with a long skip from the shallow features; a reconstruction head. An STL is
`x = x + W-MSA(LN(x))`, `x = x + MLP(LN(x))`, with window attention, a learned relative position bias
and, on every second layer, windows shifted by half a window with the Swin attention mask. As in the
authors' release there is a LayerNorm after the patch embedding and one after the last RSTB.

Heads:
* SR (lightweight, paper Sec. 4.1): "pixelshuffledirect", one 3x3 conv to `out_chans * s^2` channels and
  a pixel shuffle, no conv at high resolution.
* scale 1 (denoising): a 3x3 conv back to `out_chans` added to the input (residual learning), as in
  SwinIR's denoising models.

Lightweight configuration (paper Sec. 4.1): RSTB number 4, STL number 6, channels 60, heads 6, window 8,
MLP ratio 2. Official defaults kept here: `img_range` 1 and, for 3-channel inputs, subtraction of the
DIV2K RGB mean (0.4488, 0.4371, 0.4040) before the network (added back after); 1-channel inputs are not
shifted. Those constants are not parameters.

Parameter counts. The paper (Table 3, lightweight SR) states 878K / 886K / 897K for x2 / x3 / x4. The
module has 910,152 / 918,267 / 929,628 trainable parameters; the difference is exactly the 24 relative
position bias tables (24 x 225 x 6 = 32,400), which the paper's count leaves out (a module-hook
counter does not see bare `nn.Parameter`s). `paper_param_count()` returns the count in the paper's
convention: 877,752 / 885,867 / 897,228.

Denoising (`cdn`/`gdn`): the lightweight transformer baseline of this project is this same lightweight
SwinIR body with the scale-1 residual head (905,283 params colour, 903,121 gray). Why this and not a
Restormer scaled down to ~1M: (1) SwinIR is the transformer the lightweight-SR half of the RAMiT benchmark
already compares against, so one architecture spans SR and denoising; (2) its width/depth/window here
are the paper's own lightweight settings, whereas shrinking Restormer (26.1M) to ~1M needs several
invented choices (widths, block counts per level, heads) that no paper states; (3) at ~0.9M it sits
next to RAMiT's 0.93M denoiser. SwinIR published no lightweight denoising model, so there is no stated
count to compare with; the test checks the analytic count instead.

Padding: the input is padded bottom/right to a multiple of the window with symmetric (mirror) padding,
as the authors' test script does, and the output is cropped. Any input size >= 1x1 works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .padding import pad_to_multiple

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def window_partition(x: Tensor, ws: int) -> Tensor:
    """[B, H, W, C] -> [B * nW, ws*ws, C], windows row-major, tokens row-major inside a window."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: Tensor, ws: int, h: int, w: int) -> Tensor:
    """Inverse of `window_partition`: [B * nW, ws*ws, C] -> [B, H, W, C]."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shifted_window_mask(h: int, w: int, ws: int, shift: int, device: torch.device) -> Tensor:
    """Additive mask [nW, ws*ws, ws*ws]: after the cyclic shift a window may hold pixels from up to four
    image regions that are not neighbours; attention between different regions is suppressed."""
    region = torch.zeros(1, h, w, 1, device=device)
    label = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            region[:, hs, wsl, :] = label
            label += 1
    r = window_partition(region, ws).squeeze(-1)  # [nW, ws*ws]
    diff = r.unsqueeze(1) - r.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ws x ws windows with a learned relative position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
        coords = coords.flatten(1)  # [2, ws*ws]
        rel = (coords[:, :, None] - coords[:, None, :]) + (window_size - 1)
        # not persistent: it is a function of window_size, not learned state
        self.register_buffer("relative_position_index", rel[0] * (2 * window_size - 1) + rel[1], persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(bw, self.num_heads, n, n)
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinTransformerLayer(nn.Module):
    """STL: pre-norm (shifted) window attention and MLP, each with a residual connection."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float):
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, hw: tuple[int, int], mask: Tensor | None) -> Tensor:
        h, w = hw
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift_size:
            y = torch.roll(y, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        y = self.attn(window_partition(y, self.window_size), mask if self.shift_size else None)
        y = window_reverse(y, self.window_size, h, w)
        if self.shift_size:
            y = torch.roll(y, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class ResidualGroup(nn.Module):
    """The STL stack of one RSTB; even layers use regular windows, odd layers shifted ones."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerLayer(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio)
            for i in range(depth)
        )

    def forward(self, x: Tensor, hw: tuple[int, int], mask: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x, hw, mask)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer block: STLs, then a 3x3 conv on the image-shaped features, plus skip."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float):
        super().__init__()
        self.residual_group = ResidualGroup(dim, depth, num_heads, window_size, mlp_ratio)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, hw: tuple[int, int], mask: Tensor) -> Tensor:
        b, n, c = x.shape
        y = self.residual_group(x, hw, mask)
        y = self.conv(y.transpose(1, 2).reshape(b, c, *hw)).flatten(2).transpose(1, 2)
        return y + x


class PatchNorm(nn.Module):
    """LayerNorm applied to the token sequence right after the (1x1, parameter-free) patch embedding."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


class SwinIR(nn.Module):
    # State-dict keys whose shape depends on the scale: re-initialised when x3/x4 warm-start from x2.
    warm_start_head: tuple[str, ...] = ("upsample.*",)

    def __init__(
        self,
        scale: int = 2,
        in_chans: int = 3,
        out_chans: int | None = None,
        embed_dim: int = 60,
        depths: tuple[int, ...] = (6, 6, 6, 6),
        num_heads: tuple[int, ...] = (6, 6, 6, 6),
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        img_range: float = 1.0,
        pad_mode: str = "symmetric",
    ):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} must have the same length")
        out_chans = in_chans if out_chans is None else out_chans
        self.scale, self.in_chans, self.out_chans = scale, in_chans, out_chans
        self.window_size, self.img_range, self.pad_mode = window_size, img_range, pad_mode
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchNorm(embed_dim)
        self.layers = nn.ModuleList(
            RSTB(embed_dim, d, nh, window_size, mlp_ratio) for d, nh in zip(depths, num_heads)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        if scale == 1:
            self.conv_last = nn.Conv2d(embed_dim, out_chans, 3, 1, 1)
        else:
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, out_chans * scale**2, 3, 1, 1), nn.PixelShuffle(scale))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def paper_param_count(self) -> int:
        """Trainable parameters without the relative position bias tables (the SwinIR paper's convention)."""
        return sum(p.numel() for n, p in self.named_parameters() if not n.endswith("relative_position_bias_table"))

    def forward_features(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        mask = shifted_window_mask(h, w, self.window_size, self.window_size // 2, x.device).to(x.dtype)
        t = self.patch_embed(x.flatten(2).transpose(1, 2))
        for layer in self.layers:
            t = layer(t, (h, w), mask)
        t = self.norm(t)
        return t.transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.window_size, self.pad_mode)
        x = (x - self.mean) * self.img_range
        feat = self.conv_first(x)
        res = self.conv_after_body(self.forward_features(feat)) + feat
        if self.scale == 1:
            out = x + self.conv_last(res)
        else:
            out = self.upsample(res)
        out = out / self.img_range + self.mean
        return out[..., : h * self.scale, : w * self.scale]

