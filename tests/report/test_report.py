"""`ramit report` over a synthetic results tree written in the documented on-disk formats."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from report_tree import build, make_tree, profile, result
from report_tree import md_rows as _md_rows
from ramit.config import ConfigError


def _md_header(path: Path) -> list[str]:
    line = next(x for x in path.read_text(encoding="utf-8").splitlines() if x.startswith("| Model"))
    return [c.strip() for c in line.strip("|").split("|")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One full build shared by the read-only tests (figures make a build take ~1 s)."""
    root = make_tree(tmp_path_factory.mktemp("tree"))
    build(root)
    return root


@pytest.fixture
def report(built):
    return built / "reports"


def test_sr_table_rows_columns_numbers_and_reference_diff(report):
    md = report / "tables/trained_sr_x2.md"
    assert _md_header(md) == ["Model", "Params (K)", "MACs (G)", "Set5", "Urban100"]
    rows = _md_rows(md)
    # Baselines first, proposed model last; ablations are not in the main table.
    assert list(rows) == ["Bicubic", "SwinIR-light", "RAMiT"]
    assert rows["RAMiT"] == ["940", "163.4", "37.95/0.9601 (−0.05)", "**32.90**/0.9300"]
    assert rows["SwinIR-light"][:3] == ["910", "244.2", "**38.14**/0.9300"]
    assert rows["Bicubic"][:2] == ["–", "–"]  # no profile: a dash, not a crash


def test_denoising_table_is_dataset_by_sigma(report):
    md = report / "tables/trained_cdn.md"
    assert _md_header(md)[3:] == [f"{d} σ{s}" for d in ("CBSD68", "Kodak24") for s in (15, 25, 50)]
    rows = _md_rows(md)
    assert list(rows) == ["DnCNN", "RAMiT"]
    assert rows["RAMiT"][2] == "**34.20**/0.8800" and rows["DnCNN"][7] == "28.80/0.8600"
    tex = (report / "tables/trained_cdn.tex").read_text()
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\multicolumn{3}{c}{CBSD68}",
                  r"\cmidrule(lr){4-6}", r"$\sigma$50", r"\textbf{34.20}/0.8800"):
        assert token in tex, token


def test_csv_is_tidy_and_numeric(report):
    df = pd.read_csv(report / "tables/trained_sr_x2.csv")
    assert len(df) == 6 and set(df["model"]) == {"Bicubic", "SwinIR-light", "RAMiT"}
    r = df[(df.model == "RAMiT") & (df.dataset == "Set5")].iloc[0]
    assert r.psnr == pytest.approx(37.95) and r.ref_psnr == pytest.approx(38.0)
    assert r.diff_psnr == pytest.approx(-0.05) and r.params_k == pytest.approx(939.844)
    assert r.macs_g == pytest.approx(163.42) and r.ref_citation == "paper T2"
    assert df[df.model == "Bicubic"].params_k.isna().all()


def test_released_table_and_zero_diff(report):
    rows = _md_rows(report / "tables/released_sr_x2.md")
    assert rows == {"RAMiT-1": ["–", "–", "38.05/0.9606 (±0.00)"]}


def test_ablation_table_delta_to_full_model(report):
    md = report / "tables/ablation_trained_sr_x2.md"
    # Only test sets an ablation was run on become columns.
    assert _md_header(md) == ["Model", "Params (K)", "MACs (G)", "Set5 PSNR/SSIM", "Set5 ΔPSNR"]
    rows = _md_rows(md)
    assert list(rows) == ["RAMiT", "RAMiT-abl-spsa-only", "RAMiT-abl-no-helper"]
    assert rows["RAMiT"][3] == "ref."
    assert rows["RAMiT-abl-no-helper"] == ["930", "160.0", "37.83/0.9595", "−0.12"]
    assert rows["RAMiT-abl-spsa-only"][3] == "+0.03"
    df = pd.read_csv(report / "tables/ablation_trained_sr_x2.csv")
    d = df.set_index("model")["delta_psnr"]
    assert d["RAMiT-abl-no-helper"] == pytest.approx(-0.12) and d["RAMiT-abl-spsa-only"] == pytest.approx(0.03)
    assert r"$-$0.12" in (report / "tables/ablation_trained_sr_x2.tex").read_text()


