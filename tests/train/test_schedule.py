"""The lr / stage / phase schedule equals the paper recipes (PROTOCOL.md §3) at chosen iterations."""

from __future__ import annotations

import math

import pytest

from ramit.config import PROJECT_ROOT, ConfigError
from ramit.train.recipe import load_recipe
from ramit.train.schedule import Schedule

TRAIN = PROJECT_ROOT / "params" / "train"


def lr_at_epoch(s: Schedule, epoch: float) -> float:
    e = int(epoch)
    it = s.epoch_start[e] + round((epoch - e) * s.iters_per_epoch(e))
    return s.at(it).lr


def test_sr_x2_paper_schedule():
    s = Schedule(load_recipe(TRAIN / "paper_sr_x2.yaml"), samples_per_epoch=800 * 80, world_size=2)
    assert s.samples_per_epoch == 64_000 and s.iters_per_epoch(0) == 1000 and s.total_iters == 500_000
    assert s.at(0).lr == 0.0  # linear warm-up from 0 (fractional epochs, every iteration)
    assert s.at(1).lr == pytest.approx(4e-4 * (1 / 1000) / 20)
    assert lr_at_epoch(s, 10) == pytest.approx(2e-4)
    assert lr_at_epoch(s, 19.999) == pytest.approx(4e-4 * 19.999 / 20)
    expected = {20: 4e-4, 199.999: 4e-4, 200: 2e-4, 300: 1e-4, 400: 5e-5, 425: 2.5e-5, 450: 1.25e-5,
                475: 6.25e-6, 499.999: 6.25e-6}
    for e, lr in expected.items():
        assert lr_at_epoch(s, e) == pytest.approx(lr), e
    p = s.at(123_456)
    assert (p.epoch, p.index, p.patch, p.batch, p.phase) == (123, 456, 64, 64, "full")
    # total batch 64 split in two contiguous halves of 32, rank 1 after rank 0
    assert s.local_indices(p, 0) == range(456 * 64, 456 * 64 + 32)
    assert s.local_indices(p, 1) == range(456 * 64 + 32, 457 * 64)


def test_sr_warmstart_phases():
    s = Schedule(load_recipe(TRAIN / "paper_sr_warmstart.yaml"), samples_per_epoch=64_000)
    assert s.total_iters == 300_000
    for e in (0, 25, 49.999):  # head only, constant lr
        it = s.epoch_start[int(e)] + round((e - int(e)) * 1000)
        assert (s.at(it).phase, s.at(it).lr) == ("head", pytest.approx(4e-4))
    assert s.at(50_000).phase == "full" and s.at(50_000).lr == 0.0  # new cycle: warm-up from 0
    assert lr_at_epoch(s, 55) == pytest.approx(2e-4)  # 10-epoch warm-up
    # halvings at 50/100/150/175/200/225 epochs after the warm start = 100/150/200/225/250/275
    expected = {60: 4e-4, 99.999: 4e-4, 100: 2e-4, 150: 1e-4, 200: 5e-5, 225: 2.5e-5, 250: 1.25e-5, 275: 6.25e-6}
    for e, lr in expected.items():
        assert lr_at_epoch(s, e) == pytest.approx(lr), e


@pytest.mark.parametrize("task,n_images,per_epoch", [("lle", 1785, 25_000), ("dr", 13_711, 25_000),
                                                    ("cdn", 8594, 25_000), ("gdn", 8594, 25_000)])
def test_progressive_stages_and_per_stage_lr(task, n_images, per_epoch):
    r = load_recipe(TRAIN / "paper_progressive.yaml")
    s = Schedule(r, r.epoch_length_for(task, n_images), world_size=2)
    assert s.samples_per_epoch == per_epoch
    ipe = [per_epoch // 64, per_epoch // 32, per_epoch // 16]  # smaller batch -> more steps per epoch
    assert [s.iters_per_epoch(e) for e in (0, 100, 200)] == ipe
    assert s.total_iters == 100 * ipe[0] + 100 * ipe[1] + 200 * ipe[2]
    for e, (patch, batch, stage) in {0: (64, 64, 0), 99: (64, 64, 0), 100: (96, 32, 1), 199: (96, 32, 1),
                                     200: (128, 16, 2), 399: (128, 16, 2)}.items():
        p = s.at(s.epoch_start[e])
        assert (p.patch, p.batch, p.stage) == (patch, batch, stage), e
    # PROTOCOL.md §3: effective lr 4e-4 (20-100), 2e-4 (100-200), 5e-5 (200-300), 2.5e-5, 1.25e-5, 6.25e-6
    expected = {10: 2e-4, 20: 4e-4, 99.5: 4e-4, 100: 2e-4, 199.5: 2e-4, 200: 5e-5, 300: 2.5e-5, 350: 1.25e-5,
                375: 6.25e-6, 399.5: 6.25e-6}
    for e, lr in expected.items():
        assert lr_at_epoch(s, e) == pytest.approx(lr), e


def test_iteration_cap_and_batch_divisibility(tmp_path):
    r = load_recipe(TRAIN / "paper_sr_x2.yaml", ["iterations=1234"])
    assert Schedule(r, 64_000).total_iters == 1234
    with pytest.raises(ConfigError, match="not divisible by WORLD_SIZE=3"):
        Schedule(r, 64_000, world_size=3)


def test_every_iteration_has_a_distinct_sample_slice():
    r = load_recipe(TRAIN / "paper_progressive.yaml", ["epochs=3", "stages.1.epoch=1", "stages.2.epoch=2"])
    s = Schedule(r, 1000, world_size=2)
    seen = set()
    for it in range(s.total_iters):
        p = s.at(it)
        for rank in (0, 1):
            for k in s.local_indices(p, rank):
                assert k < 1000
                assert (p.epoch, k) not in seen
                seen.add((p.epoch, k))
    assert math.isclose(len(seen), 3 * 1000, rel_tol=0.05)  # drop_last loses < one batch per epoch
