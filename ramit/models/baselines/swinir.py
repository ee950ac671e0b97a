"""SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021, arXiv 2108.10257),
written from the paper's description; module names, buffers and their state_dict order follow the
authors' released checkpoints (JingyunLiang/SwinIR, loaded with strict=True).

Structure (paper Fig. 2): a 3x3 conv for shallow features (`conv_first`); a LayerNorm on the token
sequence (`patch_embed.norm`; the patch embedding itself is a parameter-free reshape); K residual Swin
Transformer blocks (`layers.{i}`: RSTB), each L Swin transformer layers (`residual_group.blocks.{j}`:
STL) followed by a 3x3 conv (`conv`) and a residual connection; a LayerNorm (`norm`) and a 3x3 conv
(`conv_after_body`) with a long skip from the shallow features; a reconstruction head. An STL is
`x = x + W-MSA(LN(x))`, `x = x + MLP(LN(x))`, with window attention, a learned relative position bias
and, on every second layer, windows shifted by half a window with the Swin attention mask.

Buffers that are part of the released state_dict (a strict load needs them): every block's
`attn.relative_position_index` and every shifted block's `attn_mask`, the mask for an `img_size` x
`img_size` input (the training patch size); it is used when the padded input has that size and is
recomputed for any other size, as the authors do.

Heads:
* SR ("pixelshuffledirect", the lightweight model): `upsample.0`, one 3x3 conv to `out_chans * s^2`
  channels and a pixel shuffle.
* scale 1 (denoising): `conv_last`, a 3x3 conv back to `out_chans` added to the (normalised) input.

Configurations (build_model names):
* `SwinIR-light` sr = SwinIR-S, the paper's lightweight SR model: 4 RSTB x 6 STL, 60 channels, 6 heads,
  window 8, MLP ratio 2, img_size 64. 910,152 / 918,267 / 929,628 parameters for x2 / x3 / x4. The paper
  states 878K / 886K / 897K: its count leaves out the 24 relative position bias tables (24 x 225 x 6 =
  32,400 values); `paper_param_count()` gives 877,752 / 885,867 / 897,228.
* `SwinIR-M` cdn/gdn = the authors' colour / gray denoiser: 6 RSTB x 6 STL, 180 channels, 6 heads,
  window 8, img_size 128; 11,504,163 parameters (colour). The authors published only this size for
  denoising, one non-blind model per noise level (15 / 25 / 50).
* `SwinIR-light` cdn/gdn: the SwinIR-S body with the denoising head (905,283 / 903,121 params). NOT a
  published model (no paper number, no weights): a light variant for the embedded smoke run only.
Why the denoising row of the report is SwinIR-M, 12x RAMiT's size: it is the method the SwinIR paper
publishes and its authors released (one file per sigma, so it is evaluated at the setting it was
trained for); a light variant would be our own invention with our own recipe and nothing to check it
against. Its size is shown beside its scores, so the comparison stays honest.

Normalisation (not parameters): `img_range` 1 and, for 3-channel inputs, subtraction of the DIV2K RGB
mean (0.4488, 0.4371, 0.4040) before the network (added back after); 1-channel inputs are not shifted.

Padding: with `pad_to_next_window=True` (default, the authors' main_test_swinir.py) the input is
mirror-padded bottom/right to the NEXT multiple of the window, i.e. by 1..8 pixels even when it already
is a multiple (48 -> 56), and the output cropped; with False only to a multiple (the model's own
`check_image_size`, what the paper's Mult-Adds are counted on). The extra window is a test-time step:
in training mode (`model.train()`) the model pads only to a multiple, as the authors' training does.
Any input size >= 1x1 works.

Counting convention of the paper (`paper_convention`, `paper_macs_formula`): parameters without the
bias tables; Mult-Adds by the authors' own analytic formula (attention matmuls included), evaluated on
an LR input of ((1024/s)//8+1)*8 x ((720/s)//8+1)*8, not the 1280x720 output the table caption names
(SwinIR issues #65, #98): 195.6 / 87.2 / 49.6 G, the printed numbers. The report's rule (ptflops-aten,
1280x720 output, the forward as it runs incl. the test script's extra window) gives 251.8 / 114.0 /
64.9 G: 25 % more input pixels, the window of padding, and three terms the formula writes smaller
(`conv_after_body` as 3C^2 instead of 9C^2, the upsampler conv as 27C at every scale, no biases).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ramit.models.complexity import PaperConvention

from .padding import pad_to_multiple

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def _paper_input_size(task: str, scale: int | None) -> tuple[int, int]:
    """Where SwinIR's Table 3 Mult-Adds were computed: the authors' flops() script's image size."""
    if task != "sr":
        return 256, 256  # denoising: the size the authors quote (issue #18: 787.993 G for SwinIR-M)
    return (1024 // scale // 8 + 1) * 8, (720 // scale // 8 + 1) * 8


PAPER_CONVENTION = PaperConvention(
    rule="parameters without the relative position bias tables; the authors' analytic Mult-Adds formula "
         "(attention included) on an LR input of ((1024/s)//8+1)*8 x ((720/s)//8+1)*8",
    input_size=_paper_input_size)


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


def shifted_window_mask(h: int, w: int, ws: int, shift: int, device: torch.device | None = None) -> Tensor:
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
        # persistent: the authors' checkpoints carry it, and a strict load wants every key
        self.register_buffer("relative_position_index", rel[0] * (2 * window_size - 1) + rel[1])
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

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float,
                 img_size: int):
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.img_size = img_size
        if shift_size:
            # registered before the sub-modules: it comes first in the block's state_dict, as released
            self.register_buffer("attn_mask", shifted_window_mask(img_size, img_size, window_size, shift_size))
        else:
            self.attn_mask = None
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _mask(self, hw: tuple[int, int], ref: Tensor) -> Tensor | None:
        if not self.shift_size:
            return None
        if hw == (self.img_size, self.img_size):
            return self.attn_mask
        return shifted_window_mask(*hw, self.window_size, self.shift_size, ref.device).to(ref.dtype)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        h, w = hw
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift_size:
            y = torch.roll(y, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        y = self.attn(window_partition(y, self.window_size), self._mask(hw, x))
        y = window_reverse(y, self.window_size, h, w)
        if self.shift_size:
            y = torch.roll(y, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class ResidualGroup(nn.Module):
    """The STL stack of one RSTB; even layers use regular windows, odd layers shifted ones."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float, img_size: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerLayer(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio,
                                 img_size)
            for i in range(depth)
        )

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        for blk in self.blocks:
            x = blk(x, hw)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer block: STLs, then a 3x3 conv on the image-shaped features, plus skip."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float, img_size: int):
        super().__init__()
        self.residual_group = ResidualGroup(dim, depth, num_heads, window_size, mlp_ratio, img_size)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        b, n, c = x.shape
        y = self.residual_group(x, hw)
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
    paper_convention = PAPER_CONVENTION

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
        img_size: int = 64,
        img_range: float = 1.0,
        pad_to_next_window: bool = True,
    ):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} must have the same length")
        out_chans = in_chans if out_chans is None else out_chans
        self.scale, self.in_chans, self.out_chans = scale, in_chans, out_chans
        self.window_size, self.img_range = window_size, img_range
        self.embed_dim, self.mlp_ratio = embed_dim, mlp_ratio
        self.pad_to_next_window = pad_to_next_window
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchNorm(embed_dim)
        self.layers = nn.ModuleList(
            RSTB(embed_dim, d, nh, window_size, mlp_ratio, img_size) for d, nh in zip(depths, num_heads)
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

    def paper_macs_formula(self, h: int, w: int) -> float:
        """Mult-Adds on an h x w input as the SwinIR authors' analytic count adds them up, per pixel:
        per STL two LayerNorms (C each), qkv 3C^2, q.k^T and A.v N*C each (N tokens per window),
        proj C^2, MLP 2rC^2; per RSTB its 3x3 conv 9C^2; conv_first 27C; the patch LayerNorm C;
        `conv_after_body` written as 3C^2; the SR upsampler conv as 27C whatever the scale."""
        c, n = self.embed_dim, self.window_size**2
        per_stl = 2 * c + 3 * c * c + 2 * n * c + c * c + 2 * self.mlp_ratio * c * c
        per_pixel = sum(len(layer.residual_group.blocks) * per_stl + 9 * c * c for layer in self.layers)
        per_pixel += 27 * c + c + 3 * c * c + (27 * c if self.scale > 1 else 0)
        return per_pixel * h * w

    def forward_features(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        t = self.patch_embed(x.flatten(2).transpose(1, 2))
        for layer in self.layers:
            t = layer(t, (h, w))
        t = self.norm(t)
        return t.transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        # The extra window is the authors' TEST script (main_test_swinir.py), not the network: their
        # training feeds patches straight to it, whose own check_image_size pads only to a multiple
        # (nothing for a 32 or 64 patch). Padding in training too would train on 56% more pixels
        # (32 -> 40) than they do, with windows that straddle mirrored borders.
        if self.pad_to_next_window and not self.training:
            x = pad_to_multiple(x, self.window_size, "symmetric", always=True)
        else:
            x = pad_to_multiple(x, self.window_size, "reflect")
        x = (x - self.mean) * self.img_range
        feat = self.conv_first(x)
        res = self.conv_after_body(self.forward_features(feat)) + feat
        if self.scale == 1:
            out = x + self.conv_last(res)
        else:
            out = self.upsample(res)
        out = out / self.img_range + self.mean
        return out[..., : h * self.scale, : w * self.scale]
