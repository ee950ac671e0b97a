"""Where evaluation's kernel time goes: RAMiT forwards on a full-size image under each allocator setting.

    .venv/bin/python benchmarks/bench_alloc.py [--model RAMiT-1] [--task cdn] [--size 500] [--threads 2]

Each setting runs in its own process (torch reads THP_MEM_ALLOC_ENABLE once, at its first allocation):
`default` (glibc and torch as shipped), `thp` (huge pages only), `mallopt` (no mmap, no trim only) and
`tuned` (both: what `ramit.runtime.tune_allocator` applies in every `ramit` command). It prints seconds
per image (wall, user, system), minor page faults per image and peak RSS, and the ratios to `default`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, resource, sys, time
setting, model, task, size, threads, runs = sys.argv[1:7]
if setting in ("mallopt", "tuned"):
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1" if setting == "tuned" else "0"
    from ramit.runtime import tune_allocator
    tune_allocator()
elif setting == "thp":
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
import torch
from ramit.models import build_model
torch.set_num_threads(int(threads))
m = build_model(model, task, scale=2 if task == "sr" else None).eval()
x = torch.rand(1, m.in_chans, int(size), int(size))
with torch.inference_mode():
    m(x)  # the first forward grows the heap in every setting
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(int(runs)):
        m(x)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
n = int(runs)
print(json.dumps({"wall": wall / n, "user": (r1.ru_utime - r0.ru_utime) / n, "sys": (r1.ru_stime - r0.ru_stime) / n,
                  "faults": (r1.ru_minflt - r0.ru_minflt) / n, "rss_gb": r1.ru_maxrss / 2**20}))
"""

SETTINGS = ("default", "thp", "mallopt", "tuned")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="RAMiT-1")
    ap.add_argument("--task", default="cdn")
    ap.add_argument("--size", type=int, default=500, help="square input side (Kodak24 is 500x500 / 768x512)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "RAMIT_ALLOCATOR")}
    print(f"{args.model} {args.task} {args.size}x{args.size}, {args.threads} thread(s), {args.runs} forwards each")
    print(f"{'setting':10s} {'wall s':>7s} {'user s':>7s} {'sys s':>7s} {'faults':>9s} {'RSS GB':>7s} {'wall x':>7s}")
    base = None
    for s in SETTINGS:
        out = subprocess.run([sys.executable, "-c", CHILD, s, args.model, args.task, str(args.size), str(args.threads),
                              str(args.runs)], env=env, capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        base = base or r
        print(f"{s:10s} {r['wall']:7.2f} {r['user']:7.2f} {r['sys']:7.2f} {r['faults']:9.0f} {r['rss_gb']:7.2f} "
              f"{base['wall'] / r['wall']:7.2f}", flush=True)


if __name__ == "__main__":
    main()
