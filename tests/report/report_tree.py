"""Builders for a small but format-true pipeline output tree (results, profiles, runs, degraded data, images)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

HQ = 96  # HQ side; x2 inputs are 48


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)


def _scene(seed: int, c: int = 3) -> np.ndarray:
    """Smooth gradients plus a textured square, so crops and plots have real content."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HQ, 0:HQ]
    base = np.stack([(xx * 2 + k * 40) % 256 for k in range(c)], -1).astype(np.float64)
    base[50:90, 10:50] += rng.normal(0, 60, (40, 40, c))
    return base.clip(0, 255).astype(np.uint8)


def result(root: Path, source, model, setting, dataset, psnr, ssim, *, n=5, per_image=None, **extra):
    task = "sr" if setting.startswith("x") else setting.split("_")[0]
    sigma = int(setting.split("_s")[1]) if "_s" in setting else None
    obj = {"model": model, "task": task, "scale": int(setting[1]) if task == "sr" else 1, "sigma": sigma,
           "setting": setting, "dataset": dataset, "source": source, "checkpoint": "x", "checkpoint_sha256": "0",
           "n": n, "psnr": psnr, "ssim": ssim, "seconds": 1.0, "device": "cpu",
           "protocol": {"y_channel": task == "sr", "crop_border": 2 if task == "sr" else 0, "ensemble": False,
                        "tile": None, "precision": "fp32"}}
    obj.update(extra)
    d = root / "results" / source / model / setting
    _json(d / f"{dataset}.json", obj)
    if per_image:
        lines = ["name,psnr,ssim"] + [f"{k},{v},0.9" for k, v in per_image.items()]
        (d / f"{dataset}.csv").write_text("\n".join(lines) + "\n")


def profile(root: Path, model, key, params, macs, size=(48, 48)):
    _json(root / "results" / "profile" / model / f"{key}.json",
          {"model": model, "task": "sr", "scale": 2, "input_size": list(size), "params": params, "macs": macs,
           "macs_method": "ptflops-aten", "device": "cpu", "threads": 2, "latency_ms": {"fp32": 1.0},
           "peak_memory_mb": 1.0})


