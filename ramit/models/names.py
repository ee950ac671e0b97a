"""Model names and the files that define them, without importing torch.

The pipeline reads these at Snakefile parse time and in every stage command; importing torch there
would add seconds to every job and every no-op re-run.
"""

from __future__ import annotations

from ramit.models.variants import allowed_tasks, variant_names

# name -> tasks it is defined for (the baselines' modules build these; see ramit/models/baselines)
BASELINE_TASKS: dict[str, tuple[str, ...]] = {
    "Bicubic": ("sr",),
    "Identity": ("cdn", "gdn", "lle", "dr"),
    "SwinIR-light": ("sr", "cdn", "gdn"),
    "SwinIR-M": ("cdn", "gdn"),
    "IMDN": ("sr",),
    "DnCNN": ("cdn", "gdn"),
    "DnCNN-S": ("gdn",),
    "Retinexformer": ("lle",),
    "PReNet": ("dr",),
}
BASELINE_NAMES: tuple[str, ...] = tuple(BASELINE_TASKS)
NON_LEARNED: frozenset[str] = frozenset({"Bicubic", "Identity"})

# The module defining each baseline (a test checks it against the built model's class).
_BASELINE_MODULES = {"Bicubic": "nonlearned", "Identity": "nonlearned", "SwinIR-light": "swinir",
                     "SwinIR-M": "swinir", "IMDN": "imdn", "DnCNN": "dncnn", "DnCNN-S": "dncnn",
                     "Retinexformer": "retinexformer", "PReNet": "prenet"}

RAMIT_FILES = ["ramit/models/ramit.py", "ramit/models/variants.py", "ramit/models/variants.yaml"]


def ramit_names() -> tuple[str, ...]:
    return variant_names()


def list_models() -> list[str]:
    """Every name `build_model` accepts: RAMiT variants, ablations, then baselines."""
    ramit = ramit_names()
    return list(ramit) + [n for n in BASELINE_NAMES if n not in ramit]


def model_tasks(name: str) -> tuple[str, ...]:
    if name in BASELINE_TASKS:
        return BASELINE_TASKS[name]
    return allowed_tasks(name)


def source_files(name: str) -> list[str]:
    """Files (relative to the project root) whose content defines model `name`: a change to any of
    them changes the model, so the stages that train or run it are stale."""
    if name in ramit_names():
        return list(RAMIT_FILES)
    if name in _BASELINE_MODULES:
        return [f"ramit/models/baselines/{_BASELINE_MODULES[name]}.py"]
    raise ValueError(f"unknown model {name!r}; allowed: {', '.join(list_models())}")
