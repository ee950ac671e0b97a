"""Resume state across world sizes and devices: a checkpoint of a 2-process (gloo DDP) run resumes in
one process and the other way round, with real `ramit train` processes launched by torchrun."""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch

from ramit.train import checkpoint

from train_helpers import child_env, run_ok, train_cmd, write_recipe


def history(run: Path) -> list[tuple[int, float]]:
    with open(run / "history.csv") as fh:
        return [(int(r["iter"]), float(r["loss"])) for r in csv.DictReader(fh)]


def test_rng_state_has_no_per_device_list_and_restores_exactly(tmp_path):
    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    s = checkpoint.rng_state()
    assert s["cuda"] is None  # no CUDA in use in this process: nothing device-specific is written
    torch.save({"rng": s}, tmp_path / "t.pt")
    want = (torch.rand(4), random.random(), np.random.rand())
    # older files kept one CUDA state per visible GPU; a CUDA state read where no GPU is used is skipped
    for cuda in ([torch.get_rng_state(), torch.get_rng_state()], torch.get_rng_state(), None):
        loaded = torch.load(tmp_path / "t.pt", weights_only=True)["rng"]
        checkpoint.set_rng_state({**loaded, "cuda": cuda})
        got = (torch.rand(4), random.random(), np.random.rand())
        assert torch.equal(got[0], want[0]) and got[1:] == want[1:]


def test_checkpoint_of_two_processes_resumes_in_one_and_back(sr_data, tmp_path):
    """2 processes to step 6, then 1 process to 12; and 1 process to 6, then 2 to 12. Both follow the
    same curve (DDP splits each total batch, so the sums differ only in float round-off)."""
    recipe = write_recipe(tmp_path / "tiny.yaml")
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m"]
    env = child_env(tmp_path)
    env["OMP_NUM_THREADS"] = "1"
    runs = {}
    for name, first, second in (("2to1", torchrun, None), ("1to2", None, torchrun)):
        out = tmp_path / name
        run_ok(train_cmd(recipe, sr_data, out, "--set", "iterations=6", launcher=first), env, timeout=180)
        assert json.loads((out / "summary.json").read_text())["world_size"] == (2 if first else 1)
        assert [p.name for p in sorted((out / "ckpt").iterdir())] == ["it00000003", "it00000006"]
        run_ok(train_cmd(recipe, sr_data, out, launcher=second), env, timeout=180)  # resumes from it00000006
        s = json.loads((out / "summary.json").read_text())
        assert s["iterations"] == 12 and s["world_size"] == (2 if second else 1)
        h = history(out)
        assert [i for i, _ in h] == list(range(1, 13))  # the whole history, each step once
        runs[name] = [loss for _, loss in h]
    diff = max(abs(a - b) for a, b in zip(runs["2to1"], runs["1to2"]))
    print(f"2->1 vs 1->2 resumed runs: max |loss difference| over 12 steps = {diff:.3g}")
    assert diff < 1e-4
    assert runs["2to1"][6] < runs["2to1"][0] - 0.01  # step 7 continues the trained model, not a fresh one
