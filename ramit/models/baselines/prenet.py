"""PReNet (Ren et al., "Progressive Image Deraining Networks: A Better and Simpler Baseline", CVPR 2019,
arXiv 1901.09221), written from the paper's description; module names follow the authors' state_dict
(csdwren/PReNet `logs/Rain100{H,L}/PReNet6/net_latest.pth` load strictly and reproduce their outputs).

Structure (paper Fig. 2, Sec. 3): T = 6 recurrent stages sharing one set of weights. Stage t takes the
rainy image y concatenated with the previous estimate x_{t-1} (x_0 = y, y first):
  conv0:        Conv(3x3, 6 -> 32) + ReLU                                      (paper f_in)
  conv_i/f/g/o: a convolutional LSTM, each gate Conv(3x3, [features, h] 64 -> 32) with
                sigmoid / sigmoid / tanh / sigmoid; c = f*c + i*g; h = o*tanh(c)  (f_recurrent)
  res_conv1..5: 5 ResBlocks, x = ReLU(x + ReLU(Conv(ReLU(Conv(x)))))           (f_res)
  conv:         Conv(3x3, 32 -> 3)                                             (f_out)
  x_t = y + conv(...)
The output is x_T. Parameters: 168,963 (the paper's 0.168M); with `recurrent=False` (PRN) 95,107.
State-dict order is the authors' declaration order (conv0, res_conv1-5, conv_i/f/g/o, conv), not the
execution order.

Test path (authors' test_PReNet.py): RGB `/255` in [0, 1], no normalisation, no padding; any size >= 1x1
works. The authors then store `uint8(255 * clamp(x))` (truncation); our evaluator rounds, see
params/reference_results.yaml for what that does to the published numbers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _conv(cin: int, cout: int, act: nn.Module | None) -> nn.Sequential:
    """3x3 conv (+ activation) as an indexed Sequential: the authors' `<name>.0.weight` key names."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, 1, 1)]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


def _res_conv(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(), nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU()
    )


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
        self.num_features, self.stages, self.num_resblocks = num_features, stages, num_resblocks
        self.recurrent = recurrent
        self.conv0 = _conv(2 * in_chans, num_features, nn.ReLU())
        for i in range(1, num_resblocks + 1):
            self.add_module(f"res_conv{i}", _res_conv(num_features))
        if recurrent:
            self.conv_i = _conv(2 * num_features, num_features, nn.Sigmoid())
            self.conv_f = _conv(2 * num_features, num_features, nn.Sigmoid())
            self.conv_g = _conv(2 * num_features, num_features, nn.Tanh())
            self.conv_o = _conv(2 * num_features, num_features, nn.Sigmoid())
        self.conv = _conv(num_features, in_chans, None)

    def _lstm(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        xh = torch.cat([x, h], dim=1)
        c = self.conv_f(xh) * c + self.conv_i(xh) * self.conv_g(xh)
        return self.conv_o(xh) * torch.tanh(c), c

    def stage_outputs(self, y: Tensor) -> list[Tensor]:
        """The estimate after every stage (the authors' `x_list`); the last one is the output."""
        b, _, h, w = y.shape
        hidden = cell = y.new_zeros(b, self.num_features, h, w)
        x, outs = y, []
        for _ in range(self.stages):
            feat = self.conv0(torch.cat([y, x], dim=1))
            if self.recurrent:
                hidden, cell = self._lstm(feat, hidden, cell)
                feat = hidden
            for i in range(1, self.num_resblocks + 1):
                feat = torch.relu(getattr(self, f"res_conv{i}")(feat) + feat)
            x = y + self.conv(feat)
            outs.append(x)
        return outs

    def forward(self, y: Tensor) -> Tensor:
        return self.stage_outputs(y)[-1]
