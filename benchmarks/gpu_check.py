"""Prepared device check of the paper plan's CUDA paths (issue 11); about 6 minutes on one H200.

    python benchmarks/gpu_check.py --set5 DIR/Set5/HR --weights DIR/RAMiT-1_X2.pth [--out DIR]
                                   [--parts latency set5 train] [--nproc 1]
    python benchmarks/gpu_check.py --smoke [--out DIR]   # CPU, tiny sizes, gloo: the same code paths

Parts (each prints its lines and is written to `<out>/gpu_check.json` as soon as it is done; the exit
status is 1 if any check failed):

* latency: RAMiT, RAMiT-1, RAMiT-slimSR x2 at LR 360x640 (-> 720x1280), the protocol of
  `ramit.evaluate.profile` (inference_mode, warm-up until stable, median/IQR of >= 50 runs, CUDA
  events), fp32 (TF32 off) and bf16, peak memory each; RAMiT also with the reference attention
  (`impl="reference"`, explicit matmul + softmax, NCHW) next to the default fast path.
* set5: the released RAMiT-1_X2.pth on Set5 (LR made by our MATLAB-exact imresize, Y, 2-px border):
  mean PSNR on CUDA fp32 vs CPU fp32 (check: |delta| <= 0.01 dB, i.e. TF32 really off), and CUDA bf16
  vs fp32 (`precision_check`: warns past 0.01 dB; reported, not failed).
* train: 200 steps of RAMiT x2 at the paper's per-GPU batch 32 and LR patch 64 through
  `torchrun --nproc_per_node N -m ramit.cli train` (bf16 autocast, torch.compile; N = 1 runs no
  process group, N >= 2 NCCL DDP), on stand-in training pairs written as `ramit degrade --train`
  writes them (memory-mapped .npy). SIGKILL of the whole process group right after the step-100
  checkpoint, then the same command again: checks the run ends at 200 with each history row once.
  Peak host RSS (sum over the job's processes) and GPU memory (nvidia-smi, sampled every 0.5 s) of
  each of the two runs.

`--smoke` runs all three on the CPU with tiny inputs, a tiny RAMiT, random weights on generated
images, no autocast/compile and a 2-process gloo job (12 steps, killed after step 6); the test suite
runs it (tests/benchmarks/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LATENCY_MODELS = ("RAMiT", "RAMiT-1", "RAMiT-slimSR")
TINY_MODEL = {"dim": 16, "depths": [1, 1, 1, 1], "bottleneck_expand_groups": 1}
PARTS = ("latency", "set5", "train")
TOLERANCE_DB = 0.01


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set5", type=Path, help="folder of the Set5 HR PNGs (for the set5 part)")
    ap.add_argument("--weights", type=Path, help="the released RAMiT-1_X2.pth (for the set5 part)")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--nproc", type=int, default=None, help="training processes (default: 1; smoke: 2)")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default: $OUT, else results/gpu_check)")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, gloo: the code paths without a GPU")
    a = ap.parse_args(argv)
    if not a.smoke and not torch.cuda.is_available():
        ap.error("no CUDA device: run on the GPU machine, or pass --smoke for the CPU dry run")
    if not a.smoke and "set5" in a.parts and (a.set5 is None or a.weights is None):
        ap.error("the set5 part needs --set5 (Set5 HR folder) and --weights (RAMiT-1_X2.pth); or leave it out "
                 "with --parts latency train")
    for p in (a.set5, a.weights):
        if p is not None and not p.exists():
            ap.error(f"{p}: not found")
    a.nproc = a.nproc or (2 if a.smoke else 1)
    a.out = a.out or Path(os.environ.get("OUT") or ROOT / "results" / "gpu_check")
    a.device = "cpu" if a.smoke else "cuda"
    return a


# ------------------------------------------------------------------------------------------ latency
def check_latency(a) -> dict:
    from ramit.evaluate.profile import WarmupRule, latency_fields
    from ramit.models import build_model

    size, runs = ((16, 16), 1) if a.smoke else ((360, 640), 50)
    rule = WarmupRule(min_runs=1, max_runs=2, window=1, tolerance=1.0) if a.smoke else None
    precisions = ("fp32",) if a.smoke else ("fp32", "bf16")
    variants = [(m, "fast") for m in LATENCY_MODELS] + [("RAMiT", "reference")]
    out = {}
    for name, impl in variants:
        net = build_model(name, "sr", scale=2, impl=impl)
        net = net.eval().to(a.device)
        x = torch.rand(1, 3, *size, device=a.device)
        r = latency_fields(net, x, runs, rule, precisions)
        key = f"{name}/{impl}"
        out[key] = {"input": list(size), "output": [size[0] * 2, size[1] * 2], "latency_ms": r["latency_ms"],
                    "iqr_ms": r["latency_iqr_ms"], "peak_memory_mb": r["peak_memory_mb_by_precision"],
                    "warmup": {p: d["warmup"] for p, d in r["latency_protocol"]["per_precision"].items()},
                    "runs": r["runs"]}
        lat = "  ".join(f"{p} {v:8.2f} ms (IQR {r['latency_iqr_ms'][p]:.2f}, "
                        f"{r['peak_memory_mb_by_precision'][p]:.0f} MB)" for p, v in r["latency_ms"].items())
        print(f"  latency {key:22s} {size[0]}x{size[1]}  {lat}", flush=True)
        del net
    return {"results": out, "ok": True}


# --------------------------------------------------------------------------------------------- set5
def _smoke_set5(tmp: Path) -> tuple[Path, Path]:
    """Two small HR images and random RAMiT-1 x2 weights (the code path, not the numbers)."""
    from skimage import data as skd

    from ramit.data.io import write_png
    from ramit.models import build_model, save_weights

    hr = tmp / "Set5" / "HR"
    write_png(hr / "astronaut.png", skd.astronaut()[100:148, 180:228])
    write_png(hr / "coffee.png", skd.coffee()[50:98, 300:340])
    torch.manual_seed(0)
    weights = tmp / "RAMiT-1_X2.safetensors"
    save_weights(build_model("RAMiT-1", "sr", scale=2), weights)
    return hr, weights


def _set5_scores(net, pairs, device: str, precision: str) -> dict:
    from ramit.evaluate.inference import restore
    from ramit.evaluate.metrics import psnr, to_uint8

    scores = {}
    t0 = time.perf_counter()
    for name, hq, lr in pairs:
        x = torch.from_numpy(lr.transpose(2, 0, 1).astype(np.float32) / 255)[None]
        scores[name] = psnr(to_uint8(restore(net, x, precision=precision, device=device)), hq,
                            crop_border=2, y_channel=True)
    return {"psnr": float(np.mean(list(scores.values()))), "per_image": scores,
            "seconds": round(time.perf_counter() - t0, 2)}


def check_set5(a, tmp: Path) -> dict:
    from ramit.data.degrade import _make_one
    from ramit.data.io import read_image
    from ramit.evaluate.inference import precision_check
    from ramit.models import build_model, load_weights

    hr_dir, weights = (a.set5, a.weights) if a.set5 else _smoke_set5(tmp)
    pairs = []
    for f in sorted(hr_dir.glob("*.png")):  # the test-set recipe of `ramit degrade x2`
        hq, lr = _make_one("sr", 2, None, False, False, f.stem, read_image(f), None)
        pairs.append((f.stem, hq, lr))
    net = build_model("RAMiT-1", "sr", scale=2)
    load_weights(net, weights)
    dev = f"{a.device}_fp32" if a.device != "cpu" else "cpu_fp32_again"  # smoke: the CPU against itself
    runs = {"cpu_fp32": _set5_scores(net, pairs, "cpu", "fp32"), dev: _set5_scores(net, pairs, a.device, "fp32")}
    if not a.smoke:
        runs["cuda_bf16"] = _set5_scores(net, pairs, "cuda", "bf16")
    delta = runs[dev]["psnr"] - runs["cpu_fp32"]["psnr"]
    worst = max(abs(runs[dev]["per_image"][n] - runs["cpu_fp32"]["per_image"][n]) for n, _, _ in pairs)
    res = {"images": len(pairs), "weights": str(weights), "runs": runs, "delta_db_device_vs_cpu": delta,
           "max_image_delta_db": worst, "ok": abs(delta) <= TOLERANCE_DB}
    for k, r in runs.items():
        print(f"  set5 {k:14s} PSNR {r['psnr']:.4f} dB ({len(pairs)} images, {r['seconds']} s)", flush=True)
    print(f"  set5 {a.device} fp32 - cpu fp32 = {delta:+.5f} dB (max per image {worst:.5f}): "
          f"{'ok' if res['ok'] else 'FAIL'} (tolerance {TOLERANCE_DB})", flush=True)
    if "cuda_bf16" in runs:
        res["bf16_check"] = precision_check("Set5 mean", runs["cuda_bf16"]["psnr"], runs["cuda_fp32"]["psnr"], "bf16")
        print(f"  set5 bf16 - fp32 = {res['bf16_check']['delta_db']:+.4f} dB "
              f"({'within' if res['bf16_check']['within_tolerance'] else 'OUTSIDE'} {TOLERANCE_DB} dB)", flush=True)
    return res


# -------------------------------------------------------------------------------------------- train
def make_train_data(root: Path, smoke: bool) -> Path:
    """x2 pairs from scikit-image's photos, written as `ramit degrade --train` writes them."""
    from skimage import data as skd

    from ramit.data.degrade import imresize, write_train_array

    photos = {"astronaut": skd.astronaut(), "coffee": skd.coffee()} if smoke else {
        "astronaut": skd.astronaut(), "coffee": skd.coffee(), "chelsea": skd.chelsea(), "rocket": skd.rocket()}
    for name, im in photos.items():
        im = im[::4, ::4] if smoke else im
        hq = np.ascontiguousarray(im[: im.shape[0] // 2 * 2, : im.shape[1] // 2 * 2])
        write_train_array(root / "HQ" / f"{name}.npy", hq)
        write_train_array(root / "LQ" / f"{name}.npy", imresize(hq, 1 / 2))
    return root


def _group_memory(pgid: int) -> tuple[float, float | None]:
    """(summed RSS MB of the processes of group `pgid`, GPU memory MB in use by compute apps or None)."""
    rss = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            rss += next(int(line.split()[1]) for line in (d / "status").read_text().splitlines()
                        if line.startswith("VmRSS:")) / 1024
        except (OSError, ValueError, IndexError, StopIteration):
            continue
    try:
        r = subprocess.run(["nvidia-smi", "--query-compute-apps=used_memory", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=5)
        gpu = sum(float(v) for v in r.stdout.split()) if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        gpu = None
    return rss, gpu


def _latest_ckpt(out: Path) -> int:
    its = [int(p.name[2:]) for p in (out / "ckpt").glob("it*") if p.name[2:].isdigit()] if (out / "ckpt").is_dir() else []
    return max(its, default=0)


def run_training(cmd: list[str], env: dict, out: Path, log: Path, timeout: float, kill_after: int | None) -> dict:
    """Run one training job in its own process group; SIGKILL the group once checkpoint `kill_after` exists."""
    t0 = sampled = time.perf_counter()
    peak_rss, peak_gpu, killed = 0.0, None, False
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        while proc.poll() is None:
            if time.perf_counter() - sampled >= 0.5:
                sampled = time.perf_counter()
                rss, gpu = _group_memory(proc.pid)
                peak_rss = max(peak_rss, rss)
                peak_gpu = gpu if peak_gpu is None else max(peak_gpu, gpu or 0.0)
            over = time.perf_counter() - t0 > timeout
            if over or (kill_after is not None and _latest_ckpt(out) >= kill_after):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                killed = not over
                if over:
                    fh.write(f"\n[gpu_check] timed out after {timeout:.0f} s\n")
                break
            time.sleep(0.05)
    return {"returncode": proc.returncode, "killed": killed, "seconds": round(time.perf_counter() - t0, 1),
            "checkpoint": _latest_ckpt(out), "peak_rss_mb": round(peak_rss, 1),
            "peak_gpu_mb": peak_gpu, "log_tail": log.read_text()[-1500:]}


def _history_iters(out: Path) -> list[int]:
    try:
        with open(out / "history.csv") as fh:
            return [int(r["iter"]) for r in csv.DictReader(fh)]
    except (OSError, KeyError, ValueError):
        return []


def check_train(a, tmp: Path) -> dict:
    data = make_train_data(tmp / "train_x2", a.smoke)
    out = tmp / "run"
    total, kill_after, every = (12, 6, 1) if a.smoke else (200, 100, 10)
    batch, patch = (4, 16) if a.smoke else (32, 64)
    sets = [f"iterations={total}", f"stages=[{{epoch: 0, patch: {patch}, batch: {batch * a.nproc}}}]",
            f"log_every={every}", f"ckpt_every={kill_after // 2}", f"num_workers={0 if a.smoke else 4}"]
    sets += [f"model={json.dumps(TINY_MODEL)}"] if a.smoke else ["amp=bf16", "compile=true"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(a.nproc),
           "-m", "ramit.cli", "train", "--model", "RAMiT", "--task", "sr", "--scale", "2",
           "--recipe", str(ROOT / "params/train/paper_sr_x2.yaml"), "--train-data", str(data), "--out", str(out),
           "--device", a.device] + [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "OMP_NUM_THREADS": "1" if a.smoke else "4"}
    timeout = 90 if a.smoke else 240
    a.out.mkdir(parents=True, exist_ok=True)
    first = run_training(cmd, env, out, a.out / "train_killed.log", timeout, kill_after)
    print(f"  train first run: killed={first['killed']} at checkpoint {first['checkpoint']} after "
          f"{first['seconds']} s; peak RSS {first['peak_rss_mb']} MB, GPU {first['peak_gpu_mb']} MB", flush=True)
    second = run_training(cmd, env, out, a.out / "train_resumed.log", timeout, None)
    iters = _history_iters(out)
    want = list(range(every, total + 1, every))
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    checks = {"killed_mid_run": first["killed"] and 0 < first["checkpoint"] < total,
              "resumed_to_the_end": second["returncode"] == 0 and summary.get("iterations") == total,
              "history_complete_once": iters == want}
    print(f"  train resumed run: rc {second['returncode']} in {second['seconds']} s, ended at "
          f"{summary.get('iterations')}; history rows {len(iters)}/{len(want)}; peak RSS {second['peak_rss_mb']} MB, "
          f"GPU {second['peak_gpu_mb']} MB; checks {checks}", flush=True)
    if not all(checks.values()):
        print(second["log_tail"] if second["returncode"] else first["log_tail"], flush=True)
    return {"nproc": a.nproc, "steps": total, "batch_per_process": batch, "lr_patch": patch, "command": cmd,
            "first": first, "resumed": second, "final_loss": summary.get("final_loss"), "checks": checks,
            "ok": all(checks.values())}


# --------------------------------------------------------------------------------------------- main
def environment() -> dict:
    env = {"torch": torch.__version__, "python": sys.version.split()[0], "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        env.update(gpu=torch.cuda.get_device_name(), cudnn=torch.backends.cudnn.version())
    return env


def main(argv=None) -> int:
    from ramit.io import write_json

    a = parse_args(argv)
    res: dict = {"smoke": a.smoke, "environment": environment(), "parts": {}}
    print(f"gpu_check ({'smoke, CPU' if a.smoke else res['environment'].get('gpu')}): {', '.join(a.parts)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        for part in a.parts:
            t0 = time.perf_counter()
            try:
                r = {"latency": lambda: check_latency(a), "set5": lambda: check_set5(a, Path(tmp)),
                     "train": lambda: check_train(a, Path(tmp))}[part]()
            except Exception as e:  # noqa: BLE001 - one broken part must not hide the others' results
                import traceback

                traceback.print_exc()
                r = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            r["seconds"] = round(time.perf_counter() - t0, 1)
            res["parts"][part] = r
            write_json(a.out / "gpu_check.json", res)
    failed = [p for p, r in res["parts"].items() if not r["ok"]]
    print(f"gpu_check: {'all checks passed' if not failed else 'FAILED: ' + ', '.join(failed)}; "
          f"results in {a.out / 'gpu_check.json'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
