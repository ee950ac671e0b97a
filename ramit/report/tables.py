"""Collect the results tree and turn it into paper-style tables (Markdown, LaTeX/booktabs, CSV).

Everything here is a pure function of the files on disk, and every order is fixed (run plan, then the
paper's usual order, then alphabetical), so a re-run over the same tree writes byte-identical tables.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional

import pandas as pd
from pydantic import Field, field_validator, model_validator

from ramit.config import ConfigError, Strict, load_yaml, read_yaml, validate
from ramit.io import write_text
from ramit.errors import RamitError
from ramit.pipeline import ReportPlan
from ramit.settings import Setting
from ramit.settings import parse_setting as _parse_setting

ABLATION_PREFIX = "RAMiT-abl-"
FULL_MODEL = "RAMiT"
ENSEMBLE_SUFFIX = "+"   # `<model>+`: the x8 self-ensemble of <model> (docs/DESIGN.md)
ENSEMBLE_PASSES = 8
SOURCE_ORDER = ("trained", "released")
SOURCE_TITLES = {
    "trained": "our training (source `trained`)",
    "released": "the authors' released checkpoints through our evaluator (source `released`)",
}

# Fallback orders when the run plan says nothing: the paper's habit of listing baselines first and
# the proposed models last, and each task's customary dataset order.
_BASELINE_ORDER = ["Bicubic", "Identity", "DnCNN", "IMDN", "SwinIR-light"]
_RAMIT_ORDER = ["RAMiT-slimSR", "RAMiT-slimLLE", "RAMiT-1", "RAMiT"]
_ABLATION_ORDER = [ABLATION_PREFIX + s for s in
                   ("spsa-only", "chsa-only", "heads-2-2", "heads-1-3", "no-helper", "no-hrami", "mobivari-v1")]
_DATASET_ORDER = {
    "sr": ["Set5", "Set14", "BSD100", "BSDS100", "B100", "Urban100", "Manga109"],
    "cdn": ["CBSD68", "Kodak24", "McMaster", "Urban100"],
    "gdn": ["Set12", "BSD68", "CBSD68", "Urban100"],
    "lle": ["LOL", "VELOL-cap", "VE-LOL-cap", "VELOL", "VE-LOL"],
    "dr": ["Test100", "Rain100H", "Rain100L", "Test1200", "Test2800"],
}
_TASK_TITLES = {"cdn": "Color Gaussian denoising", "gdn": "Grayscale Gaussian denoising",
                "lle": "Low-light enhancement", "dr": "Deraining"}


def split_ensemble(model: str) -> tuple[str, bool]:
    """'RAMiT+' -> ('RAMiT', True); 'RAMiT' -> ('RAMiT', False)."""
    if model.endswith(ENSEMBLE_SUFFIX) and len(model) > len(ENSEMBLE_SUFFIX):
        return model[: -len(ENSEMBLE_SUFFIX)], True
    return model, False


def is_ramit_own(model: str) -> bool:
    """The paper's own models (variants, ablations, their ensembles), whose published tables were not recovered."""
    return split_ensemble(model)[0].startswith("RAMiT")


# ------------------------------------------------------------------------------------------ settings
def parse_setting(setting: str) -> Setting:
    """Lenient: a setting key this version does not know gets a table of its own, named after it."""
    return _parse_setting(setting, unknown_ok=True)


def group_title(group: str) -> str:
    if m := re.fullmatch(r"sr_x(\d+)", group):
        return f"Super-resolution ×{m.group(1)} (bicubic)"
    return _TASK_TITLES.get(group, group)


def group_rank(group: str) -> tuple:
    order = ["sr_x2", "sr_x3", "sr_x4", "cdn", "gdn", "lle", "dr"]
    return (order.index(group), "") if group in order else (len(order), group)


# ---------------------------------------------------------------------------------------------- plan
def load_plan(path: Optional[Path]) -> ReportPlan:
    """The plan is optional: the report must also work on a bare results tree."""
    if path is None or not Path(path).is_file():
        return ReportPlan()
    data = read_yaml(path)
    section = data.get("report") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: key 'report': expected a mapping, got {type(section).__name__}")
    # Prefix the location so the error names the key inside the whole file, not inside the section.
    try:
        return validate(section, ReportPlan, path)
    except ConfigError as e:
        raise ConfigError(str(e).replace(": key '", ": key 'report.")) from None


