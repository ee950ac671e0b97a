"""Helpers for the training tests: tiny SR pairs from scikit-image's bundled photos, a tiny recipe,
and a helper that runs `ramit train` as a real subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]

# A RAMiT small enough for 2 CPU cores: one block per stage, width 16 (the bottleneck's grouped conv
# needs groups=1 at this width). The schedule machinery is the recipe's, untouched.
TINY_MODEL = {"dim": 16, "depths": [1, 1, 1, 1], "bottleneck_expand_groups": 1}
TINY_RECIPE = {
    "name": "test-tiny",
    "base_lr": 2.0e-3, "base_batch": 4, "warmup_epochs": 1, "milestones": [3], "epochs": 4,
    "epoch_length": {"samples": 12},  # 3 steps per epoch at batch 4 -> 12 steps
    "stages": [{"epoch": 0, "patch": 32, "batch": 4}],
    "log_every": 1, "ckpt_every": 3, "val_every": 6, "mlflow_every": 4,
    "model": TINY_MODEL,
}


def _pairs(root: Path, images: dict, scale: int) -> Path:
    (root / "HQ").mkdir(parents=True)
    (root / "LQ").mkdir()
    for name, im in images.items():
        h, w = im.shape[0] // scale * scale, im.shape[1] // scale * scale
        hq = Image.fromarray(np.ascontiguousarray(im[:h, :w]))
        hq.save(root / "HQ" / f"{name}.png")
        hq.resize((w // scale, h // scale), Image.BICUBIC).save(root / "LQ" / f"{name}.png")
    return root


def make_sr_data(tmp_path_factory) -> dict:
    """x2 training pairs (two photos at 1/4 size) and a held-out 64x64 validation pair."""
    from skimage import data as skd

    root = tmp_path_factory.mktemp("srdata")
    train = _pairs(root / "train", {"astronaut": skd.astronaut()[::4, ::4], "coffee": skd.coffee()[::4, ::4]}, 2)
    val = _pairs(root / "val", {"chelsea": skd.chelsea()[100:164, 150:214]}, 2)
    return {"train": train, "val": val}


def write_recipe(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump({**TINY_RECIPE, **changes}, sort_keys=False))
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(tmp_path: Path, mlflow_uri: str | None = None) -> dict:
    env = dict(os.environ)
    env.pop("RAMIT_MLFLOW_PARENT_RUN_ID", None)
    env["MLFLOW_TRACKING_URI"] = mlflow_uri or f"sqlite:///{tmp_path / 'mlflow.db'}"
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    env["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "2"
    env["OMP_NUM_THREADS"] = "2"  # the same in every run that is compared bit for bit
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def train_cmd(recipe: Path, data: dict, out: Path, *extra: str, launcher: list[str] | None = None) -> list[str]:
    head = launcher or [sys.executable, "-m"]
    return [*head, "ramit.cli", "train", "--model", "RAMiT", "--task", "sr", "--scale", "2", "--recipe", str(recipe),
            "--train-data", str(data["train"]), "--val-data", str(data["val"]), "--out", str(out),
            "--device", "cpu", *extra]


def run_ok(cmd: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}"
    return r
