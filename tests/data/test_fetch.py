"""fetch_file / fetch_datasets against a real HTTP server on 127.0.0.1 and a directory mirror."""

from __future__ import annotations

import functools
import io
import os
import socket
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from ramit.data.fetch import MARKER, extract_archive, fetch_datasets, fetch_file
from ramit.data.io import write_png
from ramit.errors import DataError
from ramit.io import sha256_file

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "params" / "datasets.yaml"
BABY = "Set5/HR/baby.png"
BABY_SHA = "b7f0633258c4dc1a1ef57f26ef2e2db414b64c170cb7c618730cb2f2aae3c7ed"


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.requests.append(self.path)
            cut = srv.truncate_left.get(self.path.lstrip("/"), 0)
            if cut:
                srv.truncate_left[self.path.lstrip("/")] = cut - 1
        if cut:
            # announce the full length, send half, hang up: what a dropped connection looks like
            data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        super().do_GET()


@pytest.fixture
def server(datasets_mirror):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(datasets_mirror)))
    srv.requests, srv.truncate_left, srv.lock = [], {}, threading.Lock()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def _leftovers(d: Path):
    return [p for p in d.rglob("*") if ".part-" in p.name]


def test_fetch_set5_over_http_then_no_network(server, tmp_path):
    data = tmp_path / "raw"
    fetch_datasets(["Set5"], data_dir=data, mirror=server.url, registry=REGISTRY)
    assert len(server.requests) == 35  # 5 HR + 15 SelfExSR LR + 15 MATLAB LR
    assert sha256_file(data / BABY) == BABY_SHA
    assert (data / "Set5" / MARKER).is_file() and not _leftovers(data)
    n = len(server.requests)
    fetch_datasets(["Set5"], data_dir=data, mirror=server.url, registry=REGISTRY)
    assert len(server.requests) == n  # the marker's stat check is enough
    # a corrupted file is noticed (size/mtime changed) and only that file is fetched again
    (data / BABY).write_bytes(b"garbage")
    fetch_datasets(["Set5"], data_dir=data, mirror=server.url, registry=REGISTRY)
    assert server.requests[n:] == ["/" + BABY]
    assert sha256_file(data / BABY) == BABY_SHA


