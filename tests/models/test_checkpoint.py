"""load_weights / save_weights: official checkpoints load strictly; bad files fail with one clear error."""

from __future__ import annotations

import pytest
import torch

from ramit.errors import CheckpointError
from ramit.models import build_model, load_weights, save_weights

OFFICIAL = {  # file -> (variant, task, scale)
    "RAMiT-1_X2.pth": ("RAMiT-1", "sr", 2), "RAMiT-1_X3.pth": ("RAMiT-1", "sr", 3),
    "RAMiT-1_X4.pth": ("RAMiT-1", "sr", 4), "RAMiT-1_CDN.pth": ("RAMiT-1", "cdn", None),
    "RAMiT-slimSR_X2.pth": ("RAMiT-slimSR", "sr", 2), "RAMiT-slimSR_X3.pth": ("RAMiT-slimSR", "sr", 3),
    "RAMiT-slimSR_X4.pth": ("RAMiT-slimSR", "sr", 4), "RAMiT-slimLLE_LLE.pth": ("RAMiT-slimLLE", "lle", None),
}


@pytest.mark.parametrize("fname", sorted(OFFICIAL))
def test_official_checkpoint_loads_strictly(checkpoints_mirror, fname):
    name, task, scale = OFFICIAL[fname]
    model = build_model(name, task, scale=scale)
    before = model.to_target.final_conv.weight.clone()
    load_weights(model, checkpoints_mirror / "pretrained" / fname)
    assert not torch.equal(before, model.to_target.final_conv.weight)


def test_wrong_scale_names_file_key_and_shapes(checkpoints_mirror):
    path = checkpoints_mirror / "pretrained" / "RAMiT-1_X2.pth"
    with pytest.raises(CheckpointError) as e:
        load_weights(build_model("RAMiT-1", "sr", scale=3), path)
    msg = str(e.value)
    assert str(path) in msg and "RAMiT-1 sr x3" in msg
    assert "'to_target.conv.weight' has shape [12,64,3,3] in the file, [27,64,3,3] in the model" in msg


def test_wrong_variant_is_rejected(checkpoints_mirror):
    path = checkpoints_mirror / "pretrained" / "RAMiT-slimSR_X2.pth"
    with pytest.raises(CheckpointError, match=r"shallow.conv.weight' has shape \[48,3,3,3\] in the file, \[64,3,3,3\]"):
        load_weights(build_model("RAMiT-1", "sr", scale=2), path)
    # Same width, MobiVari1: the first mismatch in model order is the un-expanded depthwise conv.
    slim_v1 = build_model("RAMiT-slimSR", "sr", scale=2, mv_ver=1)
    with pytest.raises(CheckpointError, match=r"block0.mobivari.dw_conv.weight' has shape \[60,1,3,3\] in the file, "
                                              r"\[48,1,3,3\] in the model"):
        load_weights(slim_v1, path)


def test_truncated_and_text_files(tmp_path, checkpoints_mirror):
    data = (checkpoints_mirror / "pretrained" / "RAMiT-1_X2.pth").read_bytes()
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint\n")
    model = build_model("RAMiT-1", "sr", scale=2)
    for bad in (trunc, text, tmp_path / "missing.pth"):
        with pytest.raises(CheckpointError, match=str(bad)):
            load_weights(model, bad)


def test_containers_prefixes_and_safetensors_roundtrip(tmp_path):
    torch.manual_seed(0)
    src = build_model("RAMiT-1", "gdn", depths=(1, 1, 1, 1))
    sd = src.state_dict()
    for i, obj in enumerate([{"model": sd}, {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
                             {"params": sd, "iter": torch.tensor(3)}]):
        p = tmp_path / f"c{i}.pth"
        torch.save(obj, p)
        dst = build_model("RAMiT-1", "gdn", depths=(1, 1, 1, 1))
        load_weights(dst, p)
        assert all(torch.equal(a, b) for a, b in zip(sd.values(), dst.state_dict().values()))
    st = save_weights(src, tmp_path / "w" / "model.safetensors")
    dst = load_weights(build_model("RAMiT-1", "gdn", depths=(1, 1, 1, 1)), st)
    assert all(torch.equal(a, b) for a, b in zip(sd.values(), dst.state_dict().values()))
    partial = dict(sd)
    partial.pop("to_target.final_conv.bias")
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="'to_target.final_conv.bias' .* missing"):
        load_weights(dst, tmp_path / "partial.pth")


# ----------------------------------------------------------------------------- pickled modules

CSZN_DNCNN = "baselines/DnCNN/TrainingCodes/dncnn_pytorch/models/DnCNN_sigma25/model.pth"


def test_pickled_module_is_refused_with_one_clear_error(checkpoints_mirror):
    # cszn/DnCNN's released model.pth is a whole nn.Module pickled from __main__ (PyTorch 0.4.1)
    path = checkpoints_mirror / CSZN_DNCNN
    with pytest.raises(CheckpointError) as e:
        load_weights(build_model("DnCNN-S", "gdn"), path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: a whole pickled nn.Module (class __main__.DnCNN), not a state_dict")
    assert "weights_only=True" in msg
    assert "https://github.com/cszn/KAIR/raw/master/model_zoo/dncnn_25.pth" in msg and "\n" not in msg
    # and the state_dict release it points to does load into the model it names
    load_weights(build_model("DnCNN-S", "gdn"), checkpoints_mirror / "baselines" / "dncnn_25.pth")


def test_pickled_module_of_any_class_gets_the_generic_advice(tmp_path):
    path = tmp_path / "whole.pth"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3)), path)  # zip format, torch.nn classes only
    with pytest.raises(CheckpointError, match=r"pickled nn.Module \(class torch.nn.modules.container.Sequential\)"
                                              r".*state_dict\(\)"):
        load_weights(build_model("DnCNN-S", "gdn"), path)


class _Touch:
    """Unpickling this object would create `marker`: it must never be unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


def test_foreign_pickles_never_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": _Touch(str(marker))}, path)
    with pytest.raises(CheckpointError, match=f"{path}: not a readable checkpoint"):
        load_weights(build_model("DnCNN-S", "gdn"), path)
    assert not marker.exists()
