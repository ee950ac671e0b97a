"""The pipeline with real Snakemake and real DVC: one DAG, params-driven re-runs, early validation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ramit.pipeline import default_stages, expand_stages, load_plan
from ramit.pipeline.dvc import dvc_yaml

from pipeline_helpers import BIN, ROOT, run, tiny_plan

LOG_REDIRECT = re.compile(r"\s*>\s*\S+\.log\s+2>&1\s*$")


def test_committed_dvc_yaml_is_current():
    # only the embedded plan's: a committed paper/dvc.yaml would make a bare `dvc repro` run the paper plan
    plan = load_plan(ROOT / "params" / "run.yaml")
    assert (ROOT / plan.dvc_file).read_text() == dvc_yaml(plan, "params/run.yaml"), (
        "dvc.yaml is stale: run `ramit stages --params params/run.yaml --write-dvc`")


@pytest.mark.parametrize("plan_file", ["params/run.yaml", "params/paper.yaml"])
def test_every_stage_input_is_produced_or_tracked(plan_file):
    plan = load_plan(ROOT / plan_file)
    stages = expand_stages(plan, plan_file)
    produced = {t for s in stages for t in s.targets}
    for s in stages:
        for d in s.deps + s.code:
            assert d in produced or (ROOT / d).exists(), f"{s.name}: {d} is neither produced nor in the repo"
        for f in s.params:
            assert (ROOT / f).is_file(), f"{s.name}: params file {f} missing"
    names = [s.name for s in stages]
    assert len(names) == len(set(names))
    assert all(t.startswith(plan.path("")) or plan.root == "." for s in stages for t in s.targets)


def test_paper_plan_claims_gpus_threads_and_keeps_going():
    plan = load_plan(ROOT / "params" / "paper.yaml")
    stages = expand_stages(plan, "params/paper.yaml")
    train = [s for s in stages if s.family == "train"]
    assert train and all(s.spec["device"] == "cuda" and s.gpus == plan.train.processes == 2 for s in train)
    assert all(s.cmd[:4] == ["torchrun", "--standalone", "--nproc_per_node", "2"] for s in train)
    assert all(s.threads == 2 * (1 + 8) for s in train)  # ranks x (1 + DataLoader workers)
    for fam in ("evaluate", "profile"):
        assert all(s.gpus == 1 for s in stages if s.family == fam), fam
    assert all(s.gpus == 0 for s in stages if s.family in ("fetch", "degrade", "report", "fetch_weights"))
    for prof in ("gpu", "slurm"):
        cfg = yaml.safe_load((ROOT / "workflow/profiles" / prof / "config.yaml").read_text())
        assert cfg["keep-going"] is True and cfg["rerun-incomplete"] is True, prof
    slurm = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    assert slurm["set-resources"]["train"]["cpus_per_task"] == train[0].threads
    assert slurm["set-resources"]["train"]["tasks_per_gpu"] == 0  # torchrun starts the ranks in one task
    assert plan.root == "paper" and plan.dvc_file == "paper/dvc.yaml"
    # the paper plan's manual datasets are read from the user's folder, never an output
    manual = [s for s in stages if s.user_data]
    assert {s.spec["dataset"] for s in manual} >= {"Manga109", "WED", "LOL", "Rain13K", "Test100"}
    assert not any(t.startswith("data/manual") for s in stages for t in s.targets)


def _dry_run(proj: Path, target: str | None = None) -> tuple[list[str], set[str]]:
    p = run([str(BIN / "snakemake"), "-n", "-p", "--forceall", *([target] if target else [])], proj)
    text = p.stdout + p.stderr
    cmds = [LOG_REDIRECT.sub("", ln[len("Shell command: "):].strip()) for ln in text.splitlines()
            if ln.startswith("Shell command: ")]
    outs = {o.strip() for ln in text.splitlines() if ln.strip().startswith("output:")
            for o in ln.strip()[len("output:"):].split(",")}
    return sorted(c for c in cmds if c != "None"), outs


def test_snakemake_plans_exactly_the_dvc_stages(make_project):
    proj = make_project(yaml.safe_load((ROOT / "params" / "run.yaml").read_text()))
    cmds, outs = _dry_run(proj)
    dvc = yaml.safe_load((proj / "dvc.yaml").read_text())["stages"]
    assert cmds == sorted(st["cmd"] for st in dvc.values())
    plan = load_plan(proj / "params" / "run.yaml")
    stages = default_stages(plan, "params/run.yaml")
    assert outs == {t for s in stages for t in s.targets}
    assert {"fetch", "degrade", "train", "evaluate", "profile", "report"} <= {s.family for s in stages}
    # DVC knows what every stage reads: params keys and code
    ev = dvc["evaluate-trained-RAMiT-x2"]
    assert "ramit/evaluate/metrics.py" in ev["deps"] and "ramit/models/ramit.py" in ev["deps"]
    tr = dvc["train-PReNet-dr"]
    assert {"params/run.yaml": ["models.PReNet", "recipes.dr", "train_data.dr", "val_data.dr"]} in tr["params"]
    assert {"params/train/embedded.yaml": None} in tr["params"]


def test_released_target_plans_checkpoints_and_real_test_sets(make_project):
    proj = make_project(yaml.safe_load((ROOT / "params" / "run.yaml").read_text()))
    cmds, _ = _dry_run(proj, "released")
    assert "ramit fetch-weights --plan params/run.yaml RAMiT-1_X2.pth" in cmds
    assert "ramit evaluate --plan params/run.yaml --released RAMiT-1_X2.pth" in cmds
    assert "ramit evaluate --plan params/run.yaml --released dncnn_25.pth" in cmds  # a baseline's own weights
    assert "ramit degrade --plan params/run.yaml x2 Set5" in cmds
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


def test_a_stage_command_reads_its_parameters_from_the_plan(make_project):
    """`ramit train --plan` runs what the plan says now: no regeneration of dvc.yaml for a value change."""
    from ramit.pipeline.stages import resolve_stage

    proj = make_project(tiny_plan())
    plan, stage = resolve_stage(proj / "params/run.yaml", "train-PReNet-dr")
    assert stage.spec["overrides"] == ["iterations=4"] and stage.spec["device"] == "cpu"
    assert stage.cmd == ["ramit", "train", "--plan", str(proj / "params/run.yaml"), "--model", "PReNet",
                         "--key", "dr"]


@pytest.mark.slow
def test_released_target_on_set5_with_mirrors(make_project, datasets_mirror, checkpoints_mirror):
    plan = tiny_plan(released={"enabled": False, "checkpoints": ["RAMiT-1_X2.pth"], "test_data": {"sr": ["Set5"]}})
    proj = make_project(plan)
    env = {"RAMIT_MIRROR": str(datasets_mirror), "RAMIT_MIRROR_WEIGHTS": str(checkpoints_mirror)}
    run([str(BIN / "snakemake"), "--cores", "2", "released"], proj, env=env)
    scores = json.loads((proj / "results/released/RAMiT-1/RAMiT-1_X2/x2/Set5.json").read_text())
    assert scores["n"] == 5 and scores["psnr"] > 37.0, scores
    assert scores["host"]["device"] == "cpu" and scores["host"]["torch"]
    summary = json.loads((proj / "results/released/RAMiT-1/RAMiT-1_X2.json").read_text())
    assert summary["Set5"]["x2"]["psnr"] == scores["psnr"]
    assert "Set5" in (proj / "reports/released/README.md").read_text()
    again = run([str(BIN / "snakemake"), "--cores", "2", "released"], proj, env=env)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_snakemake_lint_is_clean():
    p = run([str(BIN / "snakemake"), "--lint"], ROOT, check=False)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


def test_evaluate_compile_goes_from_the_plan_to_the_network(make_project):
    """`evaluate.compile: true` reaches every evaluate stage and compiles learned networks only (the
    compiled run itself: tests/evaluate/test_compiled_evaluation.py)."""
    from ramit.evaluate.evaluate import _is_compiled, for_inference
    from ramit.models import build_model
    from ramit.pipeline.stages import resolve_stage

    proj = make_project(tiny_plan(evaluate={"save_images": False, "device": "cpu", "crops": 0, "compile": True}))
    _, stage = resolve_stage(proj / "params/run.yaml", "evaluate-trained-PReNet-dr")
    assert stage.spec["compile"] is True
    _, stage = resolve_stage(proj / "params/run.yaml", "evaluate-trained-RAMiT-slimLLE-lle")
    assert stage.spec["compile"] is True
    # torch.compile is lazy: wrapping costs nothing until the first image.
    assert _is_compiled(for_inference(build_model("RAMiT-1", "sr", scale=2), True))
    assert not _is_compiled(for_inference(build_model("RAMiT-1", "sr", scale=2), False))
    assert not _is_compiled(for_inference(build_model("Bicubic", "sr", scale=2), True))
