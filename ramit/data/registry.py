"""Schema of `params/datasets.yaml`: which datasets exist, where they come from, and how to verify them.

Each dataset is obtained in exactly one way, which fixes how `ramit fetch` installs it:

* `manifest`: a CSV (beside the registry) listing every file with its public raw URL and sha256; the
  file's `path` column is both its path under a mirror and under `data/raw/`.
* `archives`: one or more zip/tar archives downloaded (or taken from a mirror) and unpacked; `members`
  maps a folder inside the archive onto a folder of `data/raw/<Dataset>/`.
* `manual`: request-only or drive-hosted data that no script may download; `fetch` says where to put
  it and then verifies the layout (`expect`: sub-folder -> number of images).
* `embedded`: crops of images shipped inside the scikit-image wheel (no network at all).
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple

from pydantic import Field, PrivateAttr, model_validator

from ramit.config import ConfigError, Strict, load_yaml
from ramit.settings import Task

SHA256 = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class FileEntry(Strict):
    path: str  # relative to the mirror root and to data_dir: "<Dataset>/<sub>/<name>.<ext>"
    url: str
    sha256: Optional[str] = SHA256
    git_blob_sha1: Optional[str] = Field(default=None, pattern=r"^[0-9a-f]{40}$")


class ArchiveMember(Strict):
    src: str  # folder inside the archive, posix, trailing slash optional
    dest: str  # folder under data/raw/<Dataset>/


class Archive(Strict):
    url: str
    relpath: str  # where the archive sits under a mirror, e.g. "archives/EDSR/benchmark.tar"
    sha256: Optional[str] = SHA256
    members: List[ArchiveMember]


class Manual(Strict):
    instructions: str
    expect: Dict[str, Optional[int]]  # sub-folder -> number of images (None: any, but not zero)


class EmbeddedImage(Strict):
    name: str
    source: str  # file name inside skimage/data (only files shipped in the wheel)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # of that source file
    crop: Optional[Tuple[int, int, int, int]] = None  # top, left, height, width
    gray_to_rgb: bool = False


class Dataset(Strict):
    role: Literal["train", "test"]
    tasks: List[Task]
    description: str
    source: List[str]  # public pages / URLs a person can check
    licence: str
    notes: str = ""
    layout: Dict[Literal["hq", "lq"], str]  # sub-folders of data/raw/<Dataset>/ holding HQ / LQ images
    count: Optional[int] = None  # images expected in the hq folder (None: not fixed by the source)
    manifest: Optional[str] = None
    archives: List[Archive] = []
    manual: Optional[Manual] = None
    embedded: Optional[List[EmbeddedImage]] = None

    @model_validator(mode="after")
    def _one_source(self):
        kinds = [k for k, v in (("manifest", self.manifest), ("archives", self.archives),
                                ("manual", self.manual), ("embedded", self.embedded)) if v]
        if len(kinds) != 1:
            raise ValueError(f"a dataset needs exactly one of manifest/archives/manual/embedded, got {kinds or 'none'}")
        if "hq" not in self.layout:
            raise ValueError("layout must name the 'hq' folder")
        return self

    @property
    def kind(self) -> str:
        if self.manifest:
            return "manifest"
        if self.archives:
            return "archives"
        if self.manual:
            return "manual"
        return "embedded"

    @property
    def paired(self) -> bool:
        return "lq" in self.layout


class Registry(Strict):
    version: Literal[1]
    mirror: Optional[str] = None  # default mirror when neither --mirror nor RAMIT_MIRROR is given
    datasets: Dict[str, Dataset]

    # Set by `load_registry`: manifests are resolved relative to the registry file.
    _base_dir: Path = PrivateAttr(default=Path("."))

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def get(self, name: str) -> Dataset:
        if name not in self.datasets:
            raise ConfigError(f"unknown dataset {name!r}; the registry has: {', '.join(sorted(self.datasets))}")
        return self.datasets[name]

    def files(self, name: str) -> List[FileEntry]:
        """Per-file entries of a `manifest` dataset (empty for the other kinds)."""
        ds = self.get(name)
        if not ds.manifest:
            return []
        return _read_manifest(self.base_dir / ds.manifest).get(name, [])

    def digest(self, name: str) -> str:
        """Fingerprint of everything the registry says about `name` (its files included)."""
        payload = {"entry": self.get(name).model_dump(mode="json"),
                   "files": [f.model_dump(mode="json") for f in self.files(name)]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


_MANIFEST_CACHE: Dict[Path, Dict[str, List[FileEntry]]] = {}


def _read_manifest(path: Path) -> Dict[str, List[FileEntry]]:
    path = path.resolve()
    if path not in _MANIFEST_CACHE:
        if not path.is_file():
            raise ConfigError(f"{path}: dataset manifest not found")
        out: Dict[str, List[FileEntry]] = {}
        with open(path, newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    entry = FileEntry(path=row["path"], url=row["raw_url"], sha256=row["sha256"] or None)
                except (KeyError, ValueError) as e:
                    raise ConfigError(f"{path}:{i}: bad manifest row: {e}") from None
                out.setdefault(row["dataset"], []).append(entry)
        _MANIFEST_CACHE[path] = out
    return _MANIFEST_CACHE[path]


def load_registry(path: str | Path = "params/datasets.yaml") -> Registry:
    path = Path(path)
    reg = load_yaml(path, Registry)
    reg._base_dir = path.resolve().parent
    for name, ds in reg.datasets.items():
        if ds.manifest and not reg.files(name):
            raise ConfigError(f"{path}: dataset {name!r}: no rows for it in {ds.manifest}")
    return reg
