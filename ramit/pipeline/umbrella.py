"""The MLflow run of one Snakemake invocation; every stage's own run becomes its child."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ramit.tracking import PARENT_ENV

_umbrella = None


def start_umbrella_run(orchestrator: str, params_file: str) -> Optional[str]:
    """Start the invocation's run; return its id (exported as $RAMIT_MLFLOW_PARENT_RUN_ID for the
    jobs), or None when MLflow is unreachable, in which case the pipeline runs untracked."""
    global _umbrella
    from ramit.tracking import git_commit, params_hash, start_run

    tracker = start_run(f"{orchestrator} {Path(params_file).stem}", nested=False, flush_every=1)
    if not tracker.active:
        return None
    text = Path(params_file).read_text() if Path(params_file).is_file() else ""
    tracker.set_tags({"ramit.orchestrator": orchestrator, "ramit.params_file": params_file,
                      "ramit.params_hash": params_hash(text), "mlflow.source.git.commit": git_commit()})
    tracker.log_artifact(params_file)
    _umbrella = tracker
    os.environ[PARENT_ENV] = tracker.run_id  # the jobs this process starts open their runs as children
    return tracker.run_id


def end_umbrella_run(status: str = "FINISHED") -> None:
    global _umbrella
    if _umbrella is not None:
        _umbrella.end(status)
    _umbrella = None


def finish_invocation(status: str) -> None:
    """Log the runs the jobs spooled (children of this invocation's run), then end it."""
    from ramit.tracking import SPOOL_ENV, flush_spool

    spool = os.environ.get(SPOOL_ENV)
    if spool:
        n = flush_spool(spool)
        print(f"ramit: logged {n} spooled stage run(s) to MLflow")
    end_umbrella_run(status)
