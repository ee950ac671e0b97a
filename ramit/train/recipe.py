"""Training recipes as data: the pydantic schema of `params/train/*.yaml` and `--set` overrides.

A recipe says everything about how a model is trained except which model and which data: loss,
optimiser, learning-rate schedule (warm-up, halvings, progressive patch/batch stages, an optional
head-only warm start), budgets and cadences. The paper's recipes (PROTOCOL.md §3) are
`paper_sr_x2.yaml`, `paper_sr_warmstart.yaml` and `paper_progressive.yaml`; `embedded.yaml` is the
tiny budget the default pipeline runs on two CPU cores.

All epochs in a recipe are counted in the authors' unit: one epoch = `epoch_length` random crops
(e.g. 800 DIV2K images x 80 = 64,000 for SR), not one pass over the files.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Union

import yaml
from pydantic import Field, model_validator

from ramit.config import ConfigError, Strict, read_yaml, validate
from ramit.settings import Task



class Stage(Strict):
    """From `epoch` on, train on LQ patches of `patch` pixels with `batch` samples per step.

    `batch` is the TOTAL batch over all processes (the paper's 2 GPUs x 32 = 64); each of WORLD_SIZE
    processes takes batch / WORLD_SIZE, so a 1-GPU and a 2-GPU run follow the same schedule.
    """

    epoch: int = Field(ge=0)
    patch: int = Field(gt=0)
    batch: int = Field(gt=0)


class EpochLength(Strict):
    """Crops per epoch: a fixed number, or the authors' multiplier x number of training images."""

    samples: Optional[int] = Field(default=None, gt=0)
    per_image: Optional[float] = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_of(self):
        if (self.samples is None) == (self.per_image is None):
            raise ValueError("give exactly one of 'samples' or 'per_image'")
        return self

    def resolve(self, n_images: int) -> int:
        if self.samples is not None:
            return self.samples
        return max(1, round(self.per_image * n_images))


class WarmStart(Strict):
    """x3/x4 from x2: re-initialise the head, train only it at constant lr, then everything afresh.

    Which keys are "the head" is a property of the model (its class attribute `warm_start_head`: the
    keys whose shape depends on the scale), not of the recipe. The main schedule (warm-up,
    milestones) is counted from the end of this phase.
    """

    epochs: float = Field(gt=0)
    lr: Optional[float] = None  # constant lr of the head-only phase; default: the stage-0 lr


class Recipe(Strict):
    name: str
    description: str = ""

    # objective and optimiser (authors: L1, Adam(0.9, 0.999), no weight decay, no clipping)
    loss: Literal["l1"] = "l1"
    optimizer: Literal["adam"] = "adam"
    betas: Tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(default=0.0, ge=0)

    # lr = base_lr x total_batch / base_batch, recomputed at each stage (linear scaling rule)
    base_lr: float = Field(default=4e-4, gt=0)
    base_batch: int = Field(default=64, gt=0)
    warmup_epochs: float = Field(default=20, ge=0)
    milestones: List[float] = []  # epochs after which lr is multiplied by gamma (from end of warm start)
    gamma: float = Field(default=0.5, gt=0)
    # A stage switch builds a new Adam; the authors re-load the previous state into it (True).
    keep_optimizer_state_at_stage: bool = True

    epochs: float = Field(gt=0)
    epoch_length: Union[EpochLength, Dict[Task, EpochLength]]
    stages: List[Stage] = Field(min_length=1)
    warm_start: Optional[WarmStart] = None
    iterations: Optional[int] = Field(default=None, gt=0)  # hard cap on iterations (None: epochs decide)

    # data
    sigma_range: Tuple[float, float] = (0.0, 50.0)  # blind AWGN for cdn/gdn, in 0-255 units
    num_workers: int = Field(default=0, ge=0)
    seed: int = 9725

    # cadences, in iterations; validation and a checkpoint also always happen at the end
    log_every: int = Field(default=50, gt=0)
    ckpt_every: int = Field(default=1000, gt=0)
    keep_checkpoints: int = Field(default=2, ge=1)
    val_every: Optional[int] = Field(default=None, gt=0)  # iterations
    val_every_epochs: Optional[float] = Field(default=None, gt=0)  # the authors: 20
    val_max_images: Optional[int] = Field(default=None, gt=0)
    val_at_start: bool = False  # also score the untrained (or warm-started) model at iteration 0
    mlflow_every: int = Field(default=100, gt=0)  # metrics buffered, flushed in one batch this often

    # execution
    amp: Optional[Literal["bf16"]] = None
    compile: bool = False
    # True: bit-identical reruns on the CPU; on CUDA "reproducible up to nondeterministic kernels"
    # (fixed cuBLAS workspace, deterministic cuDNN, no benchmark; the fused attention backward has no
    # deterministic CUDA kernel). False: cuDNN benchmark mode, fastest.
    deterministic: bool = True

    model: Dict[str, object] = {}  # extra build_model(**overrides), e.g. {depths: [1,1,1,1]} for tests

    @model_validator(mode="after")
    def _check(self):
        if self.stages[0].epoch != 0:
            raise ValueError("stages: the first stage must start at epoch 0")
        starts = [s.epoch for s in self.stages]
        if starts != sorted(set(starts)):
            raise ValueError("stages: epochs must be strictly increasing")
        if self.milestones != sorted(self.milestones):
            raise ValueError("milestones: must be increasing")
        if self.warm_start is not None and len(self.stages) > 1:
            raise ValueError("warm_start and progressive stages together are not supported")
        return self

    def epoch_length_for(self, task: str, n_images: int) -> int:
        el = self.epoch_length
        if isinstance(el, dict):
            if task not in el:
                raise ConfigError(f"recipe {self.name!r}: epoch_length has no entry for task {task!r}")
            el = el[task]
        return el.resolve(n_images)

    def resolved(self) -> dict:
        return self.model_dump(mode="json")

    def sha256(self, extra: dict | None = None) -> str:
        blob = json.dumps({"recipe": self.resolved(), **(extra or {})}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def _set_dotted(data: dict, key: str, value) -> None:
    """`a.b.0.c=value` into nested dicts/lists; a missing dict key is created (the schema judges it)."""
    parts = key.split(".")
    node = data
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            try:
                idx = int(p)
                node[idx]
            except (ValueError, IndexError):
                raise ConfigError(f"--set {key}: {p!r} is not an index of a list of {len(node)}") from None
            if last:
                node[idx] = value
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[p] = value
            else:
                if node.get(p) is None:
                    node[p] = {}
                node = node[p]
        else:
            raise ConfigError(f"--set {key}: {'.'.join(parts[:i])!r} is a value, not a mapping or list")


def apply_overrides(data: dict, overrides: List[str]) -> dict:
    data = copy.deepcopy(data)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {e}") from None
        _set_dotted(data, key, value)
    return data


def load_recipe(path: str | Path, overrides: List[str] | None = None, seed: int | None = None) -> Recipe:
    """Read a recipe, apply `--set key=value` overrides (values parsed as YAML) and validate it all."""
    data = apply_overrides(read_yaml(path), overrides or [])
    if seed is not None:
        data["seed"] = seed
    source = f"{path}" + (f" (with --set {' '.join(overrides)})" if overrides else "")
    return validate(data, Recipe, source)
