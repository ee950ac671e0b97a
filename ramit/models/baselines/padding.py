"""Bottom/right padding to a size multiple, shared by the baselines that need fixed-size tiles.

`F.pad(..., mode="reflect")` refuses pads as large as the image and PyTorch has no symmetric mode, so
both are written as an index gather with a periodic mirror: any input size >= 1 works, and the result
equals `numpy.pad(..., mode="symmetric" | "reflect")` wherever numpy accepts the arguments.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _mirror_index(n: int, total: int, mode: str, device: torch.device) -> Tensor:
    p = torch.arange(total, device=device)
    if mode == "symmetric" or n == 1:  # a 1-pixel axis has nothing to reflect about: repeat it
        period = 2 * n
        q = p % period
        return torch.where(q < n, q, period - 1 - q)
    if mode == "reflect":
        period = 2 * n - 2
        q = p % period
        return torch.where(q < n, q, period - q)
    raise ValueError(f"padding mode must be 'symmetric' or 'reflect', got {mode!r}")


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "symmetric", always: bool = False) -> Tensor:
    """Pad the last two axes of `x` at the bottom/right so that both become multiples of `multiple`.

    `always=True` pads to the NEXT multiple, i.e. a full `multiple` rows/columns on a side that already
    is one (SwinIR's test script does this: 48 -> 56 with window 8).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if always:
        ph, pw = ph or multiple, pw or multiple
    if ph:
        x = x.index_select(-2, _mirror_index(h, h + ph, mode, x.device))
    if pw:
        x = x.index_select(-1, _mirror_index(w, w + pw, mode, x.device))
    return x
