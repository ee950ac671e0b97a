"""Retinexformer (Cai et al., "Retinexformer: One-stage Retinex-based Transformer for Low-light Image
Enhancement", ICCV 2023, arXiv 2303.06705), written from the paper's description; module names follow
the authors' state_dict (caiyuanhao1998/Retinexformer, LOL-v1 configuration: everything under
`body.0.{estimator,denoiser}`; the 122 keys, shapes and order match the authors' key list).

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
Parameters: 1,605,701 (paper: 1.61M). Released weights (`LOL_v1.pth`) are on Google Drive / Baidu only.

Counting convention: the paper's 15.57 G (256x256) is an fvcore-style count (no bias additions, the
attention matmuls included, 5 ops per LayerNorm element) divided by 2^30, as the authors' `my_summary`
helper reports: 15.57 here too; 16.67 G (1e9) by the report's rule.

No input normalisation ([0, 1] RGB, as the authors' code). Padding: the two stride-2 levels need sizes
divisible by 4; the input is reflect-padded bottom/right to a multiple of 4 as the authors' test script
does, and the output cropped. Any size >= 1x1 works. The attention is global over the (padded) image, so
every output pixel depends on the whole image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ramit.models.complexity import PaperConvention

from .padding import pad_to_multiple

# The paper's "15.57 G" (256x256) is an fvcore-style count divided by 2^30.
PAPER_CONVENTION = PaperConvention(
    rule="all parameters; fvcore-style MACs (no bias additions, attention included, 5 per LayerNorm "
         "element) at 256x256, in units of 2^30",
    bias=False, layer_norm_ops=5, giga=2.0**30)


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


class PreNorm(nn.Module):
    """LayerNorm, then `fn` (the authors declare `fn` first, so its keys precede `norm`'s)."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class IGAB(nn.Module):
    """Illumination-guided attention block; feature maps [B, C, H, W] in and out.

    `blocks.{j}` = [IG-MSA, PreNorm(FFN)]: `x = x + IG-MSA(x, F_lu)`, `x = x + FFN(LN(x))`.
    """

    def __init__(self, dim: int, num_blocks: int, dim_head: int, heads: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleList([IGMSA(dim, dim_head, heads), PreNorm(dim, FeedForward(dim))]) for _ in range(num_blocks)
        )

    def forward(self, x: Tensor, illu: Tensor) -> Tensor:
        x, illu = x.permute(0, 2, 3, 1), illu.permute(0, 2, 3, 1)
        for attn, ffn in self.blocks:
            x = x + attn(x, illu)
            x = x + ffn(x)
        return x.permute(0, 3, 1, 2)


class IlluminationGuidedTransformer(nn.Module):
    """The corruption restorer (the authors' `denoiser`): a U-shaped IGT; output = mapping(features) + input.

    `encoder_layers.{i}` = [IGAB, feature down (4x4 s2), illumination down (4x4 s2)];
    `decoder_layers.{i}` = [up (2x2 transposed, s2), 1x1 fusion of the skip, IGAB].
    """

    def __init__(self, in_chans: int, out_chans: int, dim: int, num_blocks: tuple[int, ...]):
        super().__init__()
        levels = len(num_blocks) - 1
        self.embedding = nn.Conv2d(in_chans, dim, 3, 1, 1, bias=False)
        self.encoder_layers = nn.ModuleList()
        for i in range(levels):
            d = dim * 2**i
            self.encoder_layers.append(nn.ModuleList([
                IGAB(d, num_blocks[i], dim, d // dim),
                nn.Conv2d(d, d * 2, 4, 2, 1, bias=False),
                nn.Conv2d(d, d * 2, 4, 2, 1, bias=False),
            ]))
        self.bottleneck = IGAB(dim * 2**levels, num_blocks[-1], dim, 2**levels)
        self.decoder_layers = nn.ModuleList()
        for i in reversed(range(levels)):
            d = dim * 2**i
            self.decoder_layers.append(nn.ModuleList([
                nn.ConvTranspose2d(d * 2, d, 2, 2),
                nn.Conv2d(d * 2, d, 1, bias=False),
                IGAB(d, num_blocks[i], dim, d // dim),
            ]))
        self.mapping = nn.Conv2d(dim, out_chans, 3, 1, 1, bias=False)

    def forward(self, x: Tensor, illu: Tensor) -> Tensor:
        fea = self.embedding(x)
        skips = []
        for igab, fea_down, illu_down in self.encoder_layers:
            fea = igab(fea, illu)
            skips.append((fea, illu))
            fea, illu = fea_down(fea), illu_down(illu)
        fea = self.bottleneck(fea, illu)
        for up, fusion, igab in self.decoder_layers:
            skip, illu = skips.pop()
            fea = fusion(torch.cat([up(fea), skip], dim=1))
            fea = igab(fea, illu)
        return self.mapping(fea) + x


class RetinexformerStage(nn.Module):
    """One-stage Retinex: light the image up with the estimated map, then restore the lit-up image."""

    def __init__(self, in_chans: int, out_chans: int, dim: int, num_blocks: tuple[int, ...], estimator_kernel: int):
        super().__init__()
        self.estimator = IlluminationEstimator(dim, in_chans, in_chans, estimator_kernel)
        self.denoiser = IlluminationGuidedTransformer(in_chans, out_chans, dim, num_blocks)

    def forward(self, img: Tensor) -> Tensor:
        light_up_fea, light_up_map = self.estimator(img)
        lit = img * light_up_map + img
        return self.denoiser(lit, light_up_fea)


class Retinexformer(nn.Module):
    paper_convention = PAPER_CONVENTION

    def __init__(
        self,
        in_chans: int = 3,
        out_chans: int | None = None,
        dim: int = 40,
        num_blocks: tuple[int, ...] = (1, 2, 2),
        stages: int = 1,
        estimator_kernel: int = 5,
        pad_mode: str = "reflect",
    ):
        super().__init__()
        out_chans = in_chans if out_chans is None else out_chans
        self.scale, self.in_chans, self.out_chans, self.pad_mode = 1, in_chans, out_chans, pad_mode
        self.multiple = 2 ** (len(num_blocks) - 1)
        self.body = nn.Sequential(*(
            RetinexformerStage(in_chans, out_chans, dim, tuple(num_blocks), estimator_kernel) for _ in range(stages)
        ))
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
        return self.body(img)[..., :h, :w]
