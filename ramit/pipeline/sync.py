"""Keeping Snakemake and DVC in step, so either one picks up where the other stopped.

* **Stamps** (`<root>/.ramit/stamps/<stage>.json`): what a stage will do, resolved from the plan,
  and the values of the params keys it depends on (the same keys DVC compares). A stamp is rewritten
  only when its content changes, and it is an input of the stage's Snakemake job: a parameter change
  makes exactly the affected jobs older than their inputs (Snakemake also skips an input that is
  newer but has the checksum it recorded, so an unchanged rewrite re-runs nothing). Snakemake writes the
  stamps when it reads the Snakefile; a stage command writes its own stamp before it starts, so
  outputs that DVC made after a change stay newer than the stamp and Snakemake does not redo them.
* **Done list** (`<root>/.ramit/done/<invocation>/<stage>`): each stage a Snakemake invocation ran to
  the end. When Snakemake finishes (or fails part-way), `dvc commit` records exactly those stages in
  `dvc.lock`, so `dvc status` is clean after `snakemake` and the next `dvc repro` re-runs only what a
  later change affects. Stages Snakemake did not run are never committed: stale outputs stay stale.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from ramit.pipeline.plan import RunPlan
from ramit.pipeline.stages import Stage, expand_stages

INVOCATION_ENV = "RAMIT_INVOCATION"


def stamp_path(plan: RunPlan, stage: Stage) -> str:
    return plan.path(".ramit", "stamps", f"{stage.name}.json")


def _dig(data, dotted: str):
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


_YAML_CACHE: dict[tuple[str, int], dict] = {}


def _read_params(path: str) -> dict:
    from ramit.config import read_yaml

    key = (path, os.stat(path).st_mtime_ns)
    if key not in _YAML_CACHE:
        _YAML_CACHE[key] = read_yaml(path)
    return _YAML_CACHE[key]


def param_values(stage: Stage) -> dict:
    """The values of the params keys a stage depends on (what DVC compares for its `params:`)."""
    out = {}
    for f, keys in stage.params.items():
        data = _read_params(f)
        out[f] = data if keys is None else {k: _dig(data, k) for k in keys}
    return out


def _stamp_text(stage: Stage) -> str:
    body = {"cmd": stage.shell, "spec": stage.spec, "params": param_values(stage)}
    return json.dumps(body, sort_keys=True, indent=1, default=str) + "\n"


def write_stamp(plan: RunPlan, stage: Stage) -> bool:
    """Write the stage's stamp if its content changed; return whether it did."""
    from ramit.io import write_text

    path, text = Path(stamp_path(plan, stage)), _stamp_text(stage)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    write_text(path, text)
    return True


def write_stamps(plan: RunPlan, stages: list[Stage]) -> int:
    return sum(write_stamp(plan, s) for s in stages)


def mark_done(plan: RunPlan, stage: Stage) -> None:
    """Record that this Snakemake invocation ran `stage` to the end (nothing outside Snakemake)."""
    invocation = os.environ.get(INVOCATION_ENV)
    if invocation:
        d = Path(plan.path(".ramit", "done", invocation))
        d.mkdir(parents=True, exist_ok=True)
        (d / stage.name).touch()


@contextmanager
def _mtimes_kept(paths: list[str]):
    """Give files the times they had before: `dvc commit` re-links cached outputs into the workspace,
    which makes an upstream output (a model) newer than the evaluation Snakemake already ran on it, and
    Snakemake would run that evaluation again (it skips by checksum only for files under 1 MB)."""
    times = {}
    for p in map(Path, paths):
        for f in ([p] if p.is_file() else p.rglob("*") if p.is_dir() else []):
            if f.is_file():
                st = f.stat()
                times[f] = (st.st_atime_ns, st.st_mtime_ns)
    try:
        yield
    finally:
        for f, ns in times.items():
            if f.is_file() and f.stat().st_mtime_ns != ns[1]:
                os.utime(f, ns=ns)


def _dvc_commit(dvcfile: str, names: list[str]) -> None:
    """What `dvc commit --force <dvcfile>:<name>...` does, with the pipeline file parsed once: the command
    line re-parses it and rewrites dvc.lock for every target (3-4 s each on the paper plan's 283 stages,
    8 minutes for a full run; this way, about 20 s)."""
    from dvc.repo import Repo

    with Repo() as repo, repo.lock:
        stages = {s.name: s for s in repo.stage.collect(dvcfile)}
        missing = [n for n in names if n not in stages]
        if missing:
            raise KeyError(f"{dvcfile} has no stage(s) {missing[:5]}")
        todo = [stages[n] for n in names]
        for stage in todo:
            stage.save()
            stage.commit(relink=False)  # the workspace files stay as Snakemake wrote them
        todo[0].dvcfile.dump_stages(todo, update_pipeline=False)


def commit_done(plan: RunPlan, plan_file: str, invocation: str, log=print) -> list[str]:
    """`dvc commit` the stages this invocation ran; returns their names (empty when DVC is not in use)."""
    from ramit.pipeline.dvc import dvc_file_is_current

    spool = Path(plan.path(".ramit", "done", invocation))
    names = sorted(p.name for p in spool.iterdir()) if spool.is_dir() else []
    if not names or not Path(".dvc").is_dir():
        shutil.rmtree(spool, ignore_errors=True)
        return []
    if not dvc_file_is_current(plan, plan_file):
        log(f"ramit: {plan.dvc_file} is missing or stale, so dvc.lock was not updated; regenerate it with "
            f"`ramit stages --params {plan_file} --write-dvc`, then `dvc commit` records the finished stages")
        return []
    by_name = {s.name: s for s in expand_stages(plan, plan_file)}
    outputs = [t for n in names if n in by_name for t in by_name[n].targets]
    try:
        with _mtimes_kept(outputs):
            _dvc_commit(plan.dvc_file, names)
    except Exception as e:  # noqa: BLE001 - whatever DVC raises, the run itself has finished
        log(f"ramit: `dvc commit` failed ({type(e).__name__}: {str(e)[-500:]}); dvc.lock does not know what "
            f"Snakemake ran: `dvc status` will list those stages, `dvc commit` records them")
        return []
    shutil.rmtree(spool, ignore_errors=True)
    log(f"ramit: recorded {len(names)} finished stage(s) in {Path(plan.dvc_file).parent / 'dvc.lock'}")
    return names
