"""Download (or build) datasets into `data/raw/<Dataset>/` and verify them.

Mirror: a local directory or an http(s) base URL laid out like `shared/datasets`; the file with
registry path `P` is then `<mirror>/P` instead of its public URL. Resolution order: the `mirror`
argument (`--mirror`), `$RAMIT_MIRROR`, the registry's top-level `mirror`, else the public URLs.

Every file is written to a temporary name beside its destination and renamed into place only after
its checksum matched, so an interrupted or corrupt download never leaves a file that looks finished.
Leftover temporaries (`.<name>.part-*`) of a killed run are removed by the next fetch of the dataset.

Where a dataset lives: downloaded kinds (manifest, archives, embedded) in the download cache
`<downloads>/<Dataset>/` (default `data/raw`); `manual` kinds (request-only or drive-hosted) where the
user put them, `<manual>/<Dataset>/` (default `data/manual`). Neither folder is any stage's output, so
no orchestrator ever deletes them; the fetch stage's output is a small verified-list file.

Install state `.complete.json` (inside `<downloads>/<Dataset>/`, or `<downloads>/.manual/<Dataset>.json`
for manual sets, never inside the user's folder): the registry fingerprint of the dataset and (size,
mtime_ns, sha256) of every installed file. A second fetch only stat()s the files: if the registry
entry is unchanged and every size and mtime still match, it does nothing (no hashing, no network). A
changed, missing or extra-touched file makes it re-verify that dataset (hash the files, re-download
what does not match).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, Iterable, List, Optional

from ramit.errors import DataError
from ramit.io import git_blob_sha1 as _git_blob_sha1
from ramit.io import sha256_file, write_json

MARKER = ".complete.json"
DEFAULT_MANUAL = "data/manual"
_PART = ".part-"


# ------------------------------------------------------------------------------------------ mirror
def resolve_mirror(mirror: Optional[str], registry_default: Optional[str] = None,
                   env: str = "RAMIT_MIRROR") -> Optional[str]:
    """The mirror to use, first match wins: the argument (`--mirror`), `$env` (RAMIT_MIRROR for
    datasets, RAMIT_MIRROR_WEIGHTS for checkpoints), the registry's default; None: public URLs."""
    if mirror:
        return str(mirror)
    return os.environ.get(env) or registry_default or None


def _is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def local_mirror(mirror: Optional[str]) -> Optional[Path]:
    """The folder of a local mirror (a path or file:// URL); None for an http(s) mirror or none."""
    if not mirror or _is_url(mirror):
        return None
    return Path(mirror[len("file://"):] if mirror.startswith("file://") else mirror)


def _mirror_setting(mirror: Optional[str]) -> str:
    if mirror:
        return f"mirror {mirror!r} (from --mirror / RAMIT_MIRROR / registry `mirror`)"
    return "no mirror (public URLs; set --mirror or RAMIT_MIRROR to use a local or http mirror)"


def _source_of(url: str, relpath: str, mirror: Optional[str]) -> str:
    if not mirror:
        return url
    root = local_mirror(mirror)
    return str(root / relpath) if root is not None else mirror.rstrip("/") + "/" + relpath.lstrip("/")


# --------------------------------------------------------------------------------------- one file
def _check(path: Path, sha256: Optional[str], git_blob_sha1: Optional[str]) -> Optional[str]:
    """None if `path` matches the given hashes, else a description of the mismatch."""
    problems = []
    if sha256:
        got = sha256_file(path)
        if got != sha256:
            problems.append(f"sha256 expected {sha256}, got {got}")
    if git_blob_sha1:
        got = _git_blob_sha1(path)
        if got != git_blob_sha1:
            problems.append(f"git blob sha1 expected {git_blob_sha1}, got {got}")
    return "; ".join(problems) or None


def _download_http(source: str, tmp_dir: Path, retries: int, progress: bool) -> Path:
    import pooch
    import requests

    fname = "download"
    # The hash is checked by us afterwards (for a clear message); pooch supplies retries with back-off,
    # a temp-then-move download and the tqdm progress bar.
    store = pooch.create(path=tmp_dir, base_url="", registry={fname: None}, urls={fname: source},
                         retry_if_failed=retries)
    try:
        return Path(store.fetch(fname, downloader=pooch.HTTPDownloader(progressbar=progress, timeout=30)))
    except (requests.exceptions.RequestException, OSError, ValueError) as e:
        raise DataError(f"cannot download {source}: {type(e).__name__}: {e}") from None


