"""`ramit evaluate --compile`: the compiled network scores what the eager one scores, records that it was
compiled, and a second process finds the compiled graph in the on-disk Inductor cache instead of
compiling again. Slow (`make test-slow`): the first compile of RAMiT-1 takes minutes on 2 cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ramit.config import PARAMS_DIR
from ramit.evaluate.evaluate import evaluate_cli

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def butterfly_x2(tmp_path_factory, datasets_mirror) -> Path:
    """Set5 x2 made by our resize, cut down to one image (every new input size compiles again)."""
    from ramit.data.degrade import degrade_dataset
    from ramit.data.fetch import fetch_datasets

    root = tmp_path_factory.mktemp("set5")
    reg = PARAMS_DIR / "datasets.yaml"
    fetch_datasets(["Set5"], data_dir=root / "raw", mirror=str(datasets_mirror), registry=reg)
    data = Path(degrade_dataset("x2", "Set5", data_dir=root / "raw", out=root / "x2" / "Set5", registry=reg))
    for sub in ("LQ", "HQ"):
        for f in (data / sub).iterdir():
            if f.stem != "butterfly":
                f.unlink()
    return data


def _cache_entries(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def _evaluate_compiled(data: Path, ckpt: Path, out: Path, cache: Path) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "2",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("RAMIT_MLFLOW_PARENT_RUN_ID", None)
    cmd = [sys.executable, "-m", "ramit.cli", "evaluate", "--model", "RAMiT-1", "--setting", "x2", "--data", str(data),
           "--out", str(out), "--checkpoint", str(ckpt), "--source", "released", "--device", "cpu", "--compile"]
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())


def test_compiled_evaluation_scores_like_eager_and_reuses_the_cache(butterfly_x2, golden_dir, tmp_path):
    ckpt = golden_dir / "RAMiT-1_x2" / "state_dict.pt"
    eager = evaluate_cli(model="RAMiT-1", setting="x2", data=butterfly_x2, out=tmp_path / "eager.json",
                         checkpoint=ckpt, source="released", device="cpu")
    cache = tmp_path / "inductor"
    first = _evaluate_compiled(butterfly_x2, ckpt, tmp_path / "first.json", cache)
    after_first = _cache_entries(cache)
    second = _evaluate_compiled(butterfly_x2, ckpt, tmp_path / "second.json", cache)

    assert eager["compiled"] is False and first["compiled"] is True and second["compiled"] is True
    assert first["n"] == second["n"] == eager["n"] == 1
    # Inductor reorders float sums; on the 8-bit output that moves a PSNR by far less than 1e-3 dB.
    for res in (first, second):
        assert res["psnr"] == pytest.approx(eager["psnr"], abs=1e-3)
        assert res["ssim"] == pytest.approx(eager["ssim"], abs=1e-5)
    assert first["protocol"] == eager["protocol"]
    # The first process wrote the compiled graph; the second found it and wrote nothing new.
    assert any("fxgraph" in e for e in after_first), sorted(after_first)[:20]
    assert _cache_entries(cache) == after_first
