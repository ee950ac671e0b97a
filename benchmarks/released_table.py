"""PSNR/SSIM and wall time of the authors' released checkpoints on the test sets available offline.

Runs the same steps as the pipeline's "released" target, through the public API only:
`fetch_weights` (checkpoints mirror) -> `fetch_datasets` (datasets mirror) -> `degrade_dataset` ->
`evaluate_cli`. After every (model, setting, dataset) the markdown table is rewritten, so an
interrupted run still leaves the rows it finished.

    .venv/bin/python benchmarks/released_table.py --work /tmp/released --threads 2 \
        [--device cpu] [--only RAMiT-1] [--sets Set5,Set14]

Scope: RAMiT-1 and RAMiT-slimSR x2/x3/x4 on Set5 and Set14; RAMiT-1 CDN at sigma 15/25/50 on McMaster
and Kodak24. RAMiT-slimLLE is listed but not run: no LLE test set (LOL, VE-LOL) is available offline.
The 7 plain `RAMiT_*` checkpoints are not in the mirror.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RAMIT_SHARED", ROOT.parent / "shared"))

SR_SETS = ["Set5", "Set14"]
CDN_SETS = ["McMaster", "Kodak24"]


def jobs(sets: set[str] | None):
    out = []
    for variant in ("RAMiT-1", "RAMiT-slimSR"):
        for s in (2, 3, 4):
            for ds in SR_SETS:
                out.append((variant, f"x{s}", f"x{s}", ds))
    for sigma in (15, 25, 50):
        for ds in CDN_SETS:
            out.append(("RAMiT-1", "cdn", f"cdn_s{sigma}", ds))
    return [j for j in out if sets is None or j[3] in sets]


def first_n(data: Path, n: int, dest: Path) -> Path:
    """A copy of a degraded set with only its first `n` pairs (manifest kept, so names/setting stay)."""
    import shutil

    names = sorted(p.stem for p in (data / "HQ").glob("*.png"))[:n]
    if dest.exists():
        shutil.rmtree(dest)
    for sub in ("HQ", "LQ"):
        (dest / sub).mkdir(parents=True)
        for f in (data / sub).iterdir():
            if f.stem in names:
                shutil.copy(f, dest / sub / f.name)
    shutil.copy(data / "manifest.json", dest / "manifest.json")
    return dest


def render(rows: list[dict], device: str, threads: int) -> str:
    lines = [
        f"Released checkpoints, official protocol (whole image, fp32, no ensemble); device {device}, "
        f"{threads} threads. `seconds` = wall time of the evaluation loop (inference + scoring).",
        "",
        "| model | checkpoint | setting | dataset | n | PSNR (dB) | SSIM | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {Path(r['checkpoint']).name} | {r['setting']} | {r['dataset']} | {r['n']} | "
                     f"{r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.1f} |")
    lines += ["", "RAMiT-slimLLE_LLE.pth: not evaluated, no LLE test set (LOL / VE-LOL-cap) is available offline."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/released"))
    ap.add_argument("--datasets-mirror", default=str(SHARED / "datasets"))
    ap.add_argument("--weights-mirror", default=str(SHARED / "checkpoints"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", default=None, help="Comma-separated model names.")
    ap.add_argument("--sets", default=None, help="Comma-separated dataset names.")
    ap.add_argument("--settings", default=None, help="Comma-separated setting keys (e.g. x2,cdn_s25).")
    ap.add_argument("--out", type=Path, default=None, help="Markdown file (default: <work>/table.md).")
    ap.add_argument("--limit", type=int, default=None,
                    help="Only the first N images (sorted by name) of each set; the table says so.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from ramit.config import PARAMS_DIR
    from ramit.data.degrade import degrade_dataset
    from ramit.data.fetch import fetch_datasets
    from ramit.evaluate.evaluate import evaluate_cli
    from ramit.evaluate.released import checkpoint_file, fetch_weights

    work = args.work
    out_md = args.out or work / "table.md"
    todo = jobs(set(args.sets.split(",")) if args.sets else None)
    if args.only:
        todo = [j for j in todo if j[0] in args.only.split(",")]
    if args.settings:
        todo = [j for j in todo if j[2] in args.settings.split(",")]
    reg = PARAMS_DIR / "datasets.yaml"
    files = sorted({checkpoint_file(v, k) for v, k, _, _ in todo})
    weights = {p.name: p for p in fetch_weights(files, out=work / "weights", mirror=args.weights_mirror)}
    fetch_datasets(sorted({d for *_, d in todo}), data_dir=work / "raw", mirror=args.datasets_mirror, registry=reg)

    rows = []
    for variant, key, setting, ds in todo:
        data = degrade_dataset(setting, ds, data_dir=work / "raw", out=work / "degraded" / setting / ds, registry=reg)
        if args.limit:
            data = first_n(data, args.limit, work / "subsets" / setting / ds)
        t0 = time.perf_counter()
        res = evaluate_cli(model=variant, setting=setting, data=data,
                           out=work / "results" / "released" / variant / setting / f"{ds}.json",
                           checkpoint=weights[checkpoint_file(variant, key)], source="released",
                           device=args.device)
        if args.limit:
            res = {**res, "dataset": f"{ds} (first {res['n']})"}
        rows.append(res)
        print(f"{variant} {setting} {ds}: PSNR {res['psnr']:.3f} SSIM {res['ssim']:.4f} "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
        out_md.parent.mkdir(parents=True, exist_ok=True)
        out_md.write_text(render(rows, res["device"], args.threads))
    print(out_md.read_text())


if __name__ == "__main__":
    main()
