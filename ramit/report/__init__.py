"""The report stage: paper-style tables and figures compiled from `results/`, `runs/` and `data/degraded/`.

Entry point: `ramit.report.build.build_report` (the `ramit report` command); see its module docstring
for the files it reads and the paths the pipeline must produce (e.g. `--save-images` locations).
"""
