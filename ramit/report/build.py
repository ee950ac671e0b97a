"""`ramit report`: compile the results tree into `reports/` (tables, figures, README index).

Inputs (all optional except the results tree; whatever is missing is skipped with a note in the README):

* `results/<source>/<model>/<setting>/<Dataset>.json` (+ per-image `<Dataset>.csv`) from `ramit evaluate`;
  `source` is `trained` or `released`.
* `results/profile/<model>/<model key>.json` from `ramit profile` -> Params (K) / MACs (G) columns.
* `runs/<model>/<model key>/history.csv` (iteration + loss columns) and `val.csv` (iteration + psnr)
  from `ramit train` -> training curves. Column names are matched loosely: iteration|iter|step|epoch,
  loss|train_loss, psnr|val_psnr.
* Restored images for the visual strips: `results/<source>/<model>/<setting>/<Dataset>_images/<name>.png`
  (`ramit evaluate --save-images`, same stem as the HQ file), else crops in `<Dataset>_crops/<name>.png`
  (+ `<name>.json`, written by `ramit.evaluate.crops.save_crops`); ground truth and input come from
  `data/degraded/<setting>/<Dataset>/{HQ,LQ}`, cut with the same box.
* The result JSONs' `host` block (device, device name, torch, CUDA, python, git commit of the evaluating
  host) -> provenance; files without one are counted as "not recorded".
* `params/run.yaml` (optional): its `report:` section (display order, `smoke_scale`) and, when it is a
  complete run plan, what is planned (the comparison table tells "not run yet" from "not in plan").
* `params/checkpoints.yaml`: which models have released weights (the comparison's "no released weights").
* `params/reference_results.yaml` (optional): published numbers, shown as "(ours − reference)" and in the
  comparison table.
* `runs/<model>/<key>/summary.json`: the training budget the smoke-scale banner states.

Outputs: `reports/tables/<name>.{md,tex,csv}` (`compare_<group>` is the trained vs released vs published
table, built from every source whatever `--source` says), `reports/figures/<name>.png`, `reports/README.md`.
Files in `reports/tables` and `reports/figures` that this run did not write are removed, so the index
never lists stale results. Tables carry no timestamps: the same inputs give byte-identical tables.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
from collections import Counter
from pathlib import Path
from typing import Optional

from ramit.evaluate.released import DEFAULT_REGISTRY, load_registry
from ramit.io import write_text
from ramit.report import banner as B
from ramit.report import compare as C
from ramit.report import figures as F
from ramit.report import tables as T
from ramit.tracking import cpu_model


def build_report(results: Path, runs: Path, data: Path, out: Path, params: Optional[Path] = None,
                 references: Optional[Path] = None, *, source: Optional[str] = None,
                 log_mlflow: bool = True, checkpoints: Optional[Path] = DEFAULT_REGISTRY) -> Path:
    """Write tables, figures and `out/README.md`; return the README path.

    `source` (`trained` or `released`) restricts the paper-style tables and figures to one results
    source, as the pipeline's two report stages do (`reports/` and `reports/released/`); None reports
    every source found. The comparison table (trained vs released vs published) always reads every
    source. Training curves belong to our training, so a `released`-only report has none.
    `checkpoints`: the released-checkpoint registry, which tells the comparison which models have
    released weights.
    """
    results, runs, data, out = Path(results), Path(runs), Path(data), Path(out)
    plan = T.load_plan(params)                 # bad files fail before anything is written
    run_plan, plan_note = C.load_run_plan(params)
    refs = T.load_references(references)
    registry = load_registry(checkpoints) if checkpoints is not None and Path(checkpoints).is_file() else None
    order = T.Ordering(plan)
    problems: list[str] = []
    all_res = T.load_results(results, problems)
    res = all_res if source is None else [r for r in all_res if r.source == source]
    profiles = T.load_profiles(results, problems)
    tables = T.build_tables(res, profiles, refs, order)
    comparison = C.build_comparison(all_res, refs, C.expectations(run_plan, registry), order)

    # Snakemake/DVC declare both folders as outputs: they must exist even when empty.
    for sub in ("tables", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    written: set[Path] = set()
    for t in tables:
        T.write_table(t, out)
        written |= {out / p for p in t.files().values()}
    for t in comparison:
        written |= C.write_comparison(t, out)

    notes: list[str] = list(problems) + ([plan_note] if plan_note else [])
    if registry is None:
        notes.append(f"no checkpoint registry at `{checkpoints}`: the comparison cannot tell 'no released weights'")
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

    curves = _curves(runs, out, order, notes, written) if source in (None, "trained") else []

    if references is not None and not Path(references).is_file():
        notes.append(f"no reference file at `{references}`: no (ours − reference) differences shown")
    unmatched = sorted(set(refs) - {(r.model, r.setting, r.dataset) for r in res})
    if unmatched:
        notes.append(f"{len(unmatched)} reference entr{'y' if len(unmatched) == 1 else 'ies'} without a "
                     "matching result: " + ", ".join("/".join(k) for k in unmatched[:10])
                     + (" …" if len(unmatched) > 10 else ""))

    _remove_stale(out, written)
    smoke = plan.smoke_scale and source in (None, "trained")
    readme = out / "README.md"
    write_text(readme, render_readme(out, tables, tradeoffs, curves, strips, notes, res, profiles, refs,
                                     references, results, source,
                                     banner=B.smoke_banner(run_plan, runs, data, all_res) if smoke else [],
                                     comparison=C.readme_section(comparison, plan.smoke_scale)))
    if log_mlflow:
        _log_mlflow(out)
    return readme


def _curves(runs: Path, out: Path, order: T.Ordering, notes: list[str], written: set[Path]) -> list:
    curves = []
    found = F.find_runs(runs)
    if not found:
        notes.append(f"no training curves: no `{runs}/<model>/<model key>/history.csv` or `val.csv`")
    for key in sorted(found, key=F.model_key_rank):
        path, note = F.training_curves(key, found[key], order, out / "figures" / f"curves_{key}.png")
        if path is not None:
            written.add(path)
            curves.append((key, path, order.models(found[key])))
        else:
            notes.append(note)
    return curves


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


def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _host(r: T.Result) -> Optional[dict]:
    h = r.raw.get("host")
    return h if isinstance(h, dict) else None


def _devices(res: list[T.Result]) -> list[str]:
    """What each evaluation ran on, from the result JSONs' `host` block (older files have only `device`)."""
    c: Counter = Counter()
    for r in res:
        h = _host(r)
        if h is None:
            dev = f"{r.device or 'unrecorded'} (host not recorded)"
        else:
            dev = str(h.get("device") or r.device or "unrecorded") + (f" ({h['device_name']})" if h.get("device_name") else "")
        c[(r.source, dev)] += 1
    return [f"`{src}`: {dev} — {n} result file{'s' if n != 1 else ''}" for (src, dev), n in sorted(c.items())]


