"""The reproduction table (trained vs released vs published) over results trees holding any subset of sources."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from report_tree import build, md_rows, profile, result, run_plan
from ramit.evaluate.released import Checkpoint, Registry, load_registry

REFS = ("references:\n"
        "  - {model: RAMiT-1, setting: x2, dataset: Set5, psnr: 38.00, ssim: 0.9600, citation: 'paper T2',\n"
        "     note: 'MATLAB evaluation'}\n"
        "  - {model: SwinIR-light, setting: x2, dataset: Set5, psnr: 38.14, ssim: 0.9611, citation: 'SwinIR T3'}\n")


def _compare(root: Path, name="compare_sr_x2", out="reports") -> pd.DataFrame:
    df = pd.read_csv(root / out / "tables" / f"{name}.csv")
    return df.set_index(["model", "dataset", "setting"])


def _build(root: Path, refs: str = "references: []\n", **plan):
    (root / "refs.yaml").write_text(refs)
    run_plan(root, **plan)
    return build(root, params=root / "run.yaml", references=root / "refs.yaml")


def test_trained_only(tmp_path):
    result(tmp_path, "trained", "RAMiT", "x2", "Set5", 37.9, 0.96)
    result(tmp_path, "trained", "Bicubic", "x2", "Set5", 33.7, 0.93)
    _build(tmp_path)
    df = _compare(tmp_path)
    r = df.loc[("RAMiT", "Set5", "x2")]
    assert (r.trained_status, r.trained_psnr) == ("ok", pytest.approx(37.9))
    assert r.released_status == "not_planned"          # RAMiT_X2.pth is registered, but not in the plan
    assert r.published_status == "not_recovered"       # RAMiT's own paper numbers
    assert df.loc[("Bicubic", "Set5", "x2")].released_status == "no_weights"
    assert df.loc[("Bicubic", "Set5", "x2")].published_status == "no_published"
    # planned but not evaluated yet: SwinIR-light trained on Set5; the planned RAMiT-1_X2 release on Set5
    assert df.loc[("SwinIR-light", "Set5", "x2")].trained_status == "not_run"
    assert df.loc[("RAMiT-1", "Set5", "x2")].released_status == "not_run"
    assert df["d_trained_released_psnr"].isna().all()
    md = (tmp_path / "reports/tables/compare_sr_x2.md").read_text()
    assert "| Set5 | RAMiT | 37.90/0.9600 | _not in plan_ | _paper table not recovered_ | – | – | – |" in md


def test_released_only(tmp_path):
    result(tmp_path, "released", "RAMiT-1", "x2", "Set5", 38.05, 0.9606)
    _build(tmp_path, models={"RAMiT": {"keys": ["x2"]}})
    df = _compare(tmp_path)
    r = df.loc[("RAMiT-1", "Set5", "x2")]
    assert (r.released_status, r.released_psnr) == ("ok", pytest.approx(38.05))
    assert r.trained_status == "not_planned" and r.published_status == "not_recovered"
    assert df.loc[("RAMiT", "Set5", "x2")].trained_status == "not_run"
    assert df.loc[("RAMiT", "Set5", "x2")].released_status == "not_planned"


def test_published_only(tmp_path):
    _build(tmp_path, refs=REFS, models={"RAMiT": {"keys": ["x2"]}}, released=())
    df = _compare(tmp_path)
    r = df.loc[("SwinIR-light", "Set5", "x2")]
    assert (r.published_psnr, r.published_citation) == (pytest.approx(38.14), "SwinIR T3")
    # SwinIR-S x2 weights are registered (params/checkpoints.yaml), just not in this plan's released list
    assert r.trained_status == "not_planned" and r.released_status == "not_planned"
    r = df.loc[("RAMiT-1", "Set5", "x2")]
    assert r.published_note == "MATLAB evaluation" and r.released_status == "not_planned"
    md = (tmp_path / "reports/tables/compare_sr_x2.md").read_text()
    # footnotes are numbered in row order, each distinct citation (and note) once
    assert "38.00/0.9600 [2]" in md and "38.14/0.9611 [1]" in md
    assert "* [1] SwinIR T3\n* [2] paper T2 — MATLAB evaluation" in md


def test_all_three_sources_and_their_differences(tmp_path):
    result(tmp_path, "trained", "RAMiT-1", "x2", "Set5", 37.80, 0.9590)
    result(tmp_path, "released", "RAMiT-1", "x2", "Set5", 38.05, 0.9606)
    _build(tmp_path, refs=REFS, models={"RAMiT-1": {"keys": ["x2"]}})
    r = _compare(tmp_path).loc[("RAMiT-1", "Set5", "x2")]
    assert r.d_trained_released_psnr == pytest.approx(-0.25)
    assert r.d_trained_published_psnr == pytest.approx(-0.20)
    assert r.d_released_published_psnr == pytest.approx(0.05)
    assert r.d_released_published_ssim == pytest.approx(0.0006)
    md = (tmp_path / "reports/tables/compare_sr_x2.md").read_text()
    assert "| Set5 | RAMiT-1 | 37.80/0.9590 | 38.05/0.9606 | 38.00/0.9600 [2] | −0.25 | −0.20 | +0.05 |" in md
    tex = (tmp_path / "reports/tables/compare_sr_x2.tex").read_text()
    assert r"$-$0.25" in tex and r"\toprule" in tex and r"$^{2}$ paper T2 --- MATLAB evaluation" in tex


def test_comparison_leads_every_report_and_ignores_the_source_filter(tmp_path):
    result(tmp_path, "trained", "RAMiT-1", "x2", "Set5", 37.80, 0.9590)
    result(tmp_path, "released", "RAMiT-1", "x2", "Set5", 38.05, 0.9606)
    result(tmp_path, "trained", "RAMiT-abl-no-helper", "x2", "Set5", 37.1, 0.95)
    run_plan(tmp_path, models={"RAMiT-1": {"keys": ["x2"]}})
    (tmp_path / "refs.yaml").write_text(REFS)
    for out, source in (("reports", "trained"), ("reports/released", "released")):
        build(tmp_path, out=out, source=source)
        r = _compare(tmp_path, out=out).loc[("RAMiT-1", "Set5", "x2")]
        assert r.trained_status == r.released_status == "ok"
        text = (tmp_path / out / "README.md").read_text()
        assert text.index("## Reproduction: trained vs released vs published") < text.index("## Provenance")
        assert "tables/compare_sr_x2.md" in text
    # ablations have their own tables, not rows in the comparison
    assert "RAMiT-abl-no-helper" not in _compare(tmp_path).index.get_level_values("model")


def test_without_a_run_plan_or_registry_cells_say_no_result(tmp_path):
    result(tmp_path, "trained", "RAMiT", "x2", "Set5", 37.9, 0.96)
    build(tmp_path, params=None, references=None, checkpoints=tmp_path / "absent.yaml")
    r = _compare(tmp_path).loc[("RAMiT", "Set5", "x2")]
    assert r.trained_status == "ok" and r.released_status == "no_result"
    assert "no checkpoint registry" in (tmp_path / "reports/README.md").read_text()


def test_registry_model_field_is_preferred_and_settings_restrict(tmp_path):
    from ramit.config import validate
    from ramit.pipeline import RunPlan
    from ramit.report.compare import expectations, registry_weights

    base = load_registry()
    entry = {**base.get("RAMiT-1_CDN.pth").model_dump(), "model": "DnCNN", "settings": ["cdn_s25"]}
    reg = Registry(checkpoints=[Checkpoint(**entry)])
    w = registry_weights(reg)
    assert w == {("DnCNN", "cdn"): {"cdn_s25"}}

    plan = validate({"name": "p", "train_data": {}, "test_data": {"cdn": ["McMaster"]}, "recipes": {},
                     "models": {}, "released": {"checkpoints": ["RAMiT-1_CDN.pth"], "test_data": {"cdn": ["McMaster"]}}},
                    RunPlan, "p.yaml")
    exp = expectations(plan, reg)
    assert exp.released == {("DnCNN", "cdn_s25", "McMaster")}
    assert exp.has_weights("DnCNN", "cdn_s25") and not exp.has_weights("DnCNN", "cdn_s50")
    assert exp.has_weights("DnCNN+", "cdn_s25")  # an ensemble uses its base model's weights


def test_ensemble_rows_sit_next_to_their_base_model(tmp_path):
    for model, psnr, extra in (("RAMiT", 37.90, {}), ("RAMiT+", 38.02, {"base_model": "RAMiT"}),
                               ("SwinIR-light", 38.14, {})):
        result(tmp_path, "trained", model, "x2", "Set5", psnr, 0.96, **extra)
    profile(tmp_path, "RAMiT", "x2", 939844, 163.42e9)
    _build(tmp_path, self_ensemble=True)
    rows = md_rows(tmp_path / "reports/tables/trained_sr_x2.md")
    assert list(rows) == ["SwinIR-light", "RAMiT", "RAMiT+"]
    assert rows["RAMiT+"][:2] == ["940", f"{163.42 * 8:.1f}"] and rows["RAMiT"][:2] == ["940", "163.4"]
    text = (tmp_path / "reports/README.md").read_text()
    assert "params are the base model's, MACs 8× the base" in text
    df = _compare(tmp_path)
    assert df.loc[("RAMiT+", "Set5", "x2")].trained_status == "ok"
    models = list(df.index.get_level_values("model"))
    assert models.index("RAMiT+") == models.index("RAMiT") + 1
    assert df.loc[("SwinIR-light+", "Set5", "x2")].trained_status == "not_run"  # the plan ensembles everything
