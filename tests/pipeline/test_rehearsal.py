"""The rehearsal of the paper plan: its transform keeps the DAG, and it fails when a model is broken.

The full rehearsal (`make rehearsal`, every model of the paper plan) runs in CI after the test suite;
here it runs on one model, once with the model's warm-start head broken on purpose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ramit.pipeline import expand_stages, load_plan
from ramit.pipeline.rehearsal import RehearsalFailed, recipe_files, rehearse, shrink_recipe, transform_plan

ROOT = Path(__file__).resolve().parents[2]


def test_transform_keeps_the_paper_dag():
    raw = yaml.safe_load((ROOT / "params/paper.yaml").read_text())
    recipes = {f: f for f in recipe_files(raw)}  # same files: compare the DAG only
    plan = load_plan(ROOT / "params/paper.yaml")
    derived = transform_plan(raw, "http://127.0.0.1:1", recipes)
    derived["data"]["registry"] = "params/datasets.yaml"
    derived["released"]["registry"] = "params/checkpoints.yaml"
    tmp = ROOT / "params" / ".rehearsal-test.yaml"
    tmp.write_text(yaml.safe_dump(derived))
    try:
        names = {s.name for s in expand_stages(load_plan(tmp), str(tmp))}
    finally:
        tmp.unlink()
    assert names == {s.name for s in expand_stages(plan, "params/paper.yaml")}
    assert derived["train"] == {"device": "cpu", "processes": 1} and derived["models"] == raw["models"]


@pytest.mark.parametrize("recipe", ["paper_sr_x2", "paper_sr_warmstart", "paper_progressive"])
def test_shrunk_recipes_keep_every_phase_stage_and_milestone(recipe):
    from ramit.config import validate
    from ramit.train.recipe import Recipe
    from ramit.train.schedule import Schedule

    raw = yaml.safe_load((ROOT / f"params/train/{recipe}.yaml").read_text())
    small = validate(shrink_recipe(raw), Recipe, recipe)
    big = validate(raw, Recipe, recipe)
    s = Schedule(small, small.epoch_length_for("cdn", 2))
    points = [s.at(i) for i in range(s.total_iters)]
    assert len(small.stages) == len(big.stages) and len({p.stage for p in points}) == len(big.stages)
    assert {p.phase for p in points} == ({"head", "full"} if big.warm_start else {"full"})
    assert len({round(p.lr, 12) for p in points if p.phase == "full"}) >= 2  # warm-up and halvings happen
    assert s.total_iters <= 12


@pytest.mark.slow
def test_rehearsal_fails_when_a_models_warm_start_head_is_wrong(tmp_path):
    # SwinIR-light warm-starts x3/x4 from x2 in the paper plan (IMDN trains every scale from scratch)
    def break_swinir(proj: Path) -> None:
        f = proj / "ramit/models/baselines/swinir.py"
        text, n = re.subn(r'warm_start_head: tuple\[str, \.\.\.\] = \("[^"]+",\)',
                          'warm_start_head: tuple[str, ...] = ("to_target.*",)', f.read_text())
        assert n == 1
        f.write_text(text)

    with pytest.raises(RehearsalFailed) as e:
        rehearse(tmp_path, models=["SwinIR-light"], full=False, mutate=break_swinir)
    msg = str(e.value)
    assert "logs/train/SwinIR-light/x3.log" in msg and "does not cover it" in msg, msg[-3000:]
