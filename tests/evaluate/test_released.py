"""Released-checkpoint registry (RAMiT's and the baselines'), `fetch-weights` from a directory mirror and a
real 127.0.0.1 HTTP server, and IMDN's released x2 through our evaluator against its published numbers."""

from __future__ import annotations

import csv
import functools
import json
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
import yaml
from typer.testing import CliRunner

from ramit.config import PARAMS_DIR, ConfigError
from ramit.errors import DataError, RamitError
from ramit.evaluate.released import (
    MIRROR_ENV,
    checkpoint_file,
    checkpoint_for,
    fetch_weights,
    load_registry,
    released_entries,
)
from ramit.io import git_blob_sha1, sha256_file

REGISTRY = PARAMS_DIR / "checkpoints.yaml"
RAMIT_FILES = ({f"RAMiT_{k}.pth" for k in ("X2", "X3", "X4", "CDN", "GDN", "LLE", "DR")}
               | {f"RAMiT-1_{k}.pth" for k in ("X2", "X3", "X4", "CDN")}
               | {f"RAMiT-slimSR_{k}.pth" for k in ("X2", "X3", "X4")} | {"RAMiT-slimLLE_LLE.pth"})
# baselines whose weights the shared mirror holds: installed name -> path under the mirror
IN_MIRROR = {
    "IMDN_x2.pth": "baselines/IMDN_x2.pth",
    "IMDN_x3.pth": "baselines/IMDN_x3.pth",
    "IMDN_x4.pth": "baselines/IMDN_x4.pth",
    "dncnn_25.pth": "baselines/dncnn_25.pth",
    "PReNet_Rain100H.pth": "baselines/PReNet/logs/Rain100H/PReNet6/net_latest.pth",
    "PReNet_Rain100L.pth": "baselines/PReNet/logs/Rain100L/PReNet6/net_latest.pth",
}


# ----------------------------------------------------------------------------- the registry

def test_registry_lists_ramit_and_every_baseline():
    entries = released_entries(REGISTRY)
    files = {c.file for c in entries}
    assert RAMIT_FILES <= files and set(IN_MIRROR) <= files
    for c in entries:
        if c.file in RAMIT_FILES:
            assert c.relpath == f"pretrained/{c.file}" and c.url.endswith("/" + c.relpath) and c.git_blob_sha1
    baselines = {c.model for c in entries if c.file not in RAMIT_FILES}
    assert baselines == {"IMDN", "SwinIR-light", "SwinIR-M", "DnCNN", "DnCNN-S", "PReNet", "Retinexformer"}
    assert all(c.licence and c.source for c in entries)


def test_every_entry_builds_the_model_it_names():
    from ramit.models import build_model

    for c in released_entries(REGISTRY):
        model = build_model(c.model, c.task, scale=c.scale)
        assert (model.task, model.scale) == (c.task, c.scale or 1)


def test_registry_matches_the_mirror_manifests(checkpoints_mirror):
    reg = load_registry(REGISTRY)
    rows = {r["file"]: r for r in csv.DictReader(open(checkpoints_mirror / "MANIFEST.csv"))}
    assert set(rows) == RAMIT_FILES
    for file, r in rows.items():
        c = reg.get(file)
        assert (c.git_blob_sha1, c.url, c.sha256) == (r["git_blob_sha1"], r["raw_url"], r["sha256"] or None)
        assert c.bytes == (int(r["bytes"]) if r["bytes"] else None)
    base = {r["file"]: r for r in csv.DictReader(open(checkpoints_mirror / "baselines" / "MANIFEST.csv"))}
    by_relpath = {c.relpath: c for c in reg.checkpoints}
    for file, r in base.items():
        if file.startswith("DnCNN/"):
            assert f"baselines/{file}" not in by_relpath  # the pickled module: refused, not registered
            continue
        c = by_relpath[f"baselines/{file}"]
        assert (c.sha256, c.bytes, c.url) == (r["sha256"], int(r["bytes"]), r["public_url"])
    for c in reg.checkpoints:
        f = checkpoints_mirror / c.relpath
        if f.exists():  # hash the actual bytes: the registry must pin what is really there
            assert sha256_file(f) == c.sha256 and git_blob_sha1(f) == c.git_blob_sha1


def test_mirrored_baseline_weights_load_into_the_model_the_registry_names(checkpoints_mirror):
    from ramit.models import build_model, load_weights

    for file, relpath in IN_MIRROR.items():
        c = load_registry(REGISTRY).get(file)
        assert c.relpath == relpath
        load_weights(build_model(c.model, c.task, scale=c.scale), checkpoints_mirror / relpath)


