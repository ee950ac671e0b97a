"""Models: `build_model(name, task, ...)` for RAMiT variants, ablations and baselines; weight I/O.

    from ramit.models import build_model, load_weights
    model = build_model("RAMiT-1", "sr", scale=2).eval()
    load_weights(model, "weights/released/RAMiT-1_X2.pth")
    y = model(x)          # x: [B,3,h,w] in [0,1] -> [B,3,2h,2w], unclamped
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ramit.models.names import BASELINE_NAMES, list_models, source_files
from ramit.models.variants import SR_SCALES, TASKS, allowed_tasks, resolve, variant_names

__all__ = ["MODEL_NAMES", "RAMIT_NAMES", "TASKS", "build_model", "list_models", "load_weights", "save_weights",
           "source_files", "warm_start_head"]

if TYPE_CHECKING:
    from torch import nn

RAMIT_NAMES: tuple[str, ...] = variant_names()


def __getattr__(name: str):
    # torch is imported on first use only: the pipeline reads model names at Snakefile parse time.
    if name in ("load_weights", "save_weights"):
        from ramit.models import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'ramit.models' has no attribute {name!r}")


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
        if name in BASELINE_NAMES:
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



def warm_start_head(model: nn.Module) -> tuple[str, ...]:
    """The state-dict key patterns a warm start from another scale re-initialises (see DESIGN.md)."""
    head = getattr(type(model), "warm_start_head", None)
    if not head:
        raise ValueError(f"{getattr(model, 'model_name', type(model).__name__)} names no warm-start head "
                         f"(class attribute `warm_start_head`): it cannot warm-start from another scale")
    return tuple(head)
