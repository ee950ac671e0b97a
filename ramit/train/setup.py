"""Set-up pieces of a training run: processes and devices, threads, determinism, the DDP wrapper,
trainable parameters per phase, validation, and the NaN/Inf guard."""

from __future__ import annotations

import fnmatch
import math
import os
import sys
from collections import deque
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.distributed as torch_dist

from ramit.config import ConfigError
from ramit.errors import TrainingError
from ramit.train import checkpoint


def setup_distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; `cuda` without CUDA is an error."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device: expected auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (the plan asks for one: refusing to "
                          "train on the CPU instead)")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu" and rank == 0:
            print("note: --device auto found no CUDA device: training on the CPU", file=sys.stderr)
    dev = torch.device(f"cuda:{local_rank}" if device == "cuda" else "cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


def set_threads(world: int) -> None:
    """Split the job's threads ($OMP_NUM_THREADS, which Snakemake sets to the job's `threads`) between
    the processes torchrun started on this node, so parallel jobs do not oversubscribe the cores."""
    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit():
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, int(n) // max(local, 1)))


def determinism(deterministic: bool, dev: torch.device) -> str:
    """Set torch's switches for the recipe's `deterministic`; return what it really means here.

    On the CPU every kernel the models use is deterministic: a rerun is bit-identical (tested). On
    CUDA, deterministic mode also needs cuBLAS's fixed workspace and cuDNN's deterministic kernels;
    the fused attention backward has no deterministic CUDA kernel, so there it is "reproducible up
    to nondeterministic kernels". Off, cuDNN picks its fastest kernels (benchmark mode).
    """
    if not deterministic:
        torch.backends.cudnn.benchmark = dev.type == "cuda"
        return "off (cudnn.benchmark)" if dev.type == "cuda" else "off"
    if dev.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before the first cuBLAS call
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if dev.type == "cuda":
        return "reproducible up to nondeterministic CUDA kernels (scaled_dot_product_attention backward)"
    return "bitwise (CPU)"


def wrap_model(net: torch.nn.Module, world: int, dev: torch.device, compile: bool) -> torch.nn.Module:
    """What the loop calls: the network, under DDP when several processes train it (DDP registers its
    gradient hooks on the parameters that require grad now, so a phase switch wraps again)."""
    m = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        m = DDP(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    if not compile:
        return m
    from ramit.models.ramit import compile_model  # persistent Inductor cache: a re-run does not compile again

    return compile_model(m)



def trainable(net: torch.nn.Module, phase: str, head: Sequence[str]) -> list[torch.nn.Parameter]:
    """Set requires_grad for the phase (head only during a warm start) and return the trainable params."""
    params = []
    for name, prm in net.named_parameters():
        on = phase == "full" or any(fnmatch.fnmatchcase(name, p) for p in head)
        prm.requires_grad_(on)
        if on:
            params.append(prm)
    return params


def load_val(val_data: Optional[Path], limit: Optional[int]):
    if val_data is None:
        return []
    from ramit.data.pairs import load_pairs

    pairs = load_pairs(val_data)
    return pairs[:limit] if limit else pairs


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


class LossGuard:
    """Stops training on a NaN/Inf loss without stalling the GPU every step.

    Each step's loss (averaged over the ranks, so every rank stops at the same step) is copied to the
    host asynchronously and checked one step later, while the GPU runs the next step; `flush()`
    checks everything still pending. The loop checks before every checkpoint, so a diverged step
    never reaches one. On the CPU the check is immediate.
    """

    def __init__(self, world: int, dev: torch.device):
        self.world, self.dev = world, dev
        self.pending: deque = deque()
        self.values: list[float] = []

    def push(self, it: int, loss: torch.Tensor, point, ckpt_dir: Path) -> None:
        v = loss.detach().float()
        if self.world > 1:
            torch_dist.all_reduce(v)
            v = v / self.world
        if self.dev.type == "cuda":
            host = torch.empty((), dtype=torch.float32, pin_memory=True)
            host.copy_(v, non_blocking=True)
            ev = torch.cuda.Event()
            ev.record()
            self.pending.append((it, point, host, ev))
            while len(self.pending) > 1:
                self._check(*self.pending.popleft(), ckpt_dir)
        else:
            self._check(it, point, v, None, ckpt_dir)

    def _check(self, it: int, point, host: torch.Tensor, ev, ckpt_dir: Path) -> None:
        if ev is not None:
            ev.synchronize()
        x = float(host)
        if not math.isfinite(x):
            good = checkpoint.latest(ckpt_dir)
            raise TrainingError(
                f"loss is {x} at iteration {it} (epoch {point.epoch_frac:.3f}, lr {point.lr:.3g}); stopped. "
                f"Last good checkpoint: {good if good else 'none (diverged before the first one)'}; lower the lr "
                f"(--set base_lr=...) and rerun to resume from it")
        self.values.append(x)

    def check_all(self, ckpt_dir: Path) -> None:
        while self.pending:
            self._check(*self.pending.popleft(), ckpt_dir)

    def take(self, ckpt_dir: Path) -> list[float]:
        """Check every pending loss; return (and forget) the losses since the last call."""
        self.check_all(ckpt_dir)
        out, self.values = self.values, []
        return out
