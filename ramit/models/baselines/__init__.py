"""Baseline models the benchmark compares RAMiT against; `ramit.models.build_model` hands these names here.

| name | tasks | paper |
|---|---|---|
| Bicubic | sr | MATLAB bicubic (`ramit.data.degrade.imresize`), no parameters |
| Identity | cdn, gdn, lle, dr | the degraded input, no parameters |
| SwinIR-light | sr, cdn, gdn | Liang et al. ICCVW 2021 (lightweight config; scale-1 head for denoising) |
| IMDN | sr | Hui et al. ACM MM 2019 |
| DnCNN | cdn, gdn | Zhang et al. TIP 2017 |
| Retinexformer | lle | Cai et al. ICCV 2023 |
| PReNet | dr | Ren et al. CVPR 2019 |

Complexity (params: trainable parameters; MACs: ptflops `backend="aten"`, which counts attention
matmuls; SR at a 1280x720 output, i.e. input (720//s)x(1280//s), padded inside as the model does; other
tasks at 256x256):

| model | setting | params | MACs (aten) | paper states |
|---|---|---|---|---|
| SwinIR-light | x2 / x3 / x4 | 910,152 / 918,267 / 929,628 | 243.3G / 110.3G / 63.3G | 878K / 886K / 897K; 195.6G / 87.2G / 49.6G |
| SwinIR-light | cdn / gdn | 905,283 / 903,121 | 68.9G / 68.7G | (no lightweight DN model published) |
| IMDN | x2 / x3 / x4 | 694,404 / 703,059 / 715,176 | 159.2G / 71.5G / 41.0G | 694K / 703K / 715K; 158.8G / 71.5G / 40.9G |
| DnCNN | gdn / cdn | 556,032 / 558,336 | 36.3G / 36.5G | 556K (gray, as cited) |
| Retinexformer | lle | 1,605,701 | 16.67G | 1.61M; 15.57G |
| PReNet | dr | 168,963 | 66.4G | 0.168M |

SwinIR's stated parameter counts leave out the relative position bias tables (see `swinir.py`); its
stated Mult-Adds are ~20% below the aten count, close to the count without the attention matmuls (~198G
at x2). Retinexformer's 1.1G gap is mostly its 0.94G of attention matmuls.

Every model takes float32 `[B, C, h, w]` in [0, 1] units and returns `[B, C, h*s, w*s]`, unclamped; it
owns its normalisation and padding. Each carries `.scale`, `.in_chans`, `.task` and `.model_name`. Choices, parameter counts
and minimum sizes are documented in each model's module.
"""

from __future__ import annotations

from torch import nn

from ramit.config import ConfigError

from .dncnn import DnCNN
from .imdn import IMDN
from .nonlearned import Bicubic, Identity
from .prenet import PReNet
from .retinexformer import Retinexformer
from .swinir import SwinIR

SR_SCALES = (2, 3, 4)

# name -> tasks it is defined for
BASELINE_TASKS: dict[str, tuple[str, ...]] = {
    "Bicubic": ("sr",),
    "Identity": ("cdn", "gdn", "lle", "dr"),
    "SwinIR-light": ("sr", "cdn", "gdn"),
    "IMDN": ("sr",),
    "DnCNN": ("cdn", "gdn"),
    "Retinexformer": ("lle",),
    "PReNet": ("dr",),
}
BASELINE_NAMES: tuple[str, ...] = tuple(BASELINE_TASKS)


def _check_task_scale(name: str, task: str, scale: int | None) -> int:
    if name not in BASELINE_TASKS:
        raise KeyError(name)
    if task not in BASELINE_TASKS[name]:
        raise ConfigError(f"baseline {name!r} is defined for tasks {list(BASELINE_TASKS[name])}, not {task!r}")
    if task == "sr":
        if scale not in SR_SCALES:
            raise ConfigError(f"{name} for task 'sr' needs scale in {list(SR_SCALES)}, got {scale!r}")
        return scale
    if scale not in (None, 1):
        raise ConfigError(f"{name} for task {task!r} has no scale (got {scale!r})")
    return 1


def build_baseline(
    name: str, task: str, scale: int | None = None, in_chans: int | None = None, **overrides
) -> nn.Module:
    """Build baseline `name` for `task` (`sr` with `scale` 2/3/4, `cdn`, `gdn`, `lle`, `dr`).

    `in_chans` defaults to 1 for `gdn` and 3 otherwise; `overrides` go to the model's constructor
    (e.g. `depth=20` for DnCNN-B). Unknown names raise KeyError, a task or scale the model is not
    defined for raises ConfigError.
    """
    s = _check_task_scale(name, task, scale)
    c = in_chans if in_chans is not None else (1 if task == "gdn" else 3)
    if name == "Bicubic":
        model = Bicubic(scale=s, in_chans=c, **overrides)
    elif name == "Identity":
        model = Identity(in_chans=c, **overrides)
    elif name == "SwinIR-light":
        model = SwinIR(scale=s, in_chans=c, **overrides)
    elif name == "IMDN":
        model = IMDN(scale=s, in_chans=c, **overrides)
    elif name == "DnCNN":
        model = DnCNN(in_chans=c, **overrides)
    elif name == "Retinexformer":
        model = Retinexformer(in_chans=c, **overrides)
    elif name == "PReNet":
        model = PReNet(in_chans=c, **overrides)
    else:
        raise KeyError(name)  # unreachable while BASELINE_TASKS and the branches agree
    # the same bookkeeping attributes build_model sets on RAMiT models
    model.task, model.model_name = task, name
    return model


__all__ = [
    "BASELINE_NAMES",
    "BASELINE_TASKS",
    "Bicubic",
    "DnCNN",
    "IMDN",
    "Identity",
    "PReNet",
    "Retinexformer",
    "SwinIR",
    "build_baseline",
]
