"""`ramit stages`: validate a plan, list its stages, write or check its `dvc.yaml`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ramit.io import write_text
from ramit.pipeline.dvc import dvc_yaml
from ramit.pipeline.plan import load_plan
from ramit.pipeline.stages import expand_stages


def stages_cli(params: Path, write_dvc: bool, check_dvc: bool, quiet: bool = False) -> None:
    plan_file = Path(params).as_posix()
    plan = load_plan(plan_file)
    stages = expand_stages(plan, plan_file)
    if not quiet:
        for s in stages:
            typer.echo(f"{s.name}{' [released]' if s.released else ''}\n    {s.shell}")
    default = [s for s in stages if plan.released.enabled or not s.released]
    typer.echo(f"{len(stages)} stages ({len(default)} in the default target); params OK: {plan_file}")
    text = dvc_yaml(plan, plan_file)
    if write_dvc:
        write_text(plan.dvc_file, text)
        typer.echo(f"wrote {plan.dvc_file}")
    if check_dvc:
        path = Path(plan.dvc_file)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            typer.secho(f"{path} is stale: run `ramit stages --params {plan_file} --write-dvc`",
                        fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