class Ordering:
    """Row/column orders: run plan first, then the paper's customary order, then alphabetical."""

    def __init__(self, plan: ReportPlan):
        self.plan = plan

    def model_rank(self, model: str) -> tuple:
        if model in self.plan.model_order:
            return (0, self.plan.model_order.index(model), model, 0)
        base, ensemble = split_ensemble(model)
        if ensemble:  # right after its base model, wherever that goes
            return self.model_rank(base)[:3] + (1,)
        return self._base_rank(model) + (0,)

    def _base_rank(self, model: str) -> tuple:
        if model in _BASELINE_ORDER:
            return (1, _BASELINE_ORDER.index(model), model)
        if model.startswith(ABLATION_PREFIX):
            idx = _ABLATION_ORDER.index(model) if model in _ABLATION_ORDER else len(_ABLATION_ORDER)
            return (5, idx, model)
        if model in _RAMIT_ORDER:
            return (4, _RAMIT_ORDER.index(model), model)
        if model.startswith("RAMiT"):
            return (3, 0, model)
        return (2, 0, model)  # other baselines: after the known ones, before RAMiT

    def dataset_rank(self, dataset: str, task: str) -> tuple:
        if dataset in self.plan.dataset_order:
            return (0, self.plan.dataset_order.index(dataset), dataset)
        default = _DATASET_ORDER.get(task, [])
        if dataset in default:
            return (1, default.index(dataset), dataset)
        return (2, 0, dataset)

    def models(self, names: Iterable[str]) -> list[str]:
        return sorted(set(names), key=self.model_rank)


# ---------------------------------------------------------------------------------------- references
class ReferenceEntry(Strict):
    model: str = Field(min_length=1)
    setting: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    psnr: float = Field(gt=0, lt=100)
    ssim: Optional[float] = Field(default=None, ge=0, le=1)
    citation: str = Field(min_length=1, description="Where the number comes from, e.g. 'arXiv 2305.11474v4, Table 2'.")
    note: Optional[str] = Field(default=None, description="How the cited protocol differs from ours (shown in the report).")

    @field_validator("setting")
    @classmethod
    def _known_setting(cls, v: str) -> str:
        if not re.fullmatch(r"x[234]|(cdn|gdn)_s\d+|lle|dr", v):
            raise ValueError("expected a setting key: x2, x3, x4, cdn_s<sigma>, gdn_s<sigma>, lle or dr")
        return v


class ReferenceFile(Strict):
    """Schema of params/reference_results.yaml."""

    references: List[ReferenceEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self):
        seen = {}
        for i, r in enumerate(self.references):
            key = (r.model, r.setting, r.dataset)
            if key in seen:
                raise ValueError(f"references.{i} repeats references.{seen[key]} "
                                 f"(model={r.model}, setting={r.setting}, dataset={r.dataset})")
            seen[key] = i
        return self


def load_references(path: Optional[Path]) -> dict[tuple[str, str, str], ReferenceEntry]:
    """(model, setting, dataset) -> reference; a missing file means no references, a bad one is an error."""
    if path is None or not Path(path).is_file():
        return {}
    refs = load_yaml(path, ReferenceFile)
    return {(r.model, r.setting, r.dataset): r for r in refs.references}


# ------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Result:
    source: str
    model: str
    setting: str
    dataset: str
    psnr: float
    ssim: Optional[float]
    n: Optional[int]
    path: Path
    device: Optional[str] = None
    raw: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Profile:
    model: str
    model_key: str
    params: Optional[float]
    macs: Optional[float]
    input_size: Optional[tuple]
    raw: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def params_k(self) -> Optional[float]:
        return None if self.params is None else self.params / 1e3

    @property
    def macs_g(self) -> Optional[float]:
        return None if self.macs is None else self.macs / 1e9


def _num(x) -> Optional[float]:
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def load_results(results: Path, problems: list[str]) -> list[Result]:
    """Read `results/<source>/<model>/<model key>/<setting>/<Dataset>.json` (what the evaluate stage
    writes; the older `results/<source>/<model>/<setting>/<Dataset>.json` too); the path names the cell."""
    out: list[Result] = []
    results = Path(results)
    if not results.is_dir():
        problems.append(f"no results directory at `{results}`")
        return out
    for path in sorted([*results.glob("*/*/*/*.json"), *results.glob("*/*/*/*/*.json")]):
        parts = path.relative_to(results).with_suffix("").parts
        source, model, setting, dataset = parts[0], parts[1], parts[-2], parts[-1]
        if source == "profile":
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            problems.append(f"skipped unreadable result `{path}`: {e}")
            continue
        psnr = _num(data.get("psnr")) if isinstance(data, dict) else None
        if psnr is None:
            problems.append(f"skipped `{path}`: no finite `psnr`")
            continue
        n = _num(data.get("n"))
        out.append(Result(source=source, model=model, setting=setting, dataset=dataset, psnr=psnr,
                          ssim=_num(data.get("ssim")), n=None if n is None else int(n), path=path,
                          device=data.get("device"), raw=data))
    return out


