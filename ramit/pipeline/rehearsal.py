"""A CPU rehearsal of the paper plan: its exact DAG, tiny budgets, tiny stand-in data, real tools.

`ramit rehearse` (or `make rehearsal`) derives a plan from `params/paper.yaml` by a transform (never a
hand-copied second plan): every model x key, every ablation, the released target, the real registries
and recipes, with only budgets, devices and data sizes shrunk. It then, in a throw-away copy of the
project:

1. writes stand-in data in the real on-disk layouts: manifest files and archives (zip, tar, tgz)
   served from a real HTTP mirror on 127.0.0.1, manual datasets in `data/manual/`, and stand-in
   released checkpoints (the registries are rewritten with their checksums);
2. runs the whole DAG under real Snakemake, then checks every output, every training history and
   that `dvc status` is clean (Snakemake recorded what it ran in dvc.lock);
3. changes a recipe key of one model with `dvc exp run -S` and checks that DVC re-ran exactly that
   model's stages and their dependents, with new weights, a full history and the stale run kept;
4. changes another model's recipe key in the plan and checks the same under Snakemake (x3/x4 warm
   starts from the retrained x2 included), then that `dvc status` is clean again;
5. edits a manual dataset's registry entry, re-runs both tools, and checks the manual data survived
   every run unchanged;
6. changes the metrics module and checks that both tools see every evaluation as stale.

A failed check or job is a failed rehearsal (exit 1) with the reason; see `--help` for keeping the copy.
"""

from __future__ import annotations

import copy
import csv
import functools
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import yaml

from ramit.io import git_blob_sha1, sha256_file

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REH = "rehearsal"                       # folder of the derived plan, registries and recipes in the copy
EPOCH_SCALE = 0.01                      # 500 epochs -> 5: every phase, stage and milestone still happens
# test images: SR needs 64 (RAMiT's x4 LR of 16 px is the least its symmetric padding takes), other
# tasks 32 (RAMiT pads to multiples of 32 anyway; SwinIR-M and the x8 self-ensembles cost 4x less)
TRAIN_SIZE, TEST_SIZE, TEST_SIZE_NOT_SR, FILES_PER_SET = 96, 64, 32, 2