def make_tree(root: Path) -> Path:
    # --- SR x2, trained: three models on two sets (Urban100 deliberately listed first on disk order)
    for model, p5, pu in (("Bicubic", 33.66, 26.88), ("SwinIR-light", 38.14, 32.76), ("RAMiT", 37.95, 32.90)):
        result(root, "trained", model, "x2", "Set5", p5, 0.9601 if model == "RAMiT" else 0.93,
               per_image={"img": p5 + 0.5, "other": p5 - 0.5})
        result(root, "trained", model, "x2", "Urban100", pu, 0.9300)
    for model, p, prm, mac in (("RAMiT", 0, 939844, 163.42e9), ("SwinIR-light", 0, 910152, 244.2e9)):
        profile(root, model, "x2", prm, mac)
    # --- ablations (x2): delta to RAMiT on Set5 is -0.12 and +0.03
    result(root, "trained", "RAMiT-abl-no-helper", "x2", "Set5", 37.83, 0.9595)
    result(root, "trained", "RAMiT-abl-spsa-only", "x2", "Set5", 37.98, 0.9603)
    profile(root, "RAMiT-abl-no-helper", "x2", 930000, 160e9)
    # --- released weights
    result(root, "released", "RAMiT-1", "x2", "Set5", 38.05, 0.9606)
    # --- colour denoising: one blind model, three sigmas, two sets (written in reverse order)
    for sigma, base in ((50, 28.3), (25, 31.4), (15, 34.2)):
        for ds, off in (("Kodak24", 0.9), ("CBSD68", 0.0)):
            result(root, "trained", "RAMiT", f"cdn_s{sigma}", ds, base + off, 0.88)
            result(root, "trained", "DnCNN", f"cdn_s{sigma}", ds, base + off - 0.4, 0.86)
    profile(root, "RAMiT", "cdn", 934651, 43.18e9, size=(256, 256))

    # --- degraded data + restored images for the strips
    gt = _scene(0)
    _png(root / "data/degraded/x2/Set5/HQ/img.png", gt)
    _png(root / "data/degraded/x2/Set5/HQ/other.png", _scene(1))
    _png(root / "data/degraded/x2/Set5/LQ/img.png", gt[::2, ::2])
    for m, s in (("RAMiT", 3), ("SwinIR-light", 6), ("Bicubic", 20)):
        noisy = (gt.astype(int) + np.random.default_rng(s).integers(-s, s + 1, gt.shape)).clip(0, 255)
        _png(root / f"results/trained/{m}/x2/Set5_images/img.png", noisy.astype(np.uint8))
    _png(root / "results/trained/RAMiT/x2/Set5_images/other.png", _scene(1))
    gtc = _scene(2)
    _png(root / "data/degraded/cdn_s50/CBSD68/HQ/a.png", gtc)
    noisy = gtc / 255.0 + np.random.default_rng(0).normal(0, 50 / 255, gtc.shape)
    (root / "data/degraded/cdn_s50/CBSD68/LQ").mkdir(parents=True)
    np.save(root / "data/degraded/cdn_s50/CBSD68/LQ/a.npy", noisy.astype(np.float32))
    _png(root / "results/trained/RAMiT/cdn_s50/CBSD68_images/a.png", gtc)

    # --- training runs
    it = np.arange(0, 2000, 10)
    for m, scale in (("RAMiT", 1.0), ("SwinIR-light", 1.3)):
        d = root / "runs" / m / "x2"
        d.mkdir(parents=True)
        loss = scale * (0.05 + 0.2 * np.exp(-it / 400)) * (1 + 0.1 * np.sin(it))
        (d / "history.csv").write_text("iteration,loss,lr\n" + "".join(f"{i},{v:.6f},0.0004\n" for i, v in zip(it, loss)))
        vit = np.arange(500, 2001, 500)
        (d / "val.csv").write_text("iteration,psnr,ssim\n" + "".join(f"{i},{30 + i / 500 / scale:.4f},0.9\n" for i in vit))
    (root / "runs/RAMiT/x2/summary.json").write_text("{}")

    (root / "refs.yaml").write_text(
        "references:\n"
        "  - {model: RAMiT, setting: x2, dataset: Set5, psnr: 38.00, ssim: 0.9602, citation: 'paper T2'}\n"
        "  - {model: RAMiT-1, setting: x2, dataset: Set5, psnr: 38.05, citation: 'paper T2'}\n"
        "  - {model: RAMiT, setting: x3, dataset: Set5, psnr: 34.4, citation: 'paper T2'}\n")
    return root


def md_rows(path: Path) -> dict[str, list[str]]:
    """Markdown table body -> {model: cells}."""
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("| ") and not line.startswith("| Model") and not line.startswith("| :"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def build(root: Path, out: str = "reports", **kw):
    from ramit.report.build import build_report

    args = dict(results=root / "results", runs=root / "runs", data=root / "data/degraded", out=root / out,
                params=root / "run.yaml", references=root / "refs.yaml", log_mlflow=False)
    args.update(kw)
    return build_report(**args)


def run_plan(root: Path, *, name="embedded", smoke=True, models=None, released=("RAMiT-1_X2.pth",),
             released_sets=("Set5",), test_sets=("Set5",), self_ensemble=False) -> Path:
    """A complete, valid run plan (ramit.pipeline.RunPlan) at root/run.yaml."""
    import yaml

    models = models or {"RAMiT": {"keys": ["x2"]}, "SwinIR-light": {"keys": ["x2"]},
                        "Bicubic": {"keys": ["x2"], "trained": False}}
    plan = {"name": name, "description": f"{name} plan for the report tests",
            "train_data": {"sr": ["EmbeddedTrain"]}, "test_data": {"sr": list(test_sets)},
            "recipes": {"x2": {"recipe": "params/train/embedded.yaml"}}, "models": models,
            "evaluate": {"self_ensemble": list(models) if self_ensemble is True else list(self_ensemble or [])},
            "released": {"checkpoints": list(released), "test_data": {"sr": list(released_sets)}},
            "report": {"smoke_scale": smoke}}
    (root / "run.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    return root / "run.yaml"


def summary(root: Path, model, key, *, iterations, seconds=12.5, patch=32, batch=4, **extra):
    task = "sr" if key.startswith("x") else key
    obj = {"model": model, "task": task, "scale": int(key[1]) if task == "sr" else None, "model_key": key,
           "iterations": iterations, "seconds": seconds,
           "recipe": {"name": "embedded", "stages": [{"epoch": 0, "patch": patch, "batch": batch}]}}
    obj.update(extra)
    _json(root / "runs" / model / key / "summary.json", obj)