def load_profiles(results: Path, problems: list[str]) -> dict[tuple[str, str], Profile]:
    """(model, model key) -> profile from `results/profile/<model>/<model key>.json`."""
    out = {}
    for path in sorted((Path(results) / "profile").glob("*/*.json")):
        model, key = path.parent.name, path.stem
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            problems.append(f"skipped unreadable profile `{path}`: {e}")
            continue
        size = data.get("input_size")
        out[(model, key)] = Profile(model, key, _num(data.get("params")), _num(data.get("macs")),
                                    tuple(size) if isinstance(size, list) else None, data)
    return out


# -------------------------------------------------------------------------------------------- tables
@dataclass
class Table:
    """One rendered table; `long` keeps the numbers (one row per model x column) for the CSV."""

    name: str                              # file stem under reports/tables/
    title: str
    source: str
    group: str
    kind: str                              # "main" or "ablation"
    columns: list[tuple[str, str]]         # (dataset, setting), in display order
    models: list[str]
    long: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def files(self) -> dict[str, str]:
        return {ext: f"tables/{self.name}.{ext}" for ext in ("md", "tex", "csv")}


_LONG_COLUMNS = ["model", "setting", "dataset", "sigma", "n", "psnr", "ssim", "params_k", "macs_g",
                 "ref_psnr", "ref_ssim", "diff_psnr", "diff_ssim", "ref_citation"]
_ABL_COLUMNS = ["full_psnr", "delta_psnr"]


def build_tables(results: list[Result], profiles: dict, references: dict, order: Ordering) -> list[Table]:
    """Main tables per (source, group) without ablations, then ablation tables per (source, group)."""
    tables: list[Table] = []
    by_key: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        by_key.setdefault((r.source, parse_setting(r.setting).group), []).append(r)

    def src_rank(s):
        return (SOURCE_ORDER.index(s), s) if s in SOURCE_ORDER else (len(SOURCE_ORDER), s)

    keys = sorted(by_key, key=lambda k: (src_rank(k[0]), group_rank(k[1])))
    for source, group in keys:
        rs = by_key[(source, group)]
        main = [r for r in rs if not r.model.startswith(ABLATION_PREFIX)]
        if main:
            tables.append(_make_table(f"{source}_{group}", source, group, "main", main, profiles, references, order))
    for source, group in keys:
        rs = by_key[(source, group)]
        abl = [r for r in rs if r.model.startswith(ABLATION_PREFIX)]
        if abl:
            full = [r for r in rs if r.model == FULL_MODEL]
            tables.append(_make_table(f"ablation_{source}_{group}", source, group, "ablation", full + abl,
                                      profiles, references, order))
    return tables


