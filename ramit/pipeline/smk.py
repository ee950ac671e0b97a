"""What the Snakefile needs from the pipeline: the plan's stages, each job's inputs and resources, and
what happens when an invocation starts and ends. The rules themselves stay in `workflow/rules/*.smk`.

    W = Workflow(config.get("params", "params/run.yaml"))
    rule train:
        input: unpack(W.inputs("train-{model}-{key}"))
        output: weights=W.at("runs/{model}/{key}/model.safetensors"), ...
"""

from __future__ import annotations

import os
import uuid
from typing import Callable

from ramit.pipeline.plan import load_plan
from ramit.pipeline.stages import Stage, expand_stages
from ramit.pipeline.sync import INVOCATION_ENV, commit_done, stamp_path, write_stamps


class Workflow:
    """One Snakemake invocation of one run plan."""

    def __init__(self, plan_file: str):
        from ramit.tracking import SPOOL_ENV, local_store

        self.plan_file = plan_file
        self.plan = load_plan(plan_file)  # a bad params file fails here, before any job starts
        self.stages = expand_stages(self.plan, plan_file)
        self.by_name = {s.name: s for s in self.stages}
        write_stamps(self.plan, self.stages)
        self.root = "" if self.plan.root == "." else self.plan.root + "/"
        # jobs inherit these: the done list and, with a local MLflow store, the spool of their runs
        self.invocation = os.environ.setdefault(INVOCATION_ENV, uuid.uuid4().hex)
        if local_store() and os.environ.get("RAMIT_TRACKING") != "direct":
            os.environ.setdefault(SPOOL_ENV, os.path.abspath(self.at(f".ramit/tracking/{self.invocation}")))

    # ---- targets
    def at(self, pattern: str) -> str:
        """`pattern` under the plan's root (its outputs never mix with another plan's)."""
        return f"{self.root}{pattern}"

    def targets(self, released: bool) -> list[str]:
        if released:
            return [t for s in self.stages if s.released for t in s.targets]
        return [t for s in self.stages if self.plan.released.enabled or not s.released for t in s.targets]

    # ---- per job
    def stage(self, name_pattern: str, wildcards) -> Stage:
        name = name_pattern.format(**wildcards)
        if name not in self.by_name:
            raise ValueError(f"{name} is not a stage of {self.plan_file}")
        return self.by_name[name]

    def inputs(self, name_pattern: str) -> Callable:
        """Input function: the stage's data dependencies, the code it runs, and its parameter stamp.

        A manually placed dataset that is not there yet is left out, so its fetch job runs and fails
        with instructions (the rest of the DAG goes on under --keep-going) instead of the whole DAG
        refusing to start."""

        def inputs(wildcards):
            s = self.stage(name_pattern, wildcards)
            return {"user_data": [d for d in s.user_data if os.path.exists(d)], "deps": s.deps, "code": s.code,
                    "stamp": stamp_path(self.plan, s)}

        return inputs

    def gpus(self, name_pattern: str) -> Callable:
        return lambda wildcards: self.stage(name_pattern, wildcards).gpus

    def threads(self, name_pattern: str) -> Callable:
        return lambda wildcards: self.stage(name_pattern, wildcards).threads

    @property
    def launcher(self) -> str:
        p = self.plan.train.processes
        return f"torchrun --standalone --nproc_per_node {p} -m " if p > 1 else ""

    # ---- the invocation
    def start(self) -> None:
        """The invocation's MLflow run, and the warm process its jobs fork from (ramit/launch.py)."""
        from ramit.pipeline.umbrella import start_umbrella_run
        from ramit.preload import start_server as start_preload
        from ramit.tracking import tracking_uri

        print(f"ramit: plan {self.plan_file} ({self.plan.name}), outputs under {self.plan.root}/, "
              f"job logs in {self.at('logs/')}, MLflow store {tracking_uri()}")
        # first: it imports torch while this process opens the MLflow store
        self._preload = start_preload(self.invocation, self.at("logs/preload.log"))
        start_umbrella_run("snakemake", params_file=self.plan_file)  # every stage's run becomes its child

    def finish(self, status: str) -> None:
        """Record what ran in dvc.lock (also after a failure: what finished is current), log the spooled
        runs, end the invocation's run."""
        from ramit.pipeline.umbrella import finish_invocation
        from ramit.preload import stop_server as stop_preload

        stop_preload(getattr(self, "_preload", None))
        commit_done(self.plan, self.plan_file, self.invocation)
        finish_invocation(status)
