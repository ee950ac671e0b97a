"""What the README says the run proves: the smoke-scale banner and the evaluating host's provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from report_tree import _png, build, result, run_plan, summary

ROOT = Path(__file__).resolve().parents[2]


def _smoke_tree(root: Path, **plan):
    result(root, "trained", "RAMiT", "x2", "EmbeddedTest", 29.49, 0.85)
    result(root, "trained", "Bicubic", "x2", "EmbeddedTest", 41.50, 0.98)
    summary(root, "RAMiT", "x2", iterations=40, seconds=12.5)
    summary(root, "SwinIR-light", "x2", iterations=40, seconds=20.0)
    for i in range(3):
        _png(root / f"data/degraded/train/x2/EmbeddedTrain/HQ/{i}.png", np.zeros((8, 8, 3), np.uint8))
    run_plan(root, test_sets=("EmbeddedTest",), **plan)
    (root / "refs.yaml").write_text("references: []\n")


def _readme(root: Path, **kw) -> str:
    build(root, params=root / "run.yaml", references=root / "refs.yaml", **kw)
    return (root / kw.get("out", "reports") / "README.md").read_text(encoding="utf-8")


def test_smoke_run_opens_with_the_banner(tmp_path):
    _smoke_tree(tmp_path)
    text = _readme(tmp_path)
    assert text.startswith("# RAMiT benchmark report\n\n> **Smoke-scale run: this report checks that the pipeline "
                           "works end to end; its numbers are not results.** Run plan `embedded`")
    banner = text.split("\n\n", 2)[1]
    for part in ("40 training steps per model (2 trained models)", "32×32 patches, batch 4",
                 "3 training images (EmbeddedTrain)", "training took 32 s in total", "2 evaluations in 2 s",
                 "look untrained", "none of these numbers is comparable with the paper", "`make released`", "minutes on CPU",
                 "not run here yet", "`params/paper.yaml`", "GPU-days"):
        assert part in banner, part
    assert "comes from a smoke-scale run" in text.split("## Reproduction")[1]


def test_banner_reads_budgets_and_wall_times_from_what_the_run_left(tmp_path):
    _smoke_tree(tmp_path)
    summary(tmp_path, "RAMiT", "x3", iterations=10, seconds=100.0, patch=48, batch=8, train_images=800)
    result(tmp_path, "released", "RAMiT-1", "x2", "Set5", 38.05, 0.96, seconds=95.0)
    banner = _readme(tmp_path).split("\n\n", 2)[1]
    assert "10–40 training steps per model (40 for most; RAMiT x3: 10)" in banner
    assert "32×32 patches, batch 4; 48×48 patches, batch 8" in banner
    assert "800 training images" in banner          # recorded by the trainer: preferred to counting files
    assert "training took 2.2 min in total" in banner and "here: 1 evaluation in 1.6 min" in banner


def test_paper_plan_and_released_report_have_no_banner(tmp_path):
    _smoke_tree(tmp_path, name="paper", smoke=False)
    text = _readme(tmp_path)
    assert "Smoke-scale" not in text and "smoke-scale" not in text
    _smoke_tree(tmp_path)  # smoke plan again, but the report on released weights only
    text = _readme(tmp_path, out="reports/released", source="released")
    assert "Smoke-scale run" not in text.split("## Reproduction")[0]
    assert "comes from a smoke-scale run" in text   # its comparison still shows our (smoke) training


def test_shipped_plans_say_which_is_the_smoke_run():
    from ramit.report.tables import load_plan

    assert load_plan(ROOT / "params/run.yaml").smoke_scale is True
    assert load_plan(ROOT / "params/paper.yaml").smoke_scale is False


def test_provenance_comes_from_the_evaluating_host(tmp_path):
    host = {"device": "cuda", "device_name": "NVIDIA H200", "torch": "2.5.1", "cuda": "12.4", "python": "3.11.9",
            "git_commit": "0123456789abcdef0123456789abcdef01234567"}
    result(tmp_path, "trained", "RAMiT", "x2", "Set5", 37.9, 0.96, host=host)
    result(tmp_path, "trained", "RAMiT", "x2", "Set14", 33.5, 0.92)  # an older file: no host block
    text = _readme_bare(tmp_path)
    assert "* `trained`: cuda (NVIDIA H200) — 1 result file" in text
    assert "* `trained`: cpu (host not recorded) — 1 result file" in text
    assert "| torch (evaluation) | 2.5.1; not recorded in 1 older result file |" in text
    assert "| CUDA (evaluation) | 12.4; not recorded in 1 older result file |" in text
    assert "| git commit (evaluation) | `0123456789abcdef0123456789abcdef01234567`; not recorded" in text
    assert f"| torch (report host) | {torch.__version__} |" in text  # the report host keeps its own lines


def test_provenance_of_files_without_host_blocks(tmp_path):
    result(tmp_path, "trained", "RAMiT", "x2", "Set5", 37.9, 0.96)
    text = _readme_bare(tmp_path)
    assert "| evaluation host | not recorded (1 result file without a `host` block) |" in text
    assert "torch (evaluation)" not in text


def _readme_bare(root: Path) -> str:
    build(root, params=None, references=None)
    return (root / "reports/README.md").read_text(encoding="utf-8")
