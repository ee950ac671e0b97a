"""`ramit profile`: parameters, MACs (attention included), latency and peak memory of one model.

Latency: CPU uses `torch.set_num_threads(threads)`, warm-up runs, then the median of `runs` timed
forward passes (`time.perf_counter`); CUDA uses CUDA events, fp32 and bf16 autocast.
Peak memory: CUDA reports `torch.cuda.max_memory_allocated` during the fp32 runs (tensor memory only).
CPU reports how far the forward passes raised the process's peak resident set size
(`resource.getrusage(...).ru_maxrss`, measured before anything else ran the model at this size): it is
the working set the forward needs beyond what the process already held, a lower bound when the process
had peaked higher before.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ramit.io import write_json


def default_size(task: str, scale: Optional[int]) -> tuple[int, int]:
    """SR: the LR input of a 1280x720 output, (720//s, 1280//s); other tasks 256x256."""
    if task == "sr":
        return 720 // scale, 1280 // scale
    return 256, 256


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


def _rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20  # macOS reports bytes


@torch.no_grad()
def _cpu_latency(model, x, runs: int, warmup: int) -> tuple[float, float]:
    rss0 = _rss_mb()
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), max(0.0, _rss_mb() - rss0)


@torch.no_grad()
def _cuda_latency(model, x, runs: int, warmup: int, dtype: Optional[torch.dtype]) -> float:
    ctx = torch.autocast("cuda", dtype=dtype) if dtype is not None else torch.autocast("cuda", enabled=False)
    with ctx:
        for _ in range(warmup):
            model(x)
        torch.cuda.synchronize()
        times = []
        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(x)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    return statistics.median(times)


def paper_counts(model: nn.Module, input_size: tuple[int, int], macs: int) -> dict:
    """Params and Mult-Adds as the model's own paper counted them (to compare with its printed numbers)."""
    from ramit.models.complexity import counting_rule, paper_gmacs, paper_input_size, paper_params

    size = paper_input_size(model)
    # same rule and size as `macs` (RAMiT and the convolution-only baselines): no second count
    same = getattr(model, "paper_convention", None) is None and tuple(size) == tuple(input_size)
    return {"paper_params": paper_params(model), "paper_macs_input_size": list(size),
            "paper_gmacs": round(macs / 1e9 if same else paper_gmacs(model), 3), "paper_counting": counting_rule(model)}


def profile_model(model: nn.Module, input_size: tuple[int, int], device: str = "cpu", threads: int = 2,
                  runs: int = 5, latency: bool = True, warmup: int = 2) -> dict:
    """Params, MACs and (optionally) fp32/bf16 latency and peak memory for one [1, C, h, w] input."""
    from ramit.models.complexity import MACS_METHOD, count_macs, count_params

    h, w = input_size
    c = getattr(model, "in_chans", 3)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    model = model.eval().to(dev)
    result: dict = {"input_size": [h, w], "params": count_params(model)}
    if dev.type == "cpu":
        torch.set_num_threads(threads)
    if latency:
        x = torch.rand(1, c, h, w, device=dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
            fp32 = _cuda_latency(model, x, runs, warmup, None)
            peak = torch.cuda.max_memory_allocated(dev) / 2**20
            bf16 = _cuda_latency(model, x, runs, warmup, torch.bfloat16)
            result["latency_ms"] = {"fp32": round(fp32, 3), "bf16": round(bf16, 3)}
            result["peak_memory_mb"] = round(peak, 1)
            result["peak_memory_method"] = "torch.cuda.max_memory_allocated (fp32)"
        else:
            fp32, peak = _cpu_latency(model, x, runs, warmup)
            result["latency_ms"] = {"fp32": round(fp32, 3)}
            result["peak_memory_mb"] = round(peak, 1)
            result["peak_memory_method"] = "increase of process peak RSS (getrusage ru_maxrss) over the runs"
    result["macs"] = count_macs(model, (c, h, w))
    result["macs_method"] = MACS_METHOD
    result.update(paper_counts(model, (h, w), result["macs"]))
    result["device"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    result["threads"] = threads if dev.type == "cpu" else None
    result["runs"] = runs if latency else 0
    result["torch"] = torch.__version__
    return result


def profile_cli(model: str, task: str, scale: Optional[int], size: Optional[str], device: str, threads: int,
                runs: int, latency: bool, out: Optional[Path]) -> dict:
    from ramit.models import build_model

    hw = parse_size(size, task, scale)
    net = build_model(model, task, scale=scale)
    s = getattr(net, "scale", scale or 1)
    res = {"model": model, "task": task, "scale": scale, **profile_model(net, hw, device, threads, runs, latency)}
    res["output_size"] = [hw[0] * s, hw[1] * s]
    lines = [f"{model} {task}" + (f" x{scale}" if scale else "") + f"  input {hw[0]}x{hw[1]} -> output "
             f"{hw[0] * s}x{hw[1] * s}  ({res['device']}, torch {res['torch']})",
             f"  params  {res['params']:,}",
             f"  MACs    {res['macs'] / 1e9:.2f} G ({res['macs_method']}, attention matmuls included)",
             f"  paper   {res['paper_params']:,} params, {res['paper_gmacs']:.2f} G ({res['paper_counting']})"]
    if latency:
        lat = ", ".join(f"{k} {v:.1f} ms" for k, v in res["latency_ms"].items())
        where = f"{threads} threads" if res["threads"] else "CUDA events"
        lines.append(f"  latency {lat} (median of {runs}, {where})")
        lines.append(f"  memory  {res['peak_memory_mb']:.1f} MB ({res['peak_memory_method']})")
    print("\n".join(lines))
    if out is not None:
        write_json(out, res)
        print(f"  wrote {out}")
    return res
