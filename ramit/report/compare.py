"""The reproduction table: our trained model, the authors' released checkpoint and the published number.

Per task (one table per report group: sr_x2, ..., cdn, gdn, lle, dr), one row per test set and model,
three sources side by side, and their PSNR differences:

* **trained**: `results/trained/<model>/<setting>/<Dataset>.json` (our training, our evaluator);
* **released**: `results/released/...` (the authors' checkpoint, our evaluator);
* **published**: `params/reference_results.yaml` (the number a paper prints, with its citation and note).

It is built from whatever the results tree holds, whichever report (`--source`) is being written, so it
fills in as sources appear. A cell without a number says why, from the run plan and the checkpoint
registry: *not run yet* (planned, no result file yet), *not in plan*, *no released weights* (the
registry has no checkpoint for that model and key), *no published number*, or, for RAMiT's own models,
*paper table not recovered* (the paper's result tables were not available to this project).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from ramit.config import ConfigError, read_yaml, validate
from ramit.io import write_text
from ramit.pipeline import RunPlan
from ramit.settings import key_settings, key_task
from ramit.report import tables as T

SOURCES = ("trained", "released", "published")
STATUS_TEXT = {
    "not_run": "not run yet",
    "not_planned": "not in plan",
    "no_weights": "no released weights",
    "no_published": "no published number",
    "not_recovered": "paper table not recovered",
    "no_result": "no result",  # no usable run plan: planned or not cannot be told
}
DELTAS = (("trained", "released"), ("trained", "published"), ("released", "published"))
HEADERS = {"trained": "Trained (ours)", "released": "Released (authors' weights)", "published": "Published"}
LEGEND = [
    "Cells are PSNR (dB) / SSIM; Δ columns are PSNR differences (first minus second source).",
    "**Trained**: our training, our evaluator (`results/trained`). **Released**: the authors' checkpoint through "
    "our evaluator (`results/released`, `make released`). **Published**: `params/reference_results.yaml`, "
    "numbered citations below each table.",
    "*not run yet*: the run plan has it but there is no result file yet; *not in plan*: the run plan does not "
    "evaluate this model/test set for that source; *no released weights*: `params/checkpoints.yaml` has no "
    "checkpoint for this model and key; *no published number*: nothing in the reference file; *paper table not "
    "recovered*: RAMiT's own numbers, whose paper tables were not available to this project "
    "(paper/PROTOCOL.md); add them to `params/reference_results.yaml` with their citation.",
]


@dataclass(frozen=True)
class Cell:
    psnr: Optional[float] = None
    ssim: Optional[float] = None
    status: str = "ok"
    ref: Optional[T.ReferenceEntry] = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Expectations:
    """What the run plan and the checkpoint registry say should exist (None: not known)."""

    trained: Optional[set] = None                 # {(model, setting, dataset)}
    released: Optional[set] = None
    weights: Optional[dict] = None                # (model, key) -> allowed settings, or None for all

    def has_weights(self, model: str, setting: str) -> bool:
        base = T.split_ensemble(model)[0]
        key = T.parse_setting(setting).model_key
        if (base, key) not in self.weights:
            return False
        allowed = self.weights[(base, key)]
        return allowed is None or setting in allowed


@dataclass
class CompareTable:
    name: str
    title: str
    group: str
    rows: list[dict]                               # one per (dataset, setting, model), display order
    citations: list[tuple[str, Optional[str]]] = field(default_factory=list)  # footnote n = index + 1
    notes: list[str] = field(default_factory=list)

    def files(self) -> dict[str, str]:
        return {ext: f"tables/{self.name}.{ext}" for ext in ("md", "tex", "csv")}

    def filled(self) -> dict[str, int]:
        return {s: sum(r[s].ok for r in self.rows) for s in SOURCES}


# --------------------------------------------------------------------------------------- expectations
def load_run_plan(path: Optional[Path]) -> tuple[Optional[RunPlan], Optional[str]]:
    """The whole run plan when `path` is one; otherwise None and why (the report also runs without one)."""
    if path is None or not Path(path).is_file():
        return None, None
    try:
        return validate(read_yaml(path), RunPlan, path), None
    except ConfigError as e:
        return None, (f"`{path}` is not a complete run plan, so empty comparison cells say 'no result' rather "
                      f"than why ({str(e).splitlines()[0]})")


def registry_weights(registry) -> dict:
    """(model, model key) -> settings the released checkpoint is valid for (None: every setting of its key)."""
    out = {}
    for c in registry.checkpoints:
        out[(c.model, c.model_key)] = set(c.settings) if c.settings else None
    return out


def _file_map(registry) -> dict:
    return {c.file: (c.model, c.model_key) for c in registry.checkpoints}


def expectations(plan: Optional[RunPlan], registry) -> Expectations:
    exp = Expectations(weights=registry_weights(registry) if registry is not None else None)
    if plan is None:
        return exp
    exp.trained = set()
    for model, mp in plan.models.items():
        names = [model] + ([model + T.ENSEMBLE_SUFFIX] if model in plan.evaluate.self_ensemble else [])
        for key in mp.keys:
            for st in key_settings(key, plan.sigmas):
                exp.trained |= {(m, st, ds) for m in names for ds in plan.test_data.get(key_task(key), [])}
    exp.released = set()
    files = _file_map(registry) if registry is not None else {}
    for file in plan.released.checkpoints:
        if file not in files:
            continue
        model, key = files[file]
        allowed = (exp.weights or {}).get((model, key))
        for st in key_settings(key, plan.sigmas):
            if allowed is None or st in allowed:
                exp.released |= {(model, st, ds) for ds in plan.released.test_data.get(key_task(key), [])}
    return exp


# ----------------------------------------------------------------------------------------------- cells
def _result_cell(res: dict, source: str, model: str, st: str, ds: str, exp: Expectations) -> Cell:
    r = res.get((source, model, st, ds))
    if r is not None:
        return Cell(r.psnr, r.ssim)
    if source == "released" and exp.weights is not None and not exp.has_weights(model, st):
        return Cell(status="no_weights")
    planned = exp.trained if source == "trained" else exp.released
    if planned is None:
        return Cell(status="no_result")
    return Cell(status="not_run" if (model, st, ds) in planned else "not_planned")


def _published_cell(refs: dict, model: str, st: str, ds: str) -> Cell:
    ref = refs.get((model, st, ds))
    if ref is not None:
        return Cell(ref.psnr, ref.ssim, ref=ref)
    return Cell(status="not_recovered" if T.is_ramit_own(model) else "no_published")


def _delta(a: Cell, b: Cell, what: str) -> Optional[float]:
    x, y = getattr(a, what), getattr(b, what)
    return x - y if a.ok and b.ok and x is not None and y is not None else None


# ---------------------------------------------------------------------------------------------- tables
def build_comparison(results: list, references: dict, exp: Expectations, order: T.Ordering) -> list[CompareTable]:
    """One table per report group, from every source present (results of all sources, not one)."""
    res = {(r.source, r.model, r.setting, r.dataset): r for r in results}
    keys = {(m, st, ds) for _, m, st, ds in res} | set(references)
    keys |= (exp.trained or set()) | (exp.released or set())
    keys = {k for k in keys if not k[0].startswith(T.ABLATION_PREFIX)}  # ablations have their own tables
    by_group: dict[str, list] = {}
    for k in keys:
        by_group.setdefault(T.parse_setting(k[1]).group, []).append(k)
    out = []
    for group in sorted(by_group, key=T.group_rank):
        task = T.parse_setting(by_group[group][0][1]).task
        ordered = sorted(by_group[group], key=lambda k: (order.dataset_rank(k[2], task),
                                                         T.parse_setting(k[1]).sigma or 0, order.model_rank(k[0])))
        rows, citations = [], []
        for model, st, ds in ordered:
            cells = {"trained": _result_cell(res, "trained", model, st, ds, exp),
                     "released": _result_cell(res, "released", model, st, ds, exp),
                     "published": _published_cell(references, model, st, ds)}
            row = {"model": model, "setting": st, "dataset": ds, **cells}
            ref = cells["published"].ref
            if ref is not None:
                cite = (ref.citation, ref.note)
                if cite not in citations:
                    citations.append(cite)
                row["footnote"] = citations.index(cite) + 1
            rows.append(row)
        models = order.models(m for m, _, _ in by_group[group])
        out.append(CompareTable(f"compare_{group}", f"{T.group_title(group)} — trained vs released vs published",
                                group, rows, citations, T.ensemble_notes(models)))
    return out


def _label(row: dict) -> str:
    sigma = T.parse_setting(row["setting"]).sigma
    return row["dataset"] + (f" σ{sigma}" if sigma is not None else "")


def _cell_text(row: dict, source: str, style: str) -> str:
    c: Cell = row[source]
    if not c.ok:
        text = STATUS_TEXT[c.status]
        return f"_{text}_" if style == "md" else rf"\textit{{{text}}}"
    ssim = "–" if c.ssim is None else f"{c.ssim:.4f}"
    text = f"{c.psnr:.2f}/{ssim if style == 'md' else ssim.replace('–', '--')}"
    if source == "published" and "footnote" in row:
        text += f" [{row['footnote']}]" if style == "md" else f"$^{{{row['footnote']}}}$"
    return text


def _delta_text(row: dict, a: str, b: str, style: str) -> str:
    d = _delta(row[a], row[b], "psnr")
    return ("–" if style == "md" else "--") if d is None else T._signed(d, style)


def _display(t: CompareTable, style: str) -> tuple[list[str], list[list[str]]]:
    head = ["Test set", "Model"] + [HEADERS[s] for s in SOURCES] + [f"Δ {a}−{b}" for a, b in DELTAS]
    body = []
    for row in t.rows:
        line = [_label(row), row["model"]] + [_cell_text(row, s, style) for s in SOURCES]
        body.append(line + [_delta_text(row, a, b, style) for a, b in DELTAS])
    return head, body


def to_markdown(t: CompareTable) -> str:
    head, body = _display(t, "md")
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join([":---", ":---"] + ["---:"] * (len(head) - 2)) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines += [""] + [f"* [{i}] {c}" + (f" — {n}" if n else "") for i, (c, n) in enumerate(t.citations, 1)]
    return "\n".join(lines).rstrip() + "\n"


def to_latex(t: CompareTable) -> str:
    head, body = _display(t, "tex")
    esc = T._tex_escape
    out = [r"% generated by `ramit report`; needs \usepackage{booktabs}", r"\begin{table}[t]", r"\centering",
           r"\small", rf"\caption{{{esc(t.title)}. PSNR (dB)/SSIM; $\Delta$: PSNR differences.}}",
           rf"\label{{tab:{t.name.replace('_', '-')}}}", r"\begin{tabular}{ll" + "r" * (len(head) - 2) + "}",
           r"\toprule", " & ".join(esc(h).replace("−", "$-$") for h in head) + r" \\", r"\midrule"]
    out += [" & ".join([esc(r[0]), esc(r[1])] + r[2:]) + r" \\" for r in body]
    out += [r"\bottomrule", r"\end{tabular}"]
    out += [rf"\par{{\footnotesize $^{{{i}}}$ {esc(c)}" + (f" --- {esc(n)}" if n else "") + "}"
            for i, (c, n) in enumerate(t.citations, 1)]
    out += [r"\end{table}"]
    return "\n".join(out) + "\n"


_CSV_COLUMNS = (["group", "setting", "sigma", "dataset", "model"]
                + [f"{s}_{k}" for s in SOURCES for k in ("psnr", "ssim", "status")]
                + ["published_citation", "published_note"]
                + [f"d_{a}_{b}_{k}" for a, b in DELTAS for k in ("psnr", "ssim")])


def to_csv(t: CompareTable) -> str:
    rows = []
    for row in t.rows:
        rec = {"group": t.group, "setting": row["setting"], "sigma": T.parse_setting(row["setting"]).sigma,
               "dataset": row["dataset"], "model": row["model"]}
        for s in SOURCES:
            c = row[s]
            rec.update({f"{s}_psnr": c.psnr, f"{s}_ssim": c.ssim, f"{s}_status": c.status})
        ref = row["published"].ref
        rec["published_citation"], rec["published_note"] = (ref.citation, ref.note) if ref else (None, None)
        for a, b in DELTAS:
            for k in ("psnr", "ssim"):
                rec[f"d_{a}_{b}_{k}"] = _delta(row[a], row[b], k)
        rows.append(rec)
    df = pd.DataFrame(rows, columns=_CSV_COLUMNS)
    df["sigma"] = df["sigma"].astype("Int64")
    return df.to_csv(index=False, lineterminator="\n", float_format="%.10g")


def write_comparison(t: CompareTable, out: Path) -> set[Path]:
    write_text(out / f"tables/{t.name}.md", f"### {t.title}\n\n" + to_markdown(t))
    write_text(out / f"tables/{t.name}.tex", to_latex(t))
    write_text(out / f"tables/{t.name}.csv", to_csv(t))
    return {out / p for p in t.files().values()}


def readme_section(tables: list[CompareTable], smoke: bool) -> list[str]:
    L = ["## Reproduction: trained vs released vs published", ""]
    if smoke:
        L += ["_The trained column of this report comes from a smoke-scale run (see the banner): it checks the "
              "pipeline, it is not a reproduction._", ""]
    L += [f"* {x}" for x in LEGEND] + [""]
    if not tables:
        return L + ["_Nothing to compare yet: no results, no planned evaluations, no reference numbers._", ""]
    for t in tables:
        f, n, filled = t.files(), len(t.rows), t.filled()
        L += [f"### {t.title}", "",
              f"[Markdown]({f['md']}) · [LaTeX]({f['tex']}) · [CSV]({f['csv']}) — filled: "
              + ", ".join(f"{s} {filled[s]}/{n}" for s in SOURCES), "",
              to_markdown(t).rstrip(), ""]
        L += [f"_{x}._" for x in t.notes] + ([""] if t.notes else [])
    return L

