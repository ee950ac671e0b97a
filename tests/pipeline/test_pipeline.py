"""The pipeline with real Snakemake and real DVC: one DAG, params-driven re-runs, early validation."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from ramit.pipeline import default_stages, dvc_yaml, expand_stages, load_plan

from pipeline_helpers import BIN, ROOT, run, tiny_plan


def test_committed_dvc_yaml_is_current():
    plan = load_plan(ROOT / "params" / "run.yaml")
    expected = dvc_yaml(plan, "params/run.yaml")
    assert (ROOT / "dvc.yaml").read_text() == expected, (
        "dvc.yaml is stale: run `ramit stages --params params/run.yaml --write-dvc dvc.yaml`")


def test_every_stage_input_is_produced_or_tracked():
    plan = load_plan(ROOT / "params" / "run.yaml")
    stages = expand_stages(plan)
    produced = {t for s in stages for t in s.targets}
    for s in stages:
        for d in s.deps:
            assert d in produced or (ROOT / d).exists(), f"{s.name}: {d} is neither produced nor in the repo"
    names = [s.name for s in stages]
    assert len(names) == len(set(names))


def _snakemake_shell_cmds(proj: Path, target: str | None = None) -> list[str]:
    args = [str(BIN / "snakemake"), "-n", "-p", "--forceall"]
    p = run(args + ([target] if target else []), proj)
    prefix = "Shell command: "  # with -n -p Snakemake prints each job's command on such a line
    cmds = [ln[len(prefix):].strip() for ln in (p.stdout + p.stderr).splitlines() if ln.startswith(prefix)]
    return [c for c in cmds if c != "None"]  # target rules (all, released) have no command


def test_snakemake_plans_exactly_the_dvc_stages(make_project):
    proj = make_project(yaml.safe_load((ROOT / "params" / "run.yaml").read_text()))
    snake = sorted(_snakemake_shell_cmds(proj))
    dvc = sorted(st["cmd"] for st in yaml.safe_load((proj / "dvc.yaml").read_text())["stages"].values())
    assert snake == dvc
    plan = load_plan(proj / "params" / "run.yaml")
    families = {s.family for s in default_stages(plan)}
    assert {"fetch", "degrade", "train", "evaluate", "profile", "report"} <= families


def test_released_target_plans_checkpoints_and_real_test_sets(make_project):
    proj = make_project(yaml.safe_load((ROOT / "params" / "run.yaml").read_text()))
    cmds = _snakemake_shell_cmds(proj, "released")
    assert any(c.startswith("ramit fetch-weights RAMiT-1_X2.pth") for c in cmds)
    assert any("--source released" in c and "--data data/degraded/x2/Set5" in c for c in cmds)
    assert not any(c.startswith("ramit train") for c in cmds)


def test_bad_params_fail_before_any_job(make_project):
    plan = tiny_plan()
    plan["models"]["RAMiT-slimLLE"]["keys"] = ["lle", "x7"]
    proj = make_project(plan)
    for cmd in ([str(BIN / "snakemake"), "--cores", "1"], [str(BIN / "ramit"), "stages"]):
        p = run(cmd, proj, check=False)
        assert p.returncode != 0
        out = p.stdout + p.stderr
        assert "params/run.yaml" in out and "models.RAMiT-slimLLE.keys" in out and "'x2'" in out, out[-2000:]
    assert not (proj / "data").exists() and not (proj / "runs").exists()


def test_unknown_model_is_named(make_project):
    plan = tiny_plan()
    plan["models"]["RAMiT-9000"] = {"keys": ["x2"]}
    proj = make_project(plan)
    p = run([str(BIN / "ramit"), "stages"], proj, check=False)
    assert p.returncode == 2 and "models.RAMiT-9000" in p.stderr and "RAMiT-1" in p.stderr


def _ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.mark.slow
def test_dvc_repro_reruns_only_the_changed_model(make_project):
    proj = make_project(tiny_plan())
    run([str(BIN / "ramit"), "stages", "--write-dvc", "dvc.yaml"], proj)
    first = run([str(BIN / "dvc"), "repro"], proj)
    ran = _ran_stages(first.stdout)
    assert {"train-RAMiT-slimLLE-lle", "train-PReNet-dr", "report"} <= ran
    scores = json.loads((proj / "results/trained/PReNet/dr/EmbeddedTest.json").read_text())
    assert scores["n"] > 0 and 5 < scores["psnr"] < 60

    noop = run([str(BIN / "dvc"), "repro"], proj)
    assert _ran_stages(noop.stdout) == set()

    plan = yaml.safe_load((proj / "params/run.yaml").read_text())
    plan["models"]["PReNet"]["train"]["iterations"] = 6
    (proj / "params/run.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    run([str(BIN / "ramit"), "stages", "--write-dvc", "dvc.yaml"], proj)
    second = run([str(BIN / "dvc"), "repro"], proj)
    assert _ran_stages(second.stdout) == {"train-PReNet-dr", "evaluate-trained-PReNet-dr-EmbeddedTest", "report"}
    summary = json.loads((proj / "runs/PReNet/dr/summary.json").read_text())
    assert summary["iterations"] == 6


@pytest.mark.slow
def test_released_target_on_set5_with_mirrors(make_project, datasets_mirror, checkpoints_mirror):
    plan = tiny_plan(released={"enabled": False, "checkpoints": ["RAMiT-1_X2.pth"], "test_data": {"sr": ["Set5"]}})
    proj = make_project(plan)
    env = {"RAMIT_MIRROR": str(datasets_mirror), "RAMIT_MIRROR_WEIGHTS": str(checkpoints_mirror)}
    run([str(BIN / "snakemake"), "--cores", "2", "released"], proj, env=env)
    scores = json.loads((proj / "results/released/RAMiT-1/x2/Set5.json").read_text())
    assert scores["n"] == 5 and scores["psnr"] > 37.0, scores
    index = (proj / "reports/released/README.md").read_text()
    assert "Set5" in index
    # a second invocation has nothing to do
    again = run([str(BIN / "snakemake"), "--cores", "2", "released"], proj, env=env)
    assert "Nothing to be done" in again.stdout + again.stderr
