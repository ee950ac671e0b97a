"""The pipeline: run plan schema (`plan`), its expansion into stages (`stages`), the `dvc.yaml` writer
(`dvc`), Snakemake/DVC hand-over (`sync`) and the MLflow run of an invocation (`umbrella`).

Snakemake (`Snakefile`, `workflow/rules/*.smk`) and DVC (`<root>/dvc.yaml`) both take their stages
from `expand_stages(plan)`, so the two orchestrators run the same commands on the same files.
"""

from ramit.pipeline.plan import ReportPlan, RunPlan, load_plan
from ramit.pipeline.stages import Stage, default_stages, expand_stages, resolve_stage

__all__ = ["ReportPlan", "RunPlan", "Stage", "default_stages", "expand_stages", "load_plan", "resolve_stage"]
