"""Time our MATLAB-exact imresize on the BSD100 HR images (shared/datasets/BSD100/HR) at x2/x3/x4.

    .venv/bin/python benchmarks/bench_resize.py [--datasets DIR] [--repeat N]

Prints, per scale, the total over the 100 images and the mean/median per image (best of N repeats,
image decoding excluded).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from ramit.data.degrade import imresize
from ramit.data.io import read_image

DEFAULT = Path(os.environ.get("RAMIT_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "datasets"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    paths = sorted((args.datasets / "BSD100" / "HR").glob("*.png"))
    if not paths:
        raise SystemExit(f"no images in {args.datasets / 'BSD100' / 'HR'}")
    images = [read_image(p) for p in paths]
    print(f"{len(images)} BSD100 HR images ({images[0].shape[1]}x{images[0].shape[0]} ...), uint8, best of {args.repeat}")
    for s in (2, 3, 4):
        per = []
        for img in images:
            h, w = img.shape[:2]
            crop = img[: h - h % s, : w - w % s]
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                imresize(crop, 1 / s)
                best = min(best, time.perf_counter() - t0)
            per.append(best * 1000)
        print(f"x{s}: total {sum(per) / 1000:.3f} s, per image mean {statistics.mean(per):.2f} ms, "
              f"median {statistics.median(per):.2f} ms")


if __name__ == "__main__":
    main()