def fetch_file(
    dest: str | os.PathLike,
    *,
    url: str,
    relpath: str,
    mirror: Optional[str] = None,
    sha256: Optional[str] = None,
    git_blob_sha1: Optional[str] = None,
    retries: int = 2,
    progress: bool = True,
) -> Path:
    """Make `dest` a verified copy of `url` (or of `<mirror>/<relpath>` when a mirror is given).

    An existing `dest` that matches the hashes is kept without any network I/O. A wrong checksum
    raises DataError naming the file and both hashes, and leaves nothing at `dest`.
    """
    dest = Path(dest)
    if dest.is_file():
        if not (sha256 or git_blob_sha1) or _check(dest, sha256, git_blob_sha1) is None:
            return dest
    source = _source_of(url, relpath, mirror)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{dest.name}{_PART}", dir=dest.parent))
    try:
        if _is_url(source):
            got = _download_http(source, tmp_dir, retries, progress)
        else:
            src = Path(source)
            if not src.is_file():
                raise DataError(f"cannot copy {relpath}: {src} does not exist")
            got = tmp_dir / "download"
            shutil.copyfile(src, got)
        problem = _check(got, sha256, git_blob_sha1)
        if problem:
            if dest.exists():
                dest.unlink()  # a stale copy that failed verification is no better than none
            raise DataError(f"checksum mismatch for {relpath} (from {source}): {problem}")
        os.replace(got, dest)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return dest


