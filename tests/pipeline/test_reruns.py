"""Re-runs that are always right, with real Snakemake and real DVC taking turns on one project copy:
after one tool ran, the other has nothing to do; after a recipe change, exactly the affected stages
re-run and train again; the user's manual datasets survive every run; a code change makes its stages
stale."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ramit.pipeline.rehearsal import Rehearsal, check_reran, dvc_status_clean

from pipeline_helpers import BIN, edit_plan, git_commit, run, tiny_plan

pytestmark = pytest.mark.slow


def _snakemake(proj: Path, *extra: str):
    return run([str(BIN / "snakemake"), "--cores", "2", *extra], proj)


def _summary(proj: Path, model: str, key: str) -> dict:
    return json.loads((proj / "runs" / model / key / "summary.json").read_text())


def _retrained(proj: Path, model: str, key: str, old: dict) -> None:
    new = _summary(proj, model, key)
    assert new["weights_sha256"] != old["weights_sha256"], "the old weights came back under a new recipe"
    assert new["history_rows"] == new["iterations"] == 4 and new["final_loss"] is not None
    stale = new["stale_runs_moved_aside"]
    assert stale and any("base_lr" in c for c in stale[-1]["changed"]) and (proj / stale[-1]["moved_to"]).is_dir()


def test_snakemake_and_dvc_take_turns(make_project):
    proj = make_project(tiny_plan())
    r = Rehearsal(proj, "params/run.yaml")
    run([str(BIN / "ramit"), "stages", "--write-dvc", "-q"], proj)
    git_commit(proj, "dvc.yaml")

    # `make repro`-style: Snakemake runs everything and records it in dvc.lock
    first = _snakemake(proj)
    dvc_status_clean(r, "dvc.yaml")
    # the jobs ran as forks of the invocation's preload server (ramit/launch.py), which is gone now
    served = (proj / "logs/preload.log").read_text()
    forked = re.findall(r"job \d+ started: ramit (\w+) --plan", served)
    assert {"train", "evaluate", "report"} <= set(forked), served[-3000:]
    assert len(re.findall(r"ended: exit 0 after", served)) == len(forked) and served.rstrip().endswith("exiting")
    # progress bars go to each job's log, never to the console where parallel jobs would interleave them
    bar = re.compile(r"\d(it/s|s/it)\b")
    assert not bar.search(first.stdout + first.stderr)
    assert bar.search((proj / "logs/train/PReNet/dr.log").read_text())
    # Snakemake's own report embeds the tables and figures
    _snakemake(proj, "--report", "report.html")
    html = (proj / "report.html").read_text()
    for name in ("trained_lle.csv", "trained_dr.csv", "curves_dr.png"):
        assert name in html, name
    assert "Nothing to be done" in (_snakemake(proj, "-n").stdout + _snakemake(proj, "-n").stderr)

    # a recipe key (not `iterations`) of one model, changed in the plan: Snakemake re-runs exactly its stages
    old, before = _summary(proj, "PReNet", "dr"), r.mtimes()
    edit_plan(proj, lambda p: p["models"]["PReNet"]["train"].update(base_lr=0.0021))
    _snakemake(proj)
    check_reran(r, before, {"train-PReNet-dr"}, "snakemake")
    assert r.downstream({"train-PReNet-dr"}) == {"train-PReNet-dr", "evaluate-trained-PReNet-dr", "report"}
    _retrained(proj, "PReNet", "dr", old)
    dvc_status_clean(r, "dvc.yaml")

    # the same through `dvc exp run -S` for the other model; then Snakemake has nothing to redo
    old, before = _summary(proj, "RAMiT-slimLLE", "lle"), r.mtimes()
    run([str(BIN / "dvc"), "exp", "run", "-S", "params/run.yaml:+models.RAMiT-slimLLE.train.base_lr=0.0017"], proj)
    check_reran(r, before, {"train-RAMiT-slimLLE-lle"}, "dvc exp run")
    _retrained(proj, "RAMiT-slimLLE", "lle", old)
    dry = _snakemake(proj, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
    shown = run([str(BIN / "dvc"), "exp", "show", "--no-pager", "--csv"], proj).stdout
    assert "0.0017" in shown

    # a fix to the metrics module makes every evaluation stale, for both tools
    metrics = proj / "ramit/evaluate/metrics.py"
    metrics.write_text(metrics.read_text() + "\n# a fix\n")
    status = run([str(BIN / "dvc"), "status"], proj).stdout
    assert "evaluate-trained-PReNet-dr:" in status and "evaluate-trained-RAMiT-slimLLE-lle:" in status
    assert "train-PReNet-dr:" not in status
    plan = _snakemake(proj, "-n", "--quiet", "rules").stdout
    assert "evaluate" in plan and "train " not in plan


def _lol(root: Path, n: int = 15) -> str:
    """A stand-in for the manually downloaded LOL test set (the registry's layout: 15 LQ/HQ pairs)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        hq = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
        for sub, img in (("HQ", hq), ("LQ", hq // 4)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / sub / f"{i + 1}.png")
    return _digest(root)


def _digest(root: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())).hexdigest()


def test_manual_dataset_survives_reruns_of_both_tools_and_registry_edits(make_project):
    plan = tiny_plan(models={"Identity": {"keys": ["lle"], "trained": False}},
                     test_data={**tiny_plan()["test_data"], "lle": ["LOL"]})
    proj = make_project(plan)
    lol = proj / "data/manual/LOL"
    digest = _lol(lol)
    r = Rehearsal(proj, "params/run.yaml")
    run([str(BIN / "ramit"), "stages", "--write-dvc", "-q"], proj)
    git_commit(proj, "dvc.yaml")

    def registry_edit(i: int) -> None:
        reg = proj / "params/datasets.yaml"
        data = yaml.safe_load(reg.read_text())
        data["datasets"]["LOL"]["description"] += f" (edit {i})"
        reg.write_text(yaml.safe_dump(data, sort_keys=False))

    _snakemake(proj)
    assert json.loads((proj / "results/trained/Identity/lle/lle/LOL.json").read_text())["n"] == 15
    for i, tool in enumerate(["snakemake", "snakemake", "dvc", "dvc"]):
        # a fix to the entry's prose re-runs nothing ...
        registry_edit(i)
        before = r.mtimes()
        _snakemake(proj) if tool == "snakemake" else run([str(BIN / "dvc"), "repro"], proj)
        check_reran(r, before, set(), f"{tool} after a description edit")
        # ... and a re-run of the fetch itself (what any change to how LOL is checked does) verifies the
        # folder in place: Snakemake's cascade re-runs what follows, DVC sees the same verified list
        before = r.mtimes()
        if tool == "snakemake":
            _snakemake(proj, "--forcerun", "data/verified/LOL.json")
            check_reran(r, before, {"fetch-LOL"}, tool)
        else:
            run([str(BIN / "dvc"), "repro", "--force", "--single-item", "fetch-LOL"], proj)
            run([str(BIN / "dvc"), "repro"], proj)
            check_reran(r, before, {"fetch-LOL"}, tool, cascade=False)
        assert _digest(lol) == digest and len(list((lol / "HQ").iterdir())) == 15, f"{tool} touched data/manual"
    dvc_status_clean(r, "dvc.yaml")

    # a missing manual dataset fails its own job with instructions; the rest of the DAG still runs
    (proj / "data/manual/LOL").rename(proj / "LOL-away")
    (proj / "data/verified/LOL.json").unlink()
    p = run([str(BIN / "snakemake"), "--cores", "2", "--keep-going"], proj, check=False)
    assert p.returncode != 0
    log = (proj / "logs/fetch/LOL.log").read_text()
    assert "cannot be downloaded by a script" in log and "data/manual/LOL" in log
