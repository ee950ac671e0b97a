"""Schema and resolution of `variants.yaml`: model name + task -> RAMiT constructor arguments."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, model_validator

from ramit.config import Strict, load_yaml
from ramit.settings import SR_SCALES, TASKS, Task  # noqa: F401  (re-exported)

VARIANTS_FILE = Path(__file__).with_name("variants.yaml")



class ArchArgs(Strict):
    """RAMiT constructor arguments a config may set (all optional: defaults < variant < ablation)."""

    dim: Optional[int] = Field(None, gt=0)
    depths: Optional[tuple[int, int, int, int]] = None
    num_heads: Optional[tuple[int, int, int, int]] = None
    chsa_head_ratio: Optional[float] = Field(None, ge=0.0, le=1.0)
    window_size: Optional[int] = Field(None, gt=0)
    hidden_ratio: Optional[float] = Field(None, gt=0)
    qkv_bias: Optional[bool] = None
    mv_ver: Optional[Literal[1, 2]] = None
    exp_factor: Optional[float] = Field(None, gt=0)
    expand_groups: Optional[int] = Field(None, gt=0)
    block_exp_factor: Optional[float] = Field(None, gt=0)
    block_expand_groups: Optional[int] = Field(None, gt=0)
    bottleneck_exp_factor: Optional[float] = Field(None, gt=0)
    bottleneck_expand_groups: Optional[int] = Field(None, gt=0)
    tail_mv: Optional[int] = Field(None, ge=0)
    helper: Optional[bool] = None
    hrami: Optional[bool] = None

    def set_args(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.model_dump(exclude_none=True).items()}


class Variant(Strict):
    arch: ArchArgs
    tasks: tuple[Task, ...]
    helper: dict[Task, bool]

    @model_validator(mode="after")
    def _helper_for_every_task(self):
        if set(self.helper) != set(self.tasks):
            raise ValueError(f"helper must give a value for exactly the tasks {list(self.tasks)}")
        return self


class Ablation(Strict):
    base: str
    overrides: ArchArgs


class VariantsFile(Strict):
    defaults: ArchArgs
    variants: dict[str, Variant]
    ablations: dict[str, Ablation]

    @model_validator(mode="after")
    def _bases_exist(self):
        for name, abl in self.ablations.items():
            if abl.base not in self.variants:
                raise ValueError(f"ablation {name}: base {abl.base!r} is not a variant")
            if name in self.variants:
                raise ValueError(f"{name} is both a variant and an ablation")
        return self


@lru_cache(maxsize=1)
def load_variants(path: Path = VARIANTS_FILE) -> VariantsFile:
    return load_yaml(path, VariantsFile)


def variant_names() -> tuple[str, ...]:
    cfg = load_variants()
    return tuple(cfg.variants) + tuple(cfg.ablations)


def allowed_tasks(name: str) -> tuple[str, ...]:
    cfg = load_variants()
    base = cfg.ablations[name].base if name in cfg.ablations else name
    return cfg.variants[base].tasks


def resolve(name: str, task: str) -> dict:
    """Constructor kwargs (architecture only) of `name` for `task`; the caller checks name/task first."""
    cfg = load_variants()
    abl = cfg.ablations.get(name)
    variant = cfg.variants[abl.base if abl else name]
    kwargs = cfg.defaults.set_args()
    kwargs.update(variant.arch.set_args())
    kwargs["helper"] = variant.helper[task]
    if abl:
        kwargs.update(abl.overrides.set_args())
    return kwargs
