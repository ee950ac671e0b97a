"""The authors' released checkpoints: registry (params/checkpoints.yaml), fetching, and lookup.

All 15 files named by the official README are registered, pinned by their git blob SHA-1 (the only
hash GitHub publishes for them); the 8 we could inspect also carry sha256 and size, and those are what
we verify when present. Downloads go through the data layer's `fetch_file`, so retries, atomic
installs and checksum errors read the same as for datasets.

Where files come from, first match wins: the `mirror` argument, `$RAMIT_MIRROR_WEIGHTS`, the public
raw URL. A mirror is a directory or URL laid out like the repository (`<mirror>/pretrained/<file>`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable, Literal, Optional

from pydantic import Field, model_validator

from ramit.config import PARAMS_DIR, Strict, load_yaml
from ramit.errors import DataError, RamitError

DEFAULT_REGISTRY = PARAMS_DIR / "checkpoints.yaml"
MIRROR_ENV = "RAMIT_MIRROR_WEIGHTS"

Task = Literal["sr", "cdn", "gdn", "lle", "dr"]
_HEX40 = r"^[0-9a-f]{40}$"
_HEX64 = r"^[0-9a-f]{64}$"


class Checkpoint(Strict):
    file: str = Field(pattern=r"^[A-Za-z0-9_.-]+\.pth$")
    variant: str
    task: Task
    scale: Optional[Literal[2, 3, 4]] = None
    git_blob_sha1: str = Field(pattern=_HEX40)
    sha256: Optional[str] = Field(default=None, pattern=_HEX64)
    bytes: Optional[int] = Field(default=None, gt=0)
    url: str = Field(pattern=r"^https?://")
    relpath: str

    @model_validator(mode="after")
    def _consistent(self):
        if (self.task == "sr") != (self.scale is not None):
            raise ValueError(f"{self.file}: scale is required for sr and only for sr")
        if self.relpath != f"pretrained/{self.file}":
            raise ValueError(f"{self.file}: relpath must be 'pretrained/{self.file}', got {self.relpath!r}")
        if not self.url.endswith("/" + self.relpath):
            raise ValueError(f"{self.file}: url must end with '/{self.relpath}' (mirror layout)")
        return self

    @property
    def model_key(self) -> str:
        return f"x{self.scale}" if self.task == "sr" else self.task


class Registry(Strict):
    base_url: str = Field(pattern=r"^https?://")
    checkpoints: list[Checkpoint]

    @model_validator(mode="after")
    def _unique(self):
        seen: set[str] = set()
        keys: set[tuple[str, str]] = set()
        for c in self.checkpoints:
            if c.file in seen:
                raise ValueError(f"duplicate checkpoint file {c.file}")
            if (c.variant, c.model_key) in keys:
                raise ValueError(f"two checkpoints for {c.variant} {c.model_key}")
            if c.url != f"{self.base_url}/{c.relpath}":
                raise ValueError(f"{c.file}: url is not base_url + relpath")
            seen.add(c.file)
            keys.add((c.variant, c.model_key))
        return self

    def get(self, file: str) -> Checkpoint:
        for c in self.checkpoints:
            if c.file == file:
                return c
        raise RamitError(f"unknown checkpoint {file!r}; registered: {', '.join(c.file for c in self.checkpoints)}")


def load_registry(path: str | os.PathLike | None = None) -> Registry:
    return load_yaml(Path(path) if path else DEFAULT_REGISTRY, Registry)


def checkpoint_for(variant: str, model_key: str, registry: str | os.PathLike | Registry | None = None) -> Checkpoint:
    """The registry entry of the released checkpoint for (variant, model key), e.g. ('RAMiT-1', 'x2')."""
    reg = registry if isinstance(registry, Registry) else load_registry(registry)
    for c in reg.checkpoints:
        if c.variant == variant and c.model_key == model_key:
            return c
    have = ", ".join(f"{c.variant}/{c.model_key}" for c in reg.checkpoints)
    raise RamitError(f"no released checkpoint for {variant} {model_key}; released: {have}")


def checkpoint_file(variant: str, model_key: str, registry=None) -> str:
    """File name of the released checkpoint, e.g. ('RAMiT-1', 'x2') -> 'RAMiT-1_X2.pth'."""
    return checkpoint_for(variant, model_key, registry).file


def resolve_mirror(mirror: str | os.PathLike | None) -> str | None:
    if mirror:
        return str(mirror)
    return os.environ.get(MIRROR_ENV) or None


def _is_local(mirror: str) -> bool:
    return "://" not in mirror or mirror.startswith("file://")


def _local_root(mirror: str) -> Path:
    return Path(mirror[len("file://"):] if mirror.startswith("file://") else mirror)


def fetch_weights(
    files: Iterable[str] | None = None,
    *,
    out: str | os.PathLike = Path("weights/released"),
    mirror: str | os.PathLike | None = None,
    registry: str | os.PathLike | None = None,
) -> list[Path]:
    """Install checksum-verified released checkpoints into `out`; return their paths.

    `files=None` means every registered file the source can serve: all of them from the public URL,
    only those present in a local mirror directory (the others are listed in a warning). A file asked
    for by name that the source does not have is an error.
    """
    from ramit.data.fetch import fetch_file

    reg = load_registry(registry)
    src = resolve_mirror(mirror)
    explicit = files is not None
    entries = [reg.get(f) for f in files] if explicit else list(reg.checkpoints)
    out = Path(out)

    if src and _is_local(src):
        root = _local_root(src)
        if not root.is_dir():
            raise DataError(f"checkpoint mirror {root} is not a directory")
        missing = [c for c in entries if not (root / c.relpath).is_file()]
        if missing and explicit:
            raise DataError(
                f"not in the checkpoint mirror {root}: "
                + ", ".join(f"{c.relpath} (public: {c.url})" for c in missing)
            )
        if missing:
            warnings.warn(
                f"skipping {len(missing)} checkpoint(s) absent from mirror {root}: "
                + ", ".join(c.file for c in missing),
                stacklevel=2,
            )
            entries = [c for c in entries if c not in missing]

    paths = []
    for c in entries:
        try:
            paths.append(
                Path(
                    fetch_file(
                        out / c.file,
                        url=c.url,
                        relpath=c.relpath,
                        mirror=src,
                        # sha256 is the stronger pin; the blob SHA-1 is all we have for the other 7.
                        sha256=c.sha256,
                        git_blob_sha1=None if c.sha256 else c.git_blob_sha1,
                    )
                )
            )
        except RamitError as e:
            raise DataError(f"{c.file}: {e}") from None
    return paths


__all__ = [
    "Checkpoint",
    "Registry",
    "checkpoint_file",
    "checkpoint_for",
    "fetch_weights",
    "load_registry",
    "resolve_mirror",
]
