"""`ramit restore`: run a trained or released model on your own images.

    ramit restore photo.jpg --model RAMiT-1 --task sr --scale 2 --out restored/
    ramit restore shots/ --model RAMiT --task cdn --checkpoint runs/RAMiT/cdn/model.safetensors --out clean/

Input: one PNG/JPEG/BMP/TIFF file or a folder of them (not recursive); output: `<out>/<stem>.png`
(8-bit, clamped and rounded as the evaluator does). Weights: `--checkpoint` (our `.safetensors` or an
official `.pth`); without it, `runs/<model>/<model key>/model.safetensors` if it exists, else the
released checkpoint the registry (params/checkpoints.yaml) names for the model and key, from
`weights/released/`. The grayscale denoiser takes gray images, every other model RGB: a mismatch is
an error rather than a silent conversion, because converting colour is a choice the user should make.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ramit.data.io import IMAGE_SUFFIXES
from ramit.errors import DataError, RamitError
from ramit.settings import model_key



@dataclass(frozen=True)
class Restored:
    source: Path
    out: Path
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    seconds: float


def list_inputs(path: str | os.PathLike) -> list[Path]:
    """The images to restore: `path` itself, or the image files directly inside the folder `path`."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{path}: not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})")
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{path}: no images in this folder (looked for {', '.join(IMAGE_SUFFIXES)})")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:  # both would be written to <out>/<stem>.png
            raise DataError(f"{path}: {stems[f.stem].name} and {f.name} would both be written as {f.stem}.png")
        stems[f.stem] = f
    return files


def find_checkpoint(model: str, task: str, scale: Optional[int], *, runs: Path = Path("runs"),
                    weights: Path = Path("weights/released"), registry=None) -> Path:
    """Our trained weights for (model, key) if present, else the registered released file in `weights`."""
    from ramit.evaluate.released import load_registry

    key = model_key(task, scale)
    tried = [Path(runs) / model / key / "model.safetensors"]
    if tried[0].is_file():
        return tried[0]
    released = None
    for c in load_registry(registry).checkpoints:
        if c.model == model and c.model_key == key:
            released = c.file
            tried.append(Path(weights) / c.file)
            if tried[-1].is_file():
                return tried[-1]
    hint = f"; `ramit fetch-weights {released}` installs the released one" if released else ""
    raise RamitError(f"no weights for {model} {key}: pass --checkpoint (looked for "
                     + ", ".join(str(p) for p in tried) + hint + ")")


def load_model(model: str, task: str, scale: Optional[int], checkpoint: Optional[str | os.PathLike]):
    """Build `model` for (task, scale) and load its weights; non-learned models take none."""
    from ramit.evaluate.evaluate import NON_LEARNED
    from ramit.models import build_model, load_weights

    if task == "sr" and scale not in (2, 3, 4):
        raise RamitError(f"task sr needs --scale 2, 3 or 4 (got {scale})")
    try:
        net = build_model(model, task, scale=scale if task == "sr" else None)
    except ValueError as e:
        raise RamitError(str(e)) from None
    learned = model not in NON_LEARNED and any(True for _ in net.parameters())
    if learned:
        load_weights(net, checkpoint if checkpoint is not None else find_checkpoint(model, task, scale))
    elif checkpoint is not None:
        raise RamitError(f"{model} has no weights; do not pass --checkpoint")
    return net.eval()


def _to_input(img: np.ndarray, in_chans: int, path: Path):
    import torch

    c = img.shape[2]
    if c != in_chans:
        want = "a gray (1-channel)" if in_chans == 1 else "an RGB"
        got = "gray" if c == 1 else "RGB"
        task = "the grayscale denoiser (gdn)" if in_chans == 1 else "this model"
        raise DataError(f"{path}: image is {got} but {task} takes {want} image; convert it first "
                        f"(e.g. PIL `Image.open(p).convert('{'L' if in_chans == 1 else 'RGB'}')`)")
    x = img.astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def restore_images(inputs: str | os.PathLike, out: str | os.PathLike, *, model: str, task: str,
                   scale: Optional[int] = None, checkpoint: Optional[str | os.PathLike] = None,
                   tile: Optional[int] = None, tile_overlap: int = 32, self_ensemble: bool = False,
                   precision: str = "fp32", device: str = "auto",
                   progress: Optional[Callable[[Restored], None]] = None) -> list[Restored]:
    """Restore every image of `inputs` into `out/<stem>.png`; return what was written."""
    from ramit.data.io import read_image, write_png
    from ramit.evaluate.inference import check_options, resolve_device, restore
    from ramit.evaluate.metrics import to_uint8

    files = list_inputs(inputs)            # bad input fails before the model is built
    dev = resolve_device(device)
    check_options(precision, dev, tile, tile_overlap)
    net = load_model(model, task, scale, checkpoint)
    in_chans = int(getattr(net, "in_chans", 1 if task == "gdn" else 3))
    images = [(f, read_image(f)) for f in files]
    for f, img in images:                  # every channel mismatch before the first (slow) restoration
        _to_input(img, in_chans, f)
    done = []
    for f, img in images:
        t0 = time.perf_counter()
        y = restore(net, _to_input(img, in_chans, f), tile=tile, tile_overlap=tile_overlap,
                    self_ensemble=self_ensemble, precision=precision, device=dev)
        arr = to_uint8(y)
        dest = Path(out) / f"{f.stem}.png"
        write_png(dest, arr)
        r = Restored(f, dest, tuple(img.shape), tuple(arr.shape), time.perf_counter() - t0)
        done.append(r)
        if progress is not None:
            progress(r)
    return done
