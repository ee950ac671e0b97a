"""`ramit profile`: parameters, MACs (attention included), latency and peak memory of one model.

Input size: SR models get the LR input of a 1280x720 output, LR = ceil(720/s) x ceil(1280/s) (x2
360x640, x3 240x427 -> 720x1281, x4 180x320): the smallest LR whose output covers 1280x720, so no
scale is measured on a smaller frame than the others; other tasks 256x256. Input and output sizes are
recorded.

Latency protocol (`measure_latency`, the same on both devices, its clock a parameter):
* forward passes under `torch.inference_mode()`, one [1, C, h, w] input;
* warm-up until stable: after at least `min_runs`, stop once the median of the last `window` runs
  is within `tolerance` of the median of the `window` runs before them; give up after `max_runs`
  (recorded as `stable: false`). CUDA: 10 / window 10 / 2% / 200; CPU: 2 / window 2 / 5% / 10;
* then `runs` timed passes, reported as median and IQR; CUDA times at least 50 (fewer asked are
  raised to 50), each between `torch.cuda.synchronize()` and CUDA events; CPU uses `perf_counter`;
* CUDA: fp32 (TF32 off for matmul and conv, `ramit.evaluate.inference.precision_mode`), bf16 and fp16
  autocast, each with its peak memory (`torch.cuda.max_memory_allocated` after
  `reset_peak_memory_stats`; tensor memory only). CPU: fp32; peak memory is how far the runs raised
  the process's peak RSS (`getrusage(...).ru_maxrss`), a lower bound when the process had peaked
  higher before;
* `threads` CPU threads (`torch.set_num_threads`) on every device, restored afterwards, and recorded.
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ramit.io import write_json

MIN_CUDA_RUNS = 50
SR_OUTPUT = (720, 1280)  # (h, w) of the output the field measures SR models at
OTHER_SIZE = (256, 256)


def default_size(task: str, scale: Optional[int]) -> tuple[int, int]:
    """SR: the LR input of a 1280x720 output, (ceil(720/s), ceil(1280/s)); other tasks 256x256."""
    if task == "sr":
        return math.ceil(SR_OUTPUT[0] / scale), math.ceil(SR_OUTPUT[1] / scale)
    return OTHER_SIZE


def size_rule(task: str) -> str:
    return ("LR = ceil(720/s) x ceil(1280/s): output covers 1280x720" if task == "sr"
            else "256x256")


def parse_size(size: Optional[str], task: str, scale: Optional[int]) -> tuple[int, int]:
    if size is None:
        return default_size(task, scale)
    try:
        h, w = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like HxW (e.g. 360x640), got {size!r}") from None
    if h < 16 or w < 16:
        raise ValueError(f"--size {size}: RAMiT's symmetric padding needs at least 16 px per side")
    return h, w


# --------------------------------------------------------------------------------- latency protocol
@dataclass(frozen=True)
class WarmupRule:
    min_runs: int
    max_runs: int
    window: int
    tolerance: float  # relative change between the medians of two consecutive windows


CUDA_WARMUP = WarmupRule(min_runs=10, max_runs=200, window=10, tolerance=0.02)
CPU_WARMUP = WarmupRule(min_runs=2, max_runs=10, window=2, tolerance=0.05)


def warm_up(timer: Callable[[], float], rule: WarmupRule) -> dict:
    """Call `timer` (one timed forward pass, ms) until the window medians agree; see the module doc."""
    times: list[float] = []
    change = None
    while len(times) < rule.max_runs:
        times.append(float(timer()))
        if len(times) >= max(rule.min_runs, 2 * rule.window):
            before = statistics.median(times[-2 * rule.window:-rule.window])
            last = statistics.median(times[-rule.window:])
            change = abs(last - before) / before if before > 0 else math.inf
            if change < rule.tolerance:
                return {"runs": len(times), "stable": True, "last_change": round(change, 5)}
    return {"runs": len(times), "stable": False, "last_change": None if change is None else round(change, 5)}


def timed_runs(timer: Callable[[], float], runs: int) -> dict:
    """`runs` timed passes: median, quartiles and IQR in ms."""
    times = [float(timer()) for _ in range(runs)]
    q1, med, q3 = statistics.quantiles(times, n=4, method="inclusive") if runs > 1 else (times[0],) * 3
    return {"median_ms": med, "q1_ms": q1, "q3_ms": q3, "iqr_ms": q3 - q1, "min_ms": min(times),
            "runs": runs}


def measure_latency(timer: Callable[[], float], runs: int, rule: WarmupRule) -> dict:
    return {"warmup": warm_up(timer, rule), **timed_runs(timer, runs)}


def _cpu_timer(model, x) -> Callable[[], float]:
    def once() -> float:
        t = time.perf_counter()
        model(x)
        return (time.perf_counter() - t) * 1e3

    return once


def _cuda_timer(model, x) -> Callable[[], float]:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def once() -> float:
        torch.cuda.synchronize()  # nothing queued before the start event
        start.record()
        model(x)
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    return once


def _rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20  # macOS reports bytes


def latency_fields(model: nn.Module, x: torch.Tensor, runs: int, rule: Optional[WarmupRule] = None,
                   precisions: Optional[tuple[str, ...]] = None) -> dict:
    """Latency fields of the profile JSON for input `x` on its device, per precision (default: CUDA
    fp32, bf16, fp16; CPU fp32), with the device's `WarmupRule` unless `rule` is given."""
    from ramit.evaluate.inference import precision_mode

    dev = x.device
    cuda = dev.type == "cuda"
    rule = rule or (CUDA_WARMUP if cuda else CPU_WARMUP)
    runs = max(runs, MIN_CUDA_RUNS) if cuda else runs
    lat, iqr, peak, detail = {}, {}, {}, {}
    for precision in precisions or (("fp32", "bf16", "fp16") if cuda else ("fp32",)):
        with torch.inference_mode(), precision_mode(precision, dev) as mode:
            if cuda:
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
                m = measure_latency(_cuda_timer(model, x), runs, rule)
                peak[precision] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
            else:
                rss0 = _rss_mb()
                m = measure_latency(_cpu_timer(model, x), runs, rule)
                peak[precision] = round(max(0.0, _rss_mb() - rss0), 1)
        lat[precision], iqr[precision] = round(m["median_ms"], 3), round(m["iqr_ms"], 3)
        detail[precision] = {**mode, **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in m.items()}}
    return {
        "latency_ms": lat, "latency_iqr_ms": iqr,
        "latency_protocol": {"timer": "cuda events" if cuda else "time.perf_counter", "inference_mode": True,
                             "statistic": "median", "runs": runs, "warmup_rule": asdict(rule),
                             "per_precision": detail},
        "peak_memory_mb": peak.get("fp32"), "peak_memory_mb_by_precision": peak,
        "peak_memory_method": ("torch.cuda.max_memory_allocated after reset_peak_memory_stats, per precision"
                               if cuda else "increase of process peak RSS (getrusage ru_maxrss) over the runs"),
        "runs": runs,
    }


