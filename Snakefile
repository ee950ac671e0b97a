# ramit-bench: the whole reproduction as one DAG.
#
#   snakemake --cores all                                   # embedded default (params/run.yaml)
#   snakemake --cores all released                          # the authors' checkpoints on real test sets
#   snakemake --cores all --config params=params/paper.yaml # the paper configuration
#   snakemake --profile workflow/profiles/slurm --config params=params/paper.yaml   # on a SLURM cluster
#
# The stages come from `ramit.pipeline.expand_stages` (the same list `dvc.yaml` is generated from);
# each rule below is one stage family and runs the stage's `ramit ...` command verbatim.

from ramit.pipeline import load_plan, expand_stages

PARAMS = config.get("params", "params/run.yaml")
PLAN = load_plan(PARAMS)  # validated here: a bad params file fails before any job starts
STAGES = expand_stages(PLAN, PARAMS)


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
