"""Time PSNR+SSIM over BSD100 x2 (the SR scoring workload): ramit.evaluate.metrics vs scikit-image.

Workload: for each of the 100 BSD100 images, the x2 LR from the mirror is upsampled with our
MATLAB-exact bicubic (`imresize`, done once, outside the timing), and PSNR and SSIM are computed
between it and the HR on the Y channel with a 2-pixel border crop. The scikit-image route gets the
same float64 Y arrays (`prepare`, timed on our side only because it is shared) and is told the same
conventions, so the two runs compute the same numbers; the script checks that before reporting.

    .venv/bin/python benchmarks/bench_metrics.py [--mirror ../shared/datasets] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ramit.data.io import read_image
from ramit.evaluate.metrics import prepare, psnr_ssim

try:
    from ramit.data.degrade import imresize
except ImportError:  # the degrade module re-exports this; fall back while it is not there
    from ramit.data.imresize import imresize

ROOT = Path(__file__).resolve().parent.parent


def load_workload(mirror: Path, limit: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    names = sorted(p.stem for p in (mirror / "BSD100" / "LR_bicubic" / "X2").glob("*.png"))
    for name in names[:limit]:
        lr = read_image(mirror / "BSD100" / "LR_bicubic" / "X2" / f"{name}.png")
        hr = read_image(mirror / "BSD100" / "HR" / f"{name}.png")
        up = imresize(lr, 2)
        hr = hr[: up.shape[0], : up.shape[1]]
        pairs.append((up, hr))
    return pairs


def run_ours(pairs):
    return [psnr_ssim(a, b, 2, True) for a, b in pairs]


def run_skimage(pairs):
    out = []
    for a, b in pairs:
        x, y = prepare(a, b, 2, True)
        x, y = x[..., 0], y[..., 0]
        out.append((
            peak_signal_noise_ratio(x, y, data_range=255),
            structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                  data_range=255),
        ))
    return out


def best_of(fns, pairs, repeats):
    """Best wall time of each function; runs alternate so background load hits both alike."""
    times = [[] for _ in fns]
    results = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            results[i] = fn(pairs)
            times[i].append(time.perf_counter() - t0)
    return [min(t) for t in times], results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, default=Path(os.environ.get("RAMIT_SHARED", ROOT.parent / "shared")) / "datasets")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None, help="Only the first N images.")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    pairs = load_workload(args.mirror, args.limit)
    (t_ours, t_sk), (r_ours, r_sk) = best_of([run_ours, run_skimage], pairs, args.repeats)
    d = np.abs(np.array(r_ours) - np.array(r_sk)).max(axis=0)
    mean = np.array(r_ours).mean(axis=0)
    print(f"BSD100 x2, {len(pairs)} images, Y channel, crop 2, best of {args.repeats}, {args.threads} threads")
    print(f"  mean PSNR {mean[0]:.4f} dB, mean SSIM {mean[1]:.6f} (bicubic x2 from the mirror's LR)")
    print(f"  max |ours - skimage|: PSNR {d[0]:.2e} dB, SSIM {d[1]:.2e}")
    print(f"  ramit.evaluate.metrics: {t_ours:.3f} s  ({1000 * t_ours / len(pairs):.1f} ms/image)")
    print(f"  scikit-image:           {t_sk:.3f} s  ({1000 * t_sk / len(pairs):.1f} ms/image)")
    print(f"  speed-up (skimage / ours): {t_sk / t_ours:.2f}x")


if __name__ == "__main__":
    main()
