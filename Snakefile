# ramit-bench: the whole reproduction as one DAG.
#
#   snakemake --cores all                                    # embedded default (params/run.yaml)
#   snakemake --cores all released                           # the authors' checkpoints on real test sets
#   snakemake --profile workflow/profiles/gpu                # the paper plan on one multi-GPU machine
#   snakemake --profile workflow/profiles/slurm              # the paper plan on a SLURM cluster
#   snakemake --report report.html                           # browsable tables and figures
#
# The stages come from `ramit.pipeline.expand_stages` (the same list dvc.yaml is written from); every
# rule runs `ramit <family> --plan <plan> <ids>`, which reads its parameters from the plan when it runs.
# A parameter change rewrites the affected stages' stamps (<root>/.ramit/stamps/), which are inputs of
# their jobs, so exactly those jobs re-run; on exit the stages run here are recorded in dvc.lock.

import os
import uuid

from ramit.pipeline import expand_stages, load_plan
from ramit.pipeline.sync import INVOCATION_ENV, write_stamps
from ramit.tracking import SPOOL_ENV, local_store

PLAN_FILE = config.get("params", "params/run.yaml")
PLAN = load_plan(PLAN_FILE)  # validated here: a bad params file fails before any job starts
STAGES = expand_stages(PLAN, PLAN_FILE)
write_stamps(PLAN, STAGES)
ROOT = "" if PLAN.root == "." else PLAN.root + "/"
os.environ.setdefault(INVOCATION_ENV, uuid.uuid4().hex)
# With a local MLflow store the jobs spool their runs and the invocation logs them once at its end
# (see ramit/tracking.py); with a tracking server (or RAMIT_TRACKING=direct) every job logs live.
if local_store() and os.environ.get("RAMIT_TRACKING") != "direct":
    os.environ.setdefault(SPOOL_ENV, os.path.abspath(f"{ROOT}.ramit/tracking/{os.environ[INVOCATION_ENV]}"))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        [t for s in STAGES if PLAN.released.enabled or not s.released for t in s.targets],


rule released:
    input:
        [t for s in STAGES if s.released for t in s.targets],