def paper_counts(model: nn.Module, input_size: tuple[int, int], macs: int) -> dict:
    """Params and Mult-Adds as the model's own paper counted them (to compare with its printed numbers)."""
    from ramit.models.complexity import counting_rule, paper_gmacs, paper_input_size, paper_params

    size = paper_input_size(model)
    # same rule and size as `macs` (RAMiT and the convolution-only baselines): no second count
    same = getattr(model, "paper_convention", None) is None and tuple(size) == tuple(input_size)
    return {"paper_params": paper_params(model), "paper_macs_input_size": list(size),
            "paper_gmacs": round(macs / 1e9 if same else paper_gmacs(model), 3), "paper_counting": counting_rule(model)}


def profile_model(model: nn.Module, input_size: tuple[int, int], device: str = "cpu", threads: int = 2,
                  runs: int = 5, latency: bool = True, warmup: Optional[int] = None) -> dict:
    """Params, MACs and (optionally) latency and peak memory for one [1, C, h, w] input.

    `warmup`: minimum warm-up runs (default: the device's `WarmupRule`); warm-up continues until stable."""
    from ramit.models.complexity import MACS_METHOD, count_macs, count_params

    h, w = input_size
    c = getattr(model, "in_chans", 3)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    model = model.eval().to(dev)
    s = int(getattr(model, "scale", 1) or 1)
    result: dict = {"input_size": [h, w], "output_size": [h * s, w * s], "params": count_params(model)}
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        threads_used = torch.get_num_threads()
        if latency:
            rule = CUDA_WARMUP if dev.type == "cuda" else CPU_WARMUP
            if warmup is not None:
                rule = WarmupRule(warmup, max(rule.max_runs, warmup), rule.window, rule.tolerance)
            result.update(latency_fields(model, torch.rand(1, c, h, w, device=dev), runs, rule))
    finally:
        torch.set_num_threads(saved_threads)
    result["macs"] = count_macs(model, (c, h, w))
    result["macs_method"] = MACS_METHOD
    result.update(paper_counts(model, (h, w), result["macs"]))
    result["device"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    result["threads"] = threads_used
    result.setdefault("runs", 0)
    result["torch"] = torch.__version__
    return result


def profile_cli(model: str, task: str, scale: Optional[int], size: Optional[str], device: str, threads: int,
                runs: int, latency: bool, out: Optional[Path]) -> dict:
    from ramit.models import build_model

    hw = parse_size(size, task, scale)
    net = build_model(model, task, scale=scale)
    s = getattr(net, "scale", scale or 1)
    res = {"model": model, "task": task, "scale": scale, **profile_model(net, hw, device, threads, runs, latency)}
    res["size_rule"] = size_rule(task) if size is None else "given (--size)"
    lines = [f"{model} {task}" + (f" x{scale}" if scale else "") + f"  input {hw[0]}x{hw[1]} -> output "
             f"{hw[0] * s}x{hw[1] * s}  ({res['device']}, torch {res['torch']})",
             f"  params  {res['params']:,}",
             f"  MACs    {res['macs'] / 1e9:.2f} G ({res['macs_method']}, attention matmuls included)",
             f"  paper   {res['paper_params']:,} params, {res['paper_gmacs']:.2f} G ({res['paper_counting']})"]
    if latency:
        lat = ", ".join(f"{k} {v:.1f} ms (IQR {res['latency_iqr_ms'][k]:.1f})" for k, v in res["latency_ms"].items())
        where = "CUDA events" if str(device).startswith("cuda") else "perf_counter"
        lines.append(f"  latency {lat} (median of {res['runs']}, {where}, {res['threads']} CPU threads)")
        mem = ", ".join(f"{k} {v:.1f}" for k, v in res["peak_memory_mb_by_precision"].items())
        lines.append(f"  memory  {mem} MB ({res['peak_memory_method']})")
    print("\n".join(lines))
    if out is not None:
        write_json(out, res)
        print(f"  wrote {out}")
    return res