# ------------------------------------------------------------------------------------- transforms
def shrink_recipe(rec: dict) -> dict:
    """The same recipe in miniature: epochs scaled by EPOCH_SCALE (structure kept), one step of batch 2
    per epoch, patches /4."""
    r = copy.deepcopy(rec)
    ep = lambda x: round(x * EPOCH_SCALE, 4)  # noqa: E731
    r["epochs"] = max(ep(r["epochs"]), 1)
    r["warmup_epochs"] = ep(r.get("warmup_epochs", 20))
    r["milestones"] = [ep(m) for m in r.get("milestones", [])]
    if r.get("warm_start"):
        r["warm_start"]["epochs"] = ep(r["warm_start"]["epochs"])
    if r.get("val_every_epochs"):  # validate twice per run: the cadence still runs, cheaply
        r["val_every_epochs"] = r["epochs"] / 2
    stages, last = [], -1
    for s in r["stages"]:
        e = max(int(round(s["epoch"] * EPOCH_SCALE)), last + 1) if s["epoch"] else 0
        stages.append({"epoch": e, "patch": max(16, s["patch"] // 4), "batch": 2})
        last = e
    r["stages"] = stages
    r["epoch_length"] = {"samples": 2}   # 1 step per epoch at batch 2
    r.update(iterations=None, log_every=1, ckpt_every=3, keep_checkpoints=1, mlflow_every=5,
             num_workers=min(int(r.get("num_workers") or 0), 2), val_every=None, val_max_images=1)
    return r


def transform_plan(raw: dict, mirror: str, recipes: dict[str, str], models: Optional[list[str]] = None) -> dict:
    """The rehearsal plan: the paper plan on CPU with stand-in data; `recipes` maps old -> new recipe paths."""
    p = copy.deepcopy(raw)
    p["name"] = f"{raw['name']}-rehearsal"
    p["description"] = f"CPU rehearsal of {raw['name']} (tiny budgets, stand-in data): not a result"
    p["data"] = {**raw.get("data", {}), "registry": f"{REH}/datasets.yaml", "mirror": mirror}
    p["train"] = {**raw.get("train", {}), "device": "cpu", "processes": 1}
    p["evaluate"] = {**raw.get("evaluate", {}), "device": "cpu", "precision": "fp32"}
    p["profile"] = {**raw.get("profile", {}), "device": "cpu", "size": "32x32", "runs": 1, "threads": 1}
    p["released"] = {**raw.get("released", {}), "registry": f"{REH}/checkpoints.yaml", "weights_mirror": mirror}
    for ref in p["recipes"].values():
        ref["recipe"] = recipes[ref["recipe"]]
    for mp in p["models"].values():
        for ref in (mp.get("recipes") or {}).values():
            ref["recipe"] = recipes[ref["recipe"]]
    if models is not None:
        p["models"] = {m: mp for m, mp in p["models"].items() if m in models}
        p["evaluate"]["self_ensemble"] = [m for m in p["evaluate"].get("self_ensemble", []) if m in models]
        p["released"]["checkpoints"] = []
    return p


def recipe_files(raw: dict) -> list[str]:
    refs = list(raw["recipes"].values()) + [r for mp in raw["models"].values() for r in (mp.get("recipes") or {}).values()]
    return sorted({r["recipe"] for r in refs})


# ------------------------------------------------------------------------------------ stand-in data
def standin_image(name: str, h: int, w: int, c: int) -> np.ndarray:
    """A smooth random picture with some texture, the same for the same name."""
    rng = np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    coarse = rng.uniform(0, 255, (h // 8 + 2, w // 8 + 2, c))
    img = np.kron(coarse, np.ones((8, 8, 1)))[:h, :w] + rng.normal(0, 12, (h, w, c))
    return np.clip(img, 0, 255).astype(np.uint8)


def _encode(img: np.ndarray, suffix: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(
        buf, format={".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF",
                     ".tiff": "TIFF"}[suffix.lower()])
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _channels(ds: dict) -> int:
    return 1 if ds["tasks"] == ["gdn"] else 3


def _size(ds: dict) -> int:
    if ds["role"] == "train":
        return TRAIN_SIZE
    return TEST_SIZE if "sr" in ds["tasks"] else TEST_SIZE_NOT_SR


def _manifest_standin(name: str, ds: dict, rows: list[dict], mirror: Path) -> list[dict]:
    hq = ds["layout"]["hq"]
    keep = sorted((r for r in rows if r["path"].split("/")[1] == hq), key=lambda r: r["path"])[:FILES_PER_SET]
    out = []
    for r in keep:
        data = _encode(standin_image(r["path"], _size(ds), _size(ds), _channels(ds)), Path(r["path"]).suffix)
        _write(mirror / r["path"], data)
        out.append({**r, "sha256": hashlib.sha256(data).hexdigest()})
    ds["count"] = len(out)
    return out


def _archive_standin(name: str, ds: dict, mirror: Path) -> None:
    per_member = max(1, FILES_PER_SET // max(1, len(ds["archives"][0]["members"])))
    taken: dict[str, int] = {}  # per destination folder: two members filling one folder get distinct
    for arc in ds["archives"]:  # names (BSDS500's train + test), the LQ and HQ of a pair the same ones
        members = {}
        for m in arc["members"]:
            first = taken.get(m["dest"], 0)
            taken[m["dest"]] = first + per_member
            for i in range(first, first + per_member):
                stem = f"{i + 1:04d}"
                suffix = ".jpg" if "BSR" in arc["relpath"] else ".png"
                members[f"{m['src'].strip('/')}/{stem}{suffix}"] = _encode(
                    standin_image(f"{name}/{m['src']}/{stem}", _size(ds), _size(ds), 3), suffix)
        path = mirror / arc["relpath"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".zip":
            with zipfile.ZipFile(path, "w") as zf:
                for n, data in members.items():
                    zf.writestr(n, data)
        else:
            with tarfile.open(path, "w:gz" if path.name.endswith((".tgz", ".tar.gz")) else "w") as tf:
                for n, data in members.items():
                    info = tarfile.TarInfo(n)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        arc["sha256"] = sha256_file(path)
    hq_members = sum(1 for arc in ds["archives"] for m in arc["members"] if m["dest"] == ds["layout"]["hq"])
    ds["count"] = hq_members * per_member


def _manual_standin(name: str, ds: dict, manual: Path) -> None:
    subs = list(ds["manual"]["expect"])
    for i in range(FILES_PER_SET):
        stem = f"{i + 1:04d}"
        clean = standin_image(f"{name}/{stem}", _size(ds), _size(ds), 3)
        for sub in subs:
            img = clean if sub == ds["layout"]["hq"] else (clean // 3).astype(np.uint8)
            _write(manual / name / sub / f"{stem}.png", _encode(img, ".png"))
    ds["manual"]["expect"] = {sub: (FILES_PER_SET if n is not None else None) for sub, n in ds["manual"]["expect"].items()}
    if ds.get("count") is not None:
        ds["count"] = FILES_PER_SET


def plan_datasets(raw: dict) -> list[str]:
    names = {d for ds in raw["train_data"].values() for d in ds}
    names |= set(raw.get("val_data", {}).values())
    names |= {d for ds in raw["test_data"].values() for d in ds}
    names |= {d for ds in raw.get("released", {}).get("test_data", {}).values() for d in ds}
    return sorted(names)


def build_standins(raw: dict, proj: Path, mirror: Path) -> None:
    """Stand-in datasets and registry for every dataset the plan uses, in `proj/rehearsal/`."""
    reg_path = proj / raw.get("data", {}).get("registry", "params/datasets.yaml")
    reg = yaml.safe_load(reg_path.read_text())
    rows_by_set: dict[str, list[dict]] = {}
    manifests = {d["manifest"] for d in reg["datasets"].values() if d.get("manifest")}
    for m in manifests:
        with open(reg_path.parent / m, newline="") as fh:
            for row in csv.DictReader(fh):
                rows_by_set.setdefault(row["dataset"], []).append(row)
    new_rows, used = [], set(plan_datasets(raw))
    for name in sorted(used):
        ds = reg["datasets"][name]
        if ds.get("manifest"):
            new_rows += _manifest_standin(name, ds, rows_by_set[name], mirror)
            ds["manifest"] = "datasets_manifest.csv"
        elif ds.get("archives"):
            _archive_standin(name, ds, mirror)
        elif ds.get("manual"):
            _manual_standin(name, ds, proj / raw.get("data", {}).get("manual", "data/manual"))
    reg["datasets"] = {n: d for n, d in reg["datasets"].items() if n in used}
    reg["mirror"] = None
    out = proj / REH
    out.mkdir(parents=True, exist_ok=True)
    (out / "datasets.yaml").write_text(yaml.safe_dump(reg, sort_keys=False))
    with open(out / "datasets_manifest.csv", "w", newline="") as fh:
        fields = list(new_rows[0]) if new_rows else ["dataset", "path", "raw_url", "sha256"]
        w = csv.DictWriter(fh, fields)
        w.writeheader()
        w.writerows(new_rows)


def build_checkpoints(raw: dict, proj: Path, mirror: Path) -> None:
    """Stand-in released weights (seeded models of the right shape) and a registry pinning them."""
    import torch

    from ramit.models import build_model
    from ramit.settings import key_scale, key_task

    reg_path = proj / raw.get("released", {}).get("registry", "params/checkpoints.yaml")
    reg = yaml.safe_load(reg_path.read_text())
    wanted = set(raw.get("released", {}).get("checkpoints", []))
    for c in reg["checkpoints"]:
        if c["file"] not in wanted:
            continue
        model, key = c["model"], c["model_key"]
        torch.manual_seed(0)
        net = build_model(model, key_task(key), scale=key_scale(key))
        path = mirror / c["relpath"]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
        c.update(sha256=sha256_file(path), bytes=path.stat().st_size, git_blob_sha1=git_blob_sha1(path))
    (proj / REH / "checkpoints.yaml").write_text(yaml.safe_dump(reg, sort_keys=False))


# ------------------------------------------------------------------------------------------ mirror
class Mirror:
    """A real HTTP server on 127.0.0.1 serving a folder, for as long as the `with` block lasts."""

    def __init__(self, root: Path):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Mirror":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the jobs' logs say what they fetched
        pass


# ------------------------------------------------------------------------------------------ driver
class RehearsalFailed(Exception):
    pass


@dataclass
class Rehearsal:
    """The throw-away project and the tools run in it."""

    proj: Path
    plan_file: str
    log: list[str] = field(default_factory=list)
    t0: float = field(default_factory=time.perf_counter)

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAMIT_MIRROR", "RAMIT_MLFLOW"))}
        env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(self.proj),
                   MLFLOW_TRACKING_URI=f"sqlite:///{self.proj / 'mlflow.db'}", PYTHONUNBUFFERED="1")
        return env

    def say(self, msg: str) -> None:
        line = f"[rehearsal {time.perf_counter() - self.t0:6.0f} s] {msg}"
        self.log.append(line)
        print(line, flush=True)

    def run(self, *cmd: str, check: bool = True, timeout: int = 3600) -> subprocess.CompletedProcess:
        p = subprocess.run(list(cmd), cwd=self.proj, env=self.env(), capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RehearsalFailed(f"`{' '.join(cmd)}` failed ({p.returncode}):\n{self.failed_jobs(p.stdout + p.stderr)}"
                                  f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p

    def failed_jobs(self, output: str) -> str:
        """The end of each failed Snakemake job's log: the reason, not just "a job failed"."""
        logs = re.findall(r"Error in rule \S+:.*?log: (\S+)", output, flags=re.S)
        parts = []
        for log in dict.fromkeys(logs):
            path = self.proj / log
            tail = path.read_text(errors="replace")[-1500:] if path.is_file() else "(no log)"
            parts.append(f"--- {log}:\n{tail}\n")
        return "".join(parts)

    def git_commit(self, msg: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "-c", "user.email=rehearsal@ramit", "-c", "user.name=rehearsal", "commit", "-qm", msg,
                 check=False)

    # ---- the DAG
    def stages(self):
        from ramit.pipeline.plan import load_plan
        from ramit.pipeline.stages import default_stages

        cwd = os.getcwd()
        os.chdir(self.proj)
        try:
            return default_stages(load_plan(self.plan_file), self.plan_file)
        finally:
            os.chdir(cwd)

    def mtimes(self) -> dict[str, Optional[int]]:
        """Newest mtime of each stage's outputs: which stages a tool re-ran shows as a change."""
        out = {}
        for s in self.stages():
            ts = [_mtime(self.proj / t) for t in s.targets]
            out[s.name] = None if None in ts else max(ts)
        return out

    def downstream(self, names: set[str]) -> set[str]:
        """`names` and every stage that depends on them, transitively."""
        stages = self.stages()
        producer = {t: s.name for s in stages for t in s.targets}
        dependents: dict[str, set[str]] = {}
        for s in stages:
            for d in s.deps:
                if d in producer:
                    dependents.setdefault(producer[d], set()).add(s.name)
        todo, seen = list(names), set(names)
        while todo:
            for n in dependents.get(todo.pop(), ()):
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen


def _mtime(p: Path) -> Optional[int]:
    if not p.exists():
        return None
    if p.is_dir():
        return max([p.stat().st_mtime_ns] + [q.stat().st_mtime_ns for q in p.rglob("*")])
    return p.stat().st_mtime_ns


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(sha256_file(p).encode())
    return h.hexdigest()


def copy_project(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=PROJECT, check=True,
                           capture_output=True, text=True).stdout.split()
    for f in files:
        if (PROJECT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / f, dest / f)


def prepare(workdir: Path, plan_file: str = "params/paper.yaml", models: Optional[list[str]] = None,
            mirror_url: Optional[str] = None) -> tuple[Rehearsal, Path]:
    """The copy with the derived plan and stand-ins; returns it and the folder to serve as the mirror."""
    proj, mirror = workdir / "proj", workdir / "mirror"
    proj.mkdir(parents=True)
    copy_project(proj)
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    raw = yaml.safe_load((proj / plan_file).read_text())
    (proj / REH / "train").mkdir(parents=True, exist_ok=True)
    recipes = {}
    for f in recipe_files(raw):
        new = f"{REH}/train/{Path(f).name}"
        (proj / new).write_text(yaml.safe_dump(shrink_recipe(yaml.safe_load((proj / f).read_text())), sort_keys=False))
        recipes[f] = new
    build_standins(raw, proj, mirror)
    if raw.get("released", {}).get("checkpoints") and models is None:
        build_checkpoints(raw, proj, mirror)
    else:
        shutil.copy(proj / raw.get("released", {}).get("registry", "params/checkpoints.yaml"), proj / REH / "checkpoints.yaml")
    plan = transform_plan(raw, mirror_url or "http://127.0.0.1:0", recipes, models)
    new_plan = f"{REH}/{Path(plan_file).name}"
    (proj / new_plan).write_text(yaml.safe_dump(plan, sort_keys=False))
    return Rehearsal(proj, new_plan), mirror


def set_mirror(r: Rehearsal, url: str) -> None:
    plan = yaml.safe_load((r.proj / r.plan_file).read_text())
    plan["data"]["mirror"] = url
    plan["released"]["weights_mirror"] = url
    (r.proj / r.plan_file).write_text(yaml.safe_dump(plan, sort_keys=False))


# ------------------------------------------------------------------------------------------ checks
def check_preload(r: Rehearsal) -> None:
    """The invocation's jobs ran as forks of its preload server (ramit/launch.py), each ended with exit 0,
    and the server ended with the invocation."""
    root = yaml.safe_load((r.proj / r.plan_file).read_text()).get("root", ".")
    log = r.proj / root / "logs" / "preload.log"
    text = log.read_text() if log.is_file() else ""
    started = re.findall(r"job (\d+) started: ramit ", text)
    ok = re.findall(r"job \d+ ended: exit 0 after", text)
    if not started or len(ok) != len(started) or not text.rstrip().endswith("exiting"):
        raise RehearsalFailed(f"{log}: {len(started)} jobs forked, {len(ok)} ended with exit 0; the log ends:\n"
                              f"{text[-2000:]}")
    r.say(f"preload: {len(started)} jobs forked from the invocation's server, all exit 0")


def check_outputs(r: Rehearsal) -> None:
    """Every target exists; every training history is complete; warm starts started from their x2."""
    missing = [t for s in r.stages() for t in s.targets if not (r.proj / t).exists()]
    if missing:
        raise RehearsalFailed(f"{len(missing)} outputs missing after the run, e.g. {missing[:5]}")
    trained = [s for s in r.stages() if s.family == "train"]
    for s in trained:
        summ = json.loads((r.proj / s.metrics[0]).read_text())
        if summ["history_rows"] != summ["iterations"] or summ["final_loss"] is None:
            raise RehearsalFailed(f"{s.name}: history has {summ['history_rows']} of {summ['iterations']} rows")
        if s.spec["init"] and summ["init"] != s.spec["init"]:
            raise RehearsalFailed(f"{s.name}: warm start from {summ['init']}, expected {s.spec['init']}")
    r.say(f"outputs OK: {sum(len(s.targets) for s in r.stages())} files of {len(r.stages())} stages; "
          f"{len(trained)} trainings with full histories ({sum(1 for s in trained if s.spec['init'])} warm starts)")


def dvc_status_clean(r: Rehearsal, dvcfile: str) -> None:
    out = r.run("dvc", "status", dvcfile).stdout
    if "up to date" not in out:
        raise RehearsalFailed(f"`dvc status {dvcfile}` is not clean after the other tool ran:\n{out[-3000:]}")
    r.say(f"dvc status {dvcfile}: clean")


def check_reran(r: Rehearsal, before: dict, changed: set[str], tool: str, cascade: bool = True) -> None:
    """The stages whose outputs a tool rewrote are `changed` and (with `cascade`) all their dependents."""
    after = r.mtimes()
    reran = {n for n, t in after.items() if t != before.get(n)}
    want = r.downstream(changed) if cascade else set(changed)
    if reran != want:
        raise RehearsalFailed(f"{tool} re-ran {sorted(reran - want)} too much / {sorted(want - reran)} missing "
                              f"after a change to {sorted(changed)}")
    r.say(f"{tool} re-ran exactly the {len(want)} affected stages: {', '.join(sorted(want))}")


def check_retrained(r: Rehearsal, stage: str, old_sha: str) -> None:
    s = next(s for s in r.stages() if s.name == stage)
    summ = json.loads((r.proj / s.metrics[0]).read_text())
    if summ["weights_sha256"] == old_sha:
        raise RehearsalFailed(f"{stage}: the old weights came back after a recipe change")
    if summ["history_rows"] != summ["iterations"] or not summ["stale_runs_moved_aside"]:
        raise RehearsalFailed(f"{stage}: history {summ['history_rows']}/{summ['iterations']}, stale kept: "
                              f"{summ['stale_runs_moved_aside']}")
    r.say(f"{stage}: new weights, {summ['history_rows']} history rows, stale run kept in "
          f"{summ['stale_runs_moved_aside'][-1]['moved_to']}")


def _weights_sha(r: Rehearsal, stage: str) -> str:
    s = next(s for s in r.stages() if s.name == stage)
    return json.loads((r.proj / s.metrics[0]).read_text())["weights_sha256"]


def _edit_plan(r: Rehearsal, fn) -> None:
    path = r.proj / r.plan_file
    plan = yaml.safe_load(path.read_text())
    fn(plan)
    path.write_text(yaml.safe_dump(plan, sort_keys=False))


# -------------------------------------------------------------------------------------------- steps
def snakemake(r: Rehearsal, *extra: str) -> subprocess.CompletedProcess:
    return r.run(str(BIN / "snakemake"), "--cores", str(min(2, os.cpu_count() or 1)), "--keep-going",
                 "--config", f"params={r.plan_file}", *extra)


def pick(r: Rehearsal, family: str, model: str, key: Optional[str] = None) -> Optional[str]:
    for s in r.stages():
        if s.family == family and s.spec.get("model") == model and (key is None or s.spec.get("out", "").endswith(key)):
            return s.name
    return None


def step_full_run(r: Rehearsal, dvcfile: str) -> None:
    r.run(str(BIN / "ramit"), "stages", "--params", r.plan_file, "--write-dvc", "--quiet")
    r.git_commit("rehearsal plan")
    n = len(r.stages())
    r.say(f"snakemake: the whole DAG ({n} stages) ...")
    snakemake(r)
    check_outputs(r)
    check_preload(r)
    dvc_status_clean(r, dvcfile)


def step_dvc_change(r: Rehearsal, dvcfile: str, model: str) -> None:
    train = pick(r, "train", model)
    old, before = _weights_sha(r, train), r.mtimes()
    r.say(f"dvc exp run -S: {model}'s base_lr ...")
    r.run("dvc", "exp", "run", dvcfile, "-S", f"{r.plan_file}:+models.{model}.train.base_lr=0.0031")
    check_reran(r, before, {train}, "dvc exp run")
    check_retrained(r, train, old)
    dry = snakemake(r, "-n")
    out = dry.stdout + dry.stderr
    if "Nothing to be done" not in out:
        raise RehearsalFailed(f"snakemake wants to redo what DVC just ran:\n{out[-3000:]}")
    r.say("snakemake -n after dvc: nothing to be done")


def step_snakemake_change(r: Rehearsal, dvcfile: str, model: str) -> None:
    train = pick(r, "train", model, "x2") or pick(r, "train", model)
    old, before = _weights_sha(r, train), r.mtimes()
    r.say(f"snakemake after a change of {model}'s base_lr in {r.plan_file} ...")
    _edit_plan(r, lambda p: p["models"][model].setdefault("train", {}).update(base_lr=0.0027))
    snakemake(r)
    # the override is the model's, so every key it trains re-runs (with its evaluations and the report)
    trains = {s.name for s in r.stages() if s.name.startswith("train-") and s.spec.get("model") == model}
    check_reran(r, before, trains, "snakemake")
    check_retrained(r, train, old)
    dvc_status_clean(r, dvcfile)


def step_registry_edit(r: Rehearsal, dvcfile: str, manual: dict[str, str]) -> None:
    """A fix to a manual dataset's prose re-runs nothing; a forced re-run of its fetch verifies the folder
    in place and, the verified list being the same, nothing after it (Snakemake's turn is in tests/pipeline)."""
    reg = r.proj / REH / "datasets.yaml"
    name = sorted(manual)[0]
    data = yaml.safe_load(reg.read_text())
    data["datasets"][name]["description"] += " (edited)"
    reg.write_text(yaml.safe_dump(data, sort_keys=False))
    before = r.mtimes()
    r.run("dvc", "repro", dvcfile)
    check_reran(r, before, set(), f"dvc after a description edit of {name}")
    before = r.mtimes()
    r.run("dvc", "repro", "--force", "--single-item", f"{dvcfile}:fetch-{name}")
    r.run("dvc", "repro", dvcfile)
    check_reran(r, before, {f"fetch-{name}"}, f"dvc after a forced re-run of fetch-{name}", cascade=False)
    dvc_status_clean(r, dvcfile)


def check_manual(r: Rehearsal, manual: dict[str, str]) -> None:
    root = r.proj / "data" / "manual"
    lost = [n for n, h in manual.items() if not (root / n).is_dir() or _tree_digest(root / n) != h]
    if lost:
        raise RehearsalFailed(f"manually placed datasets changed or deleted: {lost}")
    r.say(f"manual datasets intact after every run: {', '.join(sorted(manual))}")


def step_code_change(r: Rehearsal, dvcfile: str) -> None:
    metrics = r.proj / "ramit" / "evaluate" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\n# a fix to the metrics module\n")
    evaluations = {s.name for s in r.stages() if s.family == "evaluate"}
    status = r.run("dvc", "status", dvcfile).stdout
    listed = {re.sub(r"^.*dvc\.yaml:", "", ln.strip()[:-1]) for ln in status.splitlines()
              if ln and not ln[0].isspace() and ln.rstrip().endswith(":")}
    stale = evaluations & listed
    plan = snakemake(r, "-n", "--quiet", "rules").stdout
    if stale != evaluations:
        raise RehearsalFailed(f"after a change to metrics.py DVC sees {len(stale)} of {len(evaluations)} evaluations stale")
    if "evaluate" not in plan:
        raise RehearsalFailed(f"after a change to metrics.py snakemake plans no evaluation:\n{plan[-2000:]}")
    r.say(f"a change to metrics.py makes all {len(evaluations)} evaluations stale for DVC and Snakemake")


def rehearse(workdir: Path, plan_file: str = "params/paper.yaml", models: Optional[list[str]] = None,
             full: bool = True, mutate=None) -> Rehearsal:
    """Prepare the copy and run the steps (see the module doc); raises RehearsalFailed on a failed check.

    `mutate(proj)` may change the copy before anything runs (a test breaks a model on purpose)."""
    r, mirror_dir = prepare(workdir, plan_file, models)
    if mutate is not None:
        mutate(r.proj)
    from ramit.pipeline.plan import load_plan

    with Mirror(mirror_dir) as mirror:
        set_mirror(r, mirror.url)
        r.say(f"copy at {r.proj}, plan {r.plan_file}, mirror {mirror.url}")
        cwd = os.getcwd()
        os.chdir(r.proj)
        try:
            plan = load_plan(r.plan_file)
        finally:
            os.chdir(cwd)
        dvcfile = plan.dvc_file
        manual_root = r.proj / plan.data.manual
        manual = {p.name: _tree_digest(p) for p in sorted(manual_root.iterdir())} if manual_root.is_dir() else {}
        step_full_run(r, dvcfile)
        if full:
            trained = [m for m, mp in plan.models.items() if mp.trained]
            step_dvc_change(r, dvcfile, "PReNet" if "PReNet" in trained else trained[-1])
            step_snakemake_change(r, dvcfile, "IMDN" if "IMDN" in trained else trained[0])
            if manual:
                step_registry_edit(r, dvcfile, manual)
            check_manual(r, manual)
            step_code_change(r, dvcfile)
    r.say("rehearsal passed")
    return r


def main(argv: Optional[list[str]] = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="ramit rehearse", description=__doc__.split("\n\n")[0])
    ap.add_argument("--plan", default="params/paper.yaml", help="The plan to rehearse (default: the paper plan).")
    ap.add_argument("--workdir", type=Path, default=None, help="Where to build the copy (default: a temp folder).")
    ap.add_argument("--keep", action="store_true", help="Keep the copy afterwards (always kept when it fails).")
    ap.add_argument("--models", default=None, help="Comma-separated subset of models (a quicker partial rehearsal).")
    ap.add_argument("--first-run-only", action="store_true", help="Only the full run and its checks (no re-runs).")
    a = ap.parse_args(argv)
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="ramit-rehearsal-"))
    models = a.models.split(",") if a.models else None
    t0 = time.perf_counter()
    try:
        rehearse(workdir, a.plan, models, full=not a.first_run_only)
    except RehearsalFailed as e:
        print(f"REHEARSAL FAILED after {time.perf_counter() - t0:.0f} s: {e}\n(the copy is kept at {workdir})",
              file=sys.stderr)
        return 1
    print(f"rehearsal of {a.plan} passed in {time.perf_counter() - t0:.0f} s")
    if not a.keep and a.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
