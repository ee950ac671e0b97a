"""A run resumes only its own state: a changed recipe key (not a budget key) trains again from scratch,
keeps the stale run aside, and the records come from the checkpoint, not from files an orchestrator
deleted. Warm starts use each model's own head. Real training (a tiny RAMiT), real files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from train_helpers import TINY_MODEL, write_recipe


def _train(sr_data, recipe: Path, out: Path, *overrides: str) -> dict:
    from ramit.train.loop import train_main

    return train_main(model="RAMiT", task="sr", scale=2, recipe=recipe, train_data=[sr_data["train"]],
                      val_data=sr_data["val"], out=out, device="cpu", overrides=list(overrides))


def _rows(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def finished(sr_data, tmp_path, tracked):
    recipe = write_recipe(tmp_path / "r.yaml", epochs=2, milestones=[], val_every=None)  # 6 steps
    out = tmp_path / "run"
    first = _train(sr_data, recipe, out)
    return {"recipe": recipe, "out": out, "summary": first, "weights": load_file(str(out / "model.safetensors"))}


def test_changed_recipe_key_trains_again_and_keeps_the_stale_run(finished, sr_data):
    out = finished["out"]
    # what Snakemake/DVC do before re-running the stage: delete its declared outputs
    for f in ("model.safetensors", "summary.json", "history.csv", "val.csv"):
        (out / f).unlink()
    second = _train(sr_data, finished["recipe"], out, "base_lr=0.004")

    new = load_file(str(out / "model.safetensors"))
    assert any(not torch.equal(new[k], finished["weights"][k]) for k in new), "the old weights came back"
    assert second["weights_sha256"] != finished["summary"]["weights_sha256"]
    assert second["resumed_from"] == 0 and second["fingerprint"] != finished["summary"]["fingerprint"]
    assert [int(r["iter"]) for r in _rows(out / "history.csv")] == list(range(1, 7))
    assert second["final_loss"] is not None and second["history_rows"] == 6 and second["val_psnr"] is not None

    stale = second["stale_runs_moved_aside"]
    assert len(stale) == 1 and any("base_lr" in c for c in stale[0]["changed"]), stale
    kept = Path(stale[0]["moved_to"])
    assert (kept / "ckpt" / "it00000006" / "model.safetensors").is_file() and (kept / "reason.json").is_file()


def test_budget_extension_resumes_and_records_come_from_the_checkpoint(finished, sr_data):
    out = finished["out"]
    for f in ("model.safetensors", "summary.json", "history.csv", "val.csv"):
        (out / f).unlink()
    again = _train(sr_data, finished["recipe"], out)  # same run: resumes at the end, 0 steps
    assert again["resumed_from"] == 6 and again["weights_sha256"] == finished["summary"]["weights_sha256"]
    assert [int(r["iter"]) for r in _rows(out / "history.csv")] == list(range(1, 7))
    assert again["final_loss"] == finished["summary"]["final_loss"]
    assert not (out / "stale").exists()

    longer = _train(sr_data, finished["recipe"], out, "epochs=3", "log_every=2")  # budget and cadence keys
    assert longer["resumed_from"] == 6 and longer["iterations"] == 9 and not longer["stale_runs_moved_aside"]
    assert [int(r["iter"]) for r in _rows(out / "history.csv")] == [1, 2, 3, 4, 5, 6, 8, 9]


def test_budget_cut_below_the_checkpoint_starts_over(finished, sr_data):
    s = _train(sr_data, finished["recipe"], finished["out"], "iterations=4")
    assert s["resumed_from"] == 0 and s["iterations"] == 4
    assert "before this checkpoint" in s["stale_runs_moved_aside"][0]["changed"][0]


def test_retrained_init_weights_make_the_warm_started_run_start_over(sr_data, tmp_path, tracked):
    from ramit.train.resume import describe_change

    old = {"recipe": {"base_lr": 1}, "model": {}, "model_code": {"a.py": "1"}, "init": "x", "train_data": ["d"]}
    new = {"recipe": {"base_lr": 2}, "model": {}, "model_code": {"a.py": "2"}, "init": "y", "train_data": ["e"]}
    changed = describe_change(old, new)
    assert changed[0] == "recipe base_lr: 1 -> 2"
    assert "model code changed: a.py" in changed and "training data changed" in changed
    assert any("warm-start weights" in c for c in changed)
    assert describe_change(None, new) == ["no fingerprint (written by an older version of ramit)"]


@pytest.mark.parametrize("model", ["RAMiT", "RAMiT-1", "RAMiT-slimSR", "SwinIR-light", "IMDN"])
def test_every_sr_model_warm_starts_x3_and_x4_from_x2_with_its_own_head(model, tmp_path):
    """What the paper plan does at x3/x4 for each SR model: load x2 except the model's scale-dependent head."""
    from ramit.models import build_model, save_weights, warm_start_head
    from ramit.train.resume import warm_start

    x2 = build_model(model, "sr", scale=2)
    save_weights(x2, tmp_path / "x2.safetensors")
    for scale in (3, 4):
        net = build_model(model, "sr", scale=scale)
        reinit = warm_start(net, tmp_path / "x2.safetensors", warm_start_head(net))
        assert reinit, f"{model}: the head {warm_start_head(net)} matches no key"
        body = {k: v for k, v in x2.state_dict().items() if k not in reinit}
        got = net.state_dict()
        assert all(torch.equal(got[k], v) for k, v in body.items())


def test_a_wrong_head_is_a_clear_error(tmp_path):
    from ramit.errors import CheckpointError
    from ramit.models import build_model, save_weights
    from ramit.train.resume import warm_start

    save_weights(build_model("IMDN", "sr", scale=2), tmp_path / "x2.safetensors")
    with pytest.raises(CheckpointError, match=r"shape .* does not cover it"):
        warm_start(build_model("IMDN", "sr", scale=3), tmp_path / "x2.safetensors", ("to_target.*",))


def test_tiny_model_override_is_part_of_the_fingerprint(sr_data, tmp_path, tracked):
    recipe = write_recipe(tmp_path / "r.yaml", epochs=1, milestones=[], val_every=None)
    out = tmp_path / "run"
    a = _train(sr_data, recipe, out)
    b = _train(sr_data, recipe, out, "model=" + json.dumps({**TINY_MODEL, "dim": 32}))
    assert b["resumed_from"] == 0 and any("model config" in c for c in b["stale_runs_moved_aside"][0]["changed"])
    assert a["params"] != b["params"]
