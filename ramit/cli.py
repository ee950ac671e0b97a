"""The `ramit` command line: one subcommand per pipeline stage.

Snakemake rules and DVC stages call exactly these commands, so anything the pipeline does a user can
run by hand. Heavy imports (torch, mlflow) happen inside the commands to keep `ramit --help` instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ramit.runtime import tune_allocator

# Before any command imports torch: huge pages and a heap that keeps freed activations (ramit/runtime.py).
tune_allocator()

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="RAMiT benchmark pipeline: fetch -> degrade -> train -> evaluate -> profile -> report.",
)

MIRROR_HELP = (
    "Replace the public base URL by a local directory or an http(s) URL laid out like it "
    "(default: $RAMIT_MIRROR, else the params file's `mirror`, else the public URLs)."
)


PLAN_HELP = ("Run this as a stage of a run plan (params/run.yaml, params/paper.yaml): the plan supplies every "
             "other argument, as in the pipeline.")


def _plan_stage(plan: Path, name: str) -> None:
    from ramit.pipeline.run import run_stage

    run_stage(plan, name)


def _require(**given) -> None:
    """Without --plan these options are required: one clear error naming the missing ones."""
    from ramit.errors import RamitError

    missing = [k for k, v in given.items() if v is None or v == []]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise RamitError(f"missing {flags} (or give --plan <run plan> to take them from a plan)")


def _fail_cleanly(fn):
    """Turn our own expected errors into one red line and exit code 2 instead of a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ramit.errors import RamitError

        try:
            return fn(*args, **kwargs)
        except RamitError as e:
            typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper


# --------------------------------------------------------------------------------------------- data
@app.command()
@_fail_cleanly
def fetch(
    datasets: List[str] = typer.Argument(..., help="Registry names (params/datasets.yaml), e.g. Set5 EmbeddedTest."),
    data_dir: Path = typer.Option(Path("data/raw"), help="Download cache: where downloaded datasets are installed."),
    manual_dir: Path = typer.Option(Path("data/manual"), help="Where you put request-only / drive-hosted datasets."),
    mirror: Optional[str] = typer.Option(None, help=MIRROR_HELP),
    registry: Path = typer.Option(Path("params/datasets.yaml"), help="Dataset registry file."),
    plan: Optional[Path] = typer.Option(None, help=PLAN_HELP),
):
    """Download (or build, for the embedded set) and verify datasets."""
    if plan is not None:
        for d in datasets:
            _plan_stage(plan, f"fetch-{d}")
        return
    from ramit.data.fetch import fetch_datasets

    fetch_datasets(datasets, data_dir=data_dir, mirror=mirror, registry=registry, manual_dir=manual_dir)


@app.command()
@_fail_cleanly
def degrade(
    setting: str = typer.Argument(..., help="Setting key (x2, cdn_s25, lle, ...) or, with --train, a model key (x2, cdn, ...)."),
    dataset: str = typer.Argument(..., help="Registry name of an installed dataset."),
    out: Optional[Path] = typer.Option(None, help="Output directory (HQ/, LQ/, manifest.json)."),
    data_dir: Path = typer.Option(Path("data/raw"), help="Download cache where `ramit fetch` installed the dataset."),
    manual_dir: Path = typer.Option(Path("data/manual"), help="Where request-only / drive-hosted datasets were put."),
    train: bool = typer.Option(False, "--train", help="Make training pairs instead of a test set."),
    registry: Path = typer.Option(Path("params/datasets.yaml"), help="Dataset registry file."),
    plan: Optional[Path] = typer.Option(None, help=PLAN_HELP),
):
    """Make the degraded inputs and scoring references of one dataset, as the authors did."""
    if plan is not None:
        return _plan_stage(plan, f"degrade-{'train-' if train else ''}{setting}-{dataset}")
    _require(out=out)
    from ramit.data.degrade import degrade_dataset

    degrade_dataset(setting, dataset, data_dir=data_dir, out=out, train=train, registry=registry, manual_dir=manual_dir)