def test_lookup_by_model_key_setting_and_dataset():
    assert checkpoint_file("RAMiT-1", "x2") == "RAMiT-1_X2.pth"
    assert checkpoint_file("RAMiT", "gdn") == "RAMiT_GDN.pth"
    assert checkpoint_file("IMDN", "x3") == "IMDN_x3.pth"
    assert checkpoint_file("SwinIR-M", "cdn", setting="cdn_s25") == "005_colorDN_DFWB_s128w8_SwinIR-M_noise25.pth"
    assert checkpoint_file("PReNet", "dr", dataset="Rain100L") == "PReNet_Rain100L.pth"
    with pytest.raises(RamitError, match="several released checkpoints for PReNet dr"):
        checkpoint_file("PReNet", "dr")
    with pytest.raises(RamitError, match="no released checkpoint for RAMiT-1 gdn"):
        checkpoint_file("RAMiT-1", "gdn")
    c = checkpoint_for("RAMiT-1", "cdn")
    assert (c.task, c.scale, c.setting_keys()) == ("cdn", None, ["cdn_s15", "cdn_s25", "cdn_s50"])
    s25 = checkpoint_for("DnCNN-S", "gdn", setting="gdn_s25")
    assert s25.file == "dncnn_25.pth" and s25.setting_keys() == ["gdn_s25"]
    assert s25.covers("gdn_s25") and not s25.covers("gdn_s15") and not s25.covers("cdn_s25")
    h = checkpoint_for("PReNet", "dr", dataset="Rain100H")
    assert h.covers("dr", "Rain100H") and not h.covers("dr", "Test100") and h.covers("dr")
    assert checkpoint_for("IMDN", "x4").setting_keys() == ["x4"]


def _registry_with(tmp_path, *entries):
    bad = tmp_path / "checkpoints.yaml"
    bad.write_text(yaml.safe_dump({"checkpoints": list(entries)}))
    return bad


def _entry(file):
    data = yaml.safe_load(REGISTRY.read_text())
    return next(e for e in data["checkpoints"] if e["file"] == file)


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda e: e.update(model_key="x5"), "checkpoints.0.model_key"),
        (lambda e: e.update(sha256="abc"), "checkpoints.0.sha256"),
        (lambda e: e.update(relpath="baselines/IMDN_x3.pth"), "url and relpath name different files"),
        (lambda e: e.update(relpath="../IMDN_x2.pth"), "relpath must be a relative path"),
        (lambda e: e.update(settings=["x3"]), "setting 'x3' is not served by model key 'x2'"),
        (lambda e: e.pop("url"), "give a url, or a download_page"),
        (lambda e: e.update(extra_key=1), "extra_key"),
    ],
)
def test_registry_schema_rejects_bad_entries(tmp_path, mutate, key):
    entry = _entry("IMDN_x2.pth")
    mutate(entry)
    with pytest.raises(ConfigError, match=key):
        load_registry(_registry_with(tmp_path, entry))


def test_registry_rejects_two_files_for_one_setting(tmp_path):
    a, b = _entry("005_colorDN_DFWB_s128w8_SwinIR-M_noise15.pth"), _entry("005_colorDN_DFWB_s128w8_SwinIR-M_noise25.pth")
    load_registry(_registry_with(tmp_path, a, b))  # disjoint settings: fine
    b["settings"] = ["cdn_s25", "cdn_s15"]
    with pytest.raises(ConfigError, match="both serve SwinIR-M cdn"):
        load_registry(_registry_with(tmp_path, a, b))
    h, low = _entry("PReNet_Rain100H.pth"), _entry("PReNet_Rain100L.pth")
    low.pop("datasets")
    with pytest.raises(ConfigError, match="both serve PReNet dr"):
        load_registry(_registry_with(tmp_path, h, low))
    ramit = _entry("RAMiT-1_X2.pth")
    ramit["file"] = "RAMiT-1_X2_copy.pth"  # the installed name of a RAMiT file is its upstream name
    with pytest.raises(ConfigError, match="RAMiT files sit at 'pretrained/RAMiT-1_X2_copy.pth'"):
        load_registry(_registry_with(tmp_path, ramit))


# ----------------------------------------------------------------------------- fetching

