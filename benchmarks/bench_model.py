"""RAMiT speed benchmark: fused (SDPA) vs reference attention, achieved GFLOP/s vs a plain matmul.

    .venv/bin/python benchmarks/bench_model.py [--runs 5] [--threads 2]

Prints one line per case; no asserts (timings depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from ramit.models import build_model
from ramit.models.complexity import count_macs
from ramit.models.ramit import set_attn_impl


def median_ms(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def matmul_gflops(runs: int, n: int = 1024) -> float:
    a, b = torch.rand(n, n), torch.rand(n, n)
    return 2 * n ** 3 / median_ms(lambda: a @ b, runs) / 1e6


def cpu_cases(runs: int) -> None:
    peak_mm = matmul_gflops(runs)
    print(f"plain torch.matmul 1024^3: {peak_mm:.1f} GFLOP/s ({torch.get_num_threads()} threads)")
    cases = [("RAMiT-1", "sr", 2, (64, 64)), ("RAMiT-1", "sr", 2, (128, 128)), ("RAMiT-1", "cdn", None, (128, 128))]
    for name, task, scale, (h, w) in cases:
        model = build_model(name, task, scale=scale).eval()
        x = torch.rand(1, model.in_chans, h, w)
        macs = count_macs(model, (model.in_chans, h, w))
        lat = {}
        for impl in ("sdpa", "reference"):
            set_attn_impl(model, impl)
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            with torch.no_grad():
                lat[impl] = median_ms(lambda: model(x), runs)
            rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
            print(f"{name} {task}{f' x{scale}' if scale else ''} {h}x{w} {impl:9s}: {lat[impl]:8.1f} ms  "
                  f"{2 * macs / lat[impl] / 1e6:6.1f} GFLOP/s ({2 * macs / lat[impl] / 1e6 / peak_mm:5.1%} of matmul)  "
                  f"peak-RSS rise {rss:6.1f} MB")
        print(f"  -> fused speed-up over reference: {lat['reference'] / lat['sdpa']:.2f}x  (MACs {macs / 1e9:.2f} G)")


def cuda_cases(runs: int) -> None:
    model = build_model("RAMiT-1", "sr", scale=2).eval().cuda()
    x = torch.rand(1, 3, 360, 640, device="cuda")
    for impl in ("sdpa", "reference"):
        set_attn_impl(model, impl)
        for dtype in (None, torch.bfloat16):
            def run():
                with torch.no_grad(), torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                    model(x)
                torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            ms = median_ms(run, runs)
            print(f"CUDA RAMiT-1 x2 360x640 {impl:9s} {'bf16' if dtype else 'fp32'}: {ms:8.1f} ms  "
                  f"peak {torch.cuda.max_memory_allocated() / 2**20:7.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cpu_cases(args.runs)
    if torch.cuda.is_available():
        cuda_cases(args.runs)


if __name__ == "__main__":
    main()
