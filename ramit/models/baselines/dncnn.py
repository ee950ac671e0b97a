"""DnCNN (Zhang et al., "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image Denoising",
IEEE TIP 2017, arXiv 1608.03981), written from the paper's description.

Structure (paper Fig. 1): layer 1 Conv(3x3, c -> 64) + ReLU; layers 2..D-1 Conv(3x3, 64 -> 64) + BN +
ReLU; layer D Conv(3x3, 64 -> c). Residual learning: the network predicts the noise and the output is
`x - net(x)`. Depth 17 (the paper's DnCNN-S setting; the paper uses 20 for its blind DnCNN-B/CDnCNN-B,
`depth` is a constructor argument). No normalisation of the input; no padding (zero-padded convs keep
the size), any size >= 1x1 works.

Convs carry no bias (`bias=False`, BN follows every inner conv), which gives 556,032 parameters for gray
input (558,336 for colour): the "556K" that lightweight-denoising comparison tables cite for DnCNN. The
DnCNN paper itself states no parameter count. Note: BN makes a batch in train mode depend on its other
images; in eval mode images are independent.
"""

from __future__ import annotations

from torch import Tensor, nn


class DnCNN(nn.Module):
    def __init__(self, in_chans: int = 1, depth: int = 17, num_features: int = 64, bias: bool = False):
        super().__init__()
        self.scale, self.in_chans = 1, in_chans
        layers: list[nn.Module] = [nn.Conv2d(in_chans, num_features, 3, 1, 1, bias=bias), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(num_features, num_features, 3, 1, 1, bias=bias),
                nn.BatchNorm2d(num_features),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(num_features, in_chans, 3, 1, 1, bias=bias))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x - self.body(x)
