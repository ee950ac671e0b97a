"""`ramit profile` end to end through the CLI: params, MACs (attention included), latency, JSON."""

from __future__ import annotations

import json
import subprocess
import sys

from ramit.evaluate.profile import default_size, parse_size
from ramit.models import build_model
from ramit.models.complexity import count_params


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


def test_sizes():
    assert default_size("sr", 2) == (360, 640) and default_size("sr", 3) == (240, 426)
    assert default_size("cdn", None) == (256, 256)
    assert parse_size("48x80", "sr", 2) == (48, 80)
