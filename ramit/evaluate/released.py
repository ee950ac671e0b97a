"""Released checkpoints, RAMiT's and the baselines': registry (params/checkpoints.yaml), fetching, lookup.

Every entry names what the file is for, so the pipeline never parses file names:
* `model` (a `build_model` name) and `model_key` (x2, cdn, ...) say what to build and load it into;
* `settings` (optional) the setting keys it is valid for, e.g. `[gdn_s25]` for a non-blind sigma-25
  denoiser; default: every setting of its model key;
* `datasets` (optional) the test sets it is valid for, e.g. PReNet's Rain100H model; default: all.
Two entries of one model may not both cover a (setting, dataset).

Files are pinned by sha256 and size where we could hash them, else by the git blob SHA-1 GitHub
stores; release assets nobody could download here carry no pin, and fetching one says so and prints
its sha256 to record. Downloads go through the data layer's `fetch_file`, so retries, atomic installs
and checksum errors read the same as for datasets. A file lands at `<out>/<file>`: `file` is our unique
installed name (two PReNet checkpoints are both `net_latest.pth` upstream).

Where files come from, first match wins: the `mirror` argument, `$RAMIT_MIRROR_WEIGHTS`, the public
URL. A mirror is a directory or http(s) URL laid out like the shared checkpoints folder:
`<mirror>/<relpath>`, i.e. `pretrained/RAMiT-1_X2.pth`, `baselines/IMDN_x2.pth`,
`baselines/PReNet/logs/Rain100H/PReNet6/net_latest.pth`. Entries without a public URL (Google Drive
only) come from a mirror or by hand.
"""

from __future__ import annotations

import os
import posixpath
import warnings
from pathlib import Path
from typing import Iterable, Literal, Optional

from pydantic import Field, field_validator, model_validator

from ramit.config import PARAMS_DIR, Strict, load_yaml
from ramit.data.fetch import local_mirror
from ramit.errors import DataError, RamitError
from ramit.settings import ModelKey

DEFAULT_REGISTRY = PARAMS_DIR / "checkpoints.yaml"
MIRROR_ENV = "RAMIT_MIRROR_WEIGHTS"

_HEX40 = r"^[0-9a-f]{40}$"
_HEX64 = r"^[0-9a-f]{64}$"
_URL = r"^https?://"


