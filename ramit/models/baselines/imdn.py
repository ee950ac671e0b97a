"""IMDN (Hui et al., "Lightweight Image Super-Resolution with Information Multi-distillation Network",
ACM MM 2019, arXiv 1909.11856), written from the paper's description.

Structure (paper Fig. 2-3): a 3x3 conv for shallow features; 6 information multi-distillation blocks
(IMDB); the outputs of all IMDBs concatenated and fused by a 1x1 conv + LeakyReLU; a 3x3 conv with a long
skip from the shallow features; an upsampler of one 3x3 conv and a pixel shuffle. An IMDB is a progressive
refinement module: four 3x3 convs; after each of the first three, a quarter of the channels is kept
("distilled") and the rest goes on to the next conv; the fourth conv produces the last quarter. The four
distilled parts are concatenated, re-weighted by contrast-aware channel attention (CCA: per-channel
standard deviation + mean -> 1x1 conv squeeze/excite -> sigmoid) and fused by a 1x1 conv, plus the block
input. 64 channels, distillation rate 0.25, LeakyReLU slope 0.05 (authors' setting).

Parameter counts: 694,404 / 703,059 / 715,176 for x2 / x3 / x4, matching the paper's Table (694K /
703K / 715K); only the upsampler conv depends on the scale.

Normalisation: none, the network sees [0, 1] RGB (the authors' test feeds `img / 255`, rgb_range 1).
Padding: none needed, every layer is size-preserving and CCA pools globally; any size >= 1x1 works.
Note that CCA's global statistics make a pixel depend on the whole image (as in the paper).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def channel_std(x: Tensor) -> Tensor:
    """Per-channel standard deviation over the spatial axes (population, not unbiased), [B, C, 1, 1]."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()


class CCALayer(nn.Module):
    """Contrast-aware channel attention: the channel statistic is std + mean instead of the mean alone."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        contrast = channel_std(x) + x.mean(dim=(2, 3), keepdim=True)
        return x * self.conv_du(contrast)


class IMDB(nn.Module):
    """Information multi-distillation block (progressive refinement + CCA + 1x1 fusion + residual)."""

    def __init__(self, channels: int = 64, distillation_rate: float = 0.25, neg_slope: float = 0.05):
        super().__init__()
        self.distilled = int(channels * distillation_rate)
        self.remaining = channels - self.distilled
        self.c1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.c2 = nn.Conv2d(self.remaining, channels, 3, 1, 1)
        self.c3 = nn.Conv2d(self.remaining, channels, 3, 1, 1)
        self.c4 = nn.Conv2d(self.remaining, self.distilled, 3, 1, 1)
        self.act = nn.LeakyReLU(neg_slope)
        self.cca = CCALayer(self.distilled * 4)
        self.c5 = nn.Conv2d(self.distilled * 4, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        split = (self.distilled, self.remaining)
        d1, r1 = torch.split(self.act(self.c1(x)), split, dim=1)
        d2, r2 = torch.split(self.act(self.c2(r1)), split, dim=1)
        d3, r3 = torch.split(self.act(self.c3(r2)), split, dim=1)
        d4 = self.c4(r3)
        out = torch.cat([d1, d2, d3, d4], dim=1)
        return self.c5(self.cca(out)) + x


class IMDN(nn.Module):
    # State-dict keys whose shape depends on the scale: re-initialised when x3/x4 warm-start from x2.
    warm_start_head: tuple[str, ...] = ("upsampler.*",)

    def __init__(
        self,
        scale: int = 2,
        in_chans: int = 3,
        out_chans: int | None = None,
        num_features: int = 64,
        num_blocks: int = 6,
        distillation_rate: float = 0.25,
        neg_slope: float = 0.05,
    ):
        super().__init__()
        out_chans = in_chans if out_chans is None else out_chans
        self.scale, self.in_chans, self.out_chans = scale, in_chans, out_chans
        self.fea_conv = nn.Conv2d(in_chans, num_features, 3, 1, 1)
        self.blocks = nn.ModuleList(IMDB(num_features, distillation_rate, neg_slope) for _ in range(num_blocks))
        self.fuse = nn.Sequential(nn.Conv2d(num_features * num_blocks, num_features, 1), nn.LeakyReLU(neg_slope))
        self.LR_conv = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.upsampler = nn.Sequential(
            nn.Conv2d(num_features, out_chans * scale**2, 3, 1, 1), nn.PixelShuffle(scale)
        )

    def forward(self, x: Tensor) -> Tensor:
        feat = self.fea_conv(x)
        outs, y = [], feat
        for block in self.blocks:
            y = block(y)
            outs.append(y)
        y = self.LR_conv(self.fuse(torch.cat(outs, dim=1))) + feat
        return self.upsampler(y)
