"""Released-checkpoint registry and `fetch-weights` against the checkpoints mirror."""

from __future__ import annotations

import csv
import shutil

import pytest
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
)
from ramit.io import git_blob_sha1, sha256_file

REGISTRY = PARAMS_DIR / "checkpoints.yaml"


def test_registry_lists_the_15_official_files():
    reg = load_registry(REGISTRY)
    files = {c.file for c in reg.checkpoints}
    expected = {f"RAMiT_{k}.pth" for k in ("X2", "X3", "X4", "CDN", "GDN", "LLE", "DR")}
    expected |= {f"RAMiT-1_{k}.pth" for k in ("X2", "X3", "X4", "CDN")}
    expected |= {f"RAMiT-slimSR_{k}.pth" for k in ("X2", "X3", "X4")} | {"RAMiT-slimLLE_LLE.pth"}
    assert files == expected
    assert sum(c.sha256 is not None for c in reg.checkpoints) == 8
    for c in reg.checkpoints:
        assert c.url == f"{reg.base_url}/pretrained/{c.file}"


def test_registry_matches_the_mirror_manifest(checkpoints_mirror):
    rows = {r["file"]: r for r in csv.DictReader(open(checkpoints_mirror / "MANIFEST.csv"))}
    reg = load_registry(REGISTRY)
    assert set(rows) == {c.file for c in reg.checkpoints}
    for c in reg.checkpoints:
        r = rows[c.file]
        assert (c.git_blob_sha1, c.url) == (r["git_blob_sha1"], r["raw_url"])
        assert c.sha256 == (r["sha256"] or None)
        assert c.bytes == (int(r["bytes"]) if r["bytes"] else None)
        f = checkpoints_mirror / c.relpath
        if f.exists():  # hash the actual bytes: the registry must pin what is really there
            assert sha256_file(f) == c.sha256
            assert git_blob_sha1(f) == c.git_blob_sha1


def test_checkpoint_lookup_by_variant_and_model_key():
    assert checkpoint_file("RAMiT-1", "x2") == "RAMiT-1_X2.pth"
    assert checkpoint_file("RAMiT-slimSR", "x4") == "RAMiT-slimSR_X4.pth"
    assert checkpoint_file("RAMiT", "gdn") == "RAMiT_GDN.pth"
    assert checkpoint_file("RAMiT-slimLLE", "lle") == "RAMiT-slimLLE_LLE.pth"
    c = checkpoint_for("RAMiT-1", "cdn")
    assert (c.task, c.scale) == ("cdn", None)
    with pytest.raises(RamitError, match="no released checkpoint for RAMiT-1 gdn"):
        checkpoint_file("RAMiT-1", "gdn")


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda e: e.update(scale=None), "scale is required"),
        (lambda e: e.update(sha256="abc"), "checkpoints.0.sha256"),
        (lambda e: e.update(relpath="weights/" + e["file"]), "relpath"),
        (lambda e: e.update(task="deblur"), "checkpoints.0.task"),
        (lambda e: e.update(extra_key=1), "extra_key"),
    ],
)
def test_registry_schema_rejects_bad_entries(tmp_path, mutate, key):
    data = yaml.safe_load(REGISTRY.read_text())
    entry = next(e for e in data["checkpoints"] if e["task"] == "sr")
    data["checkpoints"] = [entry]
    mutate(entry)
    bad = tmp_path / "checkpoints.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=key):
        load_registry(bad)


def test_fetch_from_mirror_directory_verifies(tmp_path, checkpoints_mirror):
    out = tmp_path / "weights"
    got = fetch_weights(["RAMiT-1_X2.pth", "RAMiT-slimLLE_LLE.pth"], out=out, mirror=str(checkpoints_mirror),
                        registry=REGISTRY)
    assert got == [out / "RAMiT-1_X2.pth", out / "RAMiT-slimLLE_LLE.pth"]
    reg = load_registry(REGISTRY)
    for p in got:
        assert sha256_file(p) == reg.get(p.name).sha256
    # A damaged install is detected and replaced by a verified copy.
    with open(got[0], "r+b") as fh:
        fh.seek(1000)
        b = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([b[0] ^ 0xFF]))
    assert sha256_file(got[0]) != reg.get(got[0].name).sha256
    fetch_weights(["RAMiT-1_X2.pth"], out=out, mirror=str(checkpoints_mirror), registry=REGISTRY)
    assert sha256_file(got[0]) == reg.get(got[0].name).sha256


def _corrupt_mirror(tmp_path, checkpoints_mirror, file):
    mirror = tmp_path / "mirror"
    (mirror / "pretrained").mkdir(parents=True)
    data = bytearray((checkpoints_mirror / "pretrained" / file).read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    (mirror / "pretrained" / file).write_bytes(bytes(data))
    return mirror


def test_fetch_rejects_a_corrupted_copy(tmp_path, checkpoints_mirror):
    mirror = _corrupt_mirror(tmp_path, checkpoints_mirror, "RAMiT-slimSR_X3.pth")
    out = tmp_path / "weights"
    with pytest.raises(DataError, match="RAMiT-slimSR_X3.pth.*checksum mismatch"):
        fetch_weights(["RAMiT-slimSR_X3.pth"], out=out, mirror=str(mirror), registry=REGISTRY)
    assert not (out / "RAMiT-slimSR_X3.pth").exists()


def test_fetch_uses_env_mirror_and_cli_reports_errors(tmp_path, checkpoints_mirror, monkeypatch):
    from ramit.cli import app

    mirror = _corrupt_mirror(tmp_path, checkpoints_mirror, "RAMiT-1_X3.pth")
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    out = tmp_path / "weights"
    res = CliRunner().invoke(app, ["fetch-weights", "RAMiT-1_X3.pth", "--out", str(out),
                                   "--registry", str(REGISTRY)])
    assert res.exit_code == 2, res.output
    assert "checksum mismatch" in res.output
    # The same command against the real mirror, given on the command line, succeeds.
    res = CliRunner().invoke(app, ["fetch-weights", "RAMiT-1_X3.pth", "--out", str(out),
                                   "--mirror", str(checkpoints_mirror), "--registry", str(REGISTRY)])
    assert res.exit_code == 0, res.output
    assert sha256_file(out / "RAMiT-1_X3.pth") == load_registry(REGISTRY).get("RAMiT-1_X3.pth").sha256


def test_file_missing_at_the_source_is_a_clear_error(tmp_path, checkpoints_mirror):
    with pytest.raises(DataError, match=r"RAMiT_X2.pth.*public: https://raw.githubusercontent.com/"):
        fetch_weights(["RAMiT_X2.pth"], out=tmp_path, mirror=str(checkpoints_mirror), registry=REGISTRY)
    with pytest.raises(RamitError, match="unknown checkpoint 'RAMiT_X9.pth'"):
        fetch_weights(["RAMiT_X9.pth"], out=tmp_path, mirror=str(checkpoints_mirror), registry=REGISTRY)


def test_fetch_all_available_from_mirror(tmp_path, checkpoints_mirror):
    # Only the 8 files with bytes in the mirror; the 7 absent ones are named in a warning.
    mirror = tmp_path / "mirror"
    shutil.copytree(checkpoints_mirror / "pretrained", mirror / "pretrained")
    with pytest.warns(UserWarning, match="skipping 7 checkpoint"):
        got = fetch_weights(None, out=tmp_path / "w", mirror=str(mirror), registry=REGISTRY)
    assert sorted(p.name for p in got) == sorted(p.name for p in (checkpoints_mirror / "pretrained").glob("*.pth"))
    assert len(got) == 8
