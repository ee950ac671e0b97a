"""Tasks, model keys and setting keys: the one place that knows what `x2`, `cdn`, `cdn_s25` mean.

A *model key* names one trained model of a model family: `x2`, `x3`, `x4` (SR scales), `cdn`, `gdn`,
`lle`, `dr`. A *setting* is one evaluation condition (task, SR scale, noise level); its model key
names the trained model that serves it (denoisers are blind: `cdn_s15/25/50` are all served by `cdn`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional, Sequence

from ramit.errors import RamitError

Task = Literal["sr", "cdn", "gdn", "lle", "dr"]
ModelKey = Literal["x2", "x3", "x4", "cdn", "gdn", "lle", "dr"]
TASKS: tuple[str, ...] = ("sr", "cdn", "gdn", "lle", "dr")
MODEL_KEYS: tuple[str, ...] = ("x2", "x3", "x4", "cdn", "gdn", "lle", "dr")
SR_SCALES: tuple[int, ...] = (2, 3, 4)
DENOISING: tuple[str, ...] = ("cdn", "gdn")

SETTING_HELP = "x2, x3, x4, cdn_s15, cdn_s25, cdn_s50, gdn_s15, gdn_s25, gdn_s50, lle, dr (any sigma works)"


@dataclass(frozen=True)
class Setting:
    key: str
    task: str                      # sr, cdn, gdn, lle, dr
    scale: int = 1                 # the network's upscaling factor (1 except SR)
    sigma: Optional[int] = None    # AWGN level in 0-255 units (denoising only)

    @property
    def model_key(self) -> str:
        return self.key if self.task == "sr" else self.task

    @property
    def group(self) -> str:
        """One report table per group: sr_x2, sr_x3, sr_x4, cdn, gdn, lle, dr."""
        return f"sr_{self.key}" if self.task == "sr" else self.task

    @property
    def column_label(self) -> str:
        return f"σ{self.sigma}" if self.sigma is not None else ""

    @property
    def y_channel(self) -> bool:
        return self.task in ("sr", "dr")

    @property
    def crop_border(self) -> int:
        return self.scale if self.task == "sr" else 0


def parse_setting(key: str, unknown_ok: bool = False) -> Setting:
    """'x2' -> sr x2; 'cdn_s15' -> cdn sigma 15; 'gdn_s50'; 'lle'; 'dr'.

    `unknown_ok` (the report, reading results of another version): an unknown key becomes a task of
    its own name instead of an error."""
    if m := re.fullmatch(r"x([234])", key):
        return Setting(key, "sr", scale=int(m.group(1)))
    if m := re.fullmatch(r"(cdn|gdn)_s(\d+)", key):
        return Setting(key, m.group(1), sigma=int(m.group(2)))
    if key in ("lle", "dr") or unknown_ok:
        return Setting(key, key)
    raise RamitError(f"unknown setting {key!r} ({SETTING_HELP})")


def check_model_key(key: str) -> str:
    if key not in MODEL_KEYS:
        raise RamitError(f"unknown model key {key!r}; allowed: {', '.join(MODEL_KEYS)}")
    return key


def key_task(key: str) -> str:
    """'x3' -> 'sr'; 'cdn' -> 'cdn'."""
    return "sr" if check_model_key(key).startswith("x") else key


def key_scale(key: str) -> Optional[int]:
    """'x3' -> 3; non-SR keys have no scale (None)."""
    return int(key[1:]) if check_model_key(key).startswith("x") else None


def model_key(task: str, scale: Optional[int] = None) -> str:
    """('sr', 2) -> 'x2'; ('cdn', None) -> 'cdn'."""
    key = f"x{scale}" if task == "sr" else task
    return check_model_key(key)


def key_settings(key: str, sigmas: Sequence[int]) -> list[str]:
    """The settings one trained model is evaluated at: 'cdn' -> cdn_s15/25/50; 'x2' -> x2."""
    if key_task(key) in DENOISING:
        return [f"{key}_s{s}" for s in sigmas]
    return [key]


def validation_setting(key: str, sigmas: Sequence[int]) -> str:
    """The setting a training run validates on: the middle noise level for denoisers (sigma 25)."""
    settings = key_settings(key, sigmas)
    return settings[len(settings) // 2]