def _make_table(name, source, group, kind, rs: list[Result], profiles, references, order: Ordering) -> Table:
    info0 = parse_setting(rs[0].setting)
    # Ablation columns: only test sets some variant was run on (the full model is the baseline row).
    col_src = [r for r in rs if r.model.startswith(ABLATION_PREFIX)] if kind == "ablation" else rs
    cols = sorted({(r.dataset, r.setting) for r in col_src},
                  key=lambda c: (order.dataset_rank(c[0], info0.task), _sigma_rank(c[1])))
    models = order.models(r.model for r in rs)
    if kind == "ablation":
        # The full model is the reference row even when the plan would order it elsewhere.
        models = [m for m in models if m == FULL_MODEL] + [m for m in models if m != FULL_MODEL]
    colset = set(cols)
    cell = {(r.model, r.dataset, r.setting): r for r in rs if (r.dataset, r.setting) in colset}
    rows = []
    for m in models:
        params_k, macs_g = profile_numbers(m, info0.model_key, profiles)
        for ds, st in cols:
            r = cell.get((m, ds, st))
            if r is None:
                continue
            ref = references.get((m, st, ds))
            row = {
                "model": m, "setting": st, "dataset": ds, "sigma": parse_setting(st).sigma, "n": r.n,
                "psnr": r.psnr, "ssim": r.ssim,
                "params_k": params_k, "macs_g": macs_g,
                "ref_psnr": ref.psnr if ref else None, "ref_ssim": ref.ssim if ref else None,
                "diff_psnr": r.psnr - ref.psnr if ref else None,
                "diff_ssim": r.ssim - ref.ssim if ref and ref.ssim is not None and r.ssim is not None else None,
                "ref_citation": ref.citation if ref else None,
            }
            if kind == "ablation":
                full = cell.get((FULL_MODEL, ds, st))
                row["full_psnr"] = full.psnr if full else None
                row["delta_psnr"] = r.psnr - full.psnr if full else None
            rows.append(row)
    columns = _LONG_COLUMNS + (_ABL_COLUMNS if kind == "ablation" else [])
    long = pd.DataFrame(rows, columns=columns)
    for c in ("sigma", "n"):
        long[c] = long[c].astype("Int64")
    title = group_title(group)
    title = f"{title} — ablations" if kind == "ablation" else title
    notes = []
    missing_prof = [m for m in models if profile_of(m, info0.model_key, profiles) is None]
    if missing_prof:
        notes.append(f"no profile (params/MACs) for: {', '.join(missing_prof)}")
    notes += ensemble_notes(models)
    notes += [f"reference for {m} {st} {ds} ({references[(m, st, ds)].citation}): {references[(m, st, ds)].note}"
              for m, st, ds in sorted({(r["model"], r["setting"], r["dataset"]) for r in rows})
              if (m, st, ds) in references and references[(m, st, ds)].note]
    bases = {split_ensemble(m)[0] for m in models}
    sizes = sorted({tuple(p.input_size) for (m, k), p in profiles.items()
                    if k == info0.model_key and m in bases and p.input_size})
    if sizes:
        notes.append("MACs measured at input " + ", ".join("×".join(str(v) for v in s) for s in sizes)
                     + " (H×W of the network input)")
    if kind == "ablation" and FULL_MODEL not in models:
        notes.append(f"no `{FULL_MODEL}` result from source `{source}`: ΔPSNR cannot be computed")
    return Table(name, title, source, group, kind, cols, models, long, notes)


def profile_of(model: str, key: str, profiles: dict) -> Optional[Profile]:
    """The model's own profile, or for an ensemble `<model>+` without one, its base model's."""
    return profiles.get((model, key)) or profiles.get((split_ensemble(model)[0], key))


def profile_numbers(model: str, key: str, profiles: dict) -> tuple[Optional[float], Optional[float]]:
    """(params in K, MACs in G); an ensemble runs its base model 8 times: same params, 8x the MACs."""
    prof = profile_of(model, key, profiles)
    if prof is None:
        return None, None
    own = (model, key) in profiles
    ensemble = split_ensemble(model)[1]
    macs = prof.macs_g
    if ensemble and not own and macs is not None:
        macs *= ENSEMBLE_PASSES
    return prof.params_k, macs


def ensemble_notes(models: Iterable[str]) -> list[str]:
    ens = [m for m in models if split_ensemble(m)[1]]
    if not ens:
        return []
    bases = ", ".join(f"`{m}` = `{split_ensemble(m)[0]}`" for m in ens)
    return [f"`+` rows are the x{ENSEMBLE_PASSES} geometric self-ensemble (4 rotations × flip, outputs averaged) "
            f"of the same weights ({bases}): params are the base model's, MACs {ENSEMBLE_PASSES}× the base "
            "model's (one forward pass per transform)"]


def _sigma_rank(setting: str) -> int:
    s = parse_setting(setting).sigma
    return -1 if s is None else s


# ------------------------------------------------------------------------------------------ rendering
MINUS = "−"  # typographic minus for Markdown; LaTeX gets math-mode minus


def _signed(v: float, style: str) -> str:
    s = f"{v:+.2f}"
    if s in ("+0.00", "-0.00"):
        return "±0.00" if style == "md" else r"$\pm$0.00"
    if s.startswith("-"):
        return (MINUS if style == "md" else "$-$") + s[1:]
    return s