# -------------------------------------------------------------------------------------------- train
@app.command()
@_fail_cleanly
def train(
    model: str = typer.Option(..., help="Model name, e.g. RAMiT-1, SwinIR-light, RAMiT-abl-no-helper."),
    task: Optional[str] = typer.Option(None, help="sr, cdn, gdn, lle or dr."),
    recipe: Optional[Path] = typer.Option(None, help="Training recipe (params/train/*.yaml)."),
    train_data: List[Path] = typer.Option([], help="Training pair directories (from `ramit degrade --train`)."),
    out: Optional[Path] = typer.Option(None, help="Run directory; rerunning the same command resumes from it."),
    scale: Optional[int] = typer.Option(None, help="SR scale (2, 3, 4)."),
    val_data: Optional[Path] = typer.Option(None, help="Held-out pairs (a `ramit degrade` test-set directory)."),
    init: Optional[Path] = typer.Option(None, help="Warm start: weights of a trained model (e.g. the x2 model for x3/x4)."),
    set_: List[str] = typer.Option([], "--set", help="Override a recipe key, e.g. --set iterations=200."),
    seed: Optional[int] = typer.Option(None, help="Override the recipe seed."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    plan: Optional[Path] = typer.Option(None, help=PLAN_HELP),
    key: Optional[str] = typer.Option(None, help="With --plan: the model key (x2, x3, x4, cdn, gdn, lle, dr)."),
):
    """Train one model with one recipe (torchrun-aware; resumes only a run with the same fingerprint)."""
    if plan is not None:
        _require(key=key)
        return _plan_stage(plan, f"train-{model}-{key}")
    _require(task=task, recipe=recipe, train_data=train_data, out=out)
    from ramit.train.loop import train_main

    train_main(model=model, task=task, scale=scale, recipe=recipe, train_data=train_data, val_data=val_data,
               out=out, init=init, overrides=set_, seed=seed, device=device)


# ----------------------------------------------------------------------------------------- evaluate
@app.command("fetch-weights")
@_fail_cleanly
def fetch_weights(
    files: List[str] = typer.Argument(None, help="Checkpoint files (e.g. RAMiT-1_X2.pth); default: all available."),
    out: Path = typer.Option(Path("weights/released"), help="Where verified checkpoints are installed."),
    mirror: Optional[str] = typer.Option(None, help=MIRROR_HELP),
    registry: Path = typer.Option(Path("params/checkpoints.yaml"), help="Released-checkpoint registry."),
    plan: Optional[Path] = typer.Option(None, help=PLAN_HELP),
):
    """Download and verify the authors' released checkpoints."""
    if plan is not None:
        for f in files or []:
            _plan_stage(plan, f"fetch-weights-{f.removesuffix('.pth')}")
        return
    from ramit.evaluate.released import fetch_weights as _fetch

    _fetch(files or None, out=out, mirror=mirror, registry=registry)


@app.command()
@_fail_cleanly
def evaluate(
    model: Optional[str] = typer.Option(None, help="Model name."),
    setting: Optional[str] = typer.Option(None, help="Setting key: x2, cdn_s25, gdn_s50, lle, dr, ..."),
    data: Optional[Path] = typer.Option(None, help="A `ramit degrade` output directory."),
    out: Optional[Path] = typer.Option(None, help="Per-dataset JSON; the per-image CSV goes beside it."),
    checkpoint: Optional[Path] = typer.Option(None, help="Official .pth or our .safetensors (not for Bicubic/Identity)."),
    source: str = typer.Option("trained", help="trained or released (recorded in the JSON)."),
    save_images: Optional[Path] = typer.Option(None, help="Also write restored PNGs here."),
    tile: Optional[int] = typer.Option(None, help="Tile size in input pixels (default: whole image, as the authors)."),
    tile_overlap: int = typer.Option(32, help="Overlap between tiles in input pixels."),
    self_ensemble: bool = typer.Option(False, help="x8 geometric self-ensemble (the authors did not use it)."),
    precision: str = typer.Option("fp32", help="fp32 (IEEE, TF32 off), tf32, bf16 or fp16 (all but fp32 on GPU only)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the network (frozen weights); each new "
                                 "image size compiles again, in every run (minutes on a CPU)."),
    plan: Optional[Path] = typer.Option(None, help=PLAN_HELP + " Scores every test set and setting of --key."),
    key: Optional[str] = typer.Option(None, help="With --plan: the model key (x2, ..., cdn, ...)."),
    released: Optional[str] = typer.Option(None, help="With --plan: the released checkpoint file to score "
                                                      "(params/checkpoints.yaml), instead of --model/--key."),
):
    """Score one model on one degraded test set with the authors' protocol."""
    if plan is not None:
        if released is not None:
            return _plan_stage(plan, f"evaluate-released-{released.removesuffix('.pth')}")
        _require(model=model, key=key)
        return _plan_stage(plan, f"evaluate-{source}-{model}-{key}")
    _require(model=model, setting=setting, data=data, out=out)
    from ramit.evaluate.evaluate import evaluate_cli

    evaluate_cli(model=model, setting=setting, data=data, out=out, checkpoint=checkpoint, source=source,
                 save_images=save_images, tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble,
                 precision=precision, device=device, compile=compile)


@app.command()
@_fail_cleanly
def profile(
    model: str = typer.Option(..., help="Model name."),
    task: Optional[str] = typer.Option(None, help="sr, cdn, gdn, lle or dr."),
    scale: Optional[int] = typer.Option(None, help="SR scale."),
    size: Optional[str] = typer.Option(None, help="Input HxW (default: SR output 1280x720, i.e. LR 640x360 at x2; 256x256 otherwise)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    threads: int = typer.Option(2, help="CPU threads for the latency measurement."),
    runs: int = typer.Option(5, help="Timed runs after warm-up (median reported)."),
    latency: bool = typer.Option(True, help="Measure latency (off: params and MACs only)."),
    out: Optional[Path] = typer.Option(None, help="Write the JSON here."),
    plan: Optional[Path] = typer.Option(None, help=PLAN_HELP),
    key: Optional[str] = typer.Option(None, help="With --plan: the model key."),
):
    """Print params, MACs (attention matmuls included), latency and peak memory."""
    if plan is not None:
        _require(key=key)
        return _plan_stage(plan, f"profile-{model}-{key}")
    _require(task=task)
    from ramit.evaluate.profile import profile_cli

    profile_cli(model=model, task=task, scale=scale, size=size, device=device, threads=threads, runs=runs,
                latency=latency, out=out)


# ------------------------------------------------------------------------------------------ restore
@app.command("restore")
@_fail_cleanly
def restore_cmd(
    inputs: Path = typer.Argument(..., help="An image (PNG/JPEG/BMP/TIFF) or a folder of images."),
    out: Path = typer.Option(..., help="Output folder; each image is written as <stem>.png."),
    model: str = typer.Option(..., help="Model name, e.g. RAMiT-1, RAMiT-slimSR, Bicubic."),
    task: str = typer.Option(..., help="sr, cdn, gdn (gray images), lle or dr."),
    scale: Optional[int] = typer.Option(None, help="SR scale (2, 3, 4)."),
    checkpoint: Optional[Path] = typer.Option(
        None, help="Weights (.safetensors or official .pth); default: runs/<model>/<key>/model.safetensors, "
                   "else the registered released file in weights/released/."),
    tile: Optional[int] = typer.Option(None, help="Tile size in input pixels for big images (default: whole image)."),
    tile_overlap: int = typer.Option(32, help="Overlap between tiles in input pixels."),
    self_ensemble: bool = typer.Option(False, help="x8 geometric self-ensemble (8x slower)."),
    precision: str = typer.Option("fp32", help="fp32 (IEEE, TF32 off), tf32, bf16 or fp16 (all but fp32 on GPU only)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
):
    """Restore your own image(s) with a trained or released model."""
    from ramit.evaluate.restore import restore_images

    def show(r):
        typer.echo(f"{r.source} {r.in_shape[1]}x{r.in_shape[0]} -> {r.out} {r.out_shape[1]}x{r.out_shape[0]} "
                   f"({r.seconds:.2f} s)")

    restore_images(inputs, out, model=model, task=task, scale=scale, checkpoint=checkpoint, tile=tile,
                   tile_overlap=tile_overlap, self_ensemble=self_ensemble, precision=precision, device=device,
                   progress=show)


# ------------------------------------------------------------------------------------------- report
@app.command()
@_fail_cleanly
def report(
    results: Path = typer.Option(Path("results"), help="Results tree written by evaluate/profile."),
    runs: Path = typer.Option(Path("runs"), help="Training runs (for curves)."),
    data: Path = typer.Option(Path("data/degraded"), help="Degraded test sets (for the visual strip)."),
    out: Path = typer.Option(Path("reports"), help="Output directory."),
    params: Path = typer.Option(Path("params/run.yaml"), help="Run plan (which rows/columns to show)."),
    references: Path = typer.Option(Path("params/reference_results.yaml"), help="Reference numbers to diff against."),
    source: Optional[str] = typer.Option(None, help="Only results of this source: trained or released (default: all)."),
    plan: Optional[Path] = typer.Option(None, help=PLAN_HELP),
):
    """Compile paper-style tables and figures into reports/."""
    if plan is not None:
        return _plan_stage(plan, "report" if source in (None, "trained") else f"report-{source}")
    from ramit.report.build import build_report

    build_report(results=results, runs=runs, data=data, out=out, params=params, references=references,
                 source=source)


# ----------------------------------------------------------------------------------------- pipeline
@app.command()
@_fail_cleanly
def stages(
    params: Path = typer.Option(Path("params/run.yaml"), help="Run plan."),
    write_dvc: bool = typer.Option(False, "--write-dvc", help="Write the plan's dvc.yaml (<root>/dvc.yaml)."),
    check_dvc: bool = typer.Option(False, "--check-dvc", help="Exit 1 if the plan's dvc.yaml is stale."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the summary line."),
):
    """Validate a plan and list its stages (the one DAG Snakemake and DVC both run)."""
    from ramit.pipeline.cli import stages_cli

    stages_cli(params=params, write_dvc=write_dvc, check_dvc=check_dvc, quiet=quiet)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def rehearse(ctx: typer.Context):
    """CPU rehearsal of the paper plan: its exact DAG on stand-in data under real Snakemake and DVC
    (options: --plan, --workdir, --keep, --models, --first-run-only; see `ramit rehearse --help`)."""
    from ramit.pipeline.rehearsal import main

    raise typer.Exit(main(list(ctx.args)))


if __name__ == "__main__":  # pragma: no cover
    app()
