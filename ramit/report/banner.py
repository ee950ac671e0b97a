"""The banner a smoke-scale report opens with: what the run proves, what it does not, where real numbers are.

A run plan marks itself as a pipeline check with `report: {smoke_scale: true}` (params/run.yaml does;
params/paper.yaml does not). The budget figures are read from what the run left behind, not from the
plan: `runs/<model>/<key>/summary.json` (`iterations`, `seconds`, `recipe.stages`, and `train_images`
when the trainer records it, else the files of `data/degraded/train/<key>/<Dataset>/HQ` for the plan's
training sets) and the result JSONs' `seconds`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Optional


def read_summaries(runs: Path) -> dict[str, dict]:
    """'<model> <key>' -> summary.json of every training run (unreadable ones are skipped)."""
    out = {}
    for p in sorted(Path(runs).glob("*/*/summary.json")):
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out[f"{p.parent.parent.name} {p.parent.name}"] = data
    return out


def duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _int(v) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _steps(summaries: dict) -> str:
    steps = {run: _int(s.get("iterations")) for run, s in summaries.items()}
    known = {r: v for r, v in steps.items() if v is not None}
    if not known:
        return "training steps not recorded"
    c = Counter(known.values())
    if len(c) == 1:
        (v, n), = c.items()
        return f"{v} training steps per model ({n} trained model{'s' if n != 1 else ''})"
    common, _ = c.most_common(1)[0]
    others = ", ".join(f"{r}: {v}" for r, v in sorted(known.items()) if v != common)
    return f"{min(c)}–{max(c)} training steps per model ({common} for most; {others})"


def _patch_batch(summaries: dict) -> Optional[str]:
    seen = []
    for s in summaries.values():
        stages = (s.get("recipe") or {}).get("stages") if isinstance(s.get("recipe"), dict) else None
        for st in stages or []:
            if isinstance(st, dict) and "patch" in st and "batch" in st:
                pb = f"{st['patch']}×{st['patch']} patches, batch {st['batch']}"
                if pb not in seen:
                    seen.append(pb)
    return "; ".join(seen) if seen else None


def _train_images(summaries: dict, run_plan, data: Path) -> Optional[str]:
    recorded = {_int(s.get("train_images")) for s in summaries.values()} - {None}
    if recorded:
        return " / ".join(str(n) for n in sorted(recorded)) + " training images"
    if run_plan is None:
        return None
    counts = {}
    for s in summaries.values():
        key, task = s.get("model_key"), s.get("task")
        for ds in run_plan.train_data.get(task, []) if isinstance(task, str) else []:
            hq = Path(data) / "train" / str(key) / ds / "HQ"
            if hq.is_dir():
                counts[ds] = max(counts.get(ds, 0), sum(1 for p in hq.iterdir() if p.is_file()))
    if not counts:
        return None
    return ", ".join(f"{n} training image{'s' if n != 1 else ''} ({ds})" for ds, n in sorted(counts.items()))


def _eval_time(res, source: str) -> Optional[str]:
    secs = [r.raw.get("seconds") for r in res if r.source == source]
    secs = [s for s in secs if isinstance(s, (int, float)) and not isinstance(s, bool)]
    if not secs:
        return None
    return f"{len(secs)} evaluation{'s' if len(secs) != 1 else ''} in {duration(sum(secs))}"


def smoke_banner(run_plan, runs: Path, data: Path, res: list) -> list[str]:
    """README lines (a Markdown block quote) for a smoke-scale report."""
    summaries = read_summaries(runs)
    plan_name = f" `{run_plan.name}`" if run_plan is not None else ""
    desc = f" ({run_plan.description.rstrip('.')})" if run_plan is not None and run_plan.description else ""
    budget = [_steps(summaries)] if summaries else ["no training summaries under `runs/`"]
    budget += [x for x in (_patch_batch(summaries), _train_images(summaries, run_plan, data)) if x]
    train_s = [s.get("seconds") for s in summaries.values() if isinstance(s.get("seconds"), (int, float))]
    times = []
    if train_s:
        times.append(f"training took {duration(sum(train_s))} in total")
    if (ev := _eval_time(res, "trained")) is not None:
        times.append(ev)
    released = _eval_time(res, "released")
    released = (f"here: {released}" if released else "not run here yet")
    L = [f"> **Smoke-scale run: this report checks that the pipeline works end to end; its numbers are not "
         f"results.** Run plan{plan_name}{desc}.",
         ">",
         "> * **Training budget**: " + "; ".join(budget) + ("; " + ", ".join(times) if times else "") + ".",
         "> * **What it shows**: every stage (fetch, degrade, train, evaluate, profile, report) ran on the "
         "real code paths, and the tables, figures and MLflow runs have the shape a full run produces.",
         "> * **What it does not show**: how good any model is. After a few dozen steps on a handful of images "
         "the learned models can score below Bicubic (super-resolution) or barely above the noisy input "
         "(denoising), and their outputs in the visual comparisons look untrained (colour shifts, blur, "
         "noise). That is expected, and none of these numbers is comparable with the paper.",
         "> * **Where real numbers come from**: `make released` evaluates the authors' released checkpoints "
         f"on the real test sets (minutes on CPU; {released}) into `reports/released/`, and fills the "
         "*Released* column below; the paper plan `params/paper.yaml` trains every model with the authors' "
         "recipes and data (`snakemake --profile workflow/profiles/gpu`, GPU-days per model).",
         ""]
    return L
