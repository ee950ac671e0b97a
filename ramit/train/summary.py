"""The end of a training run (final validation, weights, `summary.json`) and its MLflow run."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Iterator

import torch

from ramit.io import sha256_file, write_json

if TYPE_CHECKING:
    from ramit.train.loop import Run
    from ramit.train.resume import Resume


@contextlib.contextmanager
def open_tracking(run: "Run", st: "Resume") -> Iterator:
    """Rank 0's MLflow run (a no-op tracker on the other ranks, or when the store is unreachable)."""
    from ramit.tracking import Tracker, mlflow_run, tracking_uri, training_tags

    if not run.master:
        yield Tracker(None)
        return
    rec = run.rec
    tags = {**training_tags(model=run.model, model_key=run.key, task=run.task, scale=run.scale,
                            train_data=run.train_data, recipe=rec.name, plan=run.plan),
            "ramit.params_hash": st.fp, "ramit.resumed_from": st.start_it or None}
    with mlflow_run(f"train {run.model} {run.key}", flush_every=max(1, rec.mlflow_every // rec.log_every),
                    tags=tags) as tracker:
        if not tracker.active:
            print(f"warning: MLflow tracking is OFF for this run (store {tracking_uri()}); the run goes on and "
                  f"its summary.json says so. Many concurrent jobs: point MLFLOW_TRACKING_URI at a tracking "
                  f"server", file=sys.stderr)
        tracker.log_params({"model": run.model_cfg, "recipe_file": run.recipe_file, "world_size": run.world,
                            "device": str(run.dev), "train_data": [str(d) for d in run.train_data],
                            "val_data": str(run.val_data) if run.val_data else None,
                            "init": str(run.init) if run.init else None, "recipe": rec.resolved()})
        tracker.log_artifact(run.out / "recipe.yaml")
        yield tracker


def finish(run: "Run", st: "Resume", tracker) -> dict:
    """Final validation and checkpoint (if the loop ended without them), weights, summary, artifacts."""
    from ramit.models import save_weights
    from ramit.tracking import log_trained_model, tracking_uri
    from ramit.train.loop import record_validation, sched_epoch

    total = run.total
    if run.val_pairs and not any(int(r["iter"]) == total for r in st.vals.rows):  # resumed at the very end
        record_validation(run, st, tracker, total)
    if not any(it == total for it, _ in _checkpoints(st)):
        st.save(run, st.optimizer, total, st.stage, st.phase, barrier=False)  # rank 0 alone is here
    save_weights(run.net, run.out / "model.safetensors")  # no extra metadata: safetensors orders it at random
    psnrs = [(int(r["iter"]), float(r["psnr"])) for r in st.vals.rows]
    hist = st.hist.rows
    summary = {
        "model": run.model, "task": run.task, "scale": run.scale, "model_key": run.key,
        "in_chans": run.model_cfg["in_chans"], "recipe_file": run.recipe_file, "overrides": list(run.overrides),
        "fingerprint": st.fp, "params_hash": st.fp, "iterations": total, "epochs": sched_epoch(run.sched, total),
        "seconds": round(st.elapsed(), 3), "resumed_from": st.start_it,
        "history_rows": len(hist), "final_loss": float(hist[-1]["loss"]) if hist else None,
        "val_psnr": psnrs[-1][1] if psnrs else None, "val_psnr_init": next((v for i, v in psnrs if i == 0), None),
        "train_data": [str(d) for d in run.train_data], "train_sets": [d.name for d in run.train_data],
        "train_images": run.data.n_images,
        "val_data": str(run.val_data) if run.val_data else None, "init": str(run.init) if run.init else None,
        "params": sum(t.numel() for t in run.net.parameters()),
        "weights_sha256": sha256_file(run.out / "model.safetensors"),
        "world_size": run.world, "device": str(run.dev), "torch": torch.__version__,
        "peak_gpu_memory_mb": (round(torch.cuda.max_memory_allocated(run.dev) / 2**20, 1)
                               if run.dev.type == "cuda" else None),
        "determinism": run.determinism, "stale_runs_moved_aside": st.stale,
        "tracking": {"active": tracker.active, "uri": tracking_uri(), "run_id": tracker.run_id,
                     "spooled": tracker.run_id is None and tracker.active},
        "recipe": run.rec.resolved(),
    }
    write_json(run.out / "summary.json", summary)
    if summary["val_psnr"] is not None:
        tracker.log_metrics({"final_val_psnr": summary["val_psnr"]}, step=total)
    for f in ("history.csv", "val.csv", "summary.json"):
        tracker.log_artifact(run.out / f)
    # the weights as an MLflow model with its config: mlflow.pyfunc.load_model("runs:/<id>/model")
    log_trained_model(tracker, run.out, model=run.model, task=run.task, scale=run.scale,
                      in_chans=run.model_cfg["in_chans"], overrides=run.rec.model)
    return summary


def _checkpoints(st: "Resume"):
    from ramit.train import checkpoint

    return checkpoint.list_checkpoints(st.ckpt_dir)
