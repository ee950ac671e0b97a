"""A recipe with `compile: true`: `ramit train` runs the torch.compile'd network, follows the eager loss
curve, and a second run finds the compiled graphs in the on-disk Inductor cache instead of compiling
again. Slow (`make test-slow`): compiling the forward and backward takes minutes on 2 cores."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from train_helpers import child_env, run_ok, train_cmd, write_recipe

pytestmark = pytest.mark.slow

# Four steps at one patch size: one forward and one backward graph to compile.
SHORT = {"epochs": 2, "milestones": [1], "warmup_epochs": 0, "epoch_length": {"samples": 8},
         "ckpt_every": 4, "val_every": 4, "mlflow_every": 4}


def _losses(run: Path) -> list[float]:
    with open(run / "history.csv") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


def _cache_entries(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_compiled_training_follows_eager_and_reuses_the_cache(sr_data, tmp_path):
    eager_recipe = write_recipe(tmp_path / "eager.yaml", **SHORT)
    compiled_recipe = write_recipe(tmp_path / "compiled.yaml", **SHORT, compile=True)
    env = child_env(tmp_path)
    cache = tmp_path / "inductor"
    env["TORCHINDUCTOR_CACHE_DIR"] = str(cache)

    run_ok(train_cmd(eager_recipe, sr_data, tmp_path / "eager"), env)
    run_ok(train_cmd(compiled_recipe, sr_data, tmp_path / "compiled"), env, timeout=1200)
    after_first = _cache_entries(cache)
    run_ok(train_cmd(compiled_recipe, sr_data, tmp_path / "again"), env, timeout=600)

    eager, compiled, again = (_losses(tmp_path / d) for d in ("eager", "compiled", "again"))
    assert len(eager) == len(compiled) == 4
    # Same function, same data order: only Inductor's float reordering separates the curves.
    assert compiled == pytest.approx(eager, rel=1e-4)
    assert again == pytest.approx(compiled, rel=1e-6)
    assert any("fxgraph" in e for e in after_first), sorted(after_first)[:20]
    assert _cache_entries(cache) == after_first
