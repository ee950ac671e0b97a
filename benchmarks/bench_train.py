"""Training data path: batches/s and memory per rank, PNG decoded into RAM (before) vs memory-mapped
`.npy` (after), 1 and 2 ranks (gloo, CPU), a few DataLoader workers; optionally model steps/s.

    python benchmarks/bench_train.py [--images 24] [--steps 40] [--workers 0 2] [--repeats 2]
                                     [--start-method fork] [--model-steps 0] [--data-dir DIR]
                                     [--out results/bench/train.json]

Stand-in data (generated, never downloaded): `--images` DIV2K-sized x2 pairs, HR 2040x1356 (LR
1020x678), smooth random fields plus grain so that the PNGs compress roughly like photos. DIV2K has
800: at the default 24 the in-RAM footprint of the PNG path is 800/24 = 33x smaller than DIV2K's
(it grows linearly with the image count; the mapped path does not). The same pixels are written as
a PNG folder (what the loader decoded before) and as a `ramit degrade --train` array folder, and kept
in `--data-dir` for the next run (default: a folder in the system temp dir).

Each configuration is a real job: `world` processes (torch.multiprocessing, gloo process group), each
building `PatchDataset` and a DataLoader over `StepBatches` of the paper's x2 recipe (total batch 64 =
world x 64/world, LR patch 64, seed 9725), as `ramit train` does. Per configuration:
* `startup_s`: building the dataset (the PNG path decodes every image; the mapped path reads headers),
  paid again at every resume;
* `batches_per_s`: total batches of 64 per second over `--steps` steps after the first (workers started),
  all ranks together (the slowest rank);
* `rss_mb`: peak RSS of each rank process (VmHWM), `anon_mb` its anonymous (private, not file-backed)
  resident memory at the end; `worker_rss_mb` / `worker_anon_mb` the same for its largest worker;
and, in one process without DataLoader, `samples_per_s` of each variant (the per-crop cost alone).
Variants run round-robin in every repeat (the machine is shared: compare within one run); ratios are
after / before. Pages come from a warm page cache (the files were just written or read).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HR = (1356, 2040)  # DIV2K's most common HR size (h, w)
VARIANTS = {"png": 0, "npy": 0, "npy-keep-open": 256}  # name -> PatchDataset(max_open=...)


# ------------------------------------------------------------------------------------ stand-in data
def _standin(rng: np.random.Generator) -> np.ndarray:
    """A photo-like uint8 HR: a smooth colour field (bilinear up from 1/16) plus grain."""
    h, w = HR
    low = rng.uniform(0, 255, (h // 16 + 2, w // 16 + 2, 3)).astype(np.float32)
    ys, xs = np.linspace(0, low.shape[0] - 1.001, h), np.linspace(0, low.shape[1] - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = low[y0][:, x0] * (1 - fx) + low[y0][:, x0 + 1] * fx
    bot = low[y0 + 1][:, x0] * (1 - fx) + low[y0 + 1][:, x0 + 1] * fx
    img = top * (1 - fy) + bot * fy + rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_data(root: Path, n: int) -> dict:
    """`root/png/{HQ,LQ}/*.png` and `root/npy/{HQ,LQ}/*.npy` with the same pixels; reused if complete."""
    from PIL import Image

    from ramit.data.degrade import write_train_array

    dirs = {"png": root / "png", "npy": root / "npy"}
    done = root / f".complete-{n}"
    if not done.is_file():
        rng = np.random.default_rng(0)
        for i in range(n):
            hq = _standin(rng)
            lq = np.ascontiguousarray(hq[::2, ::2])  # content is irrelevant here; the sizes are DIV2K x2's
            for sub, arr in (("HQ", hq), ("LQ", lq)):
                (dirs["png"] / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(dirs["png"] / sub / f"{i:04d}.png")
                write_train_array(dirs["npy"] / sub / f"{i:04d}.npy", arr)
        done.write_text("")
    size = {k: sum(f.stat().st_size for f in d.rglob("*.*")) / 2**20 for k, d in dirs.items()}
    return {"dirs": dirs, "disk_mb": {k: round(v, 1) for k, v in size.items()}}


# ------------------------------------------------------------------------------------------- ranks
def _status_mb(field: str, pid: str = "self") -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _rank(rank: int, world: int, port: int, cfg: dict, out_dir: str) -> None:
    import torch.distributed as dist

    from ramit.data.patches import PatchDataset, StepBatches
    from ramit.train.recipe import load_recipe
    from ramit.train.schedule import Schedule

    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    rec = load_recipe(ROOT / "params/train/paper_sr_x2.yaml", [f"num_workers={cfg['workers']}"])
    t0 = time.perf_counter()
    ds = PatchDataset([cfg["dir"]], task="sr", scale=2, patch=rec.stages[0].patch, seed=rec.seed,
                      max_open=cfg["max_open"])
    ds.epoch_length = rec.epoch_length_for("sr", ds.n_images)
    startup = time.perf_counter() - t0
    sched = Schedule(rec, ds.epoch_length, world)
    # A rank made by mp.spawn would start its workers by spawn too (pickling the dataset into each);
    # torchrun's ranks are plain processes, whose workers fork (Linux, Python <= 3.13): say which.
    ctx = cfg["start_method"] if cfg["workers"] else None
    loader = torch.utils.data.DataLoader(ds, batch_sampler=StepBatches(sched, 0, rank), num_workers=cfg["workers"],
                                         multiprocessing_context=ctx)
    batches = iter(loader)
    next(batches)  # workers started, first batch made
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(cfg["steps"]):
        lq, hq = next(batches)
    seconds = time.perf_counter() - t0
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a spawned rank would report
    # its launcher's peak. Workers are read while alive (their peak includes the pages they share
    # copy-on-write with the rank: that is what RSS-based accounting counts).
    workers = [str(w.pid) for w in getattr(batches, "_workers", [])]
    res = {"rank": rank, "startup_s": startup, "seconds": seconds, "anon_mb": _status_mb("RssAnon"),
           "rss_mb": _status_mb("VmHWM"),
           "worker_rss_mb": max((_status_mb("VmHWM", w) for w in workers), default=None),
           "worker_anon_mb": max((_status_mb("RssAnon", w) for w in workers), default=None),
           "batch": list(lq.shape)}
    del batches, loader
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(res))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(world: int, cfg: dict) -> dict:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_rank, args=(world, _free_port(), cfg, tmp), nprocs=world, join=True)
        ranks = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(world)]
    return {"batches_per_s": cfg["steps"] / max(r["seconds"] for r in ranks),
            "startup_s": max(r["startup_s"] for r in ranks),
            "rss_mb": [round(r["rss_mb"], 1) for r in ranks], "anon_mb": [round(r["anon_mb"], 1) for r in ranks],
            "worker_rss_mb": [None if r["worker_rss_mb"] is None else round(r["worker_rss_mb"], 1) for r in ranks],
            "worker_anon_mb": [None if r["worker_anon_mb"] is None else round(r["worker_anon_mb"], 1) for r in ranks],
            "batch_per_rank": ranks[0]["batch"]}


def bench_loading(dirs: dict, worlds, workers, steps: int, repeats: int, start_method: str) -> dict:
    runs: dict = {}
    for rep in range(repeats):
        for world in worlds:
            for nw in workers:
                for name, max_open in VARIANTS.items():  # round-robin: the variants share each moment's load
                    cfg = {"dir": str(dirs["png" if name == "png" else "npy"]), "max_open": max_open,
                           "workers": nw, "steps": steps, "start_method": start_method}
                    r = run_job(world, cfg)
                    runs.setdefault(f"world{world}/workers{nw}/{name}", []).append(r)
                    print(f"  [{rep + 1}/{repeats}] world {world} workers {nw} {name:13s} "
                          f"{r['batches_per_s']:6.2f} batches/s  startup {r['startup_s']:6.2f} s  "
                          f"rank RSS {r['rss_mb']} MB (anon {r['anon_mb']})  worker RSS {r['worker_rss_mb']} "
                          f"(anon {r['worker_anon_mb']})",
                          flush=True)
    out = {}
    for key, rs in runs.items():  # median over repeats; memory is the max
        out[key] = {"batches_per_s": round(statistics.median(r["batches_per_s"] for r in rs), 2),
                    "startup_s": round(statistics.median(r["startup_s"] for r in rs), 3),
                    "rss_mb": [max(v) for v in zip(*(r["rss_mb"] for r in rs))],
                    "anon_mb": [max(v) for v in zip(*(r["anon_mb"] for r in rs))],
                    "worker_rss_mb": rs[-1]["worker_rss_mb"], "worker_anon_mb": rs[-1]["worker_anon_mb"],
                    "batch_per_rank": rs[0]["batch_per_rank"]}
    return out


def ratios(res: dict) -> dict:
    """after / before per (world, workers): speed, start-up time, rank RSS."""
    out = {}
    for key, r in res.items():
        world_workers, name = key.rsplit("/", 1)
        if name == "png":
            continue
        before = res[f"{world_workers}/png"]
        out[key] = {"batches_per_s": round(r["batches_per_s"] / before["batches_per_s"], 3),
                    "startup_s": round(r["startup_s"] / max(before["startup_s"], 1e-9), 4),
                    "rank_rss": round(max(r["rss_mb"]) / max(before["rss_mb"]), 3),
                    "rank_anon": round(max(r["anon_mb"]) / max(before["anon_mb"]), 3)}
    return out


def bench_samples(dirs: dict, n: int, repeats: int) -> dict:
    """One process, no DataLoader: samples/s of each variant, round-robin (the per-crop cost alone)."""
    from ramit.data.patches import PatchDataset

    made = {name: PatchDataset([dirs["png" if name == "png" else "npy"]], task="sr", scale=2, patch=64,
                               epoch_length=80 * len(list((dirs["npy"] / "HQ").iterdir())), max_open=max_open)
            for name, max_open in VARIANTS.items()}
    rates: dict = {name: [] for name in made}
    for rep in range(repeats):
        for name, ds in made.items():
            t0 = time.perf_counter()
            for k in range(n):
                ds[(rep, k, 64)]
            rates[name].append(n / (time.perf_counter() - t0))
    out = {name: round(statistics.median(r), 1) for name, r in rates.items()}
    print(f"  samples/s in one process (LR patch 64, x2): {out}", flush=True)
    return out


# -------------------------------------------------------------------------------------- model steps
def bench_steps(model: str, device: str, batch: int, patch: int, steps: int, amp: bool = False) -> float:
    """Forward, L1, backward, Adam step (the training loop's step), steps/s after one untimed step."""
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=24, help="stand-in DIV2K-sized x2 pairs (DIV2K: 800)")
    ap.add_argument("--steps", type=int, default=40, help="timed batches per configuration")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--worlds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--start-method", choices=["fork", "spawn", "forkserver"], default="fork",
                    help="how DataLoader workers start (fork: as under torchrun on Linux, Python <= 3.13)")
    ap.add_argument("--model-steps", type=int, default=0, help="also time RAMiT-1 x2 steps (batch 8, patch 48)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    data_dir = a.data_dir or Path(tempfile.gettempdir()) / f"ramit-bench-train-{a.images}"
    load = os.getloadavg()
    res = {"images": a.images, "div2k_factor": round(800 / a.images, 2), "hr": list(HR), "steps": a.steps,
           "torch": torch.__version__, "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "loadavg_before": [round(x, 2) for x in load]}
    t0 = time.perf_counter()
    data = make_data(data_dir, a.images)
    res["disk_mb"] = data["disk_mb"]
    print(f"stand-in data in {data_dir} ({time.perf_counter() - t0:.0f} s): {data['disk_mb']} MB; "
          f"load average {load[0]:.2f} on {os.cpu_count()} cores", flush=True)
    res["samples_per_s"] = bench_samples(data["dirs"], 20 * a.steps, 3)
    res["worker_start_method"] = a.start_method
    res["loading"] = bench_loading(data["dirs"], a.worlds, a.workers, a.steps, a.repeats, a.start_method)
    res["ratios_after_over_before"] = ratios(res["loading"])
    res["ratios_after_over_before"]["samples_per_s"] = {
        k: round(v / res["samples_per_s"]["png"], 3) for k, v in res["samples_per_s"].items() if k != "png"}
    res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    if a.model_steps:
        res["cpu_steps_per_s"] = round(bench_steps("RAMiT-1", "cpu", 8, 48, a.model_steps), 4)
        if torch.cuda.is_available():
            res["cuda_steps_per_s"] = round(bench_steps("RAMiT-1", "cuda", 8, 48, 20 * a.model_steps), 2)
            res["cuda_bf16_steps_per_s"] = round(bench_steps("RAMiT-1", "cuda", 8, 48, 20 * a.model_steps, True), 2)
    print(json.dumps(res, indent=2))
    if a.out:
        from ramit.io import write_json

        write_json(a.out, res)


if __name__ == "__main__":
    main()
