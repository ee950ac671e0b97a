"""PReNet (Ren et al., "Progressive Image Deraining Networks: A Better and Simpler Baseline", CVPR 2019,
arXiv 1901.09221), written from the paper's description.

Structure (paper Fig. 2, Sec. 3): T = 6 recurrent stages sharing one set of weights. Stage t takes the
rainy image y concatenated with the previous estimate x_{t-1} (x_0 = y):
  f_in:        Conv(3x3, 6 -> 32) + ReLU
  f_recurrent: a convolutional LSTM, gates i, f, g, o = Conv(3x3, [features, h_{t-1}] 64 -> 32) with
               sigmoid/sigmoid/tanh/sigmoid; c_t = f*c_{t-1} + i*g; h_t = o*tanh(c_t)
  f_res:       5 ResBlocks, each ReLU(x + ReLU(Conv(ReLU(Conv(x)))))
  f_out:       Conv(3x3, 32 -> 3)
  x_t = y + f_out(...)
The output is x_T. Parameters: 168,963 (the paper's 0.168M); with `recurrent=False` (PRN) 95,107.

No input normalisation ([0, 1] RGB, as the authors' code); no padding, any size >= 1x1 works.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(), nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU()
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + x)


class ConvLSTMCell(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv_i = nn.Conv2d(2 * channels, channels, 3, 1, 1)
        self.conv_f = nn.Conv2d(2 * channels, channels, 3, 1, 1)
        self.conv_g = nn.Conv2d(2 * channels, channels, 3, 1, 1)
        self.conv_o = nn.Conv2d(2 * channels, channels, 3, 1, 1)

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        xh = torch.cat([x, h], dim=1)
        i = torch.sigmoid(self.conv_i(xh))
        f = torch.sigmoid(self.conv_f(xh))
        g = torch.tanh(self.conv_g(xh))
        o = torch.sigmoid(self.conv_o(xh))
        c = f * c + i * g
        return o * torch.tanh(c), c


class PReNet(nn.Module):
    def __init__(
        self,
        in_chans: int = 3,
        num_features: int = 32,
        stages: int = 6,
        num_resblocks: int = 5,
        recurrent: bool = True,
    ):
        super().__init__()
        self.scale, self.in_chans = 1, in_chans
        self.num_features, self.stages = num_features, stages
        self.f_in = nn.Sequential(nn.Conv2d(2 * in_chans, num_features, 3, 1, 1), nn.ReLU())
        self.f_recurrent = ConvLSTMCell(num_features) if recurrent else None
        self.f_res = nn.Sequential(*(ResBlock(num_features) for _ in range(num_resblocks)))
        self.f_out = nn.Conv2d(num_features, in_chans, 3, 1, 1)

    def forward(self, y: Tensor) -> Tensor:
        b, _, h, w = y.shape
        state = y.new_zeros(b, self.num_features, h, w)
        hidden, cell = state, state
        x = y
        for _ in range(self.stages):
            feat = self.f_in(torch.cat([y, x], dim=1))
            if self.f_recurrent is not None:
                hidden, cell = self.f_recurrent(feat, hidden, cell)
                feat = hidden
            x = y + self.f_out(self.f_res(feat))
        return x