def _fmt_num(v, fmt: str, style: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "–" if style == "md" else "--"
    return format(v, fmt)


def _fmt_params(v, style):  # thousands, as lightweight-SR papers print them (e.g. 823K)
    return _fmt_num(None if _isna(v) else int(round(float(v))), "d", style)


def _fmt_macs(v, style):
    return _fmt_num(None if _isna(v) else float(v), ".1f", style)


def _isna(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _bold(text: str, style: str) -> str:
    return f"**{text}**" if style == "md" else rf"\textbf{{{text}}}"


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("σ", r"$\sigma$"), ("×", r"$\times$"),
                 ("Δ", r"$\Delta$"), ("—", "---"), ("–", "--")):
        s = s.replace(a, b)
    return s


def display(table: Table, style: str) -> tuple[list[tuple[str, ...]], list[list[str]]]:
    """Header tuples (one per column, same depth) and body rows of display strings."""
    denoise = any(parse_setting(st).sigma is not None for _, st in table.columns)
    lead = [("Model",), ("Params (K)",), ("MACs (G)",)]
    value_headers, keys = [], []
    for ds, st in table.columns:
        base = (ds, parse_setting(st).column_label) if denoise else (ds,)
        if table.kind == "ablation":
            value_headers += [base + ("PSNR/SSIM",), base + ("ΔPSNR",)]
            keys += [(ds, st, "cell"), (ds, st, "delta")]
        else:
            value_headers.append(base)
            keys.append((ds, st, "cell"))
    depth = max(len(h) for h in value_headers) if value_headers else 1
    headers = [("",) * (depth - 1) + h for h in lead] + value_headers

    df = table.long
    best = {}
    for (ds, st), g in df.groupby(["dataset", "setting"], sort=False):
        best[(ds, st)] = round(g["psnr"].max(), 2)
    body = []
    for m in table.models:
        rows = df[df["model"] == m]
        first = rows.iloc[0] if len(rows) else None
        line = [m if style == "md" else _tex_escape(m),
                _fmt_params(None if first is None else first["params_k"], style),
                _fmt_macs(None if first is None else first["macs_g"], style)]
        by_col = {(r["dataset"], r["setting"]): r for _, r in rows.iterrows()}
        for ds, st, what in keys:
            r = by_col.get((ds, st))
            if r is None:
                line.append(_fmt_num(None, "", style))
                continue
            if what == "delta":
                if m == FULL_MODEL:
                    line.append("ref.")
                else:
                    line.append(_fmt_num(None, "", style) if _isna(r["delta_psnr"]) else _signed(r["delta_psnr"], style))
                continue
            psnr = f"{r['psnr']:.2f}"
            if table.kind == "main" and round(r["psnr"], 2) == best[(ds, st)] and len(table.models) > 1:
                psnr = _bold(psnr, style)
            ssim = _fmt_num(None if _isna(r["ssim"]) else r["ssim"], ".4f", style)
            text = f"{psnr}/{ssim}"
            if not _isna(r["diff_psnr"]):
                text += f" ({_signed(r['diff_psnr'], style)})"
            line.append(text)
        body.append(line)
    return headers, body


def to_markdown(table: Table) -> str:
    headers, body = display(table, "md")
    flat = [" ".join(p for p in h if p) for h in headers]
    align = [":---"] + ["---:"] * (len(flat) - 1)
    lines = ["| " + " | ".join(flat) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def to_latex(table: Table) -> str:
    headers, body = display(table, "tex")
    depth = len(headers[0])
    ncol = len(headers)
    out = [r"% generated by `ramit report`; needs \usepackage{booktabs}",
           r"\begin{table}[t]", r"\centering", r"\small",
           rf"\caption{{{_tex_escape(table.title)} ({_tex_escape(table.source)}). PSNR (dB)/SSIM.}}",
           rf"\label{{tab:{table.name.replace('_', '-')}}}",
           r"\begin{tabular}{l" + "r" * (ncol - 1) + "}", r"\toprule"]
    for level in range(depth):
        cells, rules, j = [], [], 0
        while j < ncol:
            prefix = headers[j][: level + 1]
            k = j
            while k + 1 < ncol and headers[k + 1][: level + 1] == prefix and level < depth - 1 and prefix[-1]:
                k += 1
            label = _tex_escape(headers[j][level])
            span = k - j + 1
            cells.append(rf"\multicolumn{{{span}}}{{c}}{{{label}}}" if span > 1 else label)
            if level < depth - 1 and headers[j][level]:
                rules.append(rf"\cmidrule(lr){{{j + 1}-{k + 1}}}")
            j = k + 1
        out.append(" & ".join(cells) + r" \\")
        if rules:
            out.append(" ".join(rules))
    out.append(r"\midrule")
    for i, row in enumerate(body):
        if table.kind == "ablation" and i == 1 and table.models[0] == FULL_MODEL:
            out.append(r"\midrule")
        out.append(" & ".join(row) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def to_csv(table: Table) -> str:
    return table.long.to_csv(index=False, lineterminator="\n", float_format="%.10g")


def write_table(table: Table, out: Path) -> None:
    write_text(out / f"tables/{table.name}.md", f"### {table.title} — {table.source}\n\n" + to_markdown(table))
    write_text(out / f"tables/{table.name}.tex", to_latex(table))
    write_text(out / f"tables/{table.name}.csv", to_csv(table))
