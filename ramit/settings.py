"""Setting keys: the one parser every stage uses to read `x2`, `cdn_s25`, `gdn_s50`, `lle`, `dr`.

A *setting* is one evaluation condition (task, SR scale, noise level); its *model key* names the
trained model that serves it (denoisers are blind: `cdn_s15/25/50` are all served by `cdn`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ramit.errors import RamitError

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


def parse_setting(key: str) -> Setting:
    """'x2' -> sr x2; 'cdn_s15' -> cdn sigma 15; 'gdn_s50'; 'lle'; 'dr'."""
    if m := re.fullmatch(r"x([234])", key):
        return Setting(key, "sr", scale=int(m.group(1)))
    if m := re.fullmatch(r"(cdn|gdn)_s(\d+)", key):
        return Setting(key, m.group(1), sigma=int(m.group(2)))
    if key in ("lle", "dr"):
        return Setting(key, key)
    raise RamitError(f"unknown setting {key!r} ({SETTING_HELP})")
