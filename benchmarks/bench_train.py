"""Training throughput: RAMiT-1 x2 steps/s (batch 8, LR patch 48) on CPU (and CUDA if present), and
patch-dataset samples/s (the crops + augmentation a DataLoader worker produces).

    python benchmarks/bench_train.py [--steps 5] [--threads 2] [--out results/bench/train.json]

A step is what the training loop does: forward, L1 loss, backward, Adam step (fp32; on CUDA also
bf16 autocast). The first step (allocations, kernel selection) is not timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench_steps(model: str, device: str, batch: int, patch: int, steps: int, amp: bool = False) -> float:
    from ramit.models import build_model

    torch.manual_seed(9725)
    net = build_model(model, "sr", scale=2).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=4e-4)
    lq = torch.rand(batch, 3, patch, patch, device=device)
    hq = torch.rand(batch, 3, patch * 2, patch * 2, device=device)
    ctx = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if amp else torch.autocast("cpu", enabled=False)

    def step():
        with ctx:
            out = net(lq)
        loss = torch.nn.functional.l1_loss(out.float(), hq)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def bench_patches(n: int = 2000) -> dict:
    from PIL import Image

    from ramit.data.patches import PatchDataset

    rng = np.random.default_rng(0)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "train"
        (d / "HQ").mkdir(parents=True)
        (d / "LQ").mkdir()
        for i in range(4):  # DIV2K-sized pairs (2040x1356 HR, x2)
            hq = rng.integers(0, 256, (1356, 2040, 3), dtype=np.uint8)
            Image.fromarray(hq).save(d / "HQ" / f"{i}.png", compress_level=1)
            Image.fromarray(hq[::2, ::2]).save(d / "LQ" / f"{i}.png", compress_level=1)
        for task, patch in (("sr", 64), ("cdn", 128)):
            ds = PatchDataset([d], task=task, scale=2 if task == "sr" else 1, patch=patch, epoch_length=n)
            t0 = time.perf_counter()
            for k in range(n):
                ds[k]
            out[f"{task}_patch{patch}_samples_per_s"] = round(n / (time.perf_counter() - t0), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="RAMiT-1")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    res = {"model": a.model, "scale": 2, "batch": a.batch, "lr_patch": a.patch, "torch": torch.__version__,
           "cpu": platform.processor() or platform.machine(), "threads": a.threads}
    res["cpu_steps_per_s"] = round(bench_steps(a.model, "cpu", a.batch, a.patch, a.steps), 4)
    if torch.cuda.is_available():
        res["cuda_device"] = torch.cuda.get_device_name()
        res["cuda_steps_per_s"] = round(bench_steps(a.model, "cuda", a.batch, a.patch, 20 * a.steps), 2)
        res["cuda_bf16_steps_per_s"] = round(bench_steps(a.model, "cuda", a.batch, a.patch, 20 * a.steps, amp=True), 2)
    res.update(bench_patches())
    print(json.dumps(res, indent=2))
    if a.out:
        from ramit.io import write_json

        write_json(a.out, res)


if __name__ == "__main__":
    main()
