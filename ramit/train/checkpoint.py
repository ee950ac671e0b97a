"""Resume state: one directory per checkpoint, published atomically by renaming a finished temp dir.

`<run>/ckpt/it00001000/` holds
* `model.safetensors` - the module's own state dict (our names; the final `model.safetensors` of the
  run uses the official names through `ramit.models.save_weights`),
* `trainer.pt` - optimizer state and the RNG states (python, numpy, torch CPU, and the CUDA generator
  of the device this process trained on); only tensors, dicts, lists and numbers, so it loads with
  `torch.load(weights_only=True)`,
* `state.json` - iteration, epoch, stage, phase, elapsed seconds, the run's fingerprint,
* `history.csv`, `val.csv` - the run's records up to this iteration (a resume restores them from here).

A directory either is complete or does not exist under its final name, so a SIGKILL at any moment
leaves the previous checkpoint usable. The data order needs no state: it is a function of the
iteration (see `ramit.data.patches`).

Nothing in the file depends on the world size or the device, so a checkpoint of a 2-GPU run resumes
on 1 GPU, on the CPU, or the other way round. The RNG states matter only for random ops inside the
training step (dropout, none of the project's models has any; model init happens before the resume
and is overwritten by it). Rank 0 writes them and every rank restores them: all ranks are seeded alike
and take the same random ops, so their generators agree. One CUDA state is kept, not one per visible
GPU: the other devices' generators are never used by this process, and a per-device list ties the file
to the machine (restoring a 2-entry list on a 1-GPU machine failed). Without CUDA the CUDA state is
kept in the file but not applied; a CPU-saved state leaves the CUDA generator as seeded.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ramit.errors import CheckpointError
from ramit.io import write_json

_NAME = re.compile(r"^it(\d{8})$")


def list_checkpoints(ckpt_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest(ckpt_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(ckpt_dir)
    return found[-1][1] if found else None


def _cuda_in_use() -> bool:
    # is_initialized, not is_available: a CPU run on a GPU machine must not create a CUDA context
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def rng_state() -> dict:
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)), "pos": int(np_state["state"]["pos"]),
                  "has_gauss": int(np_state["has_gauss"]), "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if _cuda_in_use() else None,  # the current device's generator
    }


def set_rng_state(s: dict) -> None:
    py = s["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = s["numpy"]
    np.random.set_state({"bit_generator": "MT19937", "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(s["torch"])
    cuda = s.get("cuda")
    if isinstance(cuda, (list, tuple)):  # older files: one state per visible GPU; rank 0 trained on the first
        cuda = cuda[0] if cuda else None
    if cuda is not None and _cuda_in_use():
        torch.cuda.set_rng_state(cuda)  # onto this process's device, whatever its index


def save(ckpt_dir: str | os.PathLike, it: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         state: dict, keep: int = 2, records: dict[str, str] | None = None) -> Path:
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / f"it{it:08d}"
    tmp = ckpt_dir / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    # clone: safetensors refuses tensors that share storage
    save_file({k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "rng": rng_state()}, tmp / "trainer.pt")
    write_json(tmp / "state.json", {**state, "iter": it})
    for name, text in (records or {}).items():
        (tmp / name).write_text(text, encoding="utf-8")
    for f in tmp.iterdir():  # the rename below must not publish data still in the page cache only
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():  # the same step again (e.g. a rerun of a finished run): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _, old in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


RECORDS = ("history.csv", "val.csv")


def read_state(path: str | os.PathLike) -> dict:
    """A checkpoint's state.json ({} when unreadable: such a checkpoint is treated as foreign)."""
    try:
        return json.loads((Path(path) / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def load(path: str | os.PathLike, model: torch.nn.Module) -> tuple[dict, dict, dict[str, str]]:
    """Load weights into `model`; return (state.json content, trainer.pt content, records by file name)."""
    path = Path(path)
    try:
        state = json.loads((path / "state.json").read_text())
        weights = load_file(str(path / "model.safetensors"))
        trainer = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e}); delete it to restart "
                              f"from the previous one") from None
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"{path}: does not fit the model being trained (was the recipe or model changed?): "
                              f"{first[1] if len(first) > 1 else first[0]}") from None
    records = {n: (path / n).read_text(encoding="utf-8") for n in RECORDS if (path / n).is_file()}
    return state, trainer, records


def clean_temp(ckpt_dir: str | os.PathLike) -> None:
    d = Path(ckpt_dir)
    if d.is_dir():
        for p in d.glob(".tmp-it*"):
            shutil.rmtree(p, ignore_errors=True)
