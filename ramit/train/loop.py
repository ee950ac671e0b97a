"""`ramit train`: one recipe, one model, one straight loop that resumes exactly.

Everything the loop needs at step `it` is a function of `it` (the schedule gives epoch, stage,
phase and lr; the patch dataset gives the samples), so the resume state is just weights, optimizer
and RNG states plus that number. Rerunning the same command continues from the newest checkpoint
and ends with the same weights, bit for bit, as an uninterrupted run.

Launched by torchrun (WORLD_SIZE > 1) it trains with DDP: each process takes its slice of every
total batch, gradients are averaged, rank 0 writes files and talks to MLflow.

Outputs in `out/` (docs/DESIGN.md): `model.safetensors` (official key names), `ckpt/` (resume state),
`history.csv` (iter, epoch, loss, lr, it_s), `val.csv` (iter, epoch, psnr), `summary.json`,
`recipe.yaml` (the recipe as resolved, overrides applied).
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as torch_dist
import yaml

from ramit.config import ConfigError
from ramit.data.patches import PatchDataset, StepBatches
from ramit.errors import CheckpointError, TrainingError
from ramit.io import atomic_open, sha256_file, write_json, write_text
from ramit.train import checkpoint
from ramit.train.recipe import Recipe, load_recipe
from ramit.train.schedule import Schedule

HISTORY_FIELDS = ["iter", "epoch", "loss", "lr", "it_s"]
VAL_FIELDS = ["iter", "epoch", "psnr"]


# ---------------------------------------------------------------------------------------- helpers
def model_key(task: str, scale: Optional[int]) -> str:
    return f"x{scale}" if task == "sr" else task


def _setup_distributed(device: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device: expected auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    dev = torch.device(f"cuda:{local_rank}" if device == "cuda" else "cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


def _read_rows(path: Path, upto: int) -> list[dict]:
    """Rows of a CSV we wrote, up to iteration `upto` (later rows belong to a run that was killed)."""
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                if int(row["iter"]) <= upto:
                    rows.append(row)
            except (KeyError, TypeError, ValueError):  # a line cut short by a kill
                continue
    return rows


class _CsvLog:
    """Append-only CSV, first truncated to the resume point; appends are flushed line by line."""

    def __init__(self, path: Path, fields: list[str], upto: int):
        self.path, self.fields = path, fields
        rows = _read_rows(path, upto)
        with atomic_open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fields)
            w.writeheader()
            w.writerows(rows)
        self.rows = rows

    def append(self, row: dict) -> None:
        row = {k: row[k] for k in self.fields}
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.fields).writerow(row)
        self.rows.append({k: str(v) for k, v in row.items()})


def _warm_start(net: torch.nn.Module, init: Path, head: Sequence[str]) -> list[str]:
    """Load every weight of `init` except the head (which keeps its fresh, seeded initialisation)."""
    from ramit.models.checkpoint import read_state_dict

    src = read_state_dict(init)
    own = net.state_dict()
    is_head = lambda k: any(fnmatch.fnmatchcase(k, p) for p in head)  # noqa: E731
    take = {}
    for k, v in own.items():
        if is_head(k):
            continue
        if k not in src:
            raise CheckpointError(f"{init}: has no weight {k!r} that the model needs (warm start keeps all but {list(head)})")
        if src[k].shape != v.shape:
            raise CheckpointError(f"{init}: {k!r} has shape {tuple(src[k].shape)}, the model needs {tuple(v.shape)}")
        take[k] = src[k]
    extra = [k for k in src if k not in own and not is_head(k)]
    if extra:
        raise CheckpointError(f"{init}: weight {extra[0]!r} is not in the model (wrong model or task?)")
    net.load_state_dict(take, strict=False)
    return sorted(k for k in own if is_head(k))


@torch.no_grad()
def validate(net: torch.nn.Module, pairs, dev: torch.device, task: str, scale: int, amp) -> float:
    """Mean PSNR over `pairs` on the protocol's channel (Y for SR/DR, RGB or gray otherwise), uint8-rounded."""
    from ramit.evaluate.metrics import psnr

    was_training = net.training
    net.eval()
    scores = []
    for p in pairs:
        x = torch.from_numpy(np.ascontiguousarray(p.lq.transpose(2, 0, 1)))[None].float().to(dev)
        with amp:
            y = net(x)
        out = (y.float().clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
        scores.append(psnr(out, p.hq, crop_border=scale if task == "sr" else 0, y_channel=task in ("sr", "dr")))
    net.train(was_training)
    return float(np.mean(scores))


def _load_val(val_data: Optional[Path], limit: Optional[int]):
    if val_data is None:
        return []
    from ramit.data.pairs import load_pairs

    pairs = load_pairs(val_data)
    return pairs[:limit] if limit else pairs


def _trainable(net: torch.nn.Module, phase: str, head: Sequence[str]) -> list[torch.nn.Parameter]:
    """Set requires_grad for the phase (head only during a warm start) and return the trainable params."""
    params = []
    for name, prm in net.named_parameters():
        on = phase == "full" or any(fnmatch.fnmatchcase(name, p) for p in head)
        prm.requires_grad_(on)
        if on:
            params.append(prm)
    return params


# ------------------------------------------------------------------------------------------- main
def train_main(*, model: str, task: str, scale: Optional[int] = None, recipe: str | os.PathLike,
               train_data: List[str | os.PathLike], val_data: Optional[str | os.PathLike] = None,
               out: str | os.PathLike, init: Optional[str | os.PathLike] = None, overrides: Sequence[str] = (),
               seed: Optional[int] = None, device: str = "auto") -> Optional[dict]:
    """Train (or resume) one model; returns the summary written to `out/summary.json` (None on ranks > 0)."""
    rec: Recipe = load_recipe(recipe, list(overrides), seed)
    # process-wide switches: set for this run, restored after it (train_main may run inside a larger program)
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark)
    if rec.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    try:
        return _train(rec, model=model, task=task, scale=scale, recipe=recipe, train_data=train_data,
                      val_data=val_data, out=out, init=init, overrides=overrides, device=device)
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark = saved[2]
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def _train(rec: Recipe, *, model, task, scale, recipe, train_data, val_data, out, init, overrides, device):
    from ramit.models import build_model, save_weights
    from ramit.tracking import mlflow_run, params_hash

    # ---- configuration
    if task == "sr" and scale not in (2, 3, 4):
        raise ConfigError(f"task sr needs --scale 2, 3 or 4 (got {scale})")
    if task != "sr":
        scale = None
    if rec.warm_start is not None and init is None:
        raise ConfigError(f"recipe {rec.name!r} warm-starts: give --init (e.g. the trained x2 model.safetensors)")
    out = Path(out)
    init = Path(init) if init is not None else None
    val_data = Path(val_data) if val_data is not None else None
    rank, world, dev = _setup_distributed(device)
    master = rank == 0
    in_chans = 1 if task == "gdn" else 3
    model_cfg = {"model": model, "task": task, "scale": scale, "in_chans": in_chans, "overrides": rec.model}
    phash = params_hash(rec.resolved(), model_cfg)

    # ---- data (every sample is a function of (seed, epoch, index): see ramit.data.patches)
    data = PatchDataset(train_data, task=task, scale=scale or 1, patch=rec.stages[0].patch, seed=rec.seed,
                        sigma_range=rec.sigma_range, in_chans=in_chans)
    data.epoch_length = rec.epoch_length_for(task, data.n_images)
    sched = Schedule(rec, data.epoch_length, world)
    val_pairs = _load_val(val_data, rec.val_max_images) if master else []

    # ---- model: seeded right before building, as the authors (all ranks build the same weights)
    torch.manual_seed(rec.seed)
    net = build_model(model, task, scale=scale, in_chans=in_chans, **rec.model).to(dev)
    head = rec.warm_start.head if rec.warm_start else []

    # ---- resume, or start (optionally warm) from scratch
    ckpt_dir = out / "ckpt"
    if master:
        checkpoint.clean_temp(ckpt_dir)
    last = checkpoint.latest(ckpt_dir)
    trainer_state = None
    if last is not None:
        state, trainer_state = checkpoint.load(last, net)
        start_it, seconds = int(state["iter"]), float(state.get("seconds", 0.0))
        if state.get("params_hash") != phash and master:
            print(f"warning: {last} was written with a different recipe/model config; resuming anyway",
                  file=sys.stderr)
    else:
        start_it, seconds = 0, 0.0
        if init is not None:
            if rec.warm_start is not None:
                _warm_start(net, init, head)
            else:  # fine-tuning from a same-shaped model
                _warm_start(net, init, [])
    total = sched.total_iters
    if start_it >= total and (out / "model.safetensors").is_file() and (out / "summary.json").is_file():
        if master:
            print(f"{out}: already trained ({total} iterations); nothing to do", file=sys.stderr)
            return json.loads((out / "summary.json").read_text())
        return None
    # The optimizer being restored belongs to the last step taken; if the next step starts a new phase or
    # stage, the loop switches below exactly as it would have without the interruption.
    p = sched.at(max(min(start_it, total) - 1, 0))
    phase, stage = p.phase, p.stage
    params = _trainable(net, phase, head)
    opt = torch.optim.Adam(params, lr=p.lr, betas=rec.betas, weight_decay=rec.weight_decay)
    if trainer_state is not None:
        opt.load_state_dict(trainer_state["optimizer"])
        checkpoint.set_rng_state(trainer_state["rng"])

    def wrap(m):  # DDP registers its gradient hooks on the params that require grad now
        if world == 1:
            return m
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(m, device_ids=[dev.index] if dev.type == "cuda" else None)

    ddp = wrap(net)
    fwd = torch.compile(ddp) if rec.compile else ddp
    amp = (torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if rec.amp == "bf16" else nullcontext())

    # ---- outputs and tracking (rank 0 only)
    hist = _CsvLog(out / "history.csv", HISTORY_FIELDS, start_it) if master else None
    vals = _CsvLog(out / "val.csv", VAL_FIELDS, start_it) if master else None
    if master:
        write_text(out / "recipe.yaml", yaml.safe_dump(rec.resolved(), sort_keys=False))
    key = model_key(task, scale)
    run_ctx = (mlflow_run(f"train {model} {key}", flush_every=max(1, rec.mlflow_every // rec.log_every),
                          tags={"ramit.stage": "train", "ramit.model": model, "ramit.model_key": key,
                                "ramit.params_hash": phash, "ramit.resumed_from": start_it or None})
               if master else nullcontext())
    with run_ctx as tracker:
        if tracker is not None:
            tracker.log_params({"model": model_cfg, "recipe_file": str(recipe), "world_size": world,
                                "device": str(dev), "train_data": [str(d) for d in train_data],
                                "val_data": str(val_data) if val_data else None, "init": str(init) if init else None,
                                "recipe": rec.resolved()})
            tracker.log_artifact(out / "recipe.yaml")

        if master and start_it == 0 and rec.val_at_start and val_pairs and not vals.rows:
            v0 = validate(net, val_pairs, dev, task, scale or 1, amp)
            vals.append({"iter": 0, "epoch": f"{0:.4f}", "psnr": f"{v0:.4f}"})
            tracker.log_metrics({"val_psnr": v0}, step=0)

        # ---- the loop
        loader = torch.utils.data.DataLoader(data, batch_sampler=StepBatches(sched, start_it, rank),
                                             num_workers=rec.num_workers, pin_memory=dev.type == "cuda")
        pbar = None
        if master:
            from tqdm import tqdm

            pbar = tqdm(total=total, initial=start_it, desc=f"train {model} {key}", unit="it", dynamic_ncols=True,
                        mininterval=1.0, file=sys.stderr)
        t0 = time.perf_counter()
        t_log, it_log, loss_sum, loss_n = t0, start_it, 0.0, 0
        loss_v = float("nan")
        net.train()
        for it, (lq, hq) in enumerate(loader, start=start_it):
            p = sched.at(it)
            if p.phase != phase:  # warm start over: the whole network, with a fresh Adam
                phase, stage = p.phase, p.stage
                params = _trainable(net, phase, head)
                opt = torch.optim.Adam(params, lr=p.lr, betas=rec.betas, weight_decay=rec.weight_decay)
                ddp = wrap(net)
                fwd = torch.compile(ddp) if rec.compile else ddp
            elif p.stage != stage:  # progressive stage: the authors build a new Adam, reloading its state
                stage = p.stage
                new = torch.optim.Adam(params, lr=p.lr, betas=rec.betas, weight_decay=rec.weight_decay)
                if rec.keep_optimizer_state_at_stage:
                    new.load_state_dict(opt.state_dict())
                opt = new
            for g in opt.param_groups:
                g["lr"] = p.lr

            lq = lq.to(dev, non_blocking=True)
            hq = hq.to(dev, non_blocking=True)
            with amp:
                pred = fwd(lq)
            loss = torch.nn.functional.l1_loss(pred.float(), hq)
            # The guard looks at the loss of all ranks before any step, so a bad batch never reaches
            # the weights and every rank stops at the same iteration.
            loss_all = loss.detach().clone()
            if world > 1:
                torch_dist.all_reduce(loss_all)
                loss_all /= world
            loss_v = loss_all.item()
            if not math.isfinite(loss_v):
                if pbar is not None:
                    pbar.close()
                good = checkpoint.latest(ckpt_dir)
                raise TrainingError(
                    f"loss is {loss_v} at iteration {it} (epoch {p.epoch_frac:.3f}, lr {p.lr:.3g}); stopped. "
                    f"Last good checkpoint: {good if good else 'none (diverged before the first one)'}; lower the lr "
                    f"(--set base_lr=...) and rerun to resume from it")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

            done = it + 1
            loss_sum += loss_v
            loss_n += 1
            if master:
                pbar.update(1)
                if done % rec.log_every == 0 or done == total:
                    now = time.perf_counter()
                    its = (done - it_log) / max(now - t_log, 1e-9)
                    row = {"iter": done, "epoch": f"{sched_epoch(sched, done):.4f}",
                           "loss": f"{loss_sum / loss_n:.8g}", "lr": f"{p.lr:.6g}", "it_s": f"{its:.3f}"}
                    hist.append(row)
                    tracker.log_metrics({"loss": loss_sum / loss_n, "lr": p.lr, "it_s": its}, step=done)
                    pbar.set_postfix(loss=f"{loss_sum / loss_n:.4f}", lr=f"{p.lr:.2e}", ep=f"{p.epoch_frac:.2f}")
                    t_log, it_log, loss_sum, loss_n = now, done, 0.0, 0
                if val_pairs and (done == total or (rec.val_every and done % rec.val_every == 0) or (
                        rec.val_every_epochs and math.floor(sched_epoch(sched, done) / rec.val_every_epochs)
                        > math.floor(sched_epoch(sched, done - 1) / rec.val_every_epochs))):
                    v = validate(net, val_pairs, dev, task, scale or 1, amp)
                    vals.append({"iter": done, "epoch": f"{sched_epoch(sched, done):.4f}", "psnr": f"{v:.4f}"})
                    tracker.log_metrics({"val_psnr": v}, step=done)
                    pbar.set_postfix(loss=f"{loss_v:.4f}", lr=f"{p.lr:.2e}", val=f"{v:.2f}")
            if done % rec.ckpt_every == 0 or done == total:
                bad = next((n for n, t in net.named_parameters() if not torch.isfinite(t).all()), None)
                if bad is not None:  # a finite loss can still leave inf weights; never checkpoint those
                    if pbar is not None:
                        pbar.close()
                    raise TrainingError(f"weight {bad!r} is not finite after iteration {it}; stopped. Last good "
                                        f"checkpoint: {checkpoint.latest(ckpt_dir)}; lower the lr and rerun to resume")
                if master:
                    checkpoint.save(ckpt_dir, done, net, opt, {
                        "epoch": sched_epoch(sched, done), "stage": stage, "phase": phase, "loss": loss_v,
                        "seconds": seconds + time.perf_counter() - t0, "params_hash": phash}, keep=rec.keep_checkpoints)
                if world > 1:
                    torch_dist.barrier()
        if pbar is not None:
            pbar.close()
        seconds += time.perf_counter() - t0

        # ---- final outputs
        summary = None
        if master:
            if val_pairs and not any(int(r["iter"]) == total for r in vals.rows):  # resumed at the very end
                v = validate(net, val_pairs, dev, task, scale or 1, amp)
                vals.append({"iter": total, "epoch": f"{sched_epoch(sched, total):.4f}", "psnr": f"{v:.4f}"})
            if checkpoint.latest(ckpt_dir) is None or checkpoint.list_checkpoints(ckpt_dir)[-1][0] != total:
                checkpoint.save(ckpt_dir, total, net, opt, {"epoch": sched_epoch(sched, total), "stage": stage,
                                "phase": phase, "loss": loss_v, "seconds": seconds, "params_hash": phash},
                                keep=rec.keep_checkpoints)
            save_weights(net, out / "model.safetensors")  # no extra metadata: safetensors orders it at random
            psnrs = [(int(r["iter"]), float(r["psnr"])) for r in vals.rows]
            summary = {
                "model": model, "task": task, "scale": scale, "model_key": key, "in_chans": in_chans,
                "recipe_file": str(recipe), "overrides": list(overrides), "params_hash": phash,
                "iterations": total, "epochs": sched_epoch(sched, total), "seconds": round(seconds, 3),
                "final_loss": float(hist.rows[-1]["loss"]) if hist.rows else None,
                "val_psnr": psnrs[-1][1] if psnrs else None,
                "val_psnr_init": next((v for i, v in psnrs if i == 0), None),
                "val_data": str(val_data) if val_data else None, "init": str(init) if init else None,
                "params": sum(t.numel() for t in net.parameters()),
                "weights_sha256": sha256_file(out / "model.safetensors"),
                "world_size": world, "device": str(dev), "torch": torch.__version__,
                "recipe": rec.resolved(),
            }
            write_json(out / "summary.json", summary)
            if summary["val_psnr"] is not None:
                tracker.log_metrics({"final_val_psnr": summary["val_psnr"]}, step=total)
            for f in ("model.safetensors", "history.csv", "val.csv", "summary.json"):
                tracker.log_artifact(out / f)
    if world > 1:
        torch_dist.barrier()
    return summary


def sched_epoch(sched: Schedule, done: int) -> float:
    """Fractional epoch after `done` iterations."""
    if done >= sched.epoch_start[-1]:
        return float(sched.n_epochs)
    return sched.at(done).epoch_frac
