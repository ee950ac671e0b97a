"""Recipes load, validate, and take `--set key=value` overrides that are validated again."""

from __future__ import annotations

import pytest

from ramit.config import PROJECT_ROOT, ConfigError
from ramit.train.recipe import load_recipe

TRAIN = PROJECT_ROOT / "params" / "train"


@pytest.mark.parametrize("path", sorted(TRAIN.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_file_validates(path):
    r = load_recipe(path)
    assert r.loss == "l1" and r.optimizer == "adam" and tuple(r.betas) == (0.9, 0.999) and r.weight_decay == 0
    assert r.seed == 9725


def test_overrides_nested_and_typed():
    r = load_recipe(TRAIN / "paper_progressive.yaml",
                    ["base_lr=1e-3", "stages.1.patch=80", "milestones=[1, 2]", "model.dim=16", "amp=bf16"])
    assert r.base_lr == 1e-3 and r.stages[1].patch == 80 and r.milestones == [1, 2]
    assert r.model == {"dim": 16} and r.amp == "bf16"
    assert load_recipe(TRAIN / "paper_sr_x2.yaml", seed=1).seed == 1


@pytest.mark.parametrize("override,msg", [
    ("base_lr=-1", "base_lr"),
    ("no_such_key=1", "no_such_key"),
    ("stages.7.patch=3", "not an index"),
    ("milestones=[3, 1]", "increasing"),
    ("loss=l2", "loss"),
    ("nonsense", "key=value"),
])
def test_bad_overrides_are_clear_errors(override, msg):
    with pytest.raises(ConfigError, match=msg):
        load_recipe(TRAIN / "paper_sr_x2.yaml", [override])