def test_mirror_from_environment_and_directory_mirror(datasets_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("RAMIT_MIRROR", str(datasets_mirror))
    fetch_datasets(["Set12"], data_dir=tmp_path, registry=REGISTRY)
    assert len(list((tmp_path / "Set12" / "HR").glob("*.png"))) == 12
    assert sha256_file(tmp_path / "Set12" / "HR" / "01.png") == sha256_file(datasets_mirror / "Set12" / "HR" / "01.png")


def test_bad_checksum_is_named_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "raw" / BABY
    wrong = "0" * 64
    with pytest.raises(DataError) as e:
        fetch_file(dest, url="unused", relpath=BABY, mirror=server.url, sha256=wrong)
    msg = str(e.value)
    assert BABY in msg and wrong in msg and BABY_SHA in msg
    assert not dest.exists() and not _leftovers(tmp_path)


def test_git_blob_sha1_is_checked(datasets_mirror, tmp_path):
    from ramit.io import git_blob_sha1

    good = git_blob_sha1(datasets_mirror / BABY)
    dest = fetch_file(tmp_path / "b.png", url="unused", relpath=BABY, mirror=str(datasets_mirror), git_blob_sha1=good)
    assert git_blob_sha1(dest) == good
    with pytest.raises(DataError, match="git blob sha1"):
        fetch_file(tmp_path / "c.png", url="unused", relpath=BABY, mirror=str(datasets_mirror), git_blob_sha1="1" * 40)
    assert not (tmp_path / "c.png").exists()


def test_interrupted_download_then_rerun_completes(server, tmp_path):
    server.truncate_left[BABY] = 1
    dest = tmp_path / "raw" / BABY
    with pytest.raises(DataError, match="cannot download"):
        fetch_file(dest, url="unused", relpath=BABY, mirror=server.url, sha256=BABY_SHA, retries=0, progress=False)
    assert not dest.exists() and not _leftovers(tmp_path)
    fetch_file(dest, url="unused", relpath=BABY, mirror=server.url, sha256=BABY_SHA, retries=0, progress=False)
    assert sha256_file(dest) == BABY_SHA and len(server.requests) == 2


def test_interruption_is_retried_within_one_call(server, tmp_path):
    server.truncate_left[BABY] = 1
    dest = fetch_file(tmp_path / "b.png", url="unused", relpath=BABY, mirror=server.url, sha256=BABY_SHA,
                      retries=1, progress=False)
    assert sha256_file(dest) == BABY_SHA and len(server.requests) == 2


def test_unreachable_source_names_dataset_url_and_mirror(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror = f"http://127.0.0.1:{port}"
    with pytest.raises(DataError) as e:
        fetch_datasets(["Set5"], data_dir=tmp_path, mirror=mirror, registry=REGISTRY, retries=0)
    msg = str(e.value)
    assert "Set5" in msg and f"{mirror}/Set5/" in msg and "RAMIT_MIRROR" in msg and "--mirror" in msg
    assert not (tmp_path / "Set5" / MARKER).exists()


def _tar(path: Path, members: dict):
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _png_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _archive_registry(tmp_path: Path, count: int) -> Path:
    reg = {"version": 1, "datasets": {"Toy": {
        "role": "test", "tasks": ["sr"], "description": "toy", "source": ["local"], "licence": "none",
        "layout": {"hq": "HR"}, "count": count,
        "archives": [{"url": "http://invalid.example/toy.tar", "relpath": "arc/toy.tar",
                      "members": [{"src": "pack/HR", "dest": "HR"}]}]}}}
    p = tmp_path / "reg.yaml"
    p.write_text(yaml.safe_dump(reg))
    return p


def test_archive_dataset_from_directory_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "arc").mkdir(parents=True)
    _tar(mirror / "arc" / "toy.tar", {"pack/HR/a.png": _png_bytes(1), "pack/HR/b.png": _png_bytes(2),
                                       "pack/README": b"not mapped"})
    data = tmp_path / "raw"
    fetch_datasets(["Toy"], data_dir=data, mirror=str(mirror), registry=_archive_registry(tmp_path, 2))
    assert sorted(p.name for p in (data / "Toy" / "HR").iterdir()) == ["a.png", "b.png"]
    assert (data / "Toy" / MARKER).is_file() and not (data / "Toy" / "README").exists()


def test_path_traversal_member_rejected(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "arc").mkdir(parents=True)
    _tar(mirror / "arc" / "toy.tar", {"pack/HR/a.png": _png_bytes(1), "pack/HR/../../../evil.png": b"x"})
    data = tmp_path / "raw"
    with pytest.raises(DataError, match="unsafe archive member"):
        fetch_datasets(["Toy"], data_dir=data, mirror=str(mirror), registry=_archive_registry(tmp_path, 1))
    assert not list(tmp_path.rglob("evil.png"))
    assert not (data / "Toy" / "HR" / "a.png").exists()  # nothing extracted from a rejected archive
    target = tmp_path / "t"
    _tar(tmp_path / "abs.tar", {"/etc/evil": b"x"})
    with pytest.raises(DataError):
        extract_archive(tmp_path / "abs.tar", target, [])


def test_symlink_members_are_not_created(tmp_path):
    arc = tmp_path / "l.tar"
    with tarfile.open(arc, "w") as tf:
        info = tarfile.TarInfo("pack/HR/link.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    out = extract_archive(arc, tmp_path / "t", [type("M", (), {"src": "pack/HR", "dest": "HR"})()])
    assert out == [] and not (tmp_path / "t" / "HR" / "link.png").exists()


def test_manual_dataset_says_where_to_put_files_then_verifies(tmp_path):
    manual, downloads = tmp_path / "manual", tmp_path / "raw"
    with pytest.raises(DataError) as e:
        fetch_datasets(["LOL"], data_dir=downloads, registry=REGISTRY, manual_dir=manual)
    msg = str(e.value)
    assert "data/manual/LOL/LQ/" in msg and "data/manual/LOL/HQ/" in msg and "daooshee.github.io" in msg
    assert f"{manual}/LOL/" in msg  # where this fetch looked
    for sub, v in (("LQ", 10), ("HQ", 200)):
        for i in range(15):
            write_png(manual / "LOL" / sub / f"{i:03d}.png", np.full((4, 4, 3), v, np.uint8))
    before = sorted(p.relative_to(manual) for p in manual.rglob("*"))
    fetch_datasets(["LOL"], data_dir=downloads, registry=REGISTRY, manual_dir=manual)
    # the install state lives in the download cache, never inside the user's folder
    assert (downloads / ".manual" / "LOL.json").is_file()
    assert sorted(p.relative_to(manual) for p in manual.rglob("*")) == before
    os.remove(manual / "LOL" / "HQ" / "003.png")
    with pytest.raises(DataError, match="expected 15 images"):
        fetch_datasets(["LOL"], data_dir=downloads, registry=REGISTRY, manual_dir=manual)
