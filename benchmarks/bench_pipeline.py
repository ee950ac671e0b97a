"""No-op re-run time of both orchestrators on a small plan (Snakemake and DVC over the same stages).

    python benchmarks/bench_pipeline.py

Copies the project to a temp dir, runs a small plan once with Snakemake and once with DVC, then
times a second invocation of each (which must do nothing), and prints the times and their ratio.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def sh(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"}
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return time.perf_counter() - t0


def copy_project(dest: Path) -> None:
    from ramit.pipeline.rehearsal import copy_project as copy_tree

    copy_tree(dest)
    plan = yaml.safe_load((ROOT / "params/run.yaml").read_text())
    plan.update(models={"RAMiT-slimLLE": {"keys": ["lle"], "train": {"iterations": 2}},
                        "Identity": {"keys": ["lle"], "trained": False}},
                profile={"enabled": False}, evaluate={"save_images": False, "device": "cpu"},
                released={"enabled": False, "checkpoints": [], "test_data": {}})
    (dest / "params/run.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, check=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proj = Path(tmp)
        copy_project(proj)
        sh([str(BIN / "ramit"), "stages", "--write-dvc", "dvc.yaml"], proj)
        full_snake = sh([str(BIN / "snakemake"), "--cores", "2"], proj)
        noop_snake = min(sh([str(BIN / "snakemake"), "--cores", "2"], proj) for _ in range(3))
        full_dvc = sh([str(BIN / "dvc"), "repro"], proj)
        noop_dvc = min(sh([str(BIN / "dvc"), "repro"], proj) for _ in range(3))
    print(f"small plan (1 trained + 1 non-learned model, lle), 2 cores")
    print(f"snakemake: full run {full_snake:6.1f} s   no-op re-run {noop_snake:5.2f} s   ratio {full_snake / noop_snake:5.1f}x")
    print(f"dvc repro: full run {full_dvc:6.1f} s   no-op re-run {noop_dvc:5.2f} s   ratio {full_dvc / noop_dvc:5.1f}x")
    print(f"no-op dvc / no-op snakemake: {noop_dvc / noop_snake:.2f}")


if __name__ == "__main__":
    main()
