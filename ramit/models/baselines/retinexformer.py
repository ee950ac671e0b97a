"""Retinexformer (Cai et al., "Retinexformer: One-stage Retinex-based Transformer for Low-light Image
Enhancement", ICCV 2023, arXiv 2303.06705), written from the paper's description.

Why this LLE baseline: it is a lightweight (1.61M params, 15.57 GFLOPs at 256x256 as stated in the
paper's Table 1), single-stage, transformer-based enhancer trained and evaluated on LOL-type paired data,
i.e. the same setting and size class as RAMiT's LLE models; it is the reference lightweight LLE
transformer of recent tables.

One-stage Retinex framework (paper Fig. 2, Eq. 2-5):
* Illumination estimator: concatenate the low-light image I with its channel mean (the illumination
  prior L_p), 1x1 conv to 40 channels, a 5x5 depth-wise conv (4 groups) giving the light-up features
  F_lu, and a 1x1 conv giving the light-up map L_bar. The lit-up image is I_lu = I * L_bar + I.
* Corruption restorer: a U-shaped Illumination-Guided Transformer (IGT): 3x3 conv embedding (40 ch);
  two encoder levels and a bottleneck of Illumination-Guided Attention Blocks (IGAB; 1, 2, 2 blocks at
  40, 80, 160 channels), 4x4 stride-2 convs downsampling both features and F_lu; a decoder with 2x2
  transposed convs, a 1x1 fusion of the skip, IGABs (2 at 80, 1 at 40), a 3x3 conv, and a residual to
  I_lu.
* IGAB: `x = x + IG-MSA(x, F_lu)`, `x = x + FFN(LN(x))` (no norm before IG-MSA).
* IG-MSA: channel-wise ("transposed") attention, heads of 40 channels: q, k, v linear (no bias); v is
  multiplied by the illumination features; q, k L2-normalised over the pixels; A = softmax(s_h k q^T)
  with a learned per-head scale s_h; out = proj(A v) + PE(v), PE = depth-wise 3x3 conv, GELU, depth-wise
  3x3 conv.
* FFN: 1x1 conv to 4x, GELU, depth-wise 3x3, GELU, 1x1 conv back.
Parameters: 1,605,701 (paper: 1.61M).

No input normalisation ([0, 1] RGB, as the authors' code). Padding: the two stride-2 levels need sizes
divisible by 4; the input is reflect-padded bottom/right to a multiple of 4 as the authors' test script
does, and the output cropped. Any size >= 1x1 works. The attention is global over the (padded) image, so
every output pixel depends on the whole image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .padding import pad_to_multiple


class IlluminationEstimator(nn.Module):
    def __init__(self, mid_chans: int = 40, in_chans: int = 3, out_chans: int = 3, kernel_size: int = 5):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans + 1, mid_chans, 1)
        # the 4 groups follow the 4 input channels (image + prior) the features were fused from
        self.depth_conv = nn.Conv2d(mid_chans, mid_chans, kernel_size, 1, kernel_size // 2, groups=in_chans + 1)
        self.conv2 = nn.Conv2d(mid_chans, out_chans, 1)

    def forward(self, img: Tensor) -> tuple[Tensor, Tensor]:
        prior = img.mean(dim=1, keepdim=True)
        light_up_fea = self.depth_conv(self.conv1(torch.cat([img, prior], dim=1)))
        return light_up_fea, self.conv2(light_up_fea)


class IGMSA(nn.Module):
    """Illumination-guided multi-head self-attention over channels; tokens are [B, H, W, C]."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = dim_head * heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.rescale = nn.Parameter(torch.ones(heads, 1, 1))
        self.proj = nn.Linear(inner, dim)
        self.pos_emb = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False, groups=dim),
            nn.GELU(),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False, groups=dim),
        )

    def _heads(self, t: Tensor) -> Tensor:  # [B, N, heads*d] -> [B, heads, d, N]
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.dim_head).permute(0, 2, 3, 1)

    def forward(self, x: Tensor, illu: Tensor) -> Tensor:
        b, h, w, c = x.shape
        x = x.reshape(b, h * w, c)
        v_inp = self.to_v(x)
        q, k = self._heads(self.to_q(x)), self._heads(self.to_k(x))
        v = self._heads(v_inp) * self._heads(illu.reshape(b, h * w, -1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (k @ q.transpose(-2, -1) * self.rescale).softmax(dim=-1)  # [B, heads, d, d]
        out = (attn @ v).permute(0, 3, 1, 2).reshape(b, h * w, self.heads * self.dim_head)
        out_c = self.proj(out).view(b, h, w, c)
        out_p = self.pos_emb(v_inp.view(b, h, w, c).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return out_c + out_p


class FeedForward(nn.Module):
    """Tokens [B, H, W, C] in and out; convolutions inside."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(dim, dim * mult, 1, bias=False),
            nn.GELU(),
            nn.Conv2d(dim * mult, dim * mult, 3, 1, 1, bias=False, groups=dim * mult),
            nn.GELU(),
            nn.Conv2d(dim * mult, dim, 1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class IGABLayer(nn.Module):
    def __init__(self, dim: int, dim_head: int, heads: int, ffn_mult: int = 4):
        super().__init__()
        self.attn = IGMSA(dim, dim_head, heads)
        self.norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_mult)

    def forward(self, x: Tensor, illu: Tensor) -> Tensor:
        x = x + self.attn(x, illu)
        return x + self.ffn(self.norm(x))


class IGAB(nn.Module):
    """Illumination-guided attention block; feature maps [B, C, H, W] in and out."""

    def __init__(self, dim: int, num_blocks: int, dim_head: int, heads: int):
        super().__init__()
        self.blocks = nn.ModuleList(IGABLayer(dim, dim_head, heads) for _ in range(num_blocks))

    def forward(self, x: Tensor, illu: Tensor) -> Tensor:
        x, illu = x.permute(0, 2, 3, 1), illu.permute(0, 2, 3, 1)
        for blk in self.blocks:
            x = blk(x, illu)
        return x.permute(0, 3, 1, 2)


class EncoderLevel(nn.Module):
    def __init__(self, dim: int, num_blocks: int, dim_head: int):
        super().__init__()
        self.igab = IGAB(dim, num_blocks, dim_head, dim // dim_head)
        self.fea_down = nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False)
        self.illu_down = nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False)


class DecoderLevel(nn.Module):
    def __init__(self, dim: int, num_blocks: int, dim_head: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(dim * 2, dim, 2, 2)
        self.fusion = nn.Conv2d(dim * 2, dim, 1, bias=False)
        self.igab = IGAB(dim, num_blocks, dim_head, dim // dim_head)


class IlluminationGuidedTransformer(nn.Module):
    """The corruption restorer: a U-shaped IGT; output = mapping(features) + lit-up input."""

    def __init__(self, in_chans: int, out_chans: int, dim: int, num_blocks: tuple[int, ...]):
        super().__init__()
        levels = len(num_blocks) - 1
        self.embedding = nn.Conv2d(in_chans, dim, 3, 1, 1, bias=False)
        self.encoder = nn.ModuleList(EncoderLevel(dim * 2**i, num_blocks[i], dim) for i in range(levels))
        self.bottleneck = IGAB(dim * 2**levels, num_blocks[-1], dim, 2**levels)
        self.decoder = nn.ModuleList(
            DecoderLevel(dim * 2**i, num_blocks[i], dim) for i in reversed(range(levels))
        )
        self.mapping = nn.Conv2d(dim, out_chans, 3, 1, 1, bias=False)

    def forward(self, x: Tensor, illu: Tensor) -> Tensor:
        fea = self.embedding(x)
        skips = []
        for level in self.encoder:
            fea = level.igab(fea, illu)
            skips.append((fea, illu))
            fea, illu = level.fea_down(fea), level.illu_down(illu)
        fea = self.bottleneck(fea, illu)
        for level in self.decoder:
            skip, illu = skips.pop()
            fea = level.fusion(torch.cat([level.up(fea), skip], dim=1))
            fea = level.igab(fea, illu)
        return self.mapping(fea) + x


class Retinexformer(nn.Module):
    def __init__(
        self,
        in_chans: int = 3,
        out_chans: int | None = None,
        dim: int = 40,
        num_blocks: tuple[int, ...] = (1, 2, 2),
        estimator_kernel: int = 5,
        pad_mode: str = "reflect",
    ):
        super().__init__()
        out_chans = in_chans if out_chans is None else out_chans
        self.scale, self.in_chans, self.out_chans, self.pad_mode = 1, in_chans, out_chans, pad_mode
        self.multiple = 2 ** (len(num_blocks) - 1)
        self.estimator = IlluminationEstimator(dim, in_chans, in_chans, estimator_kernel)
        self.denoiser = IlluminationGuidedTransformer(in_chans, out_chans, dim, tuple(num_blocks))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, img: Tensor) -> Tensor:
        h, w = img.shape[-2:]
        img = pad_to_multiple(img, self.multiple, self.pad_mode)
        light_up_fea, light_up_map = self.estimator(img)
        lit = img * light_up_map + img
        return self.denoiser(lit, light_up_fea)[..., :h, :w]