def test_figures_are_real_pngs(report):
    expected = {"tradeoff_trained_sr_x2.png", "tradeoff_trained_cdn.png", "curves_x2.png",
                "visual_trained_sr_x2.png", "visual_trained_cdn.png"}
    assert {p.name for p in (report / "figures").glob("*.png")} == expected
    for name in expected:
        p = report / "figures" / name
        assert p.stat().st_size > 15_000, name
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            assert im.width > 500 and im.height > 300
            # Not a blank canvas: plenty of distinct colours.
            assert len(im.convert("RGB").getcolors(maxcolors=1 << 20)) > 50, name


def test_readme_indexes_everything_with_working_links(report):
    text = (report / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links and all((report / link).is_file() for link in links), [l for l in links if not (report / l).is_file()]
    on_disk = {p.relative_to(report).as_posix() for p in report.glob("*/*") if p.is_file()}
    assert on_disk <= set(links)  # every table file and figure is reachable from the index
    assert set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)) == {p for p in on_disk if p.endswith(".png")}
    assert "## Provenance" in text and "git commit" in text and "python (report host)" in text
    assert "`trained`: cpu" in text and "y_channel=True" in text
    assert "Results — our training (source `trained`)" in text
    assert "Results — the authors' released checkpoints" in text
    assert "RAMiT/x3/Set5" in text  # a reference with no matching result is reported, not silently dropped


def test_rerun_gives_identical_tables_and_drops_stale_files(tree):
    build(tree)
    first = {p.name: p.read_bytes() for p in (tree / "reports/tables").iterdir()}
    figs = {p.name: p.read_bytes() for p in (tree / "reports/figures").iterdir()}
    shutil.rmtree(tree / "results/released")
    build(tree)
    second = {p.name: p.read_bytes() for p in (tree / "reports/tables").iterdir()}
    assert set(first) - set(second) == {"released_sr_x2.md", "released_sr_x2.tex", "released_sr_x2.csv"}
    # The comparison reads every source, so losing the released results changes it, and only it.
    assert sorted(k for k in second if second[k] != first[k]) == [f"compare_sr_x2.{e}" for e in ("csv", "md", "tex")]
    build(tree)
    assert {p.name: p.read_bytes() for p in (tree / "reports/tables").iterdir()} == second
    assert {p.name: p.read_bytes() for p in (tree / "reports/figures").iterdir()} == figs
    assert "released" not in (tree / "reports/README.md").read_text().split("## Figures")[0].split("## Tables")[1]


def test_bare_results_tree_degrades_gracefully(tmp_path):
    result(tmp_path, "trained", "RAMiT", "x2", "Set5", 37.9, 0.96)
    result(tmp_path, "trained", "RAMiT", "lle", "LOL", 23.1, None)
    build(tmp_path, params=None, references=tmp_path / "absent.yaml")
    out = tmp_path / "reports"
    assert _md_rows(out / "tables/trained_sr_x2.md") == {"RAMiT": ["–", "–", "37.90/0.9600"]}
    assert _md_rows(out / "tables/trained_lle.md") == {"RAMiT": ["–", "–", "23.10/–"]}
    assert (out / "figures").is_dir() and not list((out / "figures").glob("*.png"))
    text = (out / "README.md").read_text()
    assert "no training curves" in text and "no restored images" in text
    assert "no model has both" in text and "no reference file" in text


def test_run_plan_orders_rows_and_columns(tree):
    (tree / "run.yaml").write_text("train: {}\nreport:\n  model_order: [RAMiT, Bicubic]\n  dataset_order: [Urban100]\n")
    build(tree)
    md = tree / "reports/tables/trained_sr_x2.md"
    assert list(_md_rows(md)) == ["RAMiT", "Bicubic", "SwinIR-light"]
    assert _md_header(md)[3:] == ["Urban100", "Set5"]


def test_bad_run_plan_names_file_and_key(tree):
    (tree / "run.yaml").write_text("report:\n  model_ordr: [RAMiT]\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: key 'report\.model_ordr'"):
        build(tree)


@pytest.mark.parametrize("body, key", [
    ("references:\n  - {model: RAMiT, setting: x2, dataset: Set5, psnr: nope, citation: c}\n", "references.0.psnr"),
    ("references:\n  - {model: RAMiT, setting: x5, dataset: Set5, psnr: 38, citation: c}\n", "references.0.setting"),
    ("references:\n  - {model: RAMiT, setting: x2, dataset: Set5, psnr: 38}\n", "references.0.citation"),
    ("references:\n  - {model: RAMiT, setting: x2, dataset: Set5, psnr: 38, citation: c, ssim: 2}\n",
     "references.0.ssim"),
    ("refs: []\n", "refs"),
])
def test_bad_references_name_file_and_key(tree, body, key):
    (tree / "refs.yaml").write_text(body)
    with pytest.raises(ConfigError, match=rf"refs\.yaml: key '{re.escape(key)}'"):
        build(tree)
    assert not (tree / "reports").exists()  # validated before anything is written


