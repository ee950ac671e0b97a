"""Per-family job time and per-job overhead, and the no-op re-run time of both orchestrators.

    python benchmarks/bench_pipeline.py

Copies the project to a temp dir with a small plan (one trained model, one non-learned one, lle).
1. Runs every stage's command of its dvc.yaml in order, one process each as DVC does, then each as a
   fork of a preload server as Snakemake does (ramit/launch.py), then the same stages in one warm
   process (torch and MLflow already imported): per family it prints the median job time each way, the
   warm time (the work) and the differences (what a separate job costs: interpreter start-up, imports,
   plan loading), and the import cost of the heavy modules alone.
2. Runs the plan once with Snakemake and once with DVC, then times a second invocation of each (which
   must do nothing), and prints the times and their ratio.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def sh(cmd: list[str], cwd: Path, extra_env: dict | None = None) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", **(extra_env or {})}
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


def import_cost(stmt: str, runs: int = 3) -> float:
    return min(sh([sys.executable, "-c", stmt], ROOT) for _ in range(runs))


WARM = r"""
import json, sys, time
import torch, mlflow  # noqa: F401  (imported once, before the clock: what a warm process has paid)
from ramit.pipeline.run import run_stage
times = {}
for name in sys.argv[1:]:
    t = time.perf_counter()
    run_stage("params/run.yaml", name)
    times[name] = time.perf_counter() - t
print(json.dumps(times))
"""


def clean(proj: Path) -> None:
    """Back to the committed tree (outputs, dvc.lock and the store gone), keeping the small plan's dvc.yaml."""
    subprocess.run(["git", "clean", "-fdxq", "-e", "dvc.yaml"], cwd=proj, check=True)
    (proj / "dvc.lock").unlink(missing_ok=True)


def forked_walls(proj: Path, stages: dict) -> dict[str, float]:
    """Every stage's command through a preload server started in the copy (what W.start() does)."""
    import socket

    path = os.path.join(tempfile.gettempdir(), f"ramit-bench-{os.getpid()}.sock")
    server = subprocess.Popen([sys.executable, "-m", "ramit.preload", path], cwd=proj,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not os.path.exists(path):
            if server.poll() is not None:
                sys.exit("the preload server did not start")
            time.sleep(0.1)
        env = {"RAMIT_PRELOAD": f"{socket.gethostname()}:{path}"}
        return {name: sh([str(BIN / st["cmd"].split()[0]), *st["cmd"].split()[1:]], proj, env)
                for name, st in stages.items()}
    finally:
        server.terminate()
        server.wait(30)


def per_family(proj: Path) -> None:
    """Every stage as its own process (as Snakemake and DVC run it), then all of them in one warm process:
    the difference per job is what being a separate job costs (start-up, imports, plan loading)."""
    stages = yaml.safe_load((proj / "dvc.yaml").read_text())["stages"]
    walls = {}
    # Runs spooled to a folder, as under Snakemake on a local store (the invocation sends them to MLflow).
    os.environ["RAMIT_TRACKING_SPOOL"] = str(proj / ".ramit/tracking/bench")
    try:
        for name, stage in stages.items():
            cmd = stage["cmd"].split()
            walls[name] = sh([str(BIN / cmd[0]), *cmd[1:]], proj, {"RAMIT_PRELOAD": "off"})
        clean(proj)
        forked = forked_walls(proj, stages)
        clean(proj)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{proj / 'mlflow.db'}"}
    finally:
        del os.environ["RAMIT_TRACKING_SPOOL"]
    out = subprocess.run([sys.executable, "-c", WARM, *stages], cwd=proj, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"warm run failed:\n{out.stderr[-3000:]}")
    warm = json.loads(out.stdout.strip().splitlines()[-1])
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for name, stage in stages.items():
        rows.setdefault(stage["cmd"].split()[1], []).append((walls[name], forked[name], warm[name]))
    print("per family: one process per job (as DVC runs them), forked from the preload server (as Snakemake "
          "runs them), and the same stages in one warm process (the work alone)")
    print(f"{'family':10s} {'jobs':>4s} {'process s':>9s} {'forked s':>8s} {'warm s':>7s} {'overhead s':>10s} "
          f"{'forked overhead s':>17s}  (medians per job)")
    for fam, r in rows.items():
        med = [statistics.median(x) for x in zip(*r)]
        print(f"{fam:10s} {len(r):4d} {med[0]:9.2f} {med[1]:8.2f} {med[2]:7.2f} "
              f"{statistics.median(w - x for w, _, x in r):10.2f} {statistics.median(f - x for _, f, x in r):17.2f}")
    print(f"imports alone: python {import_cost('pass'):.2f} s, ramit.cli {import_cost('import ramit.cli'):.2f} s, "
          f"torch {import_cost('import torch'):.2f} s, mlflow {import_cost('import mlflow'):.2f} s, "
          f"all {import_cost('import ramit.cli, torch, mlflow'):.2f} s")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proj = Path(tmp)
        copy_project(proj)
        sh([str(BIN / "ramit"), "stages", "--write-dvc"], proj)
        per_family(proj)
        clean(proj)
        full_snake = sh([str(BIN / "snakemake"), "--cores", "2"], proj)
        noop_snake = min(sh([str(BIN / "snakemake"), "--cores", "2"], proj) for _ in range(3))
        clean(proj)  # else DVC finds Snakemake's work already in dvc.lock
        full_dvc = sh([str(BIN / "dvc"), "repro"], proj)
        noop_dvc = min(sh([str(BIN / "dvc"), "repro"], proj) for _ in range(3))
    print(f"small plan (1 trained + 1 non-learned model, lle), 2 cores")
    print(f"snakemake: full run {full_snake:6.1f} s   no-op re-run {noop_snake:5.2f} s   ratio {full_snake / noop_snake:5.1f}x")
    print(f"dvc repro: full run {full_dvc:6.1f} s   no-op re-run {noop_dvc:5.2f} s   ratio {full_dvc / noop_dvc:5.1f}x")
    print(f"no-op dvc / no-op snakemake: {noop_dvc / noop_snake:.2f}")


if __name__ == "__main__":
    main()
