# What every rule shares: the stage behind a job, its inputs, and the invocation's MLflow run / DVC hand-over.

from ramit.pipeline.sync import commit_done, stamp_path

BY_NAME = {s.name: s for s in STAGES}


wildcard_constraints:
    dataset="[^/]+",
    setting="[^/]+",
    key="x2|x3|x4|cdn|gdn|lle|dr",
    model="[^/]+",
    file="[^/]+",
    release="[^/]+",


def stage_of(name_pattern):
    """The stage a job stands for, from its wildcards (e.g. "train-{model}-{key}")."""

    def lookup(wildcards):
        name = name_pattern.format(**wildcards)
        if name not in BY_NAME:
            raise ValueError(f"{name} is not a stage of {PLAN_FILE}")
        return BY_NAME[name]

    return lookup


def stage_inputs(name_pattern):
    """Input function: the stage's data dependencies, the code it runs, and its parameter stamp.

    A manually placed dataset that is not there yet is left out, so its fetch job runs and fails with
    instructions (the rest of the DAG goes on under --keep-going) instead of the whole DAG refusing to start.
    """
    lookup = stage_of(name_pattern)

    def inputs(wc):
        s = lookup(wc)
        return {"user_data": [d for d in s.user_data if os.path.exists(d)], "deps": s.deps, "code": s.code,
                "stamp": stamp_path(PLAN, s)}

    return inputs


def stage_gpus(name_pattern):
    return lambda wc: stage_of(name_pattern)(wc).gpus


def stage_threads(name_pattern):
    return lambda wc: stage_of(name_pattern)(wc).threads


onstart:
    from ramit.pipeline.umbrella import start_umbrella_run
    from ramit.tracking import tracking_uri

    print(f"ramit: plan {PLAN_FILE} ({PLAN.name}), outputs under {PLAN.root}/, logs in {ROOT}logs/, "
          f"MLflow store {tracking_uri()}")
    # One MLflow run per pipeline invocation; each stage's command opens a child run under it.
    run_id = start_umbrella_run("snakemake", params_file=PLAN_FILE)
    if run_id:
        os.environ["RAMIT_MLFLOW_PARENT_RUN_ID"] = run_id


onsuccess:
    from ramit.pipeline.umbrella import finish_invocation

    commit_done(PLAN, PLAN_FILE, os.environ[INVOCATION_ENV])
    finish_invocation("FINISHED")


onerror:
    from ramit.pipeline.umbrella import finish_invocation

    commit_done(PLAN, PLAN_FILE, os.environ[INVOCATION_ENV])  # what finished is current: keep DVC in step
    finish_invocation("FAILED")
