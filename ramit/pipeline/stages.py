"""The run plan expanded into stages: the one DAG that Snakemake and DVC both run.

A stage is one `ramit <family> --plan <file> <ids>` command with what it reads and writes. The
command is static: it names the stage, and the stage reads its parameters from the plan when it runs
(`resolve_stage`), through the same expansion the DAG is built from. So `dvc exp run -S key=value`
takes effect without regenerating `dvc.yaml`, and Snakemake and DVC cannot disagree about a stage.

    fetch-<Dataset>                      <root>/data/verified/<Dataset>.json
    degrade-<setting>-<Dataset>          <root>/data/degraded/<setting>/<Dataset>/
    degrade-train-<key>-<Dataset>        <root>/data/degraded/train/<key>/<Dataset>/
    train-<model>-<key>                  <root>/runs/<model>/<key>/{model.safetensors,summary.json,...}
    evaluate-trained-<model>-<key>       <root>/results/trained/<model>/<key>.json (+ <key>/<setting>/...)
    evaluate-released-<file>             <root>/results/released/<model>/<file>.json (+ <file>/<setting>/...)
    profile-<model>-<key>                <root>/results/profile/<model>/<key>.json
    fetch-weights-<file>                 <root>/weights/released/<file>
    report / report-released             <root>/reports/ / <root>/reports/released/

Each stage also lists the plan keys it reads (`params`: DVC re-runs it when they change) and the
source files it runs (`code`: fixing a metric makes every evaluation stale).
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ramit.errors import RamitError
from ramit.models.names import NON_LEARNED, source_files
from ramit.pipeline.plan import RunPlan, load_plan
from ramit.settings import DENOISING, key_scale, key_settings, key_task, validation_setting

FAMILIES = ("fetch", "degrade", "train", "evaluate", "profile", "fetch_weights", "report")

# Registry fields written for people (their edits re-run no stage).
DATASET_PROSE = ("description", "source", "licence", "notes")

# The code each stage family runs (besides the model's own files).
CODE = {
    "fetch": ["ramit/data/fetch.py", "ramit/data/registry.py"],
    "degrade": ["ramit/data/degrade.py", "ramit/data/imresize.py", "ramit/data/io.py"],
    "train": ["ramit/train/loop.py", "ramit/train/schedule.py", "ramit/train/recipe.py",
              "ramit/train/checkpoint.py", "ramit/data/patches.py", "ramit/data/pairs.py"],
    "evaluate": ["ramit/evaluate/evaluate.py", "ramit/evaluate/inference.py", "ramit/evaluate/metrics.py",
                 "ramit/models/checkpoint.py", "ramit/data/pairs.py"],
    "profile": ["ramit/evaluate/profile.py", "ramit/models/complexity.py"],
    "fetch_weights": ["ramit/evaluate/released.py", "ramit/data/fetch.py"],
    "report": ["ramit/report/build.py", "ramit/report/tables.py", "ramit/report/figures.py"],
}
REFERENCES = "params/reference_results.yaml"


@dataclass
class Stage:
    name: str
    family: str
    cmd: list[str]                     # what both orchestrators run
    spec: dict[str, Any]               # what the command will do, resolved from the plan (its identity)
    deps: list[str] = field(default_factory=list)      # files made by other stages or kept in git
    code: list[str] = field(default_factory=list)      # source files it runs
    user_data: list[str] = field(default_factory=list)  # the user's manually placed datasets (read only)
    params: dict[str, Optional[list[str]]] = field(default_factory=dict)  # params file -> keys (None: all)
    outs: list[str] = field(default_factory=list)      # outputs DVC caches
    uncached: list[str] = field(default_factory=list)  # big, reproducible outputs DVC does not cache
    metrics: list[str] = field(default_factory=list)   # small JSON outputs shown by `dvc metrics`
    plots: list[str] = field(default_factory=list)     # CSV curves / image folders for `dvc plots`
    persist: list[str] = field(default_factory=list)   # kept across re-runs (resume state)
    released: bool = False             # part of the `released` target only
    gpus: int = 0
    threads: int = 1

    @property
    def shell(self) -> str:
        return shlex.join(self.cmd)

    @property
    def targets(self) -> list[str]:
        return self.outs + self.uncached + self.metrics + self.plots

    @property
    def all_deps(self) -> list[str]:
        return self.user_data + self.deps + self.code


class _Builder:
    """Adds each stage once (stages are shared: a degraded set serves many evaluations)."""

    def __init__(self, plan: RunPlan, plan_file: str):
        self.plan, self.plan_file = plan, plan_file
        self.stages: dict[str, Stage] = {}
        self._registry = None
        self._checkpoints = None

    # ---- helpers
    def add(self, stage: Stage) -> Stage:
        return self.stages.setdefault(stage.name, stage)

    def ramit(self, family: str, *ids: str) -> list[str]:
        return ["ramit", family.replace("_", "-"), "--plan", self.plan_file, *ids]

    @property
    def registry(self):
        if self._registry is None:
            from ramit.data.registry import load_registry

            self._registry = load_registry(self.plan.data.registry)
        return self._registry

    @property
    def checkpoints(self):
        if self._checkpoints is None:
            from ramit.evaluate.released import load_registry

            self._checkpoints = load_registry(self.plan.released.registry)
        return self._checkpoints

    def fetch_params(self, dataset: str) -> dict:
        """What decides a fetch: where files come from and what is checked, not the entry's prose (a
        fix to a description or to manual instructions re-runs nothing)."""
        ds, d = self.registry.get(dataset), f"datasets.{dataset}"
        keys = [f"{d}.{k}" for k in sorted(ds.model_fields_set) if k not in DATASET_PROSE and k != "manual"]
        if ds.manual:
            keys.append(f"{d}.manual.expect")
        return {self.plan_file: ["data"], self.plan.data.registry: keys}

    # ---- data
    def fetch(self, dataset: str) -> str:
        p, ds = self.plan, self.registry.get(dataset)
        out = p.path("data", "verified", f"{dataset}.json")
        user = [f"{p.data.manual}/{dataset}"] if ds.kind == "manual" else []
        deps = [(Path(p.data.registry).parent / ds.manifest).as_posix()] if ds.manifest else []
        spec = {"dataset": dataset, "registry": p.data.registry, "downloads": p.data.downloads,
                "manual": p.data.manual, "mirror": p.data.mirror, "out": out}
        self.add(Stage(f"fetch-{dataset}", "fetch", self.ramit("fetch", dataset), spec, deps=deps,
                       code=CODE["fetch"], user_data=user, params=self.fetch_params(dataset), uncached=[out]))
        return out

    def degrade(self, setting: str, dataset: str, train: bool = False) -> str:
        verified = self.fetch(dataset)
        p = self.plan
        if train:
            name, out, ids = (f"degrade-train-{setting}-{dataset}", p.path("data", "degraded", "train", setting, dataset),
                              ["--train", setting, dataset])
        else:
            name, out, ids = (f"degrade-{setting}-{dataset}", p.path("data", "degraded", setting, dataset),
                              [setting, dataset])
        spec = {"setting": setting, "dataset": dataset, "train": train, "out": out, "registry": p.data.registry,
                "downloads": p.data.downloads, "manual": p.data.manual}
        # What decides the degraded set: the verified files, the setting and the registry's layout, not
        # where the files came from or how the dataset is described (so neither re-runs it).
        params = {self.plan_file: ["data.downloads", "data.manual"],
                  p.data.registry: [f"datasets.{dataset}.{k}" for k in ("layout", "role", "tasks")]}
        self.add(Stage(name, "degrade", self.ramit("degrade", *ids), spec, deps=[verified], code=CODE["degrade"],
                       params=params, uncached=[out]))
        return out

    # ---- training
    def train(self, model: str, key: str) -> str:
        p = self.plan
        mp, ref, task = p.models[model], p.recipe_for(model, key), key_task(key)
        run = p.path("runs", model, key)
        train_dirs = [self.degrade(key, d, train=True) for d in p.train_data[task]]
        val = self.degrade(validation_setting(key, p.sigmas), p.val_data[task]) if task in p.val_data else None
        init = self.train(model, ref.init_from) if ref.init_from else None
        spec = {"model": model, "task": task, "scale": key_scale(key), "recipe": ref.recipe,
                "overrides": [f"{k}={v}" for k, v in sorted(mp.train.items())], "train_data": train_dirs,
                "val_data": val, "init": init, "out": run, "device": p.train.device}
        keys = [f"models.{model}", f"train_data.{task}"] + ([f"recipes.{key}"] if key in p.recipes else [])
        keys += [f"val_data.{task}"] if val else []
        keys += ["sigmas"] if task in DENOISING else []
        launcher = (["torchrun", "--standalone", "--nproc_per_node", str(p.train.processes), "-m"]
                    if p.train.processes > 1 else [])
        self.add(Stage(
            f"train-{model}-{key}", "train", launcher + self.ramit("train", "--model", model, "--key", key), spec,
            deps=train_dirs + ([val] if val else []) + ([init] if init else []),
            code=source_files(model) + CODE["train"], params={self.plan_file: keys, ref.recipe: None},
            outs=[f"{run}/model.safetensors"], metrics=[f"{run}/summary.json"],
            plots=[f"{run}/history.csv", f"{run}/val.csv"], persist=[f"{run}/ckpt"],
            gpus=p.train.processes if p.train.device == "cuda" else 0,
            threads=p.train.processes * (1 + _recipe_workers(ref.recipe))))
        return f"{run}/model.safetensors"

    # ---- evaluation
    def evaluate(self, source: str, model: str, key: str, data_sets: dict[str, list[str]],
                 checkpoint: Optional[str], release: Optional[str] = None) -> str:
        """One model at one key on `data_sets` ({setting: [datasets]}); a released checkpoint is its
        own stage (several files can serve one model and key, e.g. one per noise level)."""
        p, ev = self.plan, self.plan.evaluate
        base = model.removesuffix("+")
        sid = release.removesuffix(".pth") if release else key
        out = p.path("results", source, model, sid)
        data = {s: {d: self.degrade(s, d) for d in ds} for s, ds in data_sets.items()}
        spec = {"source": source, "model": model, "base_model": base, "key": key, "data": data,
                "checkpoint": checkpoint, "device": ev.device, "precision": ev.precision, "tile": ev.tile, "compile": ev.compile,
                "self_ensemble": model.endswith("+"), "save_images": ev.save_images, "crops": ev.crops,
                "out": out, "summary": f"{out}.json"}
        task = key_task(key)
        keys = ["evaluate", f"test_data.{task}"] if source == "trained" else ["evaluate", f"released.test_data.{task}"]
        keys += ["sigmas"] if task in DENOISING else []
        ids = ["--released", release] if release else ["--source", source, "--model", model, "--key", key]
        deps = [d for per in data.values() for d in per.values()] + ([checkpoint] if checkpoint else [])
        self.add(Stage(f"evaluate-{source}-{sid if release else f'{model}-{key}'}", "evaluate",
                       self.ramit("evaluate", *ids), spec, deps=deps, code=source_files(base) + CODE["evaluate"],
                       params={self.plan_file: keys}, outs=[out], metrics=[f"{out}.json"],
                       gpus=int(ev.device == "cuda")))
        return f"{out}.json"

    def profile(self, model: str, key: str) -> str:
        pp = self.plan.profile
        out = self.plan.path("results", "profile", model, f"{key}.json")
        spec = {"model": model, "task": key_task(key), "scale": key_scale(key), "size": pp.size,
                "device": pp.device, "threads": pp.threads, "runs": pp.runs, "latency": pp.latency, "out": out}
        self.add(Stage(f"profile-{model}-{key}", "profile", self.ramit("profile", "--model", model, "--key", key),
                       spec, code=source_files(model) + CODE["profile"], params={self.plan_file: ["profile"]},
                       metrics=[out], gpus=int(pp.device == "cuda"),
                       threads=pp.threads if pp.latency and pp.device == "cpu" else 1))
        return out

    def fetch_weights(self, file: str) -> str:
        p = self.plan
        out = p.path("weights", "released", file)
        spec = {"file": file, "out": p.path("weights", "released"), "registry": p.released.registry,
                "mirror": p.released.weights_mirror}
        self.add(Stage(f"fetch-weights-{file.removesuffix('.pth')}", "fetch_weights",
                       self.ramit("fetch_weights", file), spec, deps=[p.released.registry],
                       code=CODE["fetch_weights"], params={self.plan_file: ["released.weights_mirror"]}, outs=[out]))
        return out

    def report(self, source: str, results: list[str]) -> None:
        p = self.plan
        out = p.path("reports") if source == "trained" else p.path("reports", "released")
        spec = {"source": source, "results": p.path("results"), "runs": p.path("runs"),
                "data": p.path("data", "degraded"), "out": out, "references": REFERENCES}
        self.add(Stage("report" if source == "trained" else "report-released", "report",
                       self.ramit("report", "--source", source), spec,
                       deps=sorted(set(results)) + [REFERENCES], code=CODE["report"],
                       params={self.plan_file: ["name", "description", "report"], p.released.registry: None},
                       outs=[f"{out}/README.md", f"{out}/tables"], plots=[f"{out}/figures"]))


@functools.lru_cache(maxsize=None)
def _recipe_workers(recipe: str) -> int:
    from ramit.config import read_yaml

    return int(read_yaml(recipe).get("num_workers") or 0)


def expand_stages(plan: RunPlan, plan_file: str = "params/run.yaml") -> list[Stage]:
    """Every stage of the plan in a stable order; the `released` target's own stages are flagged."""
    b = _Builder(plan, plan_file)
    trained: list[str] = []
    for model, mp in plan.models.items():
        for key in mp.keys:
            ckpt = b.train(model, key) if mp.trained else None
            if plan.profile.enabled:
                trained.append(b.profile(model, key))
            sets = {st: plan.test_data[key_task(key)] for st in key_settings(key, plan.sigmas)}
            for name in [model] + ([f"{model}+"] if model in plan.evaluate.self_ensemble else []):
                trained.append(b.evaluate("trained", name, key, sets, ckpt))
            if mp.trained:
                run = plan.path("runs", model, key)
                trained += [f"{run}/history.csv", f"{run}/summary.json", f"{run}/val.csv"]
    b.report("trained", trained)
    default = set(b.stages)

    released: list[str] = []
    for file in plan.released.checkpoints:
        c = b.checkpoints.get(file)
        sets = {st: [d for d in plan.released.test_data.get(c.task, []) if c.covers(st, d)]
                for st in c.setting_keys(plan.sigmas)}
        sets = {st: ds for st, ds in sets.items() if ds}
        if not sets:
            continue
        ckpt = b.fetch_weights(file)
        if plan.profile.enabled:
            released.append(b.profile(c.model, c.model_key))
        released.append(b.evaluate("released", c.model, c.model_key, sets, ckpt, release=file))
    if released:
        b.report("released", released)
    # what only the released evaluations need (checkpoints, real test sets) is the `released` target;
    # stages the trained models share with it stay in the default target
    for s in b.stages.values():
        s.released = s.name not in default
    return list(b.stages.values())


def default_stages(plan: RunPlan, plan_file: str) -> list[Stage]:
    """What `snakemake` (target all) and `dvc repro` run: the plan, plus the released target if enabled."""
    return [s for s in expand_stages(plan, plan_file) if plan.released.enabled or not s.released]


def resolve_stage(plan_file: str | Path, name: str) -> tuple[RunPlan, Stage]:
    """The stage a plan-mode command (`ramit <family> --plan <file> <ids>`) stands for."""
    plan_file = Path(plan_file).as_posix()
    plan = load_plan(plan_file)
    for s in expand_stages(plan, plan_file):
        if s.name == name:
            return plan, s
    raise RamitError(f"{plan_file} has no stage {name!r} (list them with `ramit stages --params {plan_file}`)")

