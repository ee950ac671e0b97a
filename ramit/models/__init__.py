"""Models: `build_model(name, task, ...)` for RAMiT variants, ablations and baselines; weight I/O.

    from ramit.models import build_model, load_weights
    model = build_model("RAMiT-1", "sr", scale=2).eval()
    load_weights(model, "weights/released/RAMiT-1_X2.pth")
    y = model(x)          # x: [B,3,h,w] in [0,1] -> [B,3,2h,2w], unclamped
"""

from __future__ import annotations

from torch import nn

from ramit.models.checkpoint import load_weights, save_weights
from ramit.models.variants import SR_SCALES, TASKS, allowed_tasks, resolve, variant_names

__all__ = ["MODEL_NAMES", "RAMIT_NAMES", "TASKS", "build_model", "list_models", "load_weights", "save_weights"]

RAMIT_NAMES: tuple[str, ...] = variant_names()


def _baseline_names() -> tuple[str, ...]:
    from ramit.models.baselines import BASELINE_NAMES

    return tuple(BASELINE_NAMES)


def list_models() -> list[str]:
    """Every name `build_model` accepts: RAMiT variants, ablations, then baselines."""
    return list(RAMIT_NAMES) + [n for n in _baseline_names() if n not in RAMIT_NAMES]


MODEL_NAMES: tuple[str, ...] = tuple(list_models())


def build_model(name: str, task: str, scale: int | None = None, in_chans: int | None = None,
                **overrides) -> nn.Module:
    """Build model `name` for `task` ('sr' needs scale 2/3/4); `overrides` are constructor kwargs.

    The module's `forward` maps [B, C, h, w] in [0, 1] to [B, C, h*s, w*s] and owns padding and
    normalisation; it exposes `.scale`, `.in_chans`, `.task` (and `.model_name`).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}")
    if name not in RAMIT_NAMES:
        if name in _baseline_names():
            from ramit.models.baselines import build_baseline

            return build_baseline(name, task, scale=scale, in_chans=in_chans, **overrides)
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(list_models())}")
    tasks = allowed_tasks(name)
    if task not in tasks:
        raise ValueError(f"{name} is not built for task {task!r}; allowed: {', '.join(tasks)}")
    if task == "sr":
        if scale not in SR_SCALES:
            raise ValueError(f"task 'sr' needs scale in {SR_SCALES}, got {scale!r}")
    elif scale not in (None, 1):
        raise ValueError(f"task {task!r} has no scale (allowed: None or 1), got {scale!r}")
    chans = 1 if task == "gdn" else 3
    if in_chans is not None and in_chans != chans and "img_mean" not in overrides:
        raise ValueError(f"{name} {task} takes in_chans={chans} (its normalisation is per channel), got {in_chans}; "
                         "pass img_mean/img_std to build another width")

    from ramit.models.ramit import RAMiT

    kwargs = resolve(name, task)
    kwargs.update(in_chans=in_chans or chans, scale=scale or 1, task=task)
    kwargs.update(overrides)
    model = RAMiT(**kwargs)
    model.model_name = name
    return model
