"""Report figures: complexity trade-off, training curves, visual comparison strips (PNG).

Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas directly, never through pyplot,
so the report neither depends on nor changes the process-wide backend (a test session or a notebook
may have picked another one). Each function returns the written path, or None plus a note saying why
the figure was skipped, because a missing input (no profile, no curves, no saved images) is a normal
state of a partly-run pipeline, not an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ramit.evaluate.crops import crop_box, cut, read_box
from ramit.io import atomic_path
from ramit.report.tables import (ABLATION_PREFIX, Ordering, Table, group_title, parse_setting)

DPI = 150
_ITER_COLS = ("iteration", "iter", "step", "global_step", "it", "epoch")
_LOSS_COLS = ("loss", "train_loss", "loss_l1", "l1")
_VAL_COLS = ("psnr", "val_psnr", "psnr_val")
_MODEL_KEY_ORDER = ["x2", "x3", "x4", "cdn", "gdn", "lle", "dr"]


def _save(fig: Figure, dest: Path) -> None:
    FigureCanvasAgg(fig)
    # No "Software"/date metadata: a re-run over the same inputs should give the same bytes.
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", metadata={"Software": None})


# ------------------------------------------------------------------------------------------ trade-off
def main_column(table: Table) -> tuple[str, str]:
    """First dataset of the table; for denoising its middle noise level (σ25 in the paper's grid)."""
    ds = table.columns[0][0]
    settings = [st for d, st in table.columns if d == ds]
    return ds, settings[len(settings) // 2]


def tradeoff_figure(table: Table, dest: Path) -> tuple[Optional[Path], Optional[str]]:
    ds, st = main_column(table)
    df = table.long[(table.long["dataset"] == ds) & (table.long["setting"] == st)]
    df = df[df["macs_g"].notna() & df["psnr"].notna()]
    label = f"{ds}" + (f" σ={parse_setting(st).sigma}" if parse_setting(st).sigma is not None else "")
    if df.empty:
        return None, f"{table.name}: no model has both a {label} result and a profile (MACs)"
    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.add_subplot()
    params = df["params_k"].fillna(0).to_numpy(dtype=float)
    # Bubble area proportional to parameters, scaled so the largest model is a readable disc.
    size = 40 + 900 * params / params.max() if params.max() > 0 else np.full(len(df), 60.0)
    colors = [_model_color(m, i) for i, m in enumerate(df["model"])]
    x = df["macs_g"].to_numpy(dtype=float)
    y = df["psnr"].to_numpy(dtype=float)
    ax.scatter(x, y, s=size, c=colors, alpha=0.55, edgecolors="black", linewidths=0.6)
    for xi, yi, m, pk in zip(x, y, df["model"], df["params_k"]):
        txt = m if pd.isna(pk) else f"{m}\n{pk:.0f}K"
        ax.annotate(txt, (xi, yi), textcoords="offset points", xytext=(7, 5), fontsize=7)
    if (x > 0).all() and x.max() / max(x.min(), 1e-12) > 20:
        ax.set_xscale("log")
    _pad_limits(ax, x, y)
    ax.set_xlabel("MACs (G)")
    ax.set_ylabel(f"PSNR (dB) on {label}")
    ax.set_title(f"{group_title(table.group)}: PSNR vs MACs ({table.source}); bubble area ∝ params", fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    _save(fig, dest)
    return dest, None


def _pad_limits(ax, x, y):
    if ax.get_xscale() == "linear":
        span = (x.max() - x.min()) or max(abs(x.max()), 1.0)
        ax.set_xlim(x.min() - 0.15 * span, x.max() + 0.35 * span)
    yspan = (y.max() - y.min()) or 0.5
    ax.set_ylim(y.min() - 0.25 * yspan, y.max() + 0.35 * yspan)


def _model_color(model: str, i: int):
    if model.startswith("RAMiT"):
        return "tab:red"
    return f"C{i % 10}" if f"C{i % 10}" != "C3" else "C9"


# ----------------------------------------------------------------------------------- training curves
def _pick(cols, candidates) -> Optional[str]:
    lower = {c.lower(): c for c in cols}
    for c in candidates:
        if c in lower:
            return lower[c]
    return None


def _read_csv(path: Path) -> Optional[pd.DataFrame]:
    """A CSV a figure may use, or None when it is absent or unreadable (figures never fail the report)."""
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


def _read_curve(path: Path, value_cols) -> Optional[tuple[pd.Series, str, str]]:
    """(values indexed by iteration, x label, column) or None when the file lacks what we need."""
    df = _read_csv(path)
    if df is None:
        return None
    val = _pick(df.columns, value_cols)
    if val is None or df.empty:
        return None
    it = _pick(df.columns, _ITER_COLS)
    x = df[it] if it else pd.Series(np.arange(len(df)), name="row")
    s = pd.to_numeric(df[val], errors="coerce")
    s.index = pd.to_numeric(x, errors="coerce")
    # Several rows per iteration (e.g. one per validation set) -> their mean.
    s = s[s.index.notna()].dropna().groupby(level=0).mean().sort_index()
    return (s, it or "row", val) if len(s) else None


def find_runs(runs: Path) -> dict[str, dict[str, Path]]:
    """model key -> {model: run dir} for every run with a history.csv or val.csv."""
    out: dict[str, dict[str, Path]] = {}
    for d in sorted(Path(runs).glob("*/*")):
        if d.is_dir() and ((d / "history.csv").is_file() or (d / "val.csv").is_file()):
            out.setdefault(d.name, {})[d.parent.name] = d
    return out


def model_key_rank(key: str) -> tuple:
    return (_MODEL_KEY_ORDER.index(key), "") if key in _MODEL_KEY_ORDER else (len(_MODEL_KEY_ORDER), key)


def training_curves(model_key: str, runs: dict[str, Path], order: Ordering,
                    dest: Path) -> tuple[Optional[Path], Optional[str]]:
    curves = []
    models = order.models(runs)
    # Ablation sweeps overlay up to a dozen runs: switch to a 20-colour cycle before colours repeat.
    palette = [f"C{i}" for i in range(10)] if len(models) <= 10 else [colormaps["tab20"](i) for i in range(20)]
    for i, model in enumerate(models):
        d = runs[model]
        loss = _read_curve(d / "history.csv", _LOSS_COLS)
        val = _read_curve(d / "val.csv", _VAL_COLS) or _read_curve(d / "history.csv", _VAL_COLS[1:])
        if loss or val:
            curves.append((model, palette[i % len(palette)], loss, val))
    if not curves:
        return None, f"runs for `{model_key}`: history.csv/val.csv have no loss or PSNR column"
    has_val = any(c[3] for c in curves)
    fig = Figure(figsize=(11 if has_val else 6, 4.2))
    ax_l = fig.add_subplot(1, 2 if has_val else 1, 1)
    ax_v = fig.add_subplot(1, 2, 2) if has_val else None
    for model, color, loss, val in curves:
        if loss:
            s, xl, col = loss
            ax_l.plot(s.index, s.to_numpy(), color=color, alpha=0.25, linewidth=0.7)
            win = max(1, len(s) // 50)  # raw training loss is noisy; the smoothed line carries the label
            ax_l.plot(s.index, s.rolling(win, min_periods=1).mean().to_numpy(), color=color, linewidth=1.4, label=model)
            ax_l.set_xlabel(xl)
            ax_l.set_ylabel(f"training {col}")
        if val and ax_v is not None:
            s, xl, _ = val
            ax_v.plot(s.index, s.to_numpy(), color=color, marker="o", markersize=3, linewidth=1.2, label=model)
            ax_v.set_xlabel(xl)
    if any(c[2] for c in curves):
        if all(c[2] is None or (c[2][0] > 0).all() for c in curves):
            ax_l.set_yscale("log")
        ax_l.set_title(f"{model_key}: training loss (smoothed)", fontsize=9)
        ax_l.legend(fontsize=7)
    else:
        ax_l.set_title(f"{model_key}: no training loss logged", fontsize=9)
    ax_l.grid(True, alpha=0.3)
    if ax_v is not None:
        ax_v.set_ylabel("validation PSNR (dB)")
        ax_v.set_title(f"{model_key}: validation PSNR", fontsize=9)
        ax_v.grid(True, alpha=0.3)
        ax_v.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, dest)
    return dest, None


# ------------------------------------------------------------------------------------ visual strips
def read_image(path: Path) -> np.ndarray:
    """uint8 HxWxC; noisy `.npy` inputs (float [0,1], unclipped) are clipped for display only."""
    if path.suffix == ".npy":
        a = np.load(path)
        a = np.clip(np.asarray(a, dtype=np.float64), 0, 1) * 255.0
        a = np.round(a).astype(np.uint8)
    else:
        from PIL import Image

        with Image.open(path) as im:
            a = np.asarray(im)
        if a.dtype != np.uint8:  # 16-bit PNGs: keep the top 8 bits for display
            a = (a.astype(np.float64) / (256 if a.max() > 255 else 1)).clip(0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 4:
        a = a[..., :3]
    return a


def _find_lq(d: Path, name: str) -> Optional[Path]:
    for ext in (".png", ".npy"):
        if (d / "LQ" / f"{name}{ext}").is_file():
            return d / "LQ" / f"{name}{ext}"
    return None


def _per_image_psnr(csv: Path, name: str) -> Optional[float]:
    df = _read_csv(csv)
    if df is None:
        return None
    key, val = _pick(df.columns, ("name", "image", "file", "filename")), _pick(df.columns, ("psnr",))
    if key is None or val is None:
        return None
    stems = df[key].astype(str).map(lambda s: Path(s).stem)
    hit = pd.to_numeric(df.loc[stems == name, val], errors="coerce").dropna()
    return float(hit.iloc[0]) if len(hit) else None


def strip_setting(table: Table) -> str:
    """Highest noise level for denoising (differences are easiest to see), the only setting otherwise."""
    settings = sorted({st for _, st in table.columns}, key=lambda st: parse_setting(st).sigma or 0)
    return settings[-1]


def _setting_dir(results: Path, source: str, model: str, setting: str) -> Path:
    """results/<source>/<model>/<model key>/<setting>/ (the evaluate stage's layout), or the older
    results/<source>/<model>/<setting>/ of a results tree made by hand."""
    new = Path(results) / source / model / parse_setting(setting).model_key / setting
    return new if new.is_dir() else Path(results) / source / model / setting


def _saved_outputs(results: Path, source: str, model: str, st: str, ds: str) -> Optional[Path]:
    """Where the evaluator left this model's outputs: full images, else crops (`ramit.evaluate.crops`)."""
    base = _setting_dir(results, source, model, st)
    for kind in ("images", "crops"):
        d = base / f"{ds}_{kind}"
        if d.is_dir() and any(d.glob("*.png")):
            return d
    return None


def _choose_image(table: Table, models, st: str, results: Path, data: Path):
    """(dataset, image name, {model: outputs dir}) for the first test set with outputs and a ground truth."""
    for ds in [d for d, s in table.columns if s == st]:
        have = {m: d for m in models if (d := _saved_outputs(results, table.source, m, st, ds)) is not None}
        gt_dir = Path(data) / st / ds / "HQ"
        if not have or not gt_dir.is_dir():
            continue
        counts: dict[str, int] = {}
        for d in have.values():
            for p in d.glob("*.png"):
                if (gt_dir / p.name).is_file():
                    counts[p.stem] = counts.get(p.stem, 0) + 1
        if counts:
            name = sorted(counts, key=lambda n: (-counts[n], n))[0]
            return ds, name, {m: d for m, d in have.items() if (d / f"{name}.png").is_file()}
    return None


def _is_crop_dir(d: Path) -> bool:
    return d.name.endswith("_crops")


def _strip_box(gt, outputs: dict, name: str, lq, scale: int):
    """The crop box (top, left, h, w) by the evaluator's crop rule on the ground truth.

    With crops, their size fixes the window (the rule shrinks it to the image and the scale grid, so
    the crop's own shape gives it back); crops whose recorded box differs are dropped by `_model_crop`.
    """
    for d in outputs.values():
        if _is_crop_dir(d):
            return crop_box(gt, max(read_image(d / f"{name}.png").shape[:2]), scale)
    # Full images may differ from the scored HQ by a few border pixels (modcrop): box inside all of them.
    shapes = [gt.shape[:2]] + [read_image(d / f"{name}.png").shape[:2] for d in outputs.values()]
    if lq is not None:
        shapes.append((lq.shape[0] * scale, lq.shape[1] * scale))
    h, w = min(s[0] for s in shapes), min(s[1] for s in shapes)
    return crop_box(gt[:h, :w], min(h, w, 128, max(48, min(h, w) // 3)), scale)


def _model_crop(d: Path, name: str, box) -> Optional[np.ndarray]:
    img = read_image(d / f"{name}.png")
    if _is_crop_dir(d):
        recorded = read_box(d / f"{name}.json")
        same = recorded is None or tuple(recorded) == tuple(box)
        return img if same and img.shape[:2] == (box[2], box[3]) else None
    a = cut(img, box)
    return a if a.shape[:2] == (box[2], box[3]) else None


def visual_strip(table: Table, results: Path, data: Path, dest: Path) -> tuple[Optional[Path], Optional[str], dict]:
    """GT (full, with the crop boxed) | GT crop | input crop | each model's crop, for one image.

    A model's outputs come from `<Dataset>_images/<name>.png` (full restored images) when present,
    else `<Dataset>_crops/<name>.png` (crops by `ramit.evaluate.crops`, box in `<name>.json`); the
    ground truth and input crops are cut from `data/<setting>/<Dataset>/{HQ,LQ}` with the same box.
    """
    st = strip_setting(table)
    info = parse_setting(st)
    models = [m for m in table.models if not m.startswith(ABLATION_PREFIX)]
    chosen = _choose_image(table, models, st, results, data)
    if chosen is None:
        return None, (f"{table.name}: no restored images or crops with a matching ground truth — evaluate with "
                      f"`--save-images results/{table.source}/<model>/{st}/<Dataset>_images` (or save crops to "
                      f"`<Dataset>_crops`) and keep `{Path(data) / st}/<Dataset>/HQ`"), {}
    ds, name, outputs = chosen
    scale = info.scale or 1
    gt = read_image(Path(data) / st / ds / "HQ" / f"{name}.png")
    lq_path = _find_lq(Path(data) / st / ds, name)
    lq = read_image(lq_path) if lq_path is not None else None
    box = _strip_box(gt, outputs, name, lq, scale)
    crops = [("ground truth", cut(gt, box))]
    if lq is not None:
        a = cut(lq, box, scale)
        a = np.repeat(np.repeat(a, scale, axis=0), scale, axis=1) if scale > 1 else a
        in_title = {"sr": f"LR (nearest ×{scale})", "cdn": f"noisy σ={info.sigma}", "gdn": f"noisy σ={info.sigma}",
                    "lle": "low-light input", "dr": "rainy input"}.get(info.task, "input")
        crops.append((in_title, a))
    psnrs, shown = {}, []
    for m in models:
        a = _model_crop(outputs[m], name, box) if m in outputs else None
        if a is None:
            continue
        p = _per_image_psnr(_setting_dir(results, table.source, m, st) / f"{ds}.csv", name)
        psnrs[m] = p
        shown.append(m)
        crops.append((m if p is None else f"{m}\n{p:.2f} dB", a))
    _draw_strip(gt, box, crops, f"{ds}/{name}",
                f"{group_title(table.group)} ({table.source}), {st}: crop {box[3]}×{box[2]} at (y={box[0]}, x={box[1]})",
                dest)
    missing = [m for m in models if m not in shown]
    note = f"{table.name}: no saved output (or crop of this region) for {', '.join(missing)}" if missing else None
    kinds = sorted({"crops" if _is_crop_dir(outputs[m]) else "images" for m in shown})
    return dest, note, {"dataset": ds, "image": name, "setting": st, "crop": tuple(box), "psnr": psnrs,
                        "outputs": "+".join(kinds)}


def _draw_strip(gt, box, crops, gt_title: str, title: str, dest: Path) -> None:
    top, left, h, w = box
    n = len(crops) + 1
    fig = Figure(figsize=(2.1 * n, 2.7))
    gray = gt.shape[2] == 1
    kw = dict(cmap="gray", vmin=0, vmax=255) if gray else {}
    ax = fig.add_subplot(1, n, 1)
    ax.imshow(gt[..., 0] if gray else gt, interpolation="nearest", **kw)
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, edgecolor="red", linewidth=1.2))
    ax.set_title(gt_title, fontsize=7)
    ax.axis("off")
    for i, (t, a) in enumerate(crops, start=2):
        ax = fig.add_subplot(1, n, i)
        ax.imshow(a[..., 0] if a.shape[2] == 1 else a, interpolation="nearest", **kw)
        ax.set_title(t, fontsize=7)
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    _save(fig, dest)
