"""A throw-away copy of the project (tracked + untracked-not-ignored files) with a tiny run plan."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def project_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return [f for f in out.splitlines() if f and (ROOT / f).is_file()]


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True, timeout: int = 600):
    # PYTHONPATH: the stages run the copy's code, so a test can change it (e.g. the metrics module)
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(cwd),
                "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", **(env or {})}
    full_env.pop("RAMIT_MLFLOW_PARENT_RUN_ID", None)
    p = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


def git_commit(proj: Path, msg: str = "change") -> None:
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], proj)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", msg], proj, check=False)


@pytest.fixture
def make_project(tmp_path):
    """make_project(plan) -> path of a fresh git+DVC repo copy whose params/run.yaml is `plan`."""

    def _make(plan: dict) -> Path:
        dest = tmp_path / "proj"
        for f in project_files():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
        (dest / "params" / "run.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
        run(["git", "init", "-q"], dest)
        git_commit(dest, "copy")
        return dest

    return _make


def tiny_plan(**changes) -> dict:
    """The smallest plan that still has two trained models (for 'only that model re-runs' checks)."""
    plan = yaml.safe_load((ROOT / "params" / "run.yaml").read_text())
    plan.update(
        name="tiny",
        models={
            "RAMiT-slimLLE": {"keys": ["lle"], "train": {"iterations": 4}},
            "PReNet": {"keys": ["dr"], "train": {"iterations": 4}},
        },
        evaluate={"save_images": False, "device": "cpu", "crops": 0},
        profile={"enabled": False},
        released={"enabled": False, "checkpoints": [], "test_data": {}},
    )
    plan.update(changes)
    return plan


def edit_plan(proj: Path, fn) -> None:
    path = proj / "params" / "run.yaml"
    plan = yaml.safe_load(path.read_text())
    fn(plan)
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
