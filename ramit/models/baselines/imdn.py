"""IMDN (Hui et al., "Lightweight Image Super-Resolution with Information Multi-distillation Network",
ACM MM 2019, arXiv 1909.11856), written from the paper's description; module names follow the authors'
state_dict (Zheng222/IMDN `IMDN_x{2,3,4}.pth` load strictly and reproduce their test outputs).

Structure (paper Fig. 2-3): a 3x3 conv for shallow features (`fea_conv`); six information
multi-distillation blocks (`IMDB1`..`IMDB6`); the outputs of all six concatenated and fused by a 1x1
conv + LeakyReLU (`c`); a 3x3 conv (`LR_conv`) with a long skip from the shallow features; an upsampler
of one 3x3 conv and a pixel shuffle (`upsampler`). An IMDB is a progressive refinement module: four 3x3
convs; after each of the first three, a quarter of the channels is kept ("distilled", the first 16) and
the rest goes on to the next conv; the fourth conv produces the last quarter. The four distilled parts
are concatenated, re-weighted by contrast-aware channel attention (CCA: per-channel standard deviation
+ mean -> 1x1 squeeze/excite -> sigmoid) and fused by a 1x1 conv, plus the block input. 64 channels,
distillation rate 0.25, LeakyReLU slope 0.05.

Parameter counts: 694,404 / 703,059 / 715,176 for x2 / x3 / x4, the paper's 694K / 703K / 715K; only the
upsampler conv depends on the scale. MACs at the field's convention (every conv, weights + bias, at the
LR input of a 1280x720 output): 159.2 G / 71.5 G / 41.0 G; counted as the paper did (no bias additions,
LR size rounded up) 158.8 G / 71.5 G / 40.9 G, the paper's numbers.

Test path (authors' test_IMDN.py): RGB `/255` in [0, 1], no mean shift, no padding; the module is the
whole test-time path. Every layer is size-preserving and CCA pools globally, so any size >= 1x1 works;
CCA's global statistics make a pixel depend on the whole image (as in the paper).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ramit.models.complexity import PaperConvention

# The paper's Mult-Adds (158.8 / 71.5 / 40.9 G): conv weights only, LR input rounded up (1280/3 -> 427).
PAPER_CONVENTION = PaperConvention(
    rule="all parameters; conv weight MACs without bias additions, LR input ceil(720/s) x ceil(1280/s)",
    bias=False, input_size=lambda task, s: (math.ceil(720 / s), math.ceil(1280 / s)))


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
        self.c5 = nn.Conv2d(self.distilled * 4, channels, 1)
        self.cca = CCALayer(self.distilled * 4)

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
    paper_convention = PAPER_CONVENTION

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
        self.num_blocks = num_blocks
        self.fea_conv = nn.Conv2d(in_chans, num_features, 3, 1, 1)
        # separate attributes IMDB1..IMDBn (not a ModuleList): the authors' state_dict names
        for i in range(1, num_blocks + 1):
            self.add_module(f"IMDB{i}", IMDB(num_features, distillation_rate, neg_slope))
        self.c = nn.Sequential(nn.Conv2d(num_features * num_blocks, num_features, 1), nn.LeakyReLU(neg_slope))
        self.LR_conv = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.upsampler = nn.Sequential(
            nn.Conv2d(num_features, out_chans * scale**2, 3, 1, 1), nn.PixelShuffle(scale)
        )

    def blocks(self) -> list[IMDB]:
        return [getattr(self, f"IMDB{i}") for i in range(1, self.num_blocks + 1)]

    def forward(self, x: Tensor) -> Tensor:
        feat = self.fea_conv(x)
        outs, y = [], feat
        for block in self.blocks():
            y = block(y)
            outs.append(y)
        y = self.LR_conv(self.c(torch.cat(outs, dim=1))) + feat
        return self.upsampler(y)
