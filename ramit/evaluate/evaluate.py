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
import sys
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
from ramit.models.names import NON_LEARNED
from ramit.settings import Setting, parse_setting  # noqa: F401  (re-exported)

PARENT_RUN_ENV = "RAMIT_MLFLOW_PARENT_RUN_ID"


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
    crops_dir: str | os.PathLike | None = None,
    crops: int = 0,
    desc: str = "evaluate",
) -> list[ImageScore]:
    """Restore and score every pair (`ramit.data.pairs.Pair`: name, lq float32 HxWxC, hq uint8).

    `save_images` keeps every restored PNG; otherwise `crops_dir` keeps a crop of the first `crops`
    images (the report's visual strip; the region is chosen from the reference alone)."""
    from ramit.evaluate.crops import CROP_SIZE, pick_images, save_crops

    dev = resolve_device(device)
    in_chans = int(getattr(model, "in_chans", 0) or 0)
    pairs = list(pairs)
    cropped = set(pick_images([p.name for p in pairs], crops)) if crops_dir is not None and crops else set()
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
        elif p.name in cropped:
            save_crops(crops_dir, p.name, out, hq, CROP_SIZE, setting.scale)
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


def for_inference(net: torch.nn.Module, compile: bool) -> torch.nn.Module:
    """The network as evaluation runs it: `net` itself, or with `compile` a `torch.compile` of it with
    frozen weights (`ramit.models.ramit.compile_model(inference=True)`).

    Every new padded input size compiles again, in every process (minutes on a CPU; frozen graphs are not
    kept in Inductor's disk cache), so it pays on large test sets of few distinct sizes (Kodak24,
    McMaster, CBSD68) and not on Urban100.
    A model without weights (Bicubic, Identity) has nothing to compile and runs as it is."""
    if not compile or not any(True for _ in net.parameters()):
        return net
    from ramit.models.ramit import compile_model

    return compile_model(net.eval(), inference=True)


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
        # A run can only be active if this process imported mlflow; importing it just to ask costs every
        # evaluation job ~1.5 s (benchmarks/bench_pipeline.py).
        mlflow = sys.modules.get("mlflow")
        if mlflow is not None and mlflow.active_run() is not None:
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
    compile: bool = False,
) -> dict:
    """Evaluate one model on one test set: write `<out>` (JSON) and `<out>.csv`, return the JSON dict."""
    st = parse_setting(setting)
    if source not in ("trained", "released"):
        raise RamitError(f"source must be 'trained' or 'released', got {source!r}")
    dev = resolve_device(device)
    check_options(precision, dev, tile, tile_overlap)
    check_data(Path(data), st)  # before the model: a wrong folder is the likelier mistake
    net = for_inference(build_and_load(model, st, checkpoint), compile)
    opts = dict(tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble, precision=precision, device=dev)
    result = evaluate_set(net, model, st, Path(data), Path(out), checkpoint=checkpoint, source=source,
                          save_images=save_images, **opts)
    log_to_mlflow(result)
    return result


def check_data(data: Path, st: Setting) -> dict:
    """The degraded set exists and was made for this setting; returns what `ramit degrade` recorded."""
    if not data.is_dir():
        raise DataError(f"{data}: test-set directory not found (make it with `ramit degrade`)")
    made = _manifest_params(data)
    if isinstance(made.get("setting"), str) and made["setting"] != st.key:
        raise RamitError(f"{data} was made for setting {made['setting']!r}, not {st.key!r}")
    return made


def evaluate_set(net, model: str, st: Setting, data: Path, out: Path, *, checkpoint, source: str,
                 save_images=None, crops_dir=None, crops: int = 0, **opts) -> dict:
    """Score `net` on one degraded test set; write `out` (JSON) and its per-image CSV beside it."""
    from ramit.data.pairs import load_pairs

    made = check_data(data, st)
    pairs = load_pairs(data)
    if not pairs:
        raise DataError(f"{data}: no image pairs found")
    dataset = made.get("dataset") if isinstance(made.get("dataset"), str) else data.name
    t0 = time.perf_counter()
    rows = score_pairs(net, pairs, st, save_images=save_images, crops_dir=crops_dir, crops=crops,
                       desc=f"{model} {st.key} {dataset}", **opts)
    result = _result(model, st, dataset, source, checkpoint, rows, time.perf_counter() - t0, opts,
                     compiled=_is_compiled(net))
    if opts["precision"] != "fp32":  # the first image again in fp32: a reduced precision must not move the score
        ref = score_pairs(net, pairs[:1], st, **{**opts, "precision": "fp32"}, desc="fp32 check")
        result["precision_check"] = precision_check(rows[0].name, rows[0].psnr, ref[0].psnr, opts["precision"])
    _write_csv(out.with_suffix(".csv"), rows)
    write_json(out, result)
    return result


