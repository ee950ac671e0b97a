"""`evaluate_cli` end to end: RAMiT-1 x2 (official weights) on Set5 made from the HR by our resize.

The scores are re-derived by a second route that shares no code with ours beyond the restored PNGs:
Pillow decoding, scikit-image's BT.601 `rgb2ycbcr`, `peak_signal_noise_ratio` and
`structural_similarity`. Evaluation is run once for the whole module (it is the slow part).
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ramit.config import PARAMS_DIR
from ramit.errors import RamitError
from ramit.evaluate.evaluate import evaluate_cli, log_to_mlflow, parse_setting
from ramit.io import sha256_file


@pytest.fixture(scope="module")
def set5_x2(tmp_path_factory, datasets_mirror):
    from ramit.data.degrade import degrade_dataset
    from ramit.data.fetch import fetch_datasets

    root = tmp_path_factory.mktemp("set5")
    reg = PARAMS_DIR / "datasets.yaml"
    fetch_datasets(["Set5"], data_dir=root / "raw", mirror=str(datasets_mirror), registry=reg)
    return degrade_dataset("x2", "Set5", data_dir=root / "raw", out=root / "x2" / "Set5", registry=reg)


@pytest.fixture(scope="module")
def evaluated(set5_x2, golden_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    ckpt = golden_dir / "RAMiT-1_x2" / "state_dict.pt"
    out = root / "results" / "released" / "RAMiT-1" / "x2" / "Set5.json"
    res = evaluate_cli(model="RAMiT-1", setting="x2", data=set5_x2, out=out, checkpoint=ckpt, source="released",
                       save_images=root / "png", device="cpu")
    return res, out, root / "png", ckpt


def _read_csv(path):
    with open(path, newline="") as fh:
        return {r["name"]: r for r in csv.DictReader(fh)}


def test_json_follows_the_design_contract(evaluated):
    res, out, _, ckpt = evaluated
    on_disk = json.loads(out.read_text())
    assert on_disk == res
    assert list(on_disk) == ["model", "base_model", "task", "scale", "sigma", "setting", "dataset", "source",
                             "checkpoint", "checkpoint_sha256", "n", "psnr", "ssim", "seconds", "device", "host",
                             "protocol", "compiled"]
    assert set(on_disk["host"]) == {"device", "device_name", "torch", "cuda", "python", "git_commit"}
    assert (on_disk["model"], on_disk["task"], on_disk["scale"], on_disk["sigma"]) == ("RAMiT-1", "sr", 2, None)
    assert (on_disk["dataset"], on_disk["source"], on_disk["n"], on_disk["device"]) == ("Set5", "released", 5, "cpu")
    assert on_disk["checkpoint_sha256"] == sha256_file(ckpt)
    assert on_disk["protocol"] == {"y_channel": True, "crop_border": 2, "ensemble": False, "tile": None,
                                   "precision": "fp32", "autocast_dtype": None, "tf32_matmul": False,
                                   "tf32_cudnn_conv": False}
    rows = _read_csv(out.with_suffix(".csv"))
    assert sorted(rows) == ["baby", "bird", "butterfly", "head", "woman"]
    assert on_disk["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows.values()]), abs=1e-12)
    assert on_disk["ssim"] == pytest.approx(np.mean([float(r["ssim"]) for r in rows.values()]), abs=1e-12)
    assert not list(out.parent.glob(".*"))  # no temporaries left behind


def test_scores_match_an_independent_scikit_image_route(evaluated, set5_x2):
    res, out, png, _ = evaluated
    rows = _read_csv(out.with_suffix(".csv"))
    for name, row in rows.items():
        sr = np.asarray(Image.open(png / f"{name}.png").convert("RGB"))
        hr = np.asarray(Image.open(set5_x2 / "HQ" / f"{name}.png").convert("RGB"))
        assert sr.shape == hr.shape == (int(row["height"]), int(row["width"]), 3)
        ys, yh = rgb2ycbcr(sr)[2:-2, 2:-2, 0], rgb2ycbcr(hr)[2:-2, 2:-2, 0]
        p = peak_signal_noise_ratio(yh, ys, data_range=255)
        s = structural_similarity(yh, ys, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                  data_range=255)
        assert float(row["psnr"]) == pytest.approx(p, abs=0.01), name
        assert float(row["ssim"]) == pytest.approx(s, abs=1e-4), name


def test_non_learned_baseline_and_margin_over_it(evaluated, set5_x2, golden_dir, tmp_path):
    # Bicubic runs without weights and must score what MATLAB-bicubic upsampling of the uint8 LR
    # scores (computed here without the model/inference path); the official x2 model must beat it by
    # several dB (sanity of weights, normalisation and padding).
    from ramit.data.degrade import imresize
    from ramit.data.pairs import load_pairs
    from ramit.evaluate.metrics import psnr

    from typer.testing import CliRunner

    from ramit.cli import app

    # Through the command line, so the CLI-to-API wiring is exercised too.
    r = CliRunner().invoke(app, ["evaluate", "--model", "Bicubic", "--setting", "x2", "--data", str(set5_x2),
                                 "--out", str(tmp_path / "bicubic.json"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    bic = json.loads((tmp_path / "bicubic.json").read_text())
    assert (bic["checkpoint"], bic["checkpoint_sha256"], bic["n"]) == (None, None, 5)
    direct = [psnr(imresize(np.round(p.lq * 255).astype(np.uint8), 2), p.hq, 2, True) for p in load_pairs(set5_x2)]
    assert bic["psnr"] == pytest.approx(np.mean(direct), abs=0.01)
    assert evaluated[0]["psnr"] > bic["psnr"] + 3.0
    r = CliRunner().invoke(app, ["evaluate", "--model", "Bicubic", "--setting", "x2", "--data", str(set5_x2),
                                 "--out", str(tmp_path / "b2.json"), "--device", "cpu",
                                 "--checkpoint", str(golden_dir / "RAMiT-1_x2" / "state_dict.pt")])
    assert r.exit_code == 2 and "has no weights" in r.output


def test_evaluation_is_deterministic(evaluated, set5_x2, golden_dir, tmp_path):
    # Rerun on a one-image copy of the set (the smallest image, to keep it cheap).
    res, out, png, ckpt = evaluated
    sub = tmp_path / "Set5"
    for d in ("HQ", "LQ"):
        (sub / d).mkdir(parents=True)
        shutil.copy(set5_x2 / d / "head.png", sub / d / "head.png")
    out2 = tmp_path / "Set5.json"
    evaluate_cli(model="RAMiT-1", setting="x2", data=sub, out=out2, checkpoint=ckpt, source="released",
                 save_images=tmp_path / "png", device="cpu")
    a, b = _read_csv(out.with_suffix(".csv"))["head"], _read_csv(out2.with_suffix(".csv"))["head"]
    assert (a["psnr"], a["ssim"]) == (b["psnr"], b["ssim"])
    assert (tmp_path / "png" / "head.png").read_bytes() == (png / "head.png").read_bytes()


def test_setting_keys():
    assert parse_setting("x3") == parse_setting("x3")
    s = parse_setting("x4")
    assert (s.task, s.scale, s.sigma, s.y_channel, s.crop_border, s.model_key) == ("sr", 4, None, True, 4, "x4")
    s = parse_setting("cdn_s25")
    assert (s.task, s.scale, s.sigma, s.y_channel, s.crop_border, s.model_key) == ("cdn", 1, 25, False, 0, "cdn")
    s = parse_setting("gdn_s50")
    assert (s.task, s.sigma, s.y_channel, s.crop_border) == ("gdn", 50, False, 0)
    s = parse_setting("dr")
    assert (s.task, s.y_channel, s.crop_border) == ("dr", True, 0)
    s = parse_setting("lle")
    assert (s.task, s.y_channel, s.crop_border) == ("lle", False, 0)
    for bad in ("x5", "cdn", "gdn_15", "sr", ""):
        with pytest.raises(RamitError, match="unknown setting"):
            parse_setting(bad)


def test_wrong_inputs_are_clear_errors(set5_x2, tmp_path, golden_dir):
    ckpt = golden_dir / "RAMiT-1_x2" / "state_dict.pt"
    with pytest.raises(RamitError, match="made for setting 'x2', not 'x3'"):
        evaluate_cli(model="RAMiT-1", setting="x3", data=set5_x2, out=tmp_path / "a.json", checkpoint=ckpt,
                     device="cpu")
    with pytest.raises(RamitError, match="pass --checkpoint"):
        evaluate_cli(model="RAMiT-1", setting="x2", data=set5_x2, out=tmp_path / "a.json", device="cpu")
    with pytest.raises(RamitError, match="test-set directory not found"):
        evaluate_cli(model="RAMiT-1", setting="x2", data=tmp_path / "nope", out=tmp_path / "a.json",
                     checkpoint=ckpt, device="cpu")
    assert not (tmp_path / "a.json").exists()


def test_mlflow_child_run_under_parent(tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    # A file store: the same tracking API as the project's sqlite store without its ~10 s of schema
    # migrations per fresh database.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("t")
    parent = client.create_run(exp).info.run_id
    result = {"model": "RAMiT-1", "task": "sr", "scale": 2, "sigma": None, "setting": "x2", "dataset": "Set5",
              "source": "released", "checkpoint": "c.pth", "checkpoint_sha256": None, "n": 5, "psnr": 38.1,
              "ssim": 0.961, "seconds": 3.0, "device": "cpu",
              "protocol": {"y_channel": True, "crop_border": 2, "ensemble": False, "tile": None, "precision": "fp32"}}
    monkeypatch.delenv("RAMIT_MLFLOW_PARENT_RUN_ID", raising=False)
    assert log_to_mlflow(result) is False  # no active run, no parent: nothing is created
    monkeypatch.setenv("RAMIT_MLFLOW_PARENT_RUN_ID", parent)
    assert log_to_mlflow(result) is True
    children = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert len(children) == 1
    assert children[0].data.metrics["psnr"] == pytest.approx(38.1)
    assert children[0].data.params["setting"] == "x2"
    with mlflow.start_run(run_id=parent):
        assert log_to_mlflow(result) is True
    assert client.get_run(parent).data.metrics["RAMiT-1/x2/Set5/psnr"] == pytest.approx(38.1)


def test_mlflow_trouble_never_fails_the_evaluation(tmp_path, monkeypatch, capsys):
    # A tracking server that is down (nothing listens on the discard port): a warning, no exception.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    import ramit.tracking

    monkeypatch.setattr(ramit.tracking, "_warned", False)  # it warns once per process
    monkeypatch.setenv("RAMIT_MLFLOW_PARENT_RUN_ID", "0123456789abcdef")
    result = {"model": "M", "task": "sr", "scale": 2, "sigma": None, "setting": "x2", "dataset": "D",
              "source": "trained", "checkpoint": None, "checkpoint_sha256": None, "n": 1, "psnr": 30.0,
              "ssim": 0.9, "seconds": 1.0, "device": "cpu", "protocol": {}}
    assert log_to_mlflow(result) is False
    assert "MLflow" in capsys.readouterr().err
