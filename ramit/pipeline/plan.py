"""The run plan (`params/run.yaml`, `params/paper.yaml`): what the pipeline trains, evaluates, profiles
and reports, as data validated by pydantic before any job starts.

One plan is one pipeline. Its outputs all live under `root` (the embedded default: the project root;
the paper plan: `paper/`), so two plans never write the same file and each can have its own
`dvc.yaml`. Downloads (`data.downloads`) and the user's manually placed datasets (`data.manual`) are
shared by all plans and are never a stage's output: no orchestrator ever deletes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from ramit.config import ConfigError, Strict, load_yaml
from ramit.settings import MODEL_KEYS, ModelKey, Task, key_task

Device = Literal["cpu", "cuda"]


class DataPlan(Strict):
    registry: str = Field("params/datasets.yaml", description="Dataset registry (params/datasets.yaml).")
    downloads: str = Field("data/raw", description="Download cache: datasets fetched from their URLs or a mirror.")
    manual: str = Field("data/manual", description="Where you put request-only / drive-hosted datasets; "
                                                     "the pipeline only reads it.")
    mirror: Optional[str] = Field(None, description="Dataset mirror: a directory or http(s) base URL "
                                                    "($RAMIT_MIRROR overrides).")


class RecipeRef(Strict):
    recipe: str = Field(description="Training recipe file (params/train/*.yaml).")
    init_from: Optional[ModelKey] = Field(
        None, description="Warm start from this model key of the same model (x3/x4 from x2).")


class ModelPlan(Strict):
    keys: list[ModelKey] = Field(description="Which tasks/scales to train and evaluate this model on.")
    trained: bool = Field(True, description="False for non-learned baselines (Bicubic, Identity).")
    recipes: dict[ModelKey, RecipeRef] = Field(
        default_factory=dict, description="This model's own recipe per key (a baseline's paper recipe); "
                                          "default: the plan's `recipes`.")
    train: dict[str, Any] = Field(default_factory=dict,
                                  description="Recipe overrides for this model only (`--set k=v`).")


class TrainPlan(Strict):
    device: Device = Field("cpu", description="Training device; `cuda` fails loudly where there is none.")
    processes: int = Field(1, ge=1, description="DDP processes per training job (torchrun), one GPU each.")


class EvaluatePlan(Strict):
    device: Device = "cpu"
    save_images: bool = Field(False, description="Write every restored PNG (the report's visual strip).")
    crops: int = Field(2, ge=0, description="Restored crops saved per test set when save_images is off.")
    tile: Optional[int] = None
    precision: Literal["fp32", "tf32", "bf16", "fp16"] = "fp32"
    compile: bool = Field(False, description="torch.compile the networks (frozen weights, on-disk cache). Each "
                          "new padded image size compiles again: pays on sets of few sizes, not on Urban100.")
    self_ensemble: list[str] = Field(default_factory=list,
                                     description="Models also evaluated with the x8 self-ensemble (rows `<model>+`).")


class ProfilePlan(Strict):
    enabled: bool = True
    size: Optional[str] = Field(None, description="HxW input; default: the field's convention per task.")
    latency: bool = True
    runs: int = Field(5, ge=1)
    threads: int = Field(2, ge=1)
    device: Device = "cpu"


class ReleasedPlan(Strict):
    enabled: bool = Field(False, description="Include the released-weights evaluation in the default target.")
    checkpoints: list[str] = Field(default_factory=list, description="Files of params/checkpoints.yaml.")
    registry: str = Field("params/checkpoints.yaml", description="Released-checkpoint registry.")
    test_data: dict[Task, list[str]] = Field(default_factory=dict)
    weights_mirror: Optional[str] = None


class ReportPlan(Strict):
    """The `report:` section: display order, and what the report must say the run proves."""

    model_order: list[str] = Field(default_factory=list)
    dataset_order: list[str] = Field(default_factory=list)
    smoke_scale: bool = Field(
        False, description="The plan is a pipeline check (toy data, tiny budgets): the report opens with a "
                           "banner saying its numbers are not results and where real ones come from.")


class RunPlan(Strict):
    name: str
    description: str = ""
    root: str = Field(".", description="Every output of this plan lives under this folder.")
    data: DataPlan = Field(default_factory=DataPlan)
    sigmas: list[int] = Field(default_factory=lambda: [15, 25, 50])
    train_data: dict[Task, list[str]]
    val_data: dict[Task, str] = Field(default_factory=dict)
    test_data: dict[Task, list[str]]
    recipes: dict[ModelKey, RecipeRef]
    train: TrainPlan = Field(default_factory=TrainPlan)
    models: dict[str, ModelPlan]
    evaluate: EvaluatePlan = Field(default_factory=EvaluatePlan)
    profile: ProfilePlan = Field(default_factory=ProfilePlan)
    released: ReleasedPlan = Field(default_factory=ReleasedPlan)
    report: ReportPlan = Field(default_factory=ReportPlan)

    @field_validator("root")
    @classmethod
    def _relative_root(cls, v: str) -> str:
        p = Path(v)
        if p.is_absolute() or ".." in p.parts:
            raise ValueError("root must be a folder inside the project (relative, no '..')")
        return p.as_posix()

    @model_validator(mode="after")
    def _consistent(self):
        for name, m in self.models.items():
            for key in m.keys:
                self._check_key(name, m, key)
        for name in self.evaluate.self_ensemble:
            if name not in self.models:
                raise ValueError(f"evaluate.self_ensemble: '{name}' is not one of the plan's models")
        return self

    def _check_key(self, name: str, m: ModelPlan, key: str) -> None:
        task = key_task(key)
        if task not in self.test_data:
            raise ValueError(f"models.{name}.keys: no test_data for task '{task}' (add test_data.{task})")
        if not m.trained:
            return
        ref = m.recipes.get(key) or self.recipes.get(key)
        if ref is None:
            raise ValueError(f"models.{name}.keys: no recipe for '{key}' (add recipes.{key})")
        if task not in self.train_data:
            raise ValueError(f"models.{name}.keys: no train_data for task '{task}' (add train_data.{task})")
        if ref.init_from and ref.init_from not in m.keys:
            raise ValueError(f"models.{name}: '{key}' warm-starts from '{ref.init_from}', "
                             f"which is not in its keys {m.keys}")

    # ---- where a plan's outputs live
    def path(self, *parts: str) -> str:
        """`runs/RAMiT/x2` under the plan's root, as a posix path relative to the project."""
        rel = "/".join(parts)
        return rel if self.root == "." else f"{self.root}/{rel}"

    def recipe_for(self, model: str, key: str) -> RecipeRef:
        return self.models[model].recipes.get(key) or self.recipes[key]

    @property
    def dvc_file(self) -> str:
        return self.path("dvc.yaml")


