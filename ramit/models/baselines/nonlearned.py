"""Non-learned reference points: bicubic upsampling for SR and the degraded input itself for the
restoration tasks. Neither has parameters; both follow the model contract ([B, C, h, w] in [0, 1] units
in, [B, C, h*s, w*s] out, unclamped) so the evaluation stage treats them like any other model."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class Bicubic(nn.Module):
    """MATLAB-exact bicubic upsampling (`ramit.data.degrade.imresize`, float path), image by image.

    MATLAB's cubic kernel (a = -0.5) overshoots, so outputs can leave [0, 1]; they are not clamped, in
    line with the contract (scoring clamps). Runs on the CPU through numpy in float64; the result is
    returned in the input's dtype and device. Not differentiable.
    """

    def __init__(self, scale: int = 2, in_chans: int = 3):
        super().__init__()
        self.scale, self.in_chans = scale, in_chans

    def forward(self, x: Tensor) -> Tensor:
        # imported at call time: building a model must not load the data stage
        from ramit.data.degrade import imresize

        arr = x.detach().cpu().double().numpy()
        out = [np.asarray(imresize(img.transpose(1, 2, 0), self.scale)) for img in arr]
        out = np.stack([o.reshape(o.shape[0], o.shape[1], -1).transpose(2, 0, 1) for o in out])
        return torch.from_numpy(np.ascontiguousarray(out)).to(device=x.device, dtype=x.dtype)


class Identity(nn.Module):
    """Returns the degraded input: the 'do nothing' score of denoising, low-light and deraining sets."""

    def __init__(self, in_chans: int = 3):
        super().__init__()
        self.scale, self.in_chans = 1, in_chans

    def forward(self, x: Tensor) -> Tensor:
        return x.clone()