# ---------------------------------------------------------------------------------------- archives
def _safe_member(name: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DataError(f"unsafe archive member {name!r} (absolute path or '..'): refusing to extract")
    return p


def _map_member(p: PurePosixPath, members) -> Optional[PurePosixPath]:
    for m in members:
        src = PurePosixPath(m.src.strip("/"))
        if p.parts[: len(src.parts)] == src.parts and len(p.parts) > len(src.parts):
            return PurePosixPath(m.dest.strip("/"), *p.parts[len(src.parts):])
    return None


def _regular_members(archive: Path):
    """(name, opener) for every regular file of a zip or tar archive; every name is checked first,
    and links, devices and folders are skipped, so extraction only ever writes plain files."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _safe_member(info.filename)
            for info in infos:
                # zip symlinks are regular entries with a unix S_IFLNK mode: skip them
                if not info.is_dir() and (info.external_attr >> 16) & 0o170000 != 0o120000:
                    yield info.filename, (lambda i=info: zf.open(i))
        return
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError as e:
        raise DataError(f"{archive}: not a zip or tar archive: {e}") from None
    with tf:
        infos = tf.getmembers()
        for info in infos:
            _safe_member(info.name)
        for info in infos:
            if info.isfile():
                yield info.name, (lambda i=info: tf.extractfile(i))


def extract_archive(archive: Path, target: Path, members) -> List[Path]:
    """Extract the regular files under `members[*].src` into `target/<dest>/...`.

    Every member name is checked first (absolute paths and '..' abort the whole extraction), and only
    regular files are written, by us, so symlinks/hardlinks/devices in an archive are never created.
    """
    written: List[Path] = []
    target = Path(target).resolve()
    for name, opener in _regular_members(archive):
        rel = _map_member(_safe_member(name), members)
        if rel is None:
            continue
        out = (target / rel).resolve()
        if target not in out.parents:
            raise DataError(f"archive member {rel} would land outside {target}: refusing to extract")
        out.parent.mkdir(parents=True, exist_ok=True)
        with opener() as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        written.append(out)
    return written


# ----------------------------------------------------------------------------------------- markers
def _dataset_files(ds_dir: Path) -> List[Path]:
    return sorted(p for p in ds_dir.rglob("*") if p.is_file() and p.name != MARKER and _PART not in p.name)


def dataset_dir(ds, name: str, downloads: str | os.PathLike, manual: str | os.PathLike | None) -> Path:
    """Where dataset `name` (registry entry `ds`) lives: the user's manual folder or the download cache."""
    if ds.kind == "manual":
        return Path(manual if manual is not None else DEFAULT_MANUAL) / name
    return Path(downloads) / name


def _state_file(ds, name: str, downloads: str | os.PathLike) -> Path:
    if ds.kind == "manual":
        return Path(downloads) / ".manual" / f"{name}.json"
    return Path(downloads) / name / MARKER


def _marker_ok(marker: Path, ds_dir: Path, digest: str) -> bool:
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if data.get("registry_digest") != digest:
        return False
    for rel, rec in data.get("files", {}).items():
        try:
            st = (ds_dir / rel).stat()
        except OSError:
            return False
        if st.st_size != rec["bytes"] or st.st_mtime_ns != rec["mtime_ns"]:
            return False
    return True


def installed_dataset(name: str, *, downloads: str | os.PathLike, manual: str | os.PathLike | None,
                      reg) -> tuple[Path, Dict[str, dict]]:
    """(folder, `{relpath: {bytes, mtime_ns, sha256}}`) of a fetched dataset; DataError if never fetched."""
    ds = reg.get(name)
    ds_dir, marker = dataset_dir(ds, name, downloads, manual), _state_file(ds, name, downloads)
    try:
        return ds_dir, json.loads(marker.read_text())["files"]
    except (OSError, ValueError, KeyError):
        raise DataError(f"{ds_dir}: dataset not installed (no valid {marker}); run `ramit fetch {name}`") from None


def _write_marker(marker: Path, ds_dir: Path, name: str, digest: str, hashes: Dict[str, str]) -> dict:
    files = {}
    for p in _dataset_files(ds_dir):
        rel = p.relative_to(ds_dir).as_posix()
        st = p.stat()
        files[rel] = {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": hashes.get(rel) or sha256_file(p)}
    record = {"dataset": name, "registry_digest": digest, "files": files}
    write_json(marker, record)
    return record


def write_verified(out: str | os.PathLike, record: dict) -> None:
    """The fetch stage's output: what was verified (names, sizes, sha256), so it changes only with the
    data itself: an edit of a dataset's description re-runs its fetch, and nothing after it."""
    files = {rel: {"sha256": r["sha256"], "bytes": r["bytes"]} for rel, r in sorted(record["files"].items())}
    write_json(out, {"dataset": record["dataset"], "files": files})


def _clean_partials(ds_dir: Path) -> None:
    if ds_dir.is_dir():
        for p in list(ds_dir.rglob(f"*{_PART}*")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _count_images(d: Path) -> List[Path]:
    from ramit.data.io import list_images

    return list(list_images(d).values()) if d.is_dir() else []


def _verify_layout(name: str, ds, ds_dir: Path) -> None:
    """Counts per folder, and identical names in LQ/HQ for paired sets."""
    expect = dict(ds.manual.expect) if ds.manual else {}
    if not expect and ds.count is not None:
        expect = {ds.layout["hq"]: ds.count}
    for sub, n in expect.items():
        found = _count_images(ds_dir / sub)
        if not found or (n is not None and len(found) != n):
            want = f"{n}" if n is not None else "at least 1"
            raise DataError(f"dataset {name}: expected {want} images in {ds_dir / sub}, found {len(found)}")
    if ds.paired:
        lq = {p.stem for p in _count_images(ds_dir / ds.layout["lq"])}
        hq = {p.stem for p in _count_images(ds_dir / ds.layout["hq"])}
        if lq != hq:
            odd = sorted(lq ^ hq)[:5]
            raise DataError(f"dataset {name}: LQ and HQ file names differ (e.g. {odd}) in {ds_dir}")


# ---------------------------------------------------------------------------------------- datasets
def _fetch_manifest(name, reg, ds_dir, data_dir, mirror, retries) -> Dict[str, str]:
    hashes = {}
    for f in reg.files(name):
        dest = data_dir / f.path
        try:
            fetch_file(dest, url=f.url, relpath=f.path, mirror=mirror, sha256=f.sha256,
                       git_blob_sha1=f.git_blob_sha1, retries=retries)
        except DataError as e:
            raise DataError(f"dataset {name}: {e}; tried {_source_of(f.url, f.path, mirror)}; "
                            f"{_mirror_setting(mirror)}") from None
        hashes[dest.relative_to(ds_dir).as_posix()] = f.sha256
    return hashes


def _fetch_archives(name, ds, ds_dir, data_dir, mirror, retries) -> Dict[str, str]:
    staging = Path(tempfile.mkdtemp(prefix=f".{name}{_PART}", dir=data_dir))
    try:
        for arc in ds.archives:
            local = data_dir / ".archives" / arc.relpath
            try:
                fetch_file(local, url=arc.url, relpath=arc.relpath, mirror=mirror, sha256=arc.sha256, retries=retries)
            except DataError as e:
                raise DataError(f"dataset {name}: {e}; tried {_source_of(arc.url, arc.relpath, mirror)}; "
                                f"{_mirror_setting(mirror)}") from None
            extract_archive(local, staging, arc.members)
        for p in sorted(staging.rglob("*")):
            if p.is_file():
                out = ds_dir / p.relative_to(staging)
                out.parent.mkdir(parents=True, exist_ok=True)
                os.replace(p, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {}


def _build_embedded(name, ds, ds_dir) -> Dict[str, str]:
    import numpy as np
    import skimage

    from ramit.data.io import read_image, write_png

    src_dir = Path(skimage.__file__).resolve().parent / "data"
    for img in ds.embedded:
        src = src_dir / img.source
        if not src.is_file():
            raise DataError(f"dataset {name}: {src} is not in the installed scikit-image wheel")
        problem = _check(src, img.sha256, None)
        if problem:
            raise DataError(f"dataset {name}: {src}: {problem} (a different scikit-image build?)")
        arr = read_image(src)
        if img.crop:
            t, l, h, w = img.crop
            if t + h > arr.shape[0] or l + w > arr.shape[1]:
                raise DataError(f"dataset {name}: crop {img.crop} is outside {img.source} {arr.shape[:2]}")
            arr = arr[t:t + h, l:l + w]
        if img.gray_to_rgb and arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        write_png(ds_dir / ds.layout["hq"] / f"{img.name}.png", arr)
    return {}


def _check_manual(name, ds, ds_dir) -> Dict[str, str]:
    try:
        _verify_layout(name, ds, ds_dir)
    except DataError as e:
        raise DataError(
            f"dataset {name} cannot be downloaded by a script (manual: request-only or drive-hosted). "
            f"{ds.manual.instructions} Expected layout under {ds_dir}/: "
            + ", ".join(f"{sub}/ ({n if n is not None else 'any number of'} images)" for sub, n in ds.manual.expect.items())
            + f". Problem now: {e}"
        ) from None
    return {}


def fetch_dataset(name: str, *, data_dir: Path, mirror: Optional[str], reg, retries: int = 2,
                  manual_dir: str | os.PathLike | None = None) -> Path:
    """Install and verify one dataset (see the module doc for where it lives); returns its folder."""
    ds = reg.get(name)
    data_dir = Path(data_dir)
    ds_dir, marker = dataset_dir(ds, name, data_dir, manual_dir), _state_file(ds, name, data_dir)
    digest = reg.digest(name)
    if _marker_ok(marker, ds_dir, digest):
        return ds_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    if ds.kind != "manual":  # never touch the user's own folder
        _clean_partials(ds_dir)
    marker.unlink(missing_ok=True)
    kind = ds.kind
    if kind == "manifest":
        hashes = _fetch_manifest(name, reg, ds_dir, data_dir, mirror, retries)
    elif kind == "archives":
        hashes = _fetch_archives(name, ds, ds_dir, data_dir, mirror, retries)
    elif kind == "embedded":
        hashes = _build_embedded(name, ds, ds_dir)
    else:
        hashes = _check_manual(name, ds, ds_dir)
    _verify_layout(name, ds, ds_dir)
    _write_marker(marker, ds_dir, name, digest, hashes)
    return ds_dir


def fetch_datasets(
    names: Iterable[str],
    data_dir: str | os.PathLike = "data/raw",
    mirror: Optional[str] = None,
    registry: str | os.PathLike = "params/datasets.yaml",
    retries: int = 2,
    manual_dir: str | os.PathLike | None = None,
) -> List[Path]:
    """Install and verify each named dataset (downloads under `data_dir/<name>/`, manual sets read from
    `manual_dir/<name>/`); returns their folders."""
    from ramit.data.registry import load_registry

    reg = load_registry(registry)
    names = list(names)
    for n in names:
        reg.get(n)  # fail on a typo before downloading anything
    mirror = resolve_mirror(mirror, reg.mirror)
    return [fetch_dataset(n, data_dir=Path(data_dir), mirror=mirror, reg=reg, retries=retries, manual_dir=manual_dir)
            for n in names]


def fetch_verified(name: str, *, out: str | os.PathLike, downloads: str, manual: str, mirror: Optional[str],
                   registry: str) -> Path:
    """The pipeline's fetch stage: install/verify `name`, then write its verified-list file `out`."""
    from ramit.data.registry import load_registry

    reg = load_registry(registry)
    ds_dir = fetch_dataset(name, data_dir=Path(downloads), mirror=resolve_mirror(mirror, reg.mirror), reg=reg,
                           manual_dir=manual)
    marker = _state_file(reg.get(name), name, downloads)
    write_verified(out, json.loads(marker.read_text()))
    return ds_dir