_HOST_FIELDS = (("torch", "torch (evaluation)"), ("cuda", "CUDA (evaluation)"), ("python", "python (evaluation)"),
                ("git_commit", "git commit (evaluation)"))


def _host_rows(res: list[T.Result]) -> list[tuple[str, str]]:
    """Provenance rows from the evaluating hosts; values that differ between files are all listed."""
    if not res:
        return []
    hosts = [_host(r) for r in res]
    older = sum(h is None for h in hosts)
    if older == len(hosts):
        return [("evaluation host", f"not recorded ({older} result file{'s' if older != 1 else ''} "
                                    "without a `host` block)")]
    rows = []
    for key, label in _HOST_FIELDS:
        vals = sorted({"none" if h.get(key) is None else str(h[key]) for h in hosts if h is not None and key in h})
        text = ", ".join(f"`{v}`" if key == "git_commit" and v != "none" else v for v in vals)
        if older:
            text += ("; " if text else "") + f"not recorded in {older} older result file{'s' if older != 1 else ''}"
        rows.append((label, text or "not recorded"))
    return rows


def _protocols(res: list[T.Result]) -> list[str]:
    c: Counter = Counter()
    for r in res:
        p = r.raw.get("protocol")
        if isinstance(p, dict):
            c[(T.parse_setting(r.setting).group, ", ".join(f"{k}={p[k]}" for k in sorted(p)))] += 1
    return [f"{T.group_title(g)}: {p}" for (g, p), _ in sorted(c.items(), key=lambda kv: (T.group_rank(kv[0][0]), kv[0][1]))]


# ------------------------------------------------------------------------------------------- README
def render_readme(out, tables, tradeoffs, curves, strips, notes, res, profiles, refs, references, results,
                  source=None, banner=(), comparison=()) -> str:
    """The index page; `banner` (smoke-scale runs) opens it, `comparison` (trained vs released vs
    published) follows the one-paragraph introduction."""
    scope = "" if source is None else f" — {T.SOURCE_TITLES.get(source, f'source `{source}`')}"
    L = [f"# RAMiT benchmark report{scope}", ""]
    L += list(banner)
    L += ["Paper-style tables and figures for the reproduction of *RAMiT: Reciprocal Attention Mixing "
          "Transformer for Lightweight Image Restoration* (arXiv 2305.11474), compiled by `ramit report` "
          "from the results tree. Every number comes from our own evaluator; nothing here is copied from "
          "the paper except the optional reference numbers.", ""]
    L += list(comparison)
    L += _provenance(res, profiles, refs, references, results)
    L += _how_to_read()
    L += _body(out, tables, tradeoffs, curves, strips, notes, source)
    return "\n".join(L)