class Checkpoint(Strict):
    file: str = Field(pattern=r"^[A-Za-z0-9_.-]+\.pth$", description="Unique installed name: <out>/<file>.")
    model: str = Field(min_length=1, description="The build_model name it loads into.")
    model_key: ModelKey
    settings: Optional[list[str]] = Field(None, min_length=1, description="Valid setting keys; None: all of model_key.")
    datasets: Optional[list[str]] = Field(None, min_length=1, description="Valid test sets; None: all.")
    url: Optional[str] = Field(None, pattern=_URL, description="Public download URL; None: not downloadable.")
    download_page: Optional[str] = Field(None, pattern=_URL, description="Where to get it by hand (no url).")
    relpath: str = Field(description="Path under a weights mirror (layout of the shared checkpoints folder).")
    git_blob_sha1: Optional[str] = Field(None, pattern=_HEX40)
    sha256: Optional[str] = Field(None, pattern=_HEX64)
    bytes: Optional[int] = Field(None, gt=0)
    licence: str = Field(min_length=1, description="Licence of the file as its publisher states it.")
    source: str = Field(min_length=1, description="Repository@commit:path or release it was published in.")

    @field_validator("relpath")
    @classmethod
    def _relative(cls, v: str) -> str:
        parts = v.split("/")
        if v.startswith("/") or ".." in parts or not v.endswith(".pth"):
            raise ValueError(f"relpath must be a relative path to a .pth file inside the mirror, got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        from ramit.settings import parse_setting

        if self.url is None and self.download_page is None:
            raise ValueError(f"{self.file}: give a url, or a download_page where the file can be fetched by hand")
        if self.url is not None and posixpath.basename(self.url) != posixpath.basename(self.relpath):
            raise ValueError(f"{self.file}: url and relpath name different files ({self.url} vs {self.relpath})")
        if self.relpath.startswith("pretrained/") and self.relpath != f"pretrained/{self.file}":
            raise ValueError(f"{self.file}: RAMiT files sit at 'pretrained/{self.file}', got {self.relpath!r}")
        for key in self.settings or []:
            if parse_setting(key).model_key != self.model_key:
                raise ValueError(f"{self.file}: setting {key!r} is not served by model key {self.model_key!r}")
        return self

    @property
    def task(self) -> str:
        return "sr" if self.model_key.startswith("x") else self.model_key

    @property
    def scale(self) -> Optional[int]:
        return int(self.model_key[1:]) if self.task == "sr" else None

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None or self.git_blob_sha1 is not None

    def covers(self, setting: str, dataset: Optional[str] = None) -> bool:
        """Whether this checkpoint is meant to be evaluated at `setting` (and on `dataset`, if given)."""
        from ramit.settings import parse_setting

        if parse_setting(setting).model_key != self.model_key:
            return False
        if self.settings is not None and setting not in self.settings:
            return False
        return dataset is None or self.datasets is None or dataset in self.datasets

    def setting_keys(self, sigmas: Iterable[int] = (15, 25, 50)) -> list[str]:
        """The settings to evaluate it at: its own list, else every setting of its model key."""
        if self.settings is not None:
            return list(self.settings)
        if self.task in ("cdn", "gdn"):
            return [f"{self.task}_s{s}" for s in sigmas]
        return [self.model_key]


def _overlap(a: Optional[list[str]], b: Optional[list[str]]) -> bool:
    return a is None or b is None or bool(set(a) & set(b))


class Registry(Strict):
    checkpoints: list[Checkpoint]

    @model_validator(mode="after")
    def _unique(self):
        for i, c in enumerate(self.checkpoints):
            for d in self.checkpoints[:i]:
                if c.file == d.file:
                    raise ValueError(f"duplicate checkpoint file {c.file}")
                if c.relpath == d.relpath:
                    raise ValueError(f"{c.file} and {d.file} have the same relpath {c.relpath}")
                if (c.model, c.model_key) == (d.model, d.model_key) and _overlap(c.settings, d.settings) \
                        and _overlap(c.datasets, d.datasets):
                    raise ValueError(f"{d.file} and {c.file} both serve {c.model} {c.model_key} for the same "
                                     "settings and datasets: give them disjoint `settings` or `datasets`")
        return self

    def get(self, file: str) -> Checkpoint:
        for c in self.checkpoints:
            if c.file == file:
                return c
        raise RamitError(f"unknown checkpoint {file!r}; registered: {', '.join(c.file for c in self.checkpoints)}")


def load_registry(path: str | os.PathLike | None = None) -> Registry:
    return load_yaml(Path(path) if path else DEFAULT_REGISTRY, Registry)


def released_entries(registry: str | os.PathLike | Registry | None = None) -> list[Checkpoint]:
    """Every registered checkpoint, in registry order (what the pipeline maps files to models with)."""
    reg = registry if isinstance(registry, Registry) else load_registry(registry)
    return list(reg.checkpoints)


def checkpoint_for(model: str, model_key: str, registry: str | os.PathLike | Registry | None = None,
                   setting: Optional[str] = None, dataset: Optional[str] = None) -> Checkpoint:
    """The released checkpoint for (model, model key), e.g. ('RAMiT-1', 'x2'); `setting` / `dataset`
    choose among several (SwinIR-M's noise-15/25/50 files, PReNet's Rain100H/Rain100L models)."""
    found = [c for c in released_entries(registry) if c.model == model and c.model_key == model_key
             and (setting is None or c.covers(setting, dataset))
             and (dataset is None or c.datasets is None or dataset in c.datasets)]
    if len(found) == 1:
        return found[0]
    what = f"{model} {model_key}" + (f" {setting}" if setting else "") + (f" on {dataset}" if dataset else "")
    if not found:
        have = ", ".join(f"{c.model}/{c.model_key}" for c in released_entries(registry))
        raise RamitError(f"no released checkpoint for {what}; released: {have}")
    raise RamitError(f"several released checkpoints for {what} ({', '.join(c.file for c in found)}): "
                     "name the setting or dataset")


def checkpoint_file(model: str, model_key: str, registry=None, setting: Optional[str] = None,
                    dataset: Optional[str] = None) -> str:
    """Installed file name of the released checkpoint, e.g. ('RAMiT-1', 'x2') -> 'RAMiT-1_X2.pth'."""
    return checkpoint_for(model, model_key, registry, setting, dataset).file


def resolve_mirror(mirror: str | os.PathLike | None) -> str | None:
    from ramit.data.fetch import resolve_mirror as _resolve

    return _resolve(str(mirror) if mirror else None, env=MIRROR_ENV)


def _by_hand(c: Checkpoint, out: Path) -> str:
    return (f"{c.file} has no public download URL: get it from {c.download_page} ({c.source}) and put it "
            f"at {out / c.file}, or serve it from a weights mirror at <mirror>/{c.relpath}")


def _available(entries: list[Checkpoint], src: Optional[str], out: Path, explicit: bool) -> list[Checkpoint]:
    """The entries the source can serve; asked-for files it cannot serve are an error, others a warning."""
    def servable(c: Checkpoint) -> bool:
        if (out / c.file).is_file():
            return True
        if root is not None:
            return (root / c.relpath).is_file()
        return src is not None or c.url is not None

    root = local_mirror(src)
    if root is not None and not root.is_dir():
        raise DataError(f"checkpoint mirror {root} is not a directory")
    missing = [c for c in entries if not servable(c)]
    if missing and explicit:
        where = f"the checkpoint mirror {root}" if root is not None else "any source"
        raise DataError(f"not in {where}: " + "; ".join(
            f"{c.relpath} (public: {c.url})" if c.url else _by_hand(c, out) for c in missing))
    if missing:
        warnings.warn(f"skipping {len(missing)} checkpoint(s) the source does not have: "
                      + ", ".join(c.file for c in missing), stacklevel=3)
    return [c for c in entries if c not in missing]


def _mismatch(path: Path, c: Checkpoint) -> Optional[str]:
    from ramit.io import git_blob_sha1, sha256_file

    if c.sha256 is not None and sha256_file(path) != c.sha256:
        return f"sha256 {sha256_file(path)} is not the registered {c.sha256}"
    if c.sha256 is None and c.git_blob_sha1 is not None and git_blob_sha1(path) != c.git_blob_sha1:
        return f"git blob SHA-1 {git_blob_sha1(path)} is not the registered {c.git_blob_sha1}"
    return None


def _install(c: Checkpoint, out: Path, src: Optional[str]) -> Path:
    from ramit.data.fetch import fetch_file
    from ramit.io import sha256_file

    dest = out / c.file
    if dest.is_file() and (not c.pinned or (c.url is None and not src)):
        # nothing to verify against, or nowhere to fetch a fresh copy from: judge the file in place
        problem = _mismatch(dest, c)
        if problem:
            raise DataError(f"{dest}: {problem}. " + _by_hand(c, out))
    else:
        try:
            fetch_file(dest, url=c.url or "", relpath=c.relpath, mirror=src,
                       # sha256 is the stronger pin; the blob SHA-1 is all GitHub publishes for some
                       sha256=c.sha256, git_blob_sha1=None if c.sha256 else c.git_blob_sha1)
        except RamitError as e:
            raise DataError(f"{c.file}: {e}") from None
    if not c.pinned:
        warnings.warn(f"{c.file}: not verified (no checksum registered); its sha256 is {sha256_file(dest)}: "
                      "record it in params/checkpoints.yaml", stacklevel=3)
    return dest


def fetch_weights(
    files: Iterable[str] | None = None,
    *,
    out: str | os.PathLike = Path("weights/released"),
    mirror: str | os.PathLike | None = None,
    registry: str | os.PathLike | None = None,
) -> list[Path]:
    """Install checksum-verified released checkpoints into `out` as `<out>/<file>`; return their paths.

    `files=None` means every registered file the source can serve (the others are named in a warning):
    from the public URLs all that have one, from a local mirror directory those it holds. A file asked
    for by name that the source cannot serve is an error that says where to get it.
    """
    reg = load_registry(registry)
    src = resolve_mirror(mirror)
    explicit = files is not None
    entries = [reg.get(f) for f in files] if explicit else list(reg.checkpoints)
    out = Path(out)
    return [_install(c, out, src) for c in _available(entries, src, out, explicit)]


__all__ = [
    "Checkpoint",
    "Registry",
    "checkpoint_file",
    "checkpoint_for",
    "fetch_weights",
    "load_registry",
    "released_entries",
    "resolve_mirror",
]
