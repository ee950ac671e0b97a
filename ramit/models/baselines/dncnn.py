"""DnCNN (Zhang et al., "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image Denoising",
IEEE TIP 2017, arXiv 1608.03981), written from the paper's description; module names follow KAIR's
released state_dicts (cszn/KAIR `model_zoo/dncnn_25.pth` loads strictly and reproduces its output).

Structure (paper Fig. 1): layer 1 Conv(3x3, c -> 64) + ReLU; layers 2..D-1 Conv(3x3, 64 -> 64) + BN +
ReLU; layer D Conv(3x3, 64 -> c). Residual learning: the network predicts the noise, the output is
`x - net(x)`. No input normalisation, no padding (zero-padded convs keep the size); any size >= 1x1.

Layout: KAIR's `act_mode='R'`, in which every batch norm has been merged into the conv before it (so
every conv has a bias and there is no BN): one flat Sequential `model`, convs at the even indices
`model.{2k}`, ReLUs at the odd ones. This is the form all of KAIR's DnCNN weights are released in.

Which DnCNN (the paper trains two kinds):
* `DnCNN` (build_model name; tasks cdn/gdn) is DnCNN-B / CDnCNN-B, the blind model: depth 20, one
  network for all noise levels, the setting RAMiT's blind denoisers are compared in. Released by KAIR
  as `dncnn_color_blind.pth` (668,227 params) and `dncnn_gray_blind.pth` (665,921).
* `DnCNN-S` (task gdn) is the non-blind gray model of one noise level: depth 17, KAIR's
  `dncnn_{15,25,50}.pth` (555,137 params); registered for the one setting it was trained for.
The original DnCNN-S (BN not merged, only the first conv with a bias; cszn/DnCNN's PyTorch port) has
556,096 parameters, the "556K" comparison tables cite; the merged form has 555,137 (a bias per conv
instead of a BN scale/shift pair per inner layer).
"""

from __future__ import annotations

from torch import Tensor, nn


class DnCNN(nn.Module):
    def __init__(self, in_chans: int = 1, depth: int = 20, num_features: int = 64):
        super().__init__()
        self.scale, self.in_chans, self.depth = 1, in_chans, depth
        layers: list[nn.Module] = []
        for k in range(depth):
            cin = in_chans if k == 0 else num_features
            cout = in_chans if k == depth - 1 else num_features
            layers.append(nn.Conv2d(cin, cout, 3, 1, 1, bias=True))
            if k < depth - 1:
                layers.append(nn.ReLU(inplace=True))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x - self.model(x)
