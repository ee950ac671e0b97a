# Shared helpers: look a stage up by one of its outputs, and the MLflow umbrella run.

import os

STAGE_BY_TARGET = {t: s for s in STAGES for t in s.targets}


wildcard_constraints:
    dataset="[^/]+",
    setting="[^/]+",
    key="[^/]+",
    model="[^/]+",
    source="[^/]+",
    file="[^/]+",


def stage_of(pattern):
    """Input/params function factory: the stage whose output is `pattern` filled with the wildcards."""

    def lookup(wildcards):
        path = pattern.format(**wildcards)
        if path not in STAGE_BY_TARGET:
            raise ValueError(f"{path} is not an output of any stage of {PARAMS}")
        return STAGE_BY_TARGET[path]

    return lookup


def deps(pattern):
    return lambda wildcards: stage_of(pattern)(wildcards).deps


def cmd(pattern):
    return lambda wildcards: stage_of(pattern)(wildcards).shell


onstart:
    from ramit.pipeline import start_umbrella_run

    # One MLflow run per pipeline invocation; each stage's command opens a child run under it.
    run_id = start_umbrella_run("snakemake", params_file=PARAMS)
    if run_id:
        os.environ["RAMIT_MLFLOW_PARENT_RUN_ID"] = run_id


onsuccess:
    from ramit.pipeline import end_umbrella_run

    end_umbrella_run("FINISHED")


onerror:
    from ramit.pipeline import end_umbrella_run

    end_umbrella_run("FAILED")
