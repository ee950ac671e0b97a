"""Where training stands at any iteration: epoch, progressive stage, phase and learning rate.

Everything is a pure function of the global iteration number, so resuming from a checkpoint needs
nothing but that number, and a test can ask for the lr at any iteration without training.

The authors' rules (PROTOCOL.md §3), with fractional epochs updated every iteration:
* stage lr0 = base_lr x total_batch / base_batch (4e-4 at batch 64), recomputed at every stage;
* linear warm-up from 0 over `warmup_epochs`, then lr = lr0 x gamma^(milestones passed);
* with a warm start, the first `warm_start.epochs` train the head only at constant lr, and warm-up
  and milestones are counted from the end of that phase.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from ramit.config import ConfigError
from ramit.train.recipe import Recipe


@dataclass(frozen=True)
class Point:
    it: int  # global iteration, 0-based: the step about to be taken
    epoch: int
    epoch_frac: float  # epoch + fraction done, at the start of this step
    index: int  # step within the epoch
    stage: int  # progressive stage index
    patch: int  # LQ patch size
    batch: int  # total batch over all processes
    phase: str  # "head" (warm start, head only) or "full"
    lr: float


class Schedule:
    def __init__(self, recipe: Recipe, samples_per_epoch: int, world_size: int = 1):
        self.recipe = recipe
        self.samples_per_epoch = samples_per_epoch
        self.world_size = world_size
        self.n_epochs = math.ceil(recipe.epochs)
        for s in recipe.stages:
            if s.batch % world_size:
                raise ConfigError(
                    f"recipe {recipe.name!r}: total batch {s.batch} (stage at epoch {s.epoch}) is not divisible "
                    f"by WORLD_SIZE={world_size}")
        # Iterations per epoch depend on the stage's batch (a smaller batch means more steps); the
        # last partial batch of an epoch is dropped, as a DataLoader with drop_last would.
        self.epoch_start = [0]
        for e in range(self.n_epochs):
            self.epoch_start.append(self.epoch_start[-1] + self.iters_per_epoch(e))
        total = self.epoch_start[-1]
        if recipe.epochs != self.n_epochs:  # a fractional epoch budget ends part-way into the last epoch
            last = self.n_epochs - 1
            total = self.epoch_start[last] + round((recipe.epochs - last) * self.iters_per_epoch(last))
        self.total_iters = min(total, recipe.iterations) if recipe.iterations else total

    def stage_index(self, epoch: int) -> int:
        starts = [s.epoch for s in self.recipe.stages]
        return bisect.bisect_right(starts, epoch) - 1

    def iters_per_epoch(self, epoch: int) -> int:
        return max(1, self.samples_per_epoch // self.recipe.stages[self.stage_index(epoch)].batch)

    def stage_lr(self, stage: int) -> float:
        r = self.recipe
        return r.base_lr * r.stages[stage].batch / r.base_batch

    def at(self, it: int) -> Point:
        r = self.recipe
        epoch = bisect.bisect_right(self.epoch_start, it) - 1
        if epoch >= self.n_epochs:  # past the budget (only asked by tests): extrapolate in the last epoch
            epoch = self.n_epochs - 1
        index = it - self.epoch_start[epoch]
        frac = epoch + index / self.iters_per_epoch(epoch)
        stage = self.stage_index(epoch)
        st = r.stages[stage]
        lr0 = self.stage_lr(stage)
        ws = r.warm_start
        if ws is not None and frac < ws.epochs:
            return Point(it, epoch, frac, index, stage, st.patch, st.batch, "head", ws.lr if ws.lr is not None else lr0)
        t = frac - (ws.epochs if ws is not None else 0.0)
        if r.warmup_epochs > 0 and t < r.warmup_epochs:
            lr = lr0 * t / r.warmup_epochs
        else:
            lr = lr0 * r.gamma ** bisect.bisect_right(r.milestones, t)
        return Point(it, epoch, frac, index, stage, st.patch, st.batch, "full", lr)

    def local_indices(self, p: Point, rank: int) -> range:
        """Sample indices (within epoch p.epoch) this rank trains on at step p.

        The total batch of step i is samples [i*B, (i+1)*B) of the epoch's order; rank r takes the r-th
        contiguous slice. One process with batch B therefore sees exactly the union of what
        WORLD_SIZE processes see, which is what makes 1-GPU and multi-GPU runs comparable.
        """
        local = p.batch // self.world_size
        start = p.index * p.batch + rank * local
        return range(start, start + local)
