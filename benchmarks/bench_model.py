"""RAMiT speed benchmark: reference path vs fast eager vs compiled, and GFLOP/s vs a plain matmul.

    .venv/bin/python benchmarks/bench_model.py [--runs 5] [--threads 1 2] [--no-compile] [--backward] [--only 128x128]

For each thread count and case it prints reference / fast / compiled ms (median of `--runs`, the
implementations timed round-robin in one process so load drifts hit them alike), the ratios to the
reference path, and GFLOP/s (MACs from `count_macs`) against a 1024^3 matmul measured in the same run.
`bound` is the time no implementation of the same MACs beats on this machine: every MAC at that matmul
rate plus every softmax and GELU element at torch's rate (measured in the run; all other elementwise work
counted free); `bound x` = reference / bound is the most any path could gain over the reference here.
`--backward` adds a forward+backward (training step) line per implementation. No asserts: timings
depend on the machine and its load. The compiled model is what evaluation runs with `compile: true`
(`compile_model(inference=True)`: frozen, oneDNN-prepacked weights); it compiles in every run, minutes
per case on a CPU (frozen graphs are not kept in Inductor's disk cache).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from ramit.runtime import tune_allocator

tune_allocator()  # as every `ramit` command does, before torch allocates

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from ramit.models import build_model  # noqa: E402
from ramit.models.complexity import count_macs  # noqa: E402
from ramit.models.ramit import FeedForward, compile_model, set_impl  # noqa: E402

CASES = [("RAMiT-1", "sr", 2, (64, 64)), ("RAMiT-1", "sr", 2, (128, 128)), ("RAMiT-1", "cdn", None, (128, 128)),
         ("RAMiT-slimSR", "sr", 2, (128, 128))]


def round_robin_ms(fns: dict, runs: int, warmup: int = 1) -> dict:
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def matmul_gflops(runs: int, n: int = 1024) -> float:
    a, b = torch.rand(n, n), torch.rand(n, n)
    return 2 * n ** 3 / round_robin_ms({"mm": lambda: a @ b}, runs)["mm"] / 1e6


def elementwise_rates(runs: int, n: int = 1 << 22) -> dict[str, float]:
    """Elements per ms of torch's softmax (rows of 64, as SPSA's) and exact GELU on 16 MB tensors."""
    rows, flat = torch.rand(n // 64, 64), torch.rand(n)
    ms = round_robin_ms({"softmax": lambda: rows.softmax(-1), "gelu": lambda: F.gelu(flat)}, runs)
    return {k: n / v for k, v in ms.items()}


def elementwise_counts(model, x) -> dict[str, int]:
    """Elements one reference forward passes through softmax and GELU.

    Softmax from the profiler's input shapes; GELU from the FFNs' hidden widths, since on a channels_last
    map (what LayerNorm's permutes leave) even the reference path runs GELU as a oneDNN post-op of the
    convolution, where the profiler shows no GELU.
    """
    set_impl(model, "reference")
    gelu = []
    hooks = [m.register_forward_hook(lambda m, inp, out: gelu.append(out.numel() * m.hidden.out_channels
                                                                     // m.out.out_channels))
             for m in model.modules() if isinstance(m, FeedForward)]
    with torch.no_grad(), torch.profiler.profile(record_shapes=True) as prof:
        model(x)
    for hook in hooks:
        hook.remove()
    softmax = sum(math.prod(e.input_shapes[0]) for e in prof.events() if e.name == "aten::_softmax")
    return {"softmax": softmax, "gelu": sum(gelu)}


def _forward(model, impl, x):
    def run():
        set_impl(model, impl)
        with torch.no_grad():
            model(x)
    return run


def _step(model, impl, x):
    def run():
        set_impl(model, impl)
        model.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
    return run


def bench(threads: int, runs: int, compile_: bool, backward: bool, only: str = "") -> None:
    torch.set_num_threads(threads)
    peak = matmul_gflops(runs)
    rates = elementwise_rates(runs)
    print(f"\n== {threads} thread(s); plain matmul 1024^3: {peak:.1f} GFLOP/s; softmax "
          f"{rates['softmax'] / 1e6:.2f}, GELU {rates['gelu'] / 1e6:.2f} G elements/s")
    print(f"{'case':28s} {'reference':>10s} {'fast':>9s} {'compiled':>9s} {'fast x':>7s} {'comp x':>7s} "
          f"{'bound':>7s} {'bound x':>7s}  GFLOP/s ref/fast/comp (% of matmul)")
    for name, task, scale, (h, w) in CASES:
        if only and only not in f"{name} {task} x{scale} {h}x{w}":
            continue
        model = build_model(name, task, scale=scale).eval()
        x = torch.rand(1, model.in_chans, h, w)
        macs = count_macs(model, (model.in_chans, h, w))
        # What no implementation of these MACs beats here: all of them at the matmul rate, plus the
        # softmax and GELU elements at torch's rates (everything else, norms, gathers, sums, free).
        counts = elementwise_counts(model, x)
        bound = 2 * macs / peak / 1e6 + sum(counts[k] / rates[k] for k in counts)
        fns = {"reference": _forward(model, "reference", x), "fast": _forward(model, "fast", x)}
        if compile_:
            twin = build_model(name, task, scale=scale).eval()
            twin.load_state_dict(model.state_dict())  # before compiling: the wrapper's keys carry a prefix
            # One graph per case: with dynamic=None the second case's new size would make Dynamo recompile
            # the shared forward with symbolic shapes (slower to build and to run).
            compiled = compile_model(twin, inference=True)  # frozen weights, dynamic=False
            fns["compiled"] = _forward(compiled, "fast", x)
        ms = round_robin_ms(fns, runs)
        gf = {k: 2 * macs / v / 1e6 for k, v in ms.items()}
        comp = ms.get("compiled", float("nan"))
        label = f"{name} {task}{f' x{scale}' if scale else ''} {h}x{w}"
        print(f"{label:28s} {ms['reference']:10.1f} {ms['fast']:9.1f} {comp:9.1f} "
              f"{ms['reference'] / ms['fast']:7.2f} {ms['reference'] / comp:7.2f} {bound:7.1f} "
              f"{ms['reference'] / bound:7.2f}  "
              + " / ".join(f"{gf.get(k, float('nan')):.0f}" for k in ("reference", "fast", "compiled"))
              + f" ({gf['fast'] / peak:.0%} fast)", flush=True)
        if backward:
            model.train()
            st = round_robin_ms({"reference": _step(model, "reference", x), "fast": _step(model, "fast", x)}, runs)
            print(f"{'  fwd+bwd step':28s} {st['reference']:10.1f} {st['fast']:9.1f} {'':9s} "
                  f"{st['reference'] / st['fast']:7.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile column (minutes on a CPU)")
    ap.add_argument("--backward", action="store_true", help="also time a forward+backward training step")
    ap.add_argument("--only", default="", help="run the cases whose label contains this, e.g. '128x128'")
    args = ap.parse_args()
    for threads in args.threads:
        bench(threads, args.runs, not args.no_compile, args.backward, args.only)


if __name__ == "__main__":
    main()