def _is_compiled(net: torch.nn.Module) -> bool:
    # What torch.compile returns: a wrapper whose `_orig_mod` is the network.
    return isinstance(getattr(net, "_orig_mod", None), torch.nn.Module)


def _result(model, st, dataset, source, checkpoint, rows, seconds, opts, compiled: bool = False) -> dict:
    from ramit.tracking import host_info

    dev = opts["device"]
    return {
        "model": model, "base_model": model.removesuffix("+"), "task": st.task,
        "scale": st.scale if st.task == "sr" else None, "sigma": st.sigma, "setting": st.key, "dataset": dataset,
        "source": source, "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "checkpoint_sha256": sha256_file(checkpoint) if checkpoint is not None else None,
        "n": len(rows), "psnr": _mean([r.psnr for r in rows]), "ssim": _mean([r.ssim for r in rows]),
        "seconds": round(seconds, 3), "device": dev.type, "host": host_info(dev),
        "protocol": {"y_channel": st.y_channel, "crop_border": st.crop_border, "ensemble": bool(opts["self_ensemble"]),
                     "tile": opts["tile"], **describe_precision(opts["precision"], dev)},
        "compiled": compiled,
    }


def evaluate_stage(spec: dict) -> dict:
    """The pipeline's evaluate stage: one model (one build) at one model key, on every setting and test
    set of the plan; writes `<out>/<setting>/<Dataset>.{json,csv}` and the summary `<out>.json`
    (`{dataset: {setting: {psnr, ssim, n}}}`, DVC metrics), and one MLflow run for the stage."""
    st0 = parse_setting(next(iter(spec["data"])))
    dev = resolve_device(spec["device"])
    check_options(spec["precision"], dev, spec["tile"], 32)
    net = for_inference(build_and_load(spec["base_model"], st0, spec["checkpoint"]), spec.get("compile", False))
    opts = dict(tile=spec["tile"], tile_overlap=32, self_ensemble=spec["self_ensemble"],
                precision=spec["precision"], device=dev)
    out = Path(spec["out"])
    results, summary = [], {}
    for setting, per_dataset in spec["data"].items():
        st = parse_setting(setting)
        for dataset, data in per_dataset.items():
            base = out / setting / dataset
            images = Path(f"{base}_images") if spec["save_images"] else None
            r = evaluate_set(net, spec["model"], st, Path(data), Path(f"{base}.json"), checkpoint=spec["checkpoint"],
                             source=spec["source"], save_images=images, crops_dir=Path(f"{base}_crops"),
                             crops=spec["crops"], **opts)
            results.append(r)
            summary.setdefault(r["dataset"], {})[setting] = {"psnr": r["psnr"], "ssim": r["ssim"], "n": r["n"]}
    write_json(spec["summary"], summary)
    _log_stage(spec, results)
    return summary


def _log_stage(spec: dict, results: list[dict]) -> None:
    """One MLflow run per evaluate stage (a child of the pipeline's run): every set's scores as metrics."""
    from ramit.tracking import mlflow_run

    name = f"evaluate {spec['source']} {spec['model']} {spec['key']}"
    tags = {"ramit.stage": "evaluate", "ramit.model": spec["model"], "ramit.model_key": spec["key"],
            "ramit.source": spec["source"]}
    params = {"checkpoint": spec["checkpoint"], "device": spec["device"], "precision": spec["precision"],
              "tile": spec["tile"], "self_ensemble": spec["self_ensemble"], "compile": spec.get("compile", False)}
    with mlflow_run(name, params=params, tags=tags) as t:
        for r in results:
            prefix = f"{r['setting']}/{r['dataset']}/"
            t.log_metrics({prefix + k: r[k] for k in ("psnr", "ssim", "seconds") if isinstance(r.get(k), (int, float))})
        t.log_artifact(spec["summary"])
