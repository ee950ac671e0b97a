"""MLflow tracking that never stops the work it tracks.

    with mlflow_run("train RAMiT-1 x2", params={...}, tags={...}) as t:
        t.log_metrics({"loss": 0.03, "lr": 4e-4}, step=100)   # buffered
        t.log_artifact("runs/RAMiT-1/x2/history.csv")

* Store: `$MLFLOW_TRACKING_URI` if set, else `sqlite:///<cwd>/mlflow.db` (the project root: stages run there), artifacts in
  `mlartifacts/` beside it.
* Experiment: `$MLFLOW_EXPERIMENT_NAME`, else `ramit`.
* Nesting: if `$RAMIT_MLFLOW_PARENT_RUN_ID` is set (the pipeline's umbrella run of one invocation),
  the run is created as its child (`nested=None`, the default; `nested=False` opts out).
* Metrics are buffered and sent with one `log_batch` every `flush_every` calls and on exit:
  a synchronous call per step costs ~20x more than the batched form.
* Any MLflow failure (store unreachable, locked, misconfigured) prints one warning and turns the
  tracker into a no-op; the training or evaluation carries on. For a remote server, set
  `MLFLOW_HTTP_REQUEST_MAX_RETRIES` / `MLFLOW_HTTP_REQUEST_TIMEOUT` low to fail fast when it is down.
* Spooled runs: when `$RAMIT_TRACKING_SPOOL` names a folder (the Snakefile sets it for a local store),
  a run is written there as one JSON record instead, and `flush_spool` logs every record to MLflow at
  the end of the invocation, in one process. Importing MLflow and opening the sqlite store cost each
  job seconds, and parallel jobs writing one sqlite file lock each other; a tracking server
  (`MLFLOW_TRACKING_URI=http://...`) gets live, direct runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Mapping


DEFAULT_EXPERIMENT = "ramit"
PARENT_ENV = "RAMIT_MLFLOW_PARENT_RUN_ID"
SPOOL_ENV = "RAMIT_TRACKING_SPOOL"
_PARAM_MAX = 6000  # MLflow's limit on one param value
_warned = False


def tracking_uri() -> str:
    # Stages run from the project root (Snakemake and DVC both do), so this is <project>/mlflow.db.
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def params_hash(*objs) -> str:
    """sha256 of a canonical JSON of `objs` (e.g. the resolved recipe and the model config)."""
    blob = json.dumps(objs, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def git_commit(root: Path | None = None) -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root or Path.cwd(), capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def flatten(d: Mapping, prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}; lists stay one value (MLflow params are strings)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = (v if isinstance(v, str) else json.dumps(v, default=str))[:_PARAM_MAX]
    return out


def _warn(what: str, err: BaseException) -> None:
    global _warned
    if not _warned:
        _warned = True
        print(f"warning: MLflow {what} failed ({type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}); "
              f"continuing without tracking (store: {tracking_uri()})", file=sys.stderr)


class Tracker:
    """What `mlflow_run` yields. Every method is safe to call when tracking is off (it does nothing)."""

    def __init__(self, client=None, run_id: str | None = None, flush_every: int = 100):
        self.client, self.run_id, self.flush_every = client, run_id, max(1, flush_every)
        self._metrics: list = []
        self._calls = 0

    @property
    def active(self) -> bool:
        return self.client is not None

    def _call(self, what: str, fn, *args, **kwargs):
        if self.client is None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any store failure must not reach the caller
            _warn(what, e)
            self.client = None
            self._metrics.clear()
            return None

    def log_params(self, params: Mapping) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):  # log_batch takes at most 100 params
            if self.client is not None:
                self._call("log_params", self.client.log_batch, self.run_id, params=items[i:i + 100])

    def set_tags(self, tags: Mapping) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items() if v is not None]
        if items and self.client is not None:
            self._call("set_tags", self.client.log_batch, self.run_id, tags=items)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.client is None:
            return
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self._metrics.extend(Metric(k, float(v), ts, int(step or 0)) for k, v in metrics.items())
        self._calls += 1
        if self._calls % self.flush_every == 0:
            self.flush()

    def flush(self) -> None:
        while self._metrics and self.client is not None:
            chunk, self._metrics = self._metrics[:1000], self._metrics[1000:]  # log_batch limit
            self._call("log_metrics", self.client.log_batch, self.run_id, metrics=chunk)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if self.client is not None and Path(path).exists():
            self._call("log_artifact", self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        if self.client is not None and Path(local_dir).is_dir():
            self._call("log_artifacts", self.client.log_artifacts, self.run_id, str(local_dir), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        self.flush()
        if self.client is not None:
            self._call("end run", self.client.set_terminated, self.run_id, status)

    def log_dict(self, obj, artifact_file: str) -> None:
        if self.client is not None:
            self._call("log_dict", self.client.log_dict, self.run_id, obj, artifact_file)


def local_store(uri: str | None = None) -> bool:
    uri = uri or tracking_uri()
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


class SpoolTracker(Tracker):
    """A run recorded as one JSON file in the spool folder; `flush_spool` sends it to MLflow later."""

    def __init__(self, folder: Path, run_name: str, parent: str | None):
        super().__init__(client=None)
        self.path = folder / f"{time.time_ns()}-{os.getpid()}.json"
        self.rec = {"name": run_name, "parent": parent, "start_ms": int(time.time() * 1000), "tags": {},
                    "params": {}, "metrics": [], "artifacts": [], "models": [], "status": None}

    @property
    def active(self) -> bool:
        return True

    def log_params(self, params: Mapping) -> None:
        self.rec["params"].update(flatten(params))

    def set_tags(self, tags: Mapping) -> None:
        self.rec["tags"].update({k: str(v) for k, v in tags.items() if v is not None})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        ts = int(time.time() * 1000)
        self.rec["metrics"] += [[k, float(v), ts, int(step or 0)] for k, v in metrics.items()]

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if Path(path).exists():
            self.rec["artifacts"].append([str(Path(path).resolve()), artifact_path])

    log_artifacts = log_artifact

    def log_model(self, run_dir, **config) -> None:
        self.rec["models"].append({"run_dir": str(Path(run_dir).resolve()), **config})

    def flush(self) -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        from ramit.io import write_json

        self.rec.update(status=status, end_ms=int(time.time() * 1000))
        write_json(self.path, self.rec)


def flush_spool(folder: str | os.PathLike) -> int:
    """Log every spooled run in `folder` to MLflow (as children of their recorded parent); returns how
    many were logged. Records stay where they are if the store cannot be reached."""
    import logging

    # this runs on the orchestrator's console, where MLflow's artifact bars and INFO lines would land
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    folder = Path(folder)
    done = 0
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        rec = json.loads(f.read_text())
        t = start_run(rec["name"], nested=rec["parent"] or False, start_ms=rec["start_ms"])
        if not t.active:
            return done
        t.set_tags(rec["tags"])
        t.log_params(rec["params"])
        from mlflow.entities import Metric

        t._metrics = [Metric(k, v, ts, step) for k, v, ts, step in rec["metrics"]]
        for path, artifact_path in rec["artifacts"]:
            (t.log_artifacts if Path(path).is_dir() else t.log_artifact)(path, artifact_path)
        for m in rec["models"]:
            log_trained_model(t, **m)
        t.flush()
        if t.client is not None:
            t._call("end run", t.client.set_terminated, t.run_id, rec["status"] or "FINISHED", rec.get("end_ms"))
        f.unlink()
        done += 1
    return done


def start_run(run_name: str, nested: bool | str | None = None, flush_every: int = 100,
              start_ms: int | None = None) -> Tracker:
    """A run that the caller ends with `Tracker.end` (use `mlflow_run` for a block)."""
    spool = os.environ.get(SPOOL_ENV)
    parent_env = os.environ.get(PARENT_ENV) if nested in (None, True) else None
    if spool and not isinstance(nested, str) and nested is not False:
        Path(spool).mkdir(parents=True, exist_ok=True)
        return SpoolTracker(Path(spool), run_name, parent_env)
    try:
        from mlflow.tracking import MlflowClient

        uri = tracking_uri()
        client = MlflowClient(tracking_uri=uri)
        parent = nested if isinstance(nested, str) else (os.environ.get(PARENT_ENV) if nested in (None, True) else None)
        if parent:
            experiment_id = client.get_run(parent).info.experiment_id
        else:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
            exp = client.get_experiment_by_name(name)
            if exp is not None:
                experiment_id = exp.experiment_id
            else:
                location = None
                if uri.startswith("sqlite:///"):  # keep artifacts beside the db, not in the cwd
                    location = (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
                try:
                    experiment_id = client.create_experiment(name, artifact_location=location)
                except Exception:  # another process created it between our two calls
                    experiment_id = client.get_experiment_by_name(name).experiment_id
        tags = {"mlflow.parentRunId": parent} if parent else {}
        run = client.create_run(experiment_id, run_name=run_name, tags=tags, start_time=start_ms)
        return Tracker(client, run.info.run_id, flush_every)
    except Exception as e:  # noqa: BLE001
        _warn("start", e)
        return Tracker(None)


@contextlib.contextmanager
def mlflow_run(run_name: str, params: Mapping | None = None, tags: Mapping | None = None,
               nested: bool | str | None = None, flush_every: int = 100) -> Iterator[Tracker]:
    """An MLflow run for the duration of the block; see the module docstring.

    `nested`: None/True - child of `$RAMIT_MLFLOW_PARENT_RUN_ID` when set; a run id - child of it;
    False - a top-level run.
    """
    tracker = start_run(run_name, nested, flush_every)
    tracker.set_tags({"mlflow.source.git.commit": git_commit(), **(tags or {})})
    if params:
        tracker.log_params(params)
    status = "FINISHED"
    try:
        yield tracker
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        tracker.end(status)



# ------------------------------------------------------------------------------ trained models, search
MODEL_ARTIFACT = "model"


def training_tags(*, model: str, model_key: str, task: str, scale: int | None, train_data,
                  recipe: str | None, plan: str | None = None) -> dict[str, str]:
    """The tags that make a training run findable with one `mlflow.search_runs` filter.

    `train_data`: the training set directories (or names); their folder names are joined with `,` in
    the order given, e.g. `DIV2K` or `DIV2K,Flickr2K,BSD400,WED`. Dotted tag names need backticks:

        tags.`ramit.model` = 'RAMiT' and tags.`ramit.model_key` = 'x2' and tags.`ramit.train_data` = 'DIV2K'
    """
    names = ",".join(Path(str(d)).name for d in train_data)
    tags = {"ramit.stage": "train", "ramit.model": model, "ramit.model_key": model_key, "ramit.task": task,
            "ramit.scale": None if scale is None else str(scale), "ramit.train_data": names,
            "ramit.recipe": recipe, "ramit.plan": plan}
    return {k: v for k, v in tags.items() if v is not None}


def search_filter(**tags: str) -> str:
    """`search_filter(model='RAMiT', model_key='x2')` -> "tags.`ramit.model` = 'RAMiT' and ..."."""
    def quote(v: str) -> str:
        return "'" + str(v).replace("'", "\\'") + "'"

    return " and ".join(f"tags.`ramit.{k}` = {quote(v)}" for k, v in tags.items())


def _model_signature(in_chans: int):
    import numpy as np
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    spec = TensorSpec(np.dtype(np.float32), (-1, in_chans, -1, -1))
    return ModelSignature(inputs=Schema([spec]), outputs=Schema([spec]))


def _save_pyfunc(dest: Path, weights: Path, config: dict) -> None:
    import importlib.metadata
    import tempfile

    import mlflow.pyfunc
    import numpy as np

    import ramit.mlflow_model as code

    try:
        version = importlib.metadata.version("ramit-bench")
    except importlib.metadata.PackageNotFoundError:
        version = None
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.json"
        cfg.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
        example = np.random.default_rng(0).random((1, config["in_chans"], 16, 16), dtype=np.float32)
        mlflow.pyfunc.save_model(
            path=dest, python_model=code.__file__,  # "models from code": the file, not a pickled object
            artifacts={"weights": str(weights), "config": str(cfg)},
            signature=_model_signature(config["in_chans"]), input_example=example,
            pip_requirements=[f"ramit-bench=={version}" if version else "ramit-bench", "torch", "safetensors", "numpy"],
            metadata={"ramit": config})


def log_trained_model(tracker: Tracker, run_dir: str | os.PathLike, *, model: str, task: str, scale: int | None,
                      in_chans: int, overrides: Mapping | None = None,
                      artifact_path: str = MODEL_ARTIFACT) -> str | None:
    """Log `<run_dir>/model.safetensors` as an MLflow pyfunc model with its `build_model` config.

    Loads back with `mlflow.pyfunc.load_model(f"runs:/{run_id}/model")` (needs `ramit` installed) and
    `predict(x)` on float32 [B,C,h,w] gives the network's output. Returns that URI, or None when
    tracking is off or logging failed (one warning; the training result is not affected).
    """
    if not tracker.active:
        return None
    if isinstance(tracker, SpoolTracker):
        tracker.log_model(run_dir, model=model, task=task, scale=scale, in_chans=in_chans, overrides=dict(overrides or {}),
                          artifact_path=artifact_path)
        return None
    import tempfile

    weights = Path(run_dir) / "model.safetensors"
    config = {"model": model, "task": task, "scale": scale, "in_chans": int(in_chans),
              "overrides": dict(overrides or {}), "weights_file": weights.name}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _save_pyfunc(Path(tmp) / "model", weights, config)
            tracker._call("log_model", tracker.client.log_artifacts, tracker.run_id, str(Path(tmp) / "model"),
                          artifact_path)
    except Exception as e:  # noqa: BLE001 - a model that cannot be logged must not fail the training
        _warn("log_model", e)
        return None
    if not tracker.active:
        return None
    uri = f"runs:/{tracker.run_id}/{artifact_path}"
    tracker.set_tags({"ramit.model_uri": uri})
    return uri


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), else what `platform` knows."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def host_info(device) -> dict:
    """Where an evaluation ran, for the result JSON's `host` block (the report prints it)."""
    import platform

    import torch

    dev = torch.device(device)
    name = None
    if dev.type == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(dev)
    elif dev.type == "cpu":
        name = cpu_model()
    return {"device": dev.type, "device_name": name, "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "git_commit": git_commit()}
