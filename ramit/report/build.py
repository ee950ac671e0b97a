"""`ramit report`: compile the results tree into `reports/` (tables, figures, README index).

Inputs (all optional except the results tree; whatever is missing is skipped with a note in the README):

* `results/<source>/<model>/<setting>/<Dataset>.json` (+ per-image `<Dataset>.csv`) from `ramit evaluate`;
  `source` is `trained` or `released`.
* `results/profile/<model>/<model key>.json` from `ramit profile` -> Params (K) / MACs (G) columns.
* `runs/<model>/<model key>/history.csv` (iteration + loss columns) and `val.csv` (iteration + psnr)
  from `ramit train` -> training curves. Column names are matched loosely: iteration|iter|step|epoch,
  loss|train_loss, psnr|val_psnr.
* Restored images for the visual strips: the pipeline must call `ramit evaluate ... --save-images
  results/<source>/<model>/<setting>/<Dataset>_images` (files `<name>.png`, same stem as the HQ file);
  ground truth and input come from `data/degraded/<setting>/<Dataset>/{HQ,LQ}`.
* `params/run.yaml` (optional): only its `report: {model_order: [...], dataset_order: [...]}` is read.
* `params/reference_results.yaml` (optional): published numbers shown as "(ours − reference)".

Outputs: `reports/tables/<name>.{md,tex,csv}`, `reports/figures/<name>.png`, `reports/README.md`.
Files in `reports/tables` and `reports/figures` that this run did not write are removed, so the index
never lists stale results. Tables carry no timestamps: the same inputs give byte-identical tables.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

from ramit.io import write_text
from ramit.report import figures as F
from ramit.report import tables as T


def build_report(results: Path, runs: Path, data: Path, out: Path, params: Optional[Path] = None,
                 references: Optional[Path] = None, *, source: Optional[str] = None,
                 log_mlflow: bool = True) -> Path:
    """Write tables, figures and `out/README.md`; return the README path.

    `source` (`trained` or `released`) restricts the report to one results source, as the pipeline's
    two report stages do (`reports/` and `reports/released/`); None reports every source found.
    Training curves belong to our training, so a `released`-only report has none.
    """
    results, runs, data, out = Path(results), Path(runs), Path(data), Path(out)
    plan = T.load_plan(params)                 # bad files fail before anything is written
    refs = T.load_references(references)
    order = T.Ordering(plan)
    problems: list[str] = []
    res = T.load_results(results, problems)
    if source is not None:
        res = [r for r in res if r.source == source]
    profiles = T.load_profiles(results, problems)
    tables = T.build_tables(res, profiles, refs, order)

    # Snakemake/DVC declare both folders as outputs: they must exist even when empty.
    for sub in ("tables", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    written: set[Path] = set()
    for t in tables:
        T.write_table(t, out)
        written |= {out / p for p in t.files().values()}

    notes: list[str] = list(problems)
    tradeoffs, strips = [], []
    for t in tables:
        if t.kind != "main":
            continue
        path, note = F.tradeoff_figure(t, out / "figures" / f"tradeoff_{t.name}.png")
        _collect(path, note, t, tradeoffs, notes, written)
        path, note, meta = F.visual_strip(t, results, data, out / "figures" / f"visual_{t.name}.png")
        _collect(path, note if path is None else None, t, strips, notes, written, meta)
        if path is not None and note:
            notes.append(note)

    curves = []
    found = F.find_runs(runs) if source in (None, "trained") else {}
    if not found and source in (None, "trained"):
        notes.append(f"no training curves: no `{runs}/<model>/<model key>/history.csv` or `val.csv`")
    for key in sorted(found, key=F.model_key_rank):
        path, note = F.training_curves(key, found[key], order, out / "figures" / f"curves_{key}.png")
        if path is not None:
            written.add(path)
            curves.append((key, path, order.models(found[key])))
        else:
            notes.append(note)

    if references is not None and not Path(references).is_file():
        notes.append(f"no reference file at `{references}`: no (ours − reference) differences shown")
    unmatched = sorted(set(refs) - {(r.model, r.setting, r.dataset) for r in res})
    if unmatched:
        notes.append(f"{len(unmatched)} reference entr{'y' if len(unmatched) == 1 else 'ies'} without a "
                     "matching result: " + ", ".join("/".join(k) for k in unmatched[:10])
                     + (" …" if len(unmatched) > 10 else ""))

    _remove_stale(out, written)
    readme = out / "README.md"
    write_text(readme, render_readme(out, tables, tradeoffs, curves, strips, notes, res, profiles, refs,
                                     references, results, source))
    if log_mlflow:
        _log_mlflow(out)
    return readme


def _collect(path, note, table, bucket, notes, written, meta=None):
    if path is None:
        if note:
            notes.append(note)
        return
    written.add(path)
    bucket.append((table, path, meta))


def _remove_stale(out: Path, written: set[Path]) -> None:
    keep = {p.resolve() for p in written}
    for sub, exts in (("tables", {".md", ".tex", ".csv"}), ("figures", {".png"})):
        for p in sorted((out / sub).glob("*")):
            if p.is_file() and p.suffix in exts and p.resolve() not in keep:
                p.unlink()


# --------------------------------------------------------------------------------------- provenance
def _git(*args: str) -> Optional[str]:
    for cwd in (Path.cwd(), Path(T.__file__).resolve().parents[2]):
        try:
            r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        if r.returncode == 0:
            return r.stdout.strip()
    return None


def git_state() -> str:
    head = _git("rev-parse", "HEAD")
    if not head:
        return "unknown (not a git checkout)"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"`{head}`" + (" (dirty: uncommitted changes to tracked files)" if dirty else " (clean)")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _devices(res: list[T.Result]) -> list[str]:
    """What evaluation ran on, from the result JSONs (their `device`, plus any GPU/CPU name they add)."""
    c: Counter = Counter()
    for r in res:
        extra = [str(r.raw[k]) for k in ("device_name", "gpu", "gpu_name", "cpu", "cpu_model") if r.raw.get(k)]
        c[(r.source, str(r.device or "unrecorded") + (f" ({', '.join(extra)})" if extra else ""))] += 1
    return [f"`{src}`: {dev} — {n} result file{'s' if n != 1 else ''}" for (src, dev), n in sorted(c.items())]


def _protocols(res: list[T.Result]) -> list[str]:
    c: Counter = Counter()
    for r in res:
        p = r.raw.get("protocol")
        if isinstance(p, dict):
            c[(T.parse_setting(r.setting).group, ", ".join(f"{k}={p[k]}" for k in sorted(p)))] += 1
    return [f"{T.group_title(g)}: {p}" for (g, p), _ in sorted(c.items(), key=lambda kv: (T.group_rank(kv[0][0]), kv[0][1]))]


def _recorded_versions(res: list[T.Result], key: str) -> str:
    vals = sorted({str(r.raw[key]) for r in res if r.raw.get(key)})
    return ", ".join(vals)


# ------------------------------------------------------------------------------------------- README
def render_readme(out, tables, tradeoffs, curves, strips, notes, res, profiles, refs, references, results,
                  source=None) -> str:
    rel = lambda p: Path(p).relative_to(out).as_posix()  # noqa: E731
    scope = "" if source is None else f" — {T.SOURCE_TITLES.get(source, f'source `{source}`')}"
    L = [f"# RAMiT benchmark report{scope}", "",
         "Paper-style tables and figures for the reproduction of *RAMiT: Reciprocal Attention Mixing "
         "Transformer for Lightweight Image Restoration* (arXiv 2305.11474), compiled by `ramit report` "
         "from the results tree. Every number comes from our own evaluator; nothing here is copied from "
         "the paper except the optional reference numbers, which are shown as differences.", ""]

    L += ["## Provenance", "", "| | |", "|---|---|",
          f"| report date (UTC) | {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d')} |",
          f"| git commit | {git_state()} |",
          f"| python (report host) | {platform.python_version()} |",
          f"| torch (report host) | {_version('torch')} |",
          f"| report host CPU | {_cpu_model()} |"]
    for k, label in (("torch", "torch (evaluation)"), ("torch_version", "torch (evaluation)"),
                     ("python", "python (evaluation)")):
        v = _recorded_versions(res, k)
        if v:
            L.append(f"| {label} | {v} |")
    L.append(f"| results tree | `{results}` ({len(res)} result files, {len(profiles)} profiles) |")
    L.append(f"| reference numbers | {len(refs)} entr{'y' if len(refs) == 1 else 'ies'}"
             + (f" from `{references}`" if references else "") + " |")
    L.append("")
    devs = _devices(res)
    if devs:
        L += ["Evaluation devices (as recorded in the result files):", ""] + [f"* {d}" for d in devs] + [""]
    prots = _protocols(res)
    if prots:
        L += ["Scoring protocol (as recorded in the result files):", ""] + [f"* {p}" for p in prots] + [""]

    L += ["## How to read the tables", "",
          "* Cells are **PSNR (dB) / SSIM** averaged over the images of one test set (PSNR 2 decimals, "
          "SSIM 4). Super-resolution and deraining are scored on the Y channel, denoising and low-light "
          "enhancement on RGB (gray for grayscale denoising); the exact protocol of every file is listed above.",
          "* **Bold** marks the best PSNR in a column.",
          "* A value in parentheses, e.g. `38.05/0.9606 (−0.02)`, is *our PSNR minus the reference "
          "PSNR* from the reference file (usually the paper).",
          "* Params (K) = trainable parameters in thousands; MACs (G) = multiply-accumulates in billions "
          "for the input size named under each table (from `results/profile`).",
          "* Denoising uses one blind model per task evaluated at σ = 15/25/50 (columns dataset × σ).",
          "* Main tables leave out ablation variants (`RAMiT-abl-*`); they have their own tables, where "
          "ΔPSNR is the variant minus the full `RAMiT` trained with the same recipe.",
          "* Every table also exists as LaTeX (booktabs) and as a tidy CSV with unrounded numbers.", ""]

    L += ["## Tables", ""]
    if not tables:
        L += ["_No results found._", ""]
    sections = [("main", s) for s in _sources(tables, "main")] + [("ablation", s) for s in _sources(tables, "ablation")]
    for kind, source in sections:
        head = "Ablations" if kind == "ablation" else "Results"
        L += [f"### {head} — {T.SOURCE_TITLES.get(source, f'source `{source}`')}", ""]
        for t in [t for t in tables if t.kind == kind and t.source == source]:
            f = t.files()
            L += [f"#### {t.title}", "",
                  f"[Markdown]({f['md']}) · [LaTeX]({f['tex']}) · [CSV]({f['csv']}) — source `{t.source}`", "",
                  T.to_markdown(t).rstrip(), ""]
            L += [f"_{n}._" for n in t.notes] + ([""] if t.notes else [])

    L += ["## Figures", ""]
    L += ["### Quality vs complexity", "",
          "PSNR on the first test set of each table (σ=25 for denoising) against MACs; bubble area ∝ parameters.", ""]
    for t, p, _ in tradeoffs:
        L += [f"**{t.title} — {t.source}** ([png]({rel(p)}))", "", f"![{t.name} trade-off]({rel(p)})", ""]
    if not tradeoffs:
        L += ["_No trade-off plot: no model has both results and a profile._", ""]
    L += ["### Training curves", "",
          "Training loss (thin: raw, thick: moving average) and validation PSNR against iteration, one "
          "figure per trained model key (all models trained for it overlaid).", ""]
    for key, p, models in curves:
        L += [f"**{key}**: {', '.join(models)} ([png]({rel(p)}))", "", f"![training curves {key}]({rel(p)})", ""]
    if not curves:
        L += ["_No training curves found._" if source in (None, "trained")
              else "_Not part of a report on released weights._", ""]
    L += ["### Visual comparisons", "",
          "One image per table: the full ground truth with the crop boxed, then the crop of the ground "
          "truth, the degraded input (SR inputs enlarged with nearest neighbour) and every model's "
          "output; the per-image PSNR is shown when the evaluator's per-image CSV has it.", ""]
    for t, p, meta in strips:
        L += [f"**{t.title} — {t.source}**: {meta['dataset']}/{meta['image']} at {meta['setting']} "
              f"([png]({rel(p)}))", "", f"![{t.name} visual comparison]({rel(p)})", ""]
    if not strips:
        L += ["_No visual comparison: no restored images were saved by the evaluation._", ""]

    L += ["## Notes", ""]
    L += [f"* {n}" for n in notes] if notes else ["* Nothing missing."]
    L += ["", "Regenerate with `ramit report` (tables are deterministic; this page carries the date).", ""]
    return "\n".join(L)


def _sources(tables, kind):
    seen = []
    for t in tables:
        if t.kind == kind and t.source not in seen:
            seen.append(t.source)
    return seen


# ------------------------------------------------------------------------------------------- MLflow
def _log_mlflow(out: Path) -> None:
    """Attach the report to an MLflow run (a child of the pipeline's umbrella run); never fatal."""
    from ramit.tracking import mlflow_run

    with mlflow_run(f"report {out}", tags={"ramit.stage": "report"}) as run:
        for sub in ("tables", "figures"):
            run.log_artifacts(out / sub, f"report/{sub}")
        run.log_artifact(out / "README.md", "report")