def test_duplicate_reference_is_an_error(tree):
    entry = "  - {model: RAMiT, setting: x2, dataset: Set5, psnr: 38, citation: c}\n"
    (tree / "refs.yaml").write_text("references:\n" + entry + entry)
    with pytest.raises(ConfigError, match=r"refs\.yaml: .*references\.1 repeats references\.0"):
        build(tree)


def test_shipped_reference_file_is_valid():
    from ramit.report.tables import load_references

    path = Path(__file__).resolve().parents[2] / "params/reference_results.yaml"
    refs = load_references(path)  # the baselines' published numbers (RAMiT's tables were not recovered)
    assert refs and all(r.citation for r in refs.values())


def test_profile_and_corrupt_files_do_not_break_the_report(tree):
    (tree / "results/trained/RAMiT/x2/Set14.json").write_text("{not json")
    (tree / "results/profile/SwinIR-light/x2.json").write_text("[]")
    profile(tree, "Bicubic", "x2", 0, 0.0)
    build(tree)
    rows = _md_rows(tree / "reports/tables/trained_sr_x2.md")
    assert rows["SwinIR-light"][:2] == ["–", "–"] and rows["Bicubic"][:2] == ["0", "0.0"]
    text = (tree / "reports/README.md").read_text()
    assert "Set14.json" in text and "SwinIR-light/x2.json" in text


def test_cli_report_and_mlflow_failure_is_not_fatal(tree, monkeypatch):
    from typer.testing import CliRunner

    from ramit.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus-scheme://nowhere")
    args = ["report", "--results", str(tree / "results"), "--runs", str(tree / "runs"),
            "--data", str(tree / "data/degraded"), "--out", str(tree / "rep"),
            "--params", str(tree / "run.yaml"), "--references", str(tree / "refs.yaml")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (tree / "rep/README.md").is_file() and (tree / "rep/tables/trained_sr_x2.tex").is_file()
    (tree / "refs.yaml").write_text("references: 3\n")
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "refs.yaml" in r.output


def test_gray_denoising_strip_and_curve_without_loss_column(tmp_path):
    import numpy as np

    from report_tree import _png, _scene

    result(tmp_path, "trained", "RAMiT", "gdn_s50", "Set12", 27.5, 0.79)
    gt = _scene(3, c=1)
    _png(tmp_path / "data/degraded/gdn_s50/Set12/HQ/01.png", gt)
    (tmp_path / "data/degraded/gdn_s50/Set12/LQ").mkdir(parents=True)
    np.save(tmp_path / "data/degraded/gdn_s50/Set12/LQ/01.npy",
            (gt / 255.0 + np.random.default_rng(0).normal(0, 0.2, gt.shape)).astype(np.float32))
    _png(tmp_path / "results/trained/RAMiT/gdn_s50/Set12_images/01.png", gt)
    (tmp_path / "runs/RAMiT/gdn").mkdir(parents=True)
    (tmp_path / "runs/RAMiT/gdn/history.csv").write_text("iteration,lr\n0,0.0004\n10,0.0004\n")
    build(tmp_path, params=None, references=None)
    strip = tmp_path / "reports/figures/visual_trained_gdn.png"
    assert strip.stat().st_size > 10_000
    text = (tmp_path / "reports/README.md").read_text()
    assert "Set12/01 at gdn_s50" in text
    assert "runs for `gdn`: history.csv/val.csv have no loss or PSNR column" in text


def test_source_filter_gives_a_released_only_report(tree):
    build(tree, out="reports/released", source="released")
    out = tree / "reports/released"
    # its own tables, plus the comparison, which always reads every source
    assert sorted(p.name for p in (out / "tables").iterdir() if not p.name.startswith("compare_")) == [
        "released_sr_x2.csv", "released_sr_x2.md", "released_sr_x2.tex"]
    assert (out / "tables/compare_sr_x2.md").is_file()
    assert not list((out / "figures").glob("curves_*.png"))
    text = (out / "README.md").read_text()
    assert text.startswith("# RAMiT benchmark report — the authors' released checkpoints")
    assert "trained_sr_x2" not in text
