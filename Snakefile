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

from ramit.pipeline.smk import Workflow

W = Workflow(config.get("params", "params/run.yaml"))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        W.targets(released=False),


rule released:
    input:
        W.targets(released=True),
