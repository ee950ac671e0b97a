# What every rule shares (the glue is ramit/pipeline/smk.py): wildcard shapes and the invocation's
# start and end (MLflow run of the invocation; the stages that ran are recorded in dvc.lock).
# No rule has a `benchmark:` file: Snakemake counts it as an output that only it writes, so after
# `dvc repro` rebuilt a stage the old benchmark file would make Snakemake run it once more. Each job's
# wall time is in its MLflow run and its summary instead.


wildcard_constraints:
    dataset="[^/]+",
    setting="[^/]+",
    key="x2|x3|x4|cdn|gdn|lle|dr",
    model="[^/]+",
    file="[^/]+",
    release="[^/]+",


onstart:
    W.start()


onsuccess:
    W.finish("FINISHED")


onerror:
    W.finish("FAILED")