def _check_models_exist(plan: RunPlan, source: Path) -> None:
    from ramit.models import list_models

    known = set(list_models())
    for name in plan.models:
        if name not in known:
            raise ConfigError(f"{source}: key 'models.{name}': unknown model; allowed: {sorted(known)}")


def _check_files_exist(plan: RunPlan, source: Path) -> None:
    refs = [(f"recipes.{k}", r) for k, r in plan.recipes.items()]
    refs += [(f"models.{m}.recipes.{k}", r) for m, mp in plan.models.items() for k, r in mp.recipes.items()]
    for where, ref in refs:
        if not Path(ref.recipe).is_file():
            raise ConfigError(f"{source}: key '{where}.recipe': file not found: {ref.recipe}")
    for where, f in (("data.registry", plan.data.registry), ("released.registry", plan.released.registry)):
        if not Path(f).is_file():
            raise ConfigError(f"{source}: key '{where}': file not found: {f}")


def load_plan(path: str | Path = "params/run.yaml", check_models: bool = True) -> RunPlan:
    """Read and validate a run plan; every problem names the file and the key."""
    plan = load_yaml(path, RunPlan)
    if check_models:
        _check_models_exist(plan, Path(path))
    _check_files_exist(plan, Path(path))
    return plan


__all__ = ["MODEL_KEYS", "DataPlan", "EvaluatePlan", "ModelPlan", "ProfilePlan", "RecipeRef", "ReleasedPlan",
           "ReportPlan", "RunPlan", "TrainPlan", "load_plan"]
