"""`ramit evaluate --compile`: the compiled network scores what the eager one scores, records that it was
compiled, and runs on frozen, oneDNN-prepacked weights. Slow (`make test-slow`): compiling RAMiT-1 takes
minutes on 2 cores. (Frozen graphs hold oneDNN tensors, which Inductor cannot pickle: unlike training's,
they are not kept in the on-disk cache, so every evaluation process compiles again.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ramit.config import PARAMS_DIR
from ramit.evaluate.evaluate import evaluate_cli

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


def test_compiled_evaluation_scores_like_eager_on_frozen_onednn_weights(butterfly_x2, golden_dir, tmp_path,
                                                                       monkeypatch):
    from torch._dynamo.utils import counters
    from typer.testing import CliRunner

    from ramit.cli import app

    ckpt = golden_dir / "RAMiT-1_x2" / "state_dict.pt"
    eager = evaluate_cli(model="RAMiT-1", setting="x2", data=butterfly_x2, out=tmp_path / "eager.json",
                         checkpoint=ckpt, source="released", device="cpu")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.delenv("RAMIT_MLFLOW_PARENT_RUN_ID", raising=False)
    counters.clear()
    out = tmp_path / "compiled.json"
    r = CliRunner().invoke(app, ["evaluate", "--model", "RAMiT-1", "--setting", "x2", "--data", str(butterfly_x2),
                                 "--out", str(out), "--checkpoint", str(ckpt), "--source", "released",
                                 "--device", "cpu", "--compile"])
    assert r.exit_code == 0, r.output
    compiled = json.loads(out.read_text())

    assert eager["compiled"] is False and compiled["compiled"] is True and compiled["n"] == eager["n"] == 1
    # Inductor reorders float sums; on the 8-bit output that moves a PSNR by far less than 1e-3 dB.
    assert compiled["psnr"] == pytest.approx(eager["psnr"], abs=1e-3)
    assert compiled["ssim"] == pytest.approx(eager["ssim"], abs=1e-5)
    assert compiled["protocol"] == eager["protocol"]
    # The point of compiling for inference: weights frozen and prepacked for oneDNN (without freezing,
    # Inductor calls torch's im2col convolution and is no faster than eager).
    assert counters["inductor"]["mkldnn_conv_weight_pack_matcher_count"] > 0, dict(counters["inductor"])
