"""Resume only what this run produced; start (or warm-start) otherwise.

The *fingerprint* of a run is everything that decides its weights up to any iteration: the resolved
recipe without its budget and cadence keys (extending `iterations` or `epochs` continues the same
trajectory, logging more often changes nothing), the model config, the model's source files, the
warm-start weights and the training data (the `manifest.json` that `ramit degrade` writes, listing
every file's sha256). A checkpoint whose fingerprint differs, or that lies past the new budget, is
moved to `out/stale/<time>-<old fingerprint>/` with a `reason.json` saying what changed, and the
run starts over. World size and device are not part of it: a 2-GPU run resumes on 1 GPU or the CPU.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import torch
import torch.distributed as torch_dist

from ramit.errors import CheckpointError
from ramit.io import sha256_file, write_json
from ramit.train import checkpoint
from ramit.train.records import HISTORY_FIELDS, VAL_FIELDS, CsvLog, parse_rows
from ramit.train.setup import trainable

if TYPE_CHECKING:
    from ramit.train.loop import Run

# Recipe keys that change how long a run goes or how often it reports, not where its weights go.
BUDGET_AND_CADENCE = frozenset({"name", "description", "iterations", "epochs", "log_every", "ckpt_every",
                                "keep_checkpoints", "val_every", "val_every_epochs", "val_max_images",
                                "val_at_start", "mlflow_every", "num_workers"})
PROJECT_ROOT = Path(__file__).resolve().parents[2]
STALE = "stale"


def _data_digest(d: Path) -> str:
    manifest = d / "manifest.json"
    if manifest.is_file():
        return sha256_file(manifest)
    listing = sorted((p.relative_to(d).as_posix(), p.stat().st_size) for p in d.rglob("*") if p.is_file())
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def fingerprint(run: "Run") -> dict:
    from ramit.models.names import source_files

    return {
        "recipe": {k: v for k, v in run.rec.resolved().items() if k not in BUDGET_AND_CADENCE},
        "model": run.model_cfg,
        "model_code": {f: sha256_file(PROJECT_ROOT / f) for f in source_files(run.model)},
        "init": sha256_file(run.init) if run.init is not None else None,
        "train_data": [_data_digest(d) for d in run.train_data],
    }


def digest(fp: dict) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()


def describe_change(old: Optional[dict], new: dict) -> list[str]:
    """What differs between two fingerprints, in words a user can act on."""
    if not old:
        return ["no fingerprint (written by an older version of ramit)"]
    out = []
    for k in sorted(set(old.get("recipe", {})) | set(new["recipe"])):
        a, b = old.get("recipe", {}).get(k), new["recipe"].get(k)
        if a != b:
            out.append(f"recipe {k}: {a!r} -> {b!r}")
    if old.get("model") != new["model"]:
        out.append(f"model config: {old.get('model')} -> {new['model']}")
    out += [f"model code changed: {f}" for f in sorted(new["model_code"])
            if old.get("model_code", {}).get(f) != new["model_code"][f]]
    if old.get("init") != new["init"]:
        out.append("warm-start weights changed (the model it starts from was retrained)")
    if old.get("train_data") != new["train_data"]:
        out.append("training data changed")
    return out or ["fingerprint differs"]


@dataclass
class Resume:
    """Where a run starts: iteration, optimizer, records; `save` writes the next checkpoint."""

    start_it: int
    seconds: float
    optimizer: torch.optim.Optimizer
    ckpt_dir: Path
    fingerprint: dict
    fp: str
    stale: list[dict] = field(default_factory=list)
    hist: Optional[CsvLog] = None
    vals: Optional[CsvLog] = None
    stage: int = 0
    phase: str = "full"
    finished: Optional[dict] = None
    t0: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return self.seconds + time.perf_counter() - self.t0

    def save(self, run: "Run", opt, done: int, stage: int, phase: str, barrier: bool = True) -> None:
        from ramit.errors import TrainingError
        from ramit.train.loop import sched_epoch

        bad = next((n for n, t in run.net.named_parameters() if not torch.isfinite(t).all()), None)
        if bad is not None:  # a finite loss can still leave inf weights; never checkpoint those
            raise TrainingError(f"weight {bad!r} is not finite after iteration {done - 1}; stopped. Last good "
                                f"checkpoint: {checkpoint.latest(self.ckpt_dir)}; lower the lr and rerun to resume")
        if run.master:
            state = {"epoch": sched_epoch(run.sched, done), "stage": stage, "phase": phase,
                     "seconds": self.elapsed(), "fingerprint_sha256": self.fp, "fingerprint": self.fingerprint}
            checkpoint.save(self.ckpt_dir, done, run.net, opt, state, keep=run.rec.keep_checkpoints,
                            records={"history.csv": self.hist.text(), "val.csv": self.vals.text()})
        if run.world > 1 and barrier:
            torch_dist.barrier()


def _move_aside(out: Path, reasons: list[str], state: dict, new_fp: str) -> dict:
    """Keep the stale run (checkpoints and the outputs it made) under out/stale/, with the reason."""
    old_fp = str(state.get("fingerprint_sha256") or "unknown")[:8]
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = out / STALE / f"{stamp}-{old_fp}"
    dest.mkdir(parents=True, exist_ok=False)
    for name in ("ckpt", "model.safetensors", "summary.json", "history.csv", "val.csv", "recipe.yaml"):
        if (out / name).exists():
            os.replace(out / name, dest / name)
    record = {"moved_to": dest.as_posix(), "iteration": state.get("iter"), "old_fingerprint": old_fp,
              "new_fingerprint": new_fp[:8], "changed": reasons}
    write_json(dest / "reason.json", record)
    print(f"warning: {out / 'ckpt'} holds a different run ({'; '.join(reasons)}); moved it to {dest}; "
          f"training starts over", file=sys.stderr)
    return record


def _stale_reasons(state: dict, fp: dict, h: str, total: int) -> list[str]:
    if int(state.get("iter", 0)) > total:
        return [f"the budget now ends at iteration {total}, before this checkpoint ({state.get('iter')})"]
    if state.get("fingerprint_sha256") != h:
        return describe_change(state.get("fingerprint"), fp)
    return []


def _check_latest(run: "Run", fp: dict, h: str) -> tuple[Optional[Path], list[dict]]:
    """The checkpoint to resume from (None: start over), moving a stale one aside first."""
    ckpt_dir = run.out / "ckpt"
    if run.master:
        checkpoint.clean_temp(ckpt_dir)
    last = checkpoint.latest(ckpt_dir)
    reasons = _stale_reasons(checkpoint.read_state(last), fp, h, run.total) if last is not None else []
    if run.world > 1:
        torch_dist.barrier()  # every rank has read the same state before rank 0 moves it
    stale = _earlier_stale(run.out)
    if reasons:
        if run.master:
            stale.append(_move_aside(run.out, reasons, checkpoint.read_state(last), h))
        last = None
    if run.world > 1:
        torch_dist.barrier()
    return last, stale


def _earlier_stale(out: Path) -> list[dict]:
    found = []
    for p in sorted((out / STALE).glob("*/reason.json")):
        try:
            found.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return found


def warm_start(net: torch.nn.Module, init: Path, head: Sequence[str]) -> list[str]:
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
            raise CheckpointError(f"{init}: {k!r} has shape {tuple(src[k].shape)}, the model needs {tuple(v.shape)}"
                                  + (f" (the model's warm-start head {list(head)} does not cover it)" if head else ""))
        take[k] = src[k]
    extra = [k for k in src if k not in own and not is_head(k)]
    if extra:
        raise CheckpointError(f"{init}: weight {extra[0]!r} is not in the model (wrong model or task?)")
    net.load_state_dict(take, strict=False)
    return sorted(k for k in own if is_head(k))


def _finished_summary(run: "Run", start_it: int, h: str) -> Optional[dict]:
    s = run.out / "summary.json"
    if start_it < run.total or not (run.out / "model.safetensors").is_file() or not s.is_file():
        return None
    summary = json.loads(s.read_text())
    if summary.get("fingerprint") != h:
        return None
    if run.master:
        print(f"{run.out}: already trained ({run.total} iterations); nothing to do", file=sys.stderr)
    return summary


def resume_or_start(run: "Run") -> Resume:
    fp = fingerprint(run)
    h = digest(fp)
    last, stale = _check_latest(run, fp, h)
    records: dict[str, str] = {}
    trainer = None
    start_it, seconds = 0, 0.0
    if last is not None:
        state, trainer, records = checkpoint.load(last, run.net)
        start_it, seconds = int(state["iter"]), float(state.get("seconds", 0.0))
    elif run.init is not None:  # a warm start re-initialises the head; fine-tuning loads everything
        warm_start(run.net, run.init, run.head)
    finished = _finished_summary(run, start_it, h)  # every rank decides the same from the same files
    p = run.sched.at(max(min(start_it, run.total) - 1, 0))
    rec = run.rec
    opt = torch.optim.Adam(trainable(run.net, p.phase, run.head), lr=p.lr, betas=rec.betas,
                           weight_decay=rec.weight_decay)
    if trainer is not None:
        opt.load_state_dict(trainer["optimizer"])
        checkpoint.set_rng_state(trainer["rng"])
    st = Resume(start_it=start_it, seconds=seconds, optimizer=opt, ckpt_dir=run.out / "ckpt", fingerprint=fp,
                fp=h, stale=stale, stage=p.stage, phase=p.phase, finished=finished)
    if run.master and finished is None:
        st.hist = CsvLog(run.out / "history.csv", HISTORY_FIELDS, parse_rows(records.get("history.csv", ""), start_it))
        st.vals = CsvLog(run.out / "val.csv", VAL_FIELDS, parse_rows(records.get("val.csv", ""), start_it))
    return st
