"""`ramit train`: one recipe, one model, one straight loop that resumes exactly.

Everything the loop needs at step `it` is a function of `it` (the schedule gives epoch, stage,
phase and lr; the patch dataset gives the samples), so the resume state is just weights, optimizer
and RNG states plus that number, and the run's own records (history, validation curve) up to it.
Rerunning the same command continues from the newest checkpoint and ends with the same weights, bit
for bit, as an uninterrupted run.

A checkpoint is resumed only if it was produced by the same run: the same recipe (budget and cadence
keys aside), model config and code, warm-start weights and training data (`fingerprint`). Anything
else is moved aside to `out/stale/` (kept, named, reported) and training starts over, so a changed
learning rate can never come back as the old weights under a new name.

Launched by torchrun (WORLD_SIZE > 1) it trains with DDP: each process takes its slice of every
total batch, gradients are averaged, rank 0 writes files and talks to MLflow.

Outputs in `out/` (docs/DESIGN.md): `model.safetensors` (official key names), `ckpt/` (resume state),
`history.csv` (iter, epoch, loss, lr, it_s), `val.csv` (iter, epoch, psnr), `summary.json`,
`recipe.yaml` (the recipe as resolved, overrides applied), `stale/` (runs that no longer match).
"""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import torch
import torch.distributed as torch_dist
import yaml

from ramit.config import ConfigError
from ramit.data.patches import PatchDataset, StepBatches
from ramit.errors import TrainingError
from ramit.io import write_text
from ramit.settings import model_key
from ramit.train import checkpoint
from ramit.train.records import HISTORY_FIELDS, VAL_FIELDS, CsvLog
from ramit.train.recipe import Recipe, load_recipe
from ramit.train.resume import Resume, resume_or_start
from ramit.train.schedule import Schedule
from ramit.train.setup import (LossGuard, determinism, load_val, set_threads, setup_distributed, trainable,
                               validate, wrap_model)


@dataclass
class Run:
    """What one training run is: resolved recipe, schedule, data, model, where it writes."""

    rec: Recipe
    model: str
    task: str
    scale: Optional[int]
    key: str
    out: Path
    recipe_file: str
    overrides: Sequence[str]
    train_data: list[Path]
    val_data: Optional[Path]
    init: Optional[Path]
    rank: int
    world: int
    dev: torch.device
    data: PatchDataset
    sched: Schedule
    net: torch.nn.Module
    head: tuple[str, ...]
    model_cfg: dict
    val_pairs: list = field(default_factory=list)
    determinism: str = ""
    plan: Optional[str] = None  # the run plan's name, when the pipeline runs it (an MLflow tag)

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def total(self) -> int:
        return self.sched.total_iters


def train_main(*, model: str, task: str, scale: Optional[int] = None, recipe: str | os.PathLike,
               train_data: List[str | os.PathLike], val_data: Optional[str | os.PathLike] = None,
               out: str | os.PathLike, init: Optional[str | os.PathLike] = None, overrides: Sequence[str] = (),
               seed: Optional[int] = None, device: str = "auto", plan: Optional[str] = None) -> Optional[dict]:
    """Train (or resume) one model; returns the summary written to `out/summary.json` (None on ranks > 0)."""
    rec: Recipe = load_recipe(recipe, list(overrides), seed)
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        run = _prepare(rec, model=model, task=task, scale=scale, recipe=recipe, train_data=train_data,
                       val_data=val_data, out=out, init=init, overrides=overrides, device=device)
        run.plan = plan
        return _train(run)
    finally:  # process-wide switches: restored (train_main may run inside a larger program)
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2], saved[3]
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def _prepare(rec: Recipe, *, model, task, scale, recipe, train_data, val_data, out, init, overrides, device) -> Run:
    from ramit.models import build_model, warm_start_head

    if task == "sr" and scale not in (2, 3, 4):
        raise ConfigError(f"task sr needs --scale 2, 3 or 4 (got {scale})")
    scale = scale if task == "sr" else None
    if rec.warm_start is not None and init is None:
        raise ConfigError(f"recipe {rec.name!r} warm-starts: give --init (e.g. the trained x2 model.safetensors)")
    rank, world, dev = setup_distributed(device)
    set_threads(world)
    det = determinism(rec.deterministic, dev)
    in_chans = 1 if task == "gdn" else 3
    data = PatchDataset(train_data, task=task, scale=scale or 1, patch=rec.stages[0].patch, seed=rec.seed,
                        sigma_range=rec.sigma_range, in_chans=in_chans)
    data.epoch_length = rec.epoch_length_for(task, data.n_images)
    torch.manual_seed(rec.seed)  # seeded right before building, as the authors (every rank builds the same weights)
    net = build_model(model, task, scale=scale, in_chans=in_chans, **rec.model).to(dev)
    head = warm_start_head(net) if rec.warm_start is not None else ()
    val = Path(val_data) if val_data is not None else None
    return Run(rec=rec, model=model, task=task, scale=scale, key=model_key(task, scale), out=Path(out),
               recipe_file=str(recipe), overrides=list(overrides), train_data=[Path(d) for d in train_data],
               val_data=val, init=Path(init) if init is not None else None, rank=rank, world=world, dev=dev,
               data=data, sched=Schedule(rec, data.epoch_length, world), net=net, head=head,
               model_cfg={"model": model, "task": task, "scale": scale, "in_chans": in_chans, "overrides": rec.model},
               val_pairs=load_val(val, rec.val_max_images) if rank == 0 else [], determinism=det)


