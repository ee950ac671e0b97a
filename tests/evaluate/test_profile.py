"""`ramit profile`: params, MACs (attention included), the latency protocol (warm-up until stable,
median and IQR, sizes), JSON. The protocol's logic is checked with a scripted clock (a list of times)
passed where the real timer goes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from ramit.evaluate.profile import (CPU_WARMUP, CUDA_WARMUP, WarmupRule, default_size, measure_latency,
                                    parse_size, profile_model, timed_runs, warm_up)
from ramit.models import build_model
from ramit.models.complexity import count_params


def clock(times):
    it = iter(times)
    return lambda: next(it)


def test_profile_cli_writes_json(tmp_path):
    out = tmp_path / "profile" / "RAMiT-1" / "x2.json"
    proc = subprocess.run([sys.executable, "-m", "ramit.cli", "profile", "--model", "RAMiT-1", "--task", "sr",
                           "--scale", "2", "--size", "64x64", "--runs", "1", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert "823,164" in proc.stdout and "MACs" in proc.stdout
    assert res["params"] == count_params(build_model("RAMiT-1", "sr", scale=2)) == 823164
    assert res["input_size"] == [64, 64] and res["output_size"] == [128, 128]
    assert res["macs_method"] == "ptflops-aten" and res["latency_ms"]["fp32"] > 0
    # Attention matmuls at 64x64 (20 blocks; SPSA 3 heads x 64 keys x d=16, CHSA 16x16 per pixel, x2 for A.v):
    attn = sum(n * (2 * 3 * s * s * 64 * 16 + 2 * 16 * 16 * s * s) for n, s in zip((6, 4, 4, 6), (64, 32, 16, 64)))
    assert res["macs"] > attn > 0.1 * res["macs"]
    assert res["device"] == "cpu" and res["threads"] == 1 and "torch" in res
    lp = res["latency_protocol"]
    assert lp["timer"] == "time.perf_counter" and lp["inference_mode"] is True and lp["runs"] == res["runs"] == 1
    fp32 = lp["per_precision"]["fp32"]
    assert (fp32["tf32_matmul"], fp32["tf32_cudnn_conv"], fp32["autocast_dtype"]) == (False, False, None)
    assert fp32["warmup"]["runs"] >= CPU_WARMUP.min_runs and fp32["median_ms"] == pytest.approx(res["latency_ms"]["fp32"])
    assert res["latency_iqr_ms"]["fp32"] == 0 and res["peak_memory_mb_by_precision"]["fp32"] == res["peak_memory_mb"]
    assert res["size_rule"] == "given (--size)"


def test_size_table_covers_a_1280x720_output():
    assert default_size("sr", 2) == (360, 640)
    assert default_size("sr", 3) == (240, 427)  # -> 720x1281: 1280/3 is not whole; never a smaller frame
    assert default_size("sr", 4) == (180, 320)
    for s in (2, 3, 4):
        h, w = default_size("sr", s)
        assert h * s >= 720 and w * s >= 1280 and (h - 1) * s < 720 and (w - 1) * s < 1280
    for task in ("cdn", "gdn", "lle", "dr"):
        assert default_size(task, None) == (256, 256)
    assert parse_size(None, "sr", 3) == (240, 427) and parse_size("48x80", "sr", 2) == (48, 80)
    with pytest.raises(ValueError, match="HxW"):
        parse_size("48", "sr", 2)


def test_warm_up_stops_when_two_window_medians_agree():
    rule = WarmupRule(min_runs=2, max_runs=50, window=2, tolerance=0.05)
    # window medians: (100,80)=90 vs (60,55)=57.5; 70 vs 52.5; 57.5 vs 50; 52.5 vs 50 (4.8% < 5%): stop at 7
    w = warm_up(clock([100, 80, 60, 55, 50, 50, 50, 999]), rule)
    assert w == {"runs": 7, "stable": True, "last_change": pytest.approx(2.5 / 52.5, abs=1e-5)}
    # at least min_runs even when stable at once
    assert warm_up(clock([5.0] * 20), WarmupRule(10, 50, 2, 0.02))["runs"] == 10
    # an unsteady clock: give up at max_runs and say so
    w = warm_up(clock([10, 30] * 30), WarmupRule(2, 12, 1, 0.02))
    assert w["runs"] == 12 and w["stable"] is False
    assert CUDA_WARMUP.window == 10 and CUDA_WARMUP.tolerance == 0.02 and CUDA_WARMUP.min_runs >= 10


def test_timed_runs_report_median_and_iqr_after_the_warm_up():
    assert timed_runs(clock([5, 1, 4, 2, 3]), 5) == {"median_ms": 3, "q1_ms": 2, "q3_ms": 4, "iqr_ms": 2,
                                                     "min_ms": 1, "runs": 5}
    m = measure_latency(clock([9, 7, 5, 5, 5, 5] + list(range(1, 52))), 51, WarmupRule(2, 20, 2, 0.02))
    assert m["warmup"]["runs"] == 6  # the timed runs start after the warm-up: 1..51
    assert m["median_ms"] == 26 and m["q1_ms"] == 13.5 and m["q3_ms"] == 38.5 and m["min_ms"] == 1


def test_threads_are_set_for_the_runs_and_restored():
    before = torch.get_num_threads()
    net = build_model("Bicubic", "sr", scale=2)
    res = profile_model(net, (16, 16), threads=1, runs=2)
    assert res["threads"] == 1 and torch.get_num_threads() == before
    assert res["output_size"] == [32, 32] and res["latency_protocol"]["warmup_rule"]["window"] == CPU_WARMUP.window
