"""Running one stage of a plan: `ramit <family> --plan <file> <ids>` ends up here.

The stage is looked up in the plan's expansion (the same one the DAG was built from), its stamp is
written before it starts and, under Snakemake, it is put on the invocation's done list when it
finishes (see `ramit.pipeline.sync`). The work itself is the ordinary function behind each command.
"""

from __future__ import annotations

import os
from pathlib import Path

from ramit.pipeline.stages import Stage, resolve_stage
from ramit.pipeline.sync import mark_done, write_stamp
from ramit.tracking import PARENT_ENV


def _fetch(spec: dict, plan_file: str) -> None:
    from ramit.data.fetch import fetch_verified

    fetch_verified(spec["dataset"], out=spec["out"], downloads=spec["downloads"], manual=spec["manual"],
                   mirror=spec["mirror"], registry=spec["registry"])


def _degrade(spec: dict, plan_file: str) -> None:
    from ramit.data.degrade import degrade_dataset
    from ramit.data.fetch import fetch_datasets
    from ramit.pipeline.plan import load_plan

    # a no-op when the dataset is installed; re-installs it if the download cache was emptied meanwhile
    mirror = load_plan(plan_file, check_models=False).data.mirror
    fetch_datasets([spec["dataset"]], data_dir=spec["downloads"], mirror=mirror, registry=spec["registry"],
                   manual_dir=spec["manual"])
    degrade_dataset(spec["setting"], spec["dataset"], data_dir=spec["downloads"], out=spec["out"],
                    train=spec["train"], registry=spec["registry"], manual_dir=spec["manual"])


def _train(spec: dict, plan_file: str) -> None:
    from ramit.pipeline.plan import load_plan
    from ramit.train.loop import train_main

    train_main(model=spec["model"], task=spec["task"], scale=spec["scale"], recipe=spec["recipe"],
               train_data=spec["train_data"], val_data=spec["val_data"], out=spec["out"], init=spec["init"],
               overrides=spec["overrides"], device=spec["device"], plan=load_plan(plan_file, check_models=False).name)


def _evaluate(spec: dict, plan_file: str) -> None:
    from ramit.evaluate.evaluate import evaluate_stage

    evaluate_stage(spec)


def _profile(spec: dict, plan_file: str) -> None:
    from ramit.evaluate.profile import profile_cli

    profile_cli(model=spec["model"], task=spec["task"], scale=spec["scale"], size=spec["size"], device=spec["device"],
                threads=spec["threads"], runs=spec["runs"], latency=spec["latency"], out=Path(spec["out"]))


def _fetch_weights(spec: dict, plan_file: str) -> None:
    from ramit.evaluate.released import fetch_weights

    fetch_weights([spec["file"]], out=spec["out"], mirror=spec["mirror"], registry=spec["registry"])


def _report(spec: dict, plan_file: str) -> None:
    from ramit.report.build import build_report

    build_report(results=Path(spec["results"]), runs=Path(spec["runs"]), data=Path(spec["data"]),
                 out=Path(spec["out"]), params=Path(plan_file), references=Path(spec["references"]),
                 source=spec["source"])


# train, evaluate and report open MLflow runs of their own; the light stages get one here
LIGHT = ("fetch", "degrade", "fetch_weights", "profile")

RUNNERS = {"fetch": _fetch, "degrade": _degrade, "train": _train, "evaluate": _evaluate, "profile": _profile,
           "fetch_weights": _fetch_weights, "report": _report}


def run_stage(plan_file: str | Path, name: str) -> Stage:
    """Run stage `name` of the plan in `plan_file` (see the module doc)."""
    plan_file = Path(plan_file).as_posix()
    plan, stage = resolve_stage(plan_file, name)
    write_stamp(plan, stage)
    if stage.family in LIGHT and os.environ.get(PARENT_ENV):
        from ramit.tracking import mlflow_run

        with mlflow_run(stage.name, params=stage.spec, tags={"ramit.stage": stage.family}) as run:
            RUNNERS[stage.family](stage.spec, plan_file)
            for f in stage.metrics:
                run.log_artifact(f)
    else:
        RUNNERS[stage.family](stage.spec, plan_file)
    mark_done(plan, stage)
    return stage
