"""`ramit evaluate`: score one model on one degraded test set with the authors' protocol.

Per task (spec/ARCHITECTURE.md §7, paper/PROTOCOL.md §2):

| task | channels scored | border crop |
|---|---|---|
| sr  | Y (BT.601) | scale |
| dr  | Y          | 0 |
| cdn, lle | RGB   | 0 |
| gdn | gray       | 0 |

The restored image is quantised exactly as the official test does (clamp, x255, round half to even)
before scoring; the dataset score is the plain mean of the per-image scores.

Outputs: `out` (per-dataset JSON, docs/DESIGN.md format) and `out` with a `.csv` suffix (one row per
image), both written atomically; optionally the restored PNGs. If an MLflow run is active, or
`$RAMIT_MLFLOW_PARENT_RUN_ID` names a parent run, the scores are logged there too; MLflow trouble only
ever produces a warning.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch
from tqdm import tqdm

from ramit.errors import DataError, RamitError
from ramit.evaluate.inference import check_options, describe_precision, precision_check, resolve_device, restore
from ramit.evaluate.metrics import psnr_ssim, to_uint8
from ramit.io import atomic_open, sha256_file, write_json
from ramit.settings import Setting, parse_setting  # noqa: F401  (re-exported)

PARENT_RUN_ENV = "RAMIT_MLFLOW_PARENT_RUN_ID"
NON_LEARNED = frozenset({"Bicubic", "Identity"})


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float
    seconds: float
    height: int
    width: int


def _to_tensor(lq: np.ndarray) -> torch.Tensor:
    a = np.asarray(lq, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


def score_pairs(
    model: torch.nn.Module,
    pairs: Iterable,
    setting: Setting,
    *,
    tile: int | None = None,
    tile_overlap: int = 32,
    self_ensemble: bool = False,
    precision: str = "fp32",
    device: str | torch.device = "auto",
    save_images: str | os.PathLike | None = None,
    desc: str = "evaluate",
) -> list[ImageScore]:
    """Restore and score every pair (`ramit.data.pairs.Pair`: name, lq float32 HxWxC, hq uint8)."""
    dev = resolve_device(device)
    in_chans = int(getattr(model, "in_chans", 0) or 0)
    pairs = list(pairs)
    rows = []
    for p in tqdm(pairs, desc=desc, unit="img", disable=None, mininterval=2.0):
        x = _to_tensor(p.lq)
        # Set14's `bridge` is gray in an RGB set; the official loader reads it as RGB.
        if in_chans == 3 and x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        t0 = time.perf_counter()
        y = restore(model, x, tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble,
                    precision=precision, device=dev)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        out = to_uint8(y)
        hq = np.asarray(p.hq)
        if hq.ndim == 2:
            hq = hq[..., None]
        if out.shape[:2] != hq.shape[:2]:
            raise DataError(
                f"{p.name}: restored image is {out.shape[0]}x{out.shape[1]} but the reference is "
                f"{hq.shape[0]}x{hq.shape[1]} (is the data directory made for setting {setting.key}?)"
            )
        if save_images is not None:
            from ramit.data.io import write_png

            write_png(Path(save_images) / f"{p.name}.png", out)
        kw = dict(crop_border=setting.crop_border, y_channel=setting.y_channel)
        rows.append(ImageScore(p.name, *psnr_ssim(out, hq, **kw), seconds, *hq.shape[:2]))
    return rows


def _manifest_params(data: Path) -> dict:
    """The `params` block `ramit degrade` records in manifest.json (empty if there is none)."""
    try:
        params = json.loads((data / "manifest.json").read_text()).get("params")
    except (OSError, ValueError, AttributeError):
        return {}
    return params if isinstance(params, dict) else {}


def build_and_load(model: str, setting: Setting, checkpoint: str | os.PathLike | None) -> torch.nn.Module:
    from ramit.models import build_model, load_weights

    net = build_model(model, setting.task, scale=setting.scale if setting.task == "sr" else None)
    learned = model not in NON_LEARNED and any(True for _ in net.parameters())
    if learned:
        if checkpoint is None:
            raise RamitError(f"{model} is a learned model: pass --checkpoint")
        load_weights(net, checkpoint)
    elif checkpoint is not None:
        raise RamitError(f"{model} has no weights; do not pass --checkpoint")
    return net


def _write_csv(path: Path, rows: list[ImageScore]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "psnr", "ssim", "seconds", "height", "width"])
    for r in rows:
        w.writerow([r.name, repr(r.psnr), repr(r.ssim), f"{r.seconds:.4f}", r.height, r.width])
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())


def _mean(xs: list[float]) -> float | None:
    # Strict JSON has no Infinity/NaN (DVC and pandas readers choke on it): an undefined mean is null.
    m = float(np.mean(xs)) if xs else math.nan
    return m if math.isfinite(m) else None


def log_to_mlflow(result: dict) -> bool:
    """Log a result to the active MLflow run, or to a new child of $RAMIT_MLFLOW_PARENT_RUN_ID.

    Without either, nothing is logged (a bare `ramit evaluate` should not create runs). Returns whether
    anything was logged. Never raises: a broken tracking store must not cost a finished evaluation.
    """
    metrics = {k: result[k] for k in ("psnr", "ssim", "seconds") if isinstance(result.get(k), (int, float))}
    try:
        import mlflow

        active = mlflow.active_run()
        if active is not None:
            # Several datasets/settings may share the caller's run: keep their keys apart.
            prefix = f"{result['model']}/{result['setting']}/{result['dataset']}/"
            mlflow.log_metrics({prefix + k: v for k, v in metrics.items()})
            return True
    except Exception as e:  # noqa: BLE001 - tracking trouble is only worth a warning
        warnings.warn(f"MLflow logging skipped: {type(e).__name__}: {e}", stacklevel=2)
        return False
    if not os.environ.get(PARENT_RUN_ENV):
        return False
    from ramit.tracking import mlflow_run  # degrades to a no-op with one warning on store trouble

    name = f"evaluate {result['model']} {result['setting']} {result['dataset']}"
    params = {k: result[k] for k in ("model", "task", "scale", "sigma", "setting", "dataset", "source",
                                     "checkpoint", "checkpoint_sha256", "n", "device", "protocol")}
    with mlflow_run(name, params=params, tags={"ramit.stage": "evaluate"}) as t:
        t.log_metrics(metrics)
        return t.active


def evaluate_cli(
    model: str,
    setting: str,
    data: str | os.PathLike,
    out: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    source: str = "trained",
    save_images: str | os.PathLike | None = None,
    tile: int | None = None,
    tile_overlap: int = 32,
    self_ensemble: bool = False,
    precision: str = "fp32",
    device: str = "auto",
) -> dict:
    """Evaluate, write `<out>` (JSON) and `<out>.csv`, and return the JSON dict."""
    from ramit.data.pairs import load_pairs

    st = parse_setting(setting)
    if source not in ("trained", "released"):
        raise RamitError(f"source must be 'trained' or 'released', got {source!r}")
    data, out = Path(data), Path(out)
    if not data.is_dir():
        raise DataError(f"{data}: test-set directory not found (make it with `ramit degrade`)")
    made = _manifest_params(data)
    if isinstance(made.get("setting"), str) and made["setting"] != st.key:
        raise RamitError(f"{data} was made for setting {made['setting']!r}, not {st.key!r}")
    dev = resolve_device(device)
    check_options(precision, dev, tile, tile_overlap)
    net = build_and_load(model, st, checkpoint)
    pairs = load_pairs(data)
    if not pairs:
        raise DataError(f"{data}: no image pairs found")
    dataset = made.get("dataset") if isinstance(made.get("dataset"), str) else data.name

    t0 = time.perf_counter()
    rows = score_pairs(net, pairs, st, tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble,
                       precision=precision, device=dev, save_images=save_images,
                       desc=f"{model} {st.key} {dataset}")
    seconds = time.perf_counter() - t0
    check = None
    if precision != "fp32":  # the first image again in fp32: a reduced precision must not move the score
        ref = score_pairs(net, pairs[:1], st, tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble,
                          precision="fp32", device=dev, desc="fp32 check")
        check = precision_check(rows[0].name, rows[0].psnr, ref[0].psnr, precision)

    result = {
        "model": model,
        "task": st.task,
        "scale": st.scale if st.task == "sr" else None,
        "sigma": st.sigma,
        "setting": st.key,
        "dataset": dataset,
        "source": source,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "checkpoint_sha256": sha256_file(checkpoint) if checkpoint is not None else None,
        "n": len(rows),
        "psnr": _mean([r.psnr for r in rows]),
        "ssim": _mean([r.ssim for r in rows]),
        "seconds": round(seconds, 3),
        "device": dev.type,
        "protocol": {
            "y_channel": st.y_channel,
            "crop_border": st.crop_border,
            "ensemble": bool(self_ensemble),
            "tile": tile,
            **describe_precision(precision, dev),
        },
    }
    if check is not None:
        result["precision_check"] = check
    _write_csv(out.with_suffix(".csv"), rows)
    write_json(out, result)
    log_to_mlflow(result)
    return result
