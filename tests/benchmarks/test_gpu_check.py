"""benchmarks/gpu_check.py without a GPU: its argument checks, and the --smoke mode, which runs every
part's code path on the CPU (tiny inputs, a tiny RAMiT, a 2-process gloo job killed and resumed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402


def test_arguments(tmp_path, capsys):
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            gpu_check.parse_args([])
        assert "no CUDA device" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--smoke", "--set5", str(tmp_path / "missing")])
    assert "missing: not found" in capsys.readouterr().err
    a = gpu_check.parse_args(["--smoke", "--parts", "train", "--out", str(tmp_path)])
    assert (a.device, a.nproc, a.parts, a.out) == ("cpu", 2, ["train"], tmp_path)


def test_smoke_runs_every_part_on_the_cpu(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    env.pop("RAMIT_MLFLOW_PARENT_RUN_ID", None)
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "all checks passed" in r.stdout
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    lat = res["parts"]["latency"]["results"]
    assert sorted(lat) == ["RAMiT-1/fast", "RAMiT-slimSR/fast", "RAMiT/fast", "RAMiT/reference"]
    assert all(v["latency_ms"]["fp32"] > 0 and v["output"] == [32, 32] for v in lat.values())
    s5 = res["parts"]["set5"]
    assert s5["ok"] and s5["images"] == 2 and s5["delta_db_device_vs_cpu"] == 0
    tr = res["parts"]["train"]
    assert tr["ok"] and tr["nproc"] == 2 and tr["checks"] == {"killed_mid_run": True, "resumed_to_the_end": True,
                                                               "history_complete_once": True}
    assert 6 <= tr["first"]["checkpoint"] < 12 and tr["resumed"]["returncode"] == 0
    assert tr["first"]["peak_rss_mb"] > 100  # sampled over the job's processes
    assert (tmp_path / "train_killed.log").is_file() and (tmp_path / "train_resumed.log").is_file()
