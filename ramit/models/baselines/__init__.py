"""Baseline models the benchmark compares RAMiT against; `ramit.models.build_model` hands these names here.

Every learned baseline is the authors' network: its module names, buffers and state_dict order are the
authors', so their released checkpoints load with `ramit.models.load_weights` (strict) and reproduce
their test outputs (tests/models/test_baselines.py, against the golden tensors).

| name | tasks | the authors' configuration | released weights |
|---|---|---|---|
| Bicubic | sr | MATLAB bicubic (`ramit.data.degrade.imresize`), no parameters | - |
| Identity | cdn, gdn, lle, dr | the degraded input, no parameters | - |
| SwinIR-light | sr | SwinIR-S (Liang et al. ICCVW 2021, lightweight SR) | public URL (GitHub release) |
| SwinIR-light | cdn, gdn | SwinIR-S body + denoising head: NOT published, embedded smoke run only | none |
| SwinIR-M | cdn, gdn | SwinIR's denoiser (the only size its authors published), non-blind | public URL |
| IMDN | sr | Hui et al. ACM MM 2019 | in the authors' repo |
| DnCNN | cdn, gdn | DnCNN-B / CDnCNN-B, blind, 20 layers (Zhang et al. TIP 2017; KAIR layout) | public URL |
| DnCNN-S | gdn | DnCNN-S, non-blind gray, 17 layers (KAIR dncnn_15/25/50) | dncnn_25 in KAIR's repo |
| Retinexformer | lle | Cai et al. ICCV 2023, LOL-v1 configuration | Google Drive only |
| PReNet | dr | Ren et al. CVPR 2019 | in the authors' repo |

Complexity. "report" = the rule applied to every model in the report (`complexity.count_macs`: ptflops
aten, the forward as it runs incl. its own padding, attention matmuls and biases counted; SR at the LR
input of a 1280x720 output, else 256x256). "paper" = counted the way the model's own paper did
(`complexity.paper_params` / `paper_gmacs`, rule per model in `counting_rule`), to check against the
printed number:

| model | setting | params (paper convention) | printed | GMACs report | GMACs paper convention | printed |
|---|---|---|---|---|---|---|
| SwinIR-light | x2 / x3 / x4 | 877,752 / 885,867 / 897,228 (all: 910,152 / 918,267 / 929,628) | 878K / 886K / 897K | 251.8 / 114.0 / 64.9 | 195.6 / 87.2 / 49.6 | 195.6 / 87.2 / 49.6 |
| IMDN | x2 / x3 / x4 | 694,404 / 703,059 / 715,176 | 694K / 703K / 715K | 159.2 / 71.5 / 41.0 | 158.8 / 71.5 / 40.9 | 158.8 / 71.5 / 40.9 |
| Retinexformer | lle | 1,605,701 | 1.61M | 16.67 | 15.57 (units of 2^30) | 15.57 |
| PReNet | dr | 168,963 | 0.168M | 66.4 | - | - |
| DnCNN (B) | cdn / gdn | 668,227 / 665,921 | - | 43.8 / 43.6 | - | - |
| DnCNN-S | gdn | 555,137 (BN unmerged: 556,096) | "556K" in tables | 36.4 | - | - |
| SwinIR-M | cdn / gdn | 11,455,563 cdn (all: 11,504,163 / 11,497,681) | - | 854.4 (cdn) | 788.1 (authors' formula) | 788.0 (issue #18) |

Every model takes float32 `[B, C, h, w]` in [0, 1] units and returns `[B, C, h*s, w*s]`, unclamped; it
owns its normalisation and padding (the authors' test-time path). Each carries `.scale`, `.in_chans`,
`.task` and `.model_name`. Choices, counting rules and minimum sizes are documented in each module.
"""

from __future__ import annotations

from torch import nn

from ramit.config import ConfigError
from ramit.models.names import BASELINE_NAMES, BASELINE_TASKS  # the one list of names and their tasks
from ramit.settings import SR_SCALES

from .dncnn import DnCNN
from .imdn import IMDN
from .nonlearned import Bicubic, Identity
from .prenet import PReNet
from .retinexformer import Retinexformer
from .swinir import SwinIR


# The authors' configurations (main_test_swinir.py define_model: lightweight_sr / color_dn, gray_dn)
SWINIR_S = {"embed_dim": 60, "depths": (6, 6, 6, 6), "num_heads": (6, 6, 6, 6), "window_size": 8,
            "mlp_ratio": 2.0, "img_size": 64}
SWINIR_M = {"embed_dim": 180, "depths": (6,) * 6, "num_heads": (6,) * 6, "window_size": 8,
            "mlp_ratio": 2.0, "img_size": 128}



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
    (e.g. `depth=17` for a DnCNN). Unknown names raise KeyError, a task or scale the model is not
    defined for raises ConfigError.
    """
    s = _check_task_scale(name, task, scale)
    c = in_chans if in_chans is not None else (1 if task == "gdn" else 3)
    if name == "Bicubic":
        model = Bicubic(scale=s, in_chans=c, **overrides)
    elif name == "Identity":
        model = Identity(in_chans=c, **overrides)
    elif name == "SwinIR-light":
        model = SwinIR(scale=s, in_chans=c, **{**SWINIR_S, **overrides})
    elif name == "SwinIR-M":
        model = SwinIR(scale=s, in_chans=c, **{**SWINIR_M, **overrides})
    elif name == "IMDN":
        model = IMDN(scale=s, in_chans=c, **overrides)
    elif name == "DnCNN":
        model = DnCNN(in_chans=c, **{"depth": 20, **overrides})
    elif name == "DnCNN-S":
        model = DnCNN(in_chans=c, **{"depth": 17, **overrides})
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