def _train(run: Run) -> Optional[dict]:
    from ramit.train.summary import finish, open_tracking

    st = resume_or_start(run)
    if st.finished is not None:
        return st.finished if run.master else None
    if run.master:
        write_text(run.out / "recipe.yaml", yaml.safe_dump(run.rec.resolved(), sort_keys=False))
    with open_tracking(run, st) as tracker:
        _loop(run, st, tracker)
        summary = finish(run, st, tracker) if run.master else None
    if run.world > 1:
        torch_dist.barrier()
    return summary


def _loop(run: Run, st: Resume, tracker) -> None:
    """The recipe, step by step: phase/stage switches, one optimizer step, logs, validation, checkpoints."""
    rec, sched, net = run.rec, run.sched, run.net
    p = sched.at(max(min(st.start_it, run.total) - 1, 0))
    phase, stage = p.phase, p.stage
    opt, fwd = st.optimizer, wrap_model(run.net, run.world, run.dev, rec.compile)
    if run.master and st.start_it == 0 and rec.val_at_start and run.val_pairs and not st.vals.rows:
        record_validation(run, st, tracker, 0)
    loader = torch.utils.data.DataLoader(run.data, batch_sampler=StepBatches(sched, st.start_it, run.rank),
                                         num_workers=rec.num_workers, pin_memory=run.dev.type == "cuda")
    guard = LossGuard(run.world, run.dev)
    bar = _progress(run, st.start_it)
    log = _Window(st.start_it)
    net.train()
    for it, (lq, hq) in enumerate(loader, start=st.start_it):
        p = sched.at(it)
        if p.phase != phase:  # warm start over: the whole network, with a fresh Adam
            phase, stage = p.phase, p.stage
            opt = _adam(rec, trainable(net, phase, run.head), p.lr)
            fwd = wrap_model(run.net, run.world, run.dev, rec.compile)
        elif p.stage != stage:  # progressive stage: the authors build a new Adam, reloading its state
            stage, opt = p.stage, _next_stage_adam(rec, opt, p.lr)
        for g in opt.param_groups:
            g["lr"] = p.lr
        with _autocast(rec, run.dev):
            pred = fwd(lq.to(run.dev, non_blocking=True))
        loss = torch.nn.functional.l1_loss(pred.float(), hq.to(run.dev, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        guard.push(it, loss, p, st.ckpt_dir)  # checks the previous step's loss without a GPU sync
        done = it + 1
        if bar is not None:
            bar.update(1)
        if done % rec.log_every == 0 or done == run.total:
            _log(run, st, tracker, log, guard.take(st.ckpt_dir), done, p, bar)
        if run.master and run.val_pairs and _val_due(rec, sched, done, run.total):
            record_validation(run, st, tracker, done, bar)
        if done % rec.ckpt_every == 0 or done == run.total:
            guard.check_all(st.ckpt_dir)
            st.save(run, opt, done, stage, phase)
    if bar is not None:
        bar.close()
    st.optimizer, st.stage, st.phase = opt, stage, phase


class _Window:
    """Loss and speed since the last history row."""

    def __init__(self, start: int):
        self.t, self.it = time.perf_counter(), start


def _log(run: Run, st: Resume, tracker, win: _Window, losses: list[float], done: int, p, bar) -> None:
    if not run.master:
        return
    now = time.perf_counter()
    its = (done - win.it) / max(now - win.t, 1e-9)
    loss = sum(losses) / max(len(losses), 1)
    st.hist.append({"iter": done, "epoch": f"{sched_epoch(run.sched, done):.4f}", "loss": f"{loss:.8g}",
                    "lr": f"{p.lr:.6g}", "it_s": f"{its:.3f}"})
    tracker.log_metrics({"loss": loss, "lr": p.lr, "it_s": its}, step=done)
    if bar is not None:
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{p.lr:.2e}", ep=f"{p.epoch_frac:.2f}")
    win.t, win.it = now, done


def record_validation(run: Run, st: Resume, tracker, done: int, bar=None) -> None:
    v = validate(run.net, run.val_pairs, run.dev, run.task, run.scale or 1, _autocast(run.rec, run.dev))
    st.vals.append({"iter": done, "epoch": f"{sched_epoch(run.sched, done):.4f}", "psnr": f"{v:.4f}"})
    tracker.log_metrics({"val_psnr": v}, step=done)
    if bar is not None:
        bar.set_postfix(val=f"{v:.2f}")


def _val_due(rec: Recipe, sched: Schedule, done: int, total: int) -> bool:
    if done == total or (rec.val_every and done % rec.val_every == 0):
        return True
    if rec.val_every_epochs:
        return (math.floor(sched_epoch(sched, done) / rec.val_every_epochs)
                > math.floor(sched_epoch(sched, done - 1) / rec.val_every_epochs))
    return False


def _progress(run: Run, start: int):
    if not run.master:
        return None
    from tqdm import tqdm

    return tqdm(total=run.total, initial=start, desc=f"train {run.model} {run.key}", unit="it",
                dynamic_ncols=True, mininterval=1.0, file=sys.stderr)


def _adam(rec: Recipe, params, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=rec.betas, weight_decay=rec.weight_decay)


def _next_stage_adam(rec: Recipe, opt: torch.optim.Adam, lr: float) -> torch.optim.Adam:
    new = _adam(rec, [p for g in opt.param_groups for p in g["params"]], lr)
    if rec.keep_optimizer_state_at_stage:
        new.load_state_dict(opt.state_dict())
    return new


def _autocast(rec: Recipe, dev: torch.device):
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if rec.amp == "bf16" else nullcontext()


def sched_epoch(sched: Schedule, done: int) -> float:
    """Fractional epoch after `done` iterations."""
    if done >= sched.epoch_start[-1]:
        return float(sched.n_epochs)
    return sched.at(done).epoch_frac


__all__ = ["HISTORY_FIELDS", "VAL_FIELDS", "CsvLog", "Run", "checkpoint", "sched_epoch", "train_main", "TrainingError"]