def _provenance(res, profiles, refs, references, results) -> list[str]:
    L = ["## Provenance", "", "| | |", "|---|---|",
         f"| report date (UTC) | {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d')} |",
         f"| git commit (report host) | {git_state()} |",
         f"| python (report host) | {platform.python_version()} |",
         f"| torch (report host) | {_version('torch')} |",
         f"| report host CPU | {cpu_model()} |"]
    L += [f"| {label} | {text} |" for label, text in _host_rows(res)]
    L.append(f"| results tree | `{results}` ({len(res)} result files, {len(profiles)} profiles) |")
    L.append(f"| reference numbers | {len(refs)} entr{'y' if len(refs) == 1 else 'ies'}"
             + (f" from `{references}`" if references else "") + " |")
    L.append("")
    devs = _devices(res)
    if devs:
        L += ["Evaluation devices (as recorded in the result files' `host` block):", ""] + [f"* {d}" for d in devs] + [""]
    prots = _protocols(res)
    if prots:
        L += ["Scoring protocol (as recorded in the result files):", ""] + [f"* {p}" for p in prots] + [""]
    return L


def _how_to_read() -> list[str]:
    return ["## How to read the tables", "",
            "* Cells are **PSNR (dB) / SSIM** averaged over the images of one test set (PSNR 2 decimals, "
            "SSIM 4). Super-resolution and deraining are scored on the Y channel, denoising and low-light "
            "enhancement on RGB (gray for grayscale denoising); the exact protocol of every file is listed above.",
            "* **Bold** marks the best PSNR in a column.",
            "* A value in parentheses, e.g. `38.05/0.9606 (−0.02)`, is *our PSNR minus the reference "
            "PSNR* from the reference file (usually the paper).",
            "* Params (K) = trainable parameters in thousands; MACs (G) = multiply-accumulates in billions "
            "for the input size named under each table (from `results/profile`).",
            "* Denoising uses one blind model per task evaluated at σ = 15/25/50 (columns dataset × σ).",
            f"* `<model>{T.ENSEMBLE_SUFFIX}` rows are the x{T.ENSEMBLE_PASSES} self-ensemble of `<model>`'s weights "
            f"(params of the base model, {T.ENSEMBLE_PASSES}× its MACs).",
            "* Main tables leave out ablation variants (`RAMiT-abl-*`); they have their own tables, where "
            "ΔPSNR is the variant minus the full `RAMiT` trained with the same recipe.",
            "* Every table also exists as LaTeX (booktabs) and as a tidy CSV with unrounded numbers.", ""]


def _body(out, tables, tradeoffs, curves, strips, notes, source) -> list[str]:
    rel = lambda p: Path(p).relative_to(out).as_posix()  # noqa: E731
    L = ["## Tables", ""]
    if not tables:
        L += ["_No results found._", ""]
    sections = [("main", s) for s in _sources(tables, "main")] + [("ablation", s) for s in _sources(tables, "ablation")]
    for kind, src in sections:
        head = "Ablations" if kind == "ablation" else "Results"
        L += [f"### {head} — {T.SOURCE_TITLES.get(src, f'source `{src}`')}", ""]
        for t in [t for t in tables if t.kind == kind and t.source == src]:
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
          "output, all cut with the same box (the most textured window of the ground truth, "
          "`ramit.evaluate.crops.crop_box`); the per-image PSNR is shown when the evaluator's per-image CSV "
          "has it. Outputs come from the saved restored images or, when the evaluation kept only crops, "
          "from those.", ""]
    for t, p, meta in strips:
        L += [f"**{t.title} — {t.source}**: {meta['dataset']}/{meta['image']} at {meta['setting']}, "
              f"from saved {meta['outputs']} ([png]({rel(p)}))", "", f"![{t.name} visual comparison]({rel(p)})", ""]
    if not strips:
        L += ["_No visual comparison: the evaluation saved neither restored images nor crops._", ""]

    L += ["## Notes", ""]
    L += [f"* {n}" for n in notes] if notes else ["* Nothing missing."]
    L += ["", "Regenerate with `ramit report` (tables are deterministic; this page carries the date).", ""]
    return L


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