@pytest.fixture
def weights_server(checkpoints_mirror):
    """The shared checkpoints folder served over HTTP on 127.0.0.1: a weights mirror by URL."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.server.requests.append(self.path)
            super().do_GET()

    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(checkpoints_mirror)))
    srv.requests = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def test_fetch_baselines_over_http_under_unique_names(tmp_path, weights_server, monkeypatch):
    out = tmp_path / "weights"
    monkeypatch.setenv(MIRROR_ENV, weights_server.url)
    got = fetch_weights(["IMDN_x2.pth", "PReNet_Rain100H.pth", "PReNet_Rain100L.pth"], out=out, registry=REGISTRY)
    assert [p.name for p in got] == ["IMDN_x2.pth", "PReNet_Rain100H.pth", "PReNet_Rain100L.pth"]
    assert weights_server.requests == ["/baselines/IMDN_x2.pth", "/baselines/PReNet/logs/Rain100H/PReNet6/net_latest.pth",
                                       "/baselines/PReNet/logs/Rain100L/PReNet6/net_latest.pth"]
    reg = load_registry(REGISTRY)
    for p in got:
        assert sha256_file(p) == reg.get(p.name).sha256
    n = len(weights_server.requests)
    fetch_weights(["PReNet_Rain100H.pth"], out=out, registry=REGISTRY)
    assert len(weights_server.requests) == n  # a verified install is kept without network I/O


def test_cli_fetch_weights_from_http_mirror(tmp_path, weights_server):
    from ramit.cli import app

    out = tmp_path / "weights"
    res = CliRunner().invoke(app, ["fetch-weights", "dncnn_25.pth", "RAMiT-1_X2.pth", "--out", str(out),
                                   "--mirror", weights_server.url, "--registry", str(REGISTRY)])
    assert res.exit_code == 0, res.output
    assert sha256_file(out / "dncnn_25.pth") == load_registry(REGISTRY).get("dncnn_25.pth").sha256
    assert "/pretrained/RAMiT-1_X2.pth" in weights_server.requests


def test_fetch_from_mirror_directory_verifies_and_repairs(tmp_path, checkpoints_mirror):
    out = tmp_path / "weights"
    got = fetch_weights(["RAMiT-1_X2.pth", "IMDN_x4.pth"], out=out, mirror=str(checkpoints_mirror), registry=REGISTRY)
    assert got == [out / "RAMiT-1_X2.pth", out / "IMDN_x4.pth"]
    reg = load_registry(REGISTRY)
    with open(got[1], "r+b") as fh:  # a damaged install is detected and replaced by a verified copy
        fh.seek(1000)
        b = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([b[0] ^ 0xFF]))
    assert sha256_file(got[1]) != reg.get("IMDN_x4.pth").sha256
    fetch_weights(["IMDN_x4.pth"], out=out, mirror=str(checkpoints_mirror), registry=REGISTRY)
    assert sha256_file(got[1]) == reg.get("IMDN_x4.pth").sha256


def _corrupt_mirror(tmp_path, checkpoints_mirror, relpath):
    mirror = tmp_path / "mirror"
    (mirror / relpath).parent.mkdir(parents=True)
    data = bytearray((checkpoints_mirror / relpath).read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    (mirror / relpath).write_bytes(bytes(data))
    return mirror


def test_fetch_rejects_a_corrupted_copy(tmp_path, checkpoints_mirror):
    mirror = _corrupt_mirror(tmp_path, checkpoints_mirror, "baselines/PReNet/logs/Rain100L/PReNet6/net_latest.pth")
    out = tmp_path / "weights"
    with pytest.raises(DataError, match="PReNet_Rain100L.pth.*checksum mismatch"):
        fetch_weights(["PReNet_Rain100L.pth"], out=out, mirror=str(mirror), registry=REGISTRY)
    assert not (out / "PReNet_Rain100L.pth").exists()


def test_fetch_uses_env_mirror_and_cli_reports_errors(tmp_path, checkpoints_mirror, monkeypatch):
    from ramit.cli import app

    mirror = _corrupt_mirror(tmp_path, checkpoints_mirror, "pretrained/RAMiT-1_X3.pth")
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    out = tmp_path / "weights"
    res = CliRunner().invoke(app, ["fetch-weights", "RAMiT-1_X3.pth", "--out", str(out), "--registry", str(REGISTRY)])
    assert res.exit_code == 2, res.output
    assert "checksum mismatch" in res.output


def test_file_missing_at_the_source_is_a_clear_error(tmp_path, checkpoints_mirror):
    with pytest.raises(DataError, match=r"pretrained/RAMiT_X2.pth \(public: https://raw.githubusercontent.com/"):
        fetch_weights(["RAMiT_X2.pth"], out=tmp_path, mirror=str(checkpoints_mirror), registry=REGISTRY)
    with pytest.raises(DataError, match=r"002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth \(public: https://github.com/"
                                        r"JingyunLiang/SwinIR/releases/download/v0.0/"):
        fetch_weights(["002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth"], out=tmp_path, mirror=str(checkpoints_mirror),
                      registry=REGISTRY)
    with pytest.raises(RamitError, match="unknown checkpoint 'RAMiT_X9.pth'"):
        fetch_weights(["RAMiT_X9.pth"], out=tmp_path, mirror=str(checkpoints_mirror), registry=REGISTRY)


def test_drive_only_weights_are_put_in_place_by_hand(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    out = tmp_path / "weights"
    with pytest.raises(DataError, match=r"Retinexformer_LOL_v1.pth has no public download URL: get it from "
                                        r"https://drive.google.com/.* and put it at .*weights/Retinexformer_LOL_v1.pth"):
        fetch_weights(["Retinexformer_LOL_v1.pth"], out=out, registry=REGISTRY)
    out.mkdir()
    (out / "Retinexformer_LOL_v1.pth").write_bytes(b"the file the user downloaded")
    with pytest.warns(UserWarning, match=r"Retinexformer_LOL_v1.pth: not verified .* sha256 is [0-9a-f]{64}"):
        assert fetch_weights(["Retinexformer_LOL_v1.pth"], out=out, registry=REGISTRY) == [out / "Retinexformer_LOL_v1.pth"]


def test_unpinned_release_asset_from_a_mirror_is_installed_with_its_sha256(tmp_path):
    mirror = tmp_path / "mirror" / "baselines"
    mirror.mkdir(parents=True)
    (mirror / "dncnn_color_blind.pth").write_bytes(b"not downloadable here")
    with pytest.warns(UserWarning, match="dncnn_color_blind.pth: not verified"):
        got = fetch_weights(["dncnn_color_blind.pth"], out=tmp_path / "w", mirror=str(tmp_path / "mirror"),
                            registry=REGISTRY)
    assert got[0].read_bytes() == b"not downloadable here"


def test_fetch_all_available_from_mirror(tmp_path, checkpoints_mirror):
    # everything the shared mirror holds: 8 RAMiT files and the 6 registered baseline files
    with pytest.warns(UserWarning, match="skipping .* checkpoint"):
        got = fetch_weights(None, out=tmp_path / "w", mirror=str(checkpoints_mirror), registry=REGISTRY)
    names = {p.name for p in got}
    assert names == {p.name for p in (checkpoints_mirror / "pretrained").glob("*.pth")} | set(IN_MIRROR)


# ----------------------------------------------------------------------------- IMDN x2 as published

# baselines_published.csv (IMDN, ACM MM 2019, x2 table)
IMDN_X2_PUBLISHED = {"Set5": (38.00, 0.9605), "Set14": (33.63, 0.9177), "BSD100": (32.19, 0.8996)}
# Set14/BSD100 take minutes on two busy CPU cores (BSD100 ~11 min): run them where a GPU is, or on demand
FULL = torch.cuda.is_available() or os.environ.get("RAMIT_FULL_RELEASED") == "1"


@pytest.fixture(scope="module")
def imdn_x2(tmp_path_factory, checkpoints_mirror):
    out = tmp_path_factory.mktemp("weights")
    return fetch_weights(["IMDN_x2.pth"], out=out, mirror=str(checkpoints_mirror), registry=REGISTRY)[0]


@pytest.mark.slow
@pytest.mark.parametrize("dataset", [
    "Set5",
    pytest.param("Set14", marks=pytest.mark.skipif(not FULL, reason="minutes on CPU: set RAMIT_FULL_RELEASED=1")),
    pytest.param("BSD100", marks=pytest.mark.skipif(not FULL, reason="~11 min on CPU: set RAMIT_FULL_RELEASED=1")),
])
def test_imdn_released_x2_reproduces_its_published_numbers(tmp_path, datasets_mirror, imdn_x2, dataset):
    from ramit.data.degrade import degrade_dataset
    from ramit.data.fetch import fetch_datasets
    from ramit.evaluate.evaluate import evaluate_cli

    raw = tmp_path / "raw"
    fetch_datasets([dataset], data_dir=raw, mirror=str(datasets_mirror), registry=PARAMS_DIR / "datasets.yaml")
    data = degrade_dataset("x2", dataset, data_dir=raw, out=tmp_path / "x2" / dataset,
                           registry=PARAMS_DIR / "datasets.yaml")
    res = evaluate_cli(model="IMDN", setting="x2", data=data, out=tmp_path / f"{dataset}.json",
                       checkpoint=imdn_x2, source="released", device="auto")
    assert json.loads((tmp_path / f"{dataset}.json").read_text()) == res
    psnr, ssim = IMDN_X2_PUBLISHED[dataset]
    assert abs(res["psnr"] - psnr) <= 0.05, res
    assert abs(res["ssim"] - ssim) <= 0.001, res
