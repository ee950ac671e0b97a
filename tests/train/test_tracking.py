"""MLflow helper: a real local sqlite store gets params/metrics/artifacts; a dead server is a warning."""

from __future__ import annotations

import socket
import time

import pytest

from ramit.tracking import PARENT_ENV, log_trained_model, mlflow_run, training_tags
from train_helpers import TINY_MODEL


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.fixture
def store(tracked):
    return tracked  # the session's sqlite store, an experiment per test (conftest.py)


@pytest.fixture
def fluent(store, monkeypatch):
    """The store for mlflow's fluent API too (`runs:/` URIs, search_runs), whatever an earlier test set."""
    from mlflow.tracking._tracking_service import utils

    monkeypatch.setattr(utils, "_tracking_uri", store)  # restored after the test, unlike set_tracking_uri
    return store


def test_run_with_params_buffered_metrics_artifacts_and_nesting(store, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    art = tmp_path / "history.csv"
    art.write_text("iter,loss\n1,0.5\n")
    with mlflow_run("umbrella", nested=False) as parent:
        assert parent.active
    monkeypatch.setenv(PARENT_ENV, parent.run_id)
    with mlflow_run("train X x2", params={"recipe": {"base_lr": 4e-4, "milestones": [1, 2]}, "model": "X"},
                    tags={"ramit.params_hash": "abc"}, flush_every=7) as t:
        for step in range(1, 51):
            t.log_metrics({"loss": 1.0 / step, "lr": 1e-3}, step=step)
        t.log_artifact(art)
        (tmp_path / "figs").mkdir()
        (tmp_path / "figs" / "a.png").write_bytes(b"png")
        t.log_artifacts(tmp_path / "figs", "report/figures")
        run_id = t.run_id
    c = MlflowClient(store)
    run = c.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["recipe.base_lr"] == "0.0004" and run.data.params["recipe.milestones"] == "[1, 2]"
    assert run.data.tags["ramit.params_hash"] == "abc"
    assert run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert len(run.data.tags["mlflow.source.git.commit"]) == 40
    hist = c.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in hist) == list(range(1, 51))  # the buffer's tail was flushed on exit
    assert sorted(a.path for a in c.list_artifacts(run_id)) == ["history.csv", "report"]
    assert [a.path for a in c.list_artifacts(run_id, "report/figures")] == ["report/figures/a.png"]


def test_failed_block_marks_the_run_failed(store):
    from mlflow.tracking import MlflowClient

    with pytest.raises(RuntimeError):
        with mlflow_run("boom", nested=False) as t:
            raise RuntimeError("x")
    assert MlflowClient(store).get_run(t.run_id).info.status == "FAILED"


def test_unreachable_server_degrades_to_noop(monkeypatch, capsys):
    import ramit.tracking as tracking

    monkeypatch.setattr(tracking, "_warned", False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    t0 = time.perf_counter()
    with mlflow_run("offline", params={"a": 1}) as t:
        assert not t.active
        t.log_metrics({"loss": 1.0}, step=1)
        t.log_artifact(__file__)
        t.flush()
        done = True
    assert done and time.perf_counter() - t0 < 20
    err = capsys.readouterr().err
    assert err.count("warning: MLflow") == 1 and "continuing without tracking" in err


def _trained_run(tmp_path, train_data, seed=0):
    """A real (tiny) RAMiT x2 with its weights where `ramit train` leaves them."""
    import torch

    from ramit.models import build_model, save_weights

    torch.manual_seed(seed)
    net = build_model("RAMiT", "sr", scale=2, in_chans=3, **TINY_MODEL).eval()
    run_dir = tmp_path / f"runs-{seed}/RAMiT/x2"
    save_weights(net, run_dir / "model.safetensors")
    tags = training_tags(model="RAMiT", model_key="x2", task="sr", scale=2, recipe="paper_sr_x2", plan="paper",
                         train_data=[f"data/degraded/train/x2/{d}" for d in train_data])
    with mlflow_run("train RAMiT x2", tags=tags, nested=False) as t:
        uri = log_trained_model(t, run_dir, model="RAMiT", task="sr", scale=2, in_chans=3, overrides=TINY_MODEL)
    return net, t.run_id, uri


def test_trained_model_loads_back_from_the_run_and_gives_the_same_output(fluent, tmp_path):
    import mlflow.pyfunc
    import numpy as np
    import torch
    from mlflow.tracking import MlflowClient

    net, run_id, uri = _trained_run(tmp_path, ["DIV2K"])
    assert uri == f"runs:/{run_id}/model"
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    x = np.random.default_rng(1).random((1, 3, 20, 28), dtype=np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    got = loaded.predict(x)
    assert got.shape == (1, 3, 40, 56)
    np.testing.assert_array_equal(got, want)
    assert loaded.unwrap_python_model().config["overrides"] == TINY_MODEL
    # no pickled code: the model is this source file plus the weights and the config
    files = {a.path for a in MlflowClient(fluent).list_artifacts(run_id, "model")}
    assert {"model/MLmodel", "model/mlflow_model.py", "model/artifacts"} <= files
    assert not any(f.endswith((".pkl", ".pickle")) for f in files)
    with pytest.raises(Exception, match="(?i)schema|shape"):
        loaded.predict(x[:, :1])  # the signature says 3 channels


def test_search_filter_finds_the_run_by_model_key_and_training_data(fluent, tmp_path, request):
    import mlflow

    from ramit.tracking import search_filter

    _, div2k, _ = _trained_run(tmp_path, ["DIV2K"], seed=0)
    _, dfbw, _ = _trained_run(tmp_path, ["DIV2K", "Flickr2K", "BSD400", "WED"], seed=1)
    exp = [request.node.name]
    literal = ("tags.`ramit.model` = 'RAMiT' and tags.`ramit.model_key` = 'x2' "
               "and tags.`ramit.train_data` = 'DIV2K'")
    assert search_filter(model="RAMiT", model_key="x2", train_data="DIV2K") == literal
    assert list(mlflow.search_runs(experiment_names=exp, filter_string=literal)["run_id"]) == [div2k]
    like = "tags.`ramit.model` = 'RAMiT' and tags.`ramit.train_data` LIKE '%Flickr2K%'"
    assert list(mlflow.search_runs(experiment_names=exp, filter_string=like)["run_id"]) == [dfbw]
    runs = mlflow.search_runs(experiment_names=exp, filter_string=search_filter(plan="paper", recipe="paper_sr_x2"))
    assert set(runs["run_id"]) == {div2k, dfbw}
    assert set(runs["tags.ramit.model_uri"]) == {f"runs:/{div2k}/model", f"runs:/{dfbw}/model"}


def test_log_trained_model_is_a_noop_without_tracking(tmp_path):
    from ramit.tracking import Tracker

    assert log_trained_model(Tracker(None), tmp_path, model="RAMiT", task="sr", scale=2, in_chans=3) is None


def test_spooled_runs_reach_the_store_when_the_invocation_flushes_them(store, tmp_path, monkeypatch, fluent):
    """What a Snakemake invocation with a local store does: jobs write records, its end logs them."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from ramit.models import build_model, save_weights
    from ramit.tracking import SPOOL_ENV, SpoolTracker, flush_spool

    with mlflow_run("umbrella", nested=False) as parent:
        spool = tmp_path / "spool"
        monkeypatch.setenv(SPOOL_ENV, str(spool))
        monkeypatch.setenv(PARENT_ENV, parent.run_id)
        run_dir = tmp_path / "run"
        save_weights(build_model("RAMiT", "sr", scale=2, **TINY_MODEL), run_dir / "model.safetensors")
        (run_dir / "history.csv").write_text("iter,loss\n1,0.5\n2,0.4\n")
        with mlflow_run("train RAMiT x2", params={"recipe": {"base_lr": 1e-3}}, tags={"ramit.model": "RAMiT"}) as t:
            assert isinstance(t, SpoolTracker) and t.active and t.run_id is None
            t.log_metrics({"loss": 0.5}, step=1)
            t.log_metrics({"loss": 0.4}, step=2)
            t.log_artifact(run_dir / "history.csv")
            log_trained_model(t, run_dir, model="RAMiT", task="sr", scale=2, in_chans=3, overrides=TINY_MODEL)
        assert len(list(spool.glob("*.json"))) == 1 and not MlflowClient(store).search_runs(
            [parent.client.get_run(parent.run_id).info.experiment_id], "tags.`ramit.model` = 'RAMiT'")
        monkeypatch.delenv(SPOOL_ENV)
        assert flush_spool(spool) == 1 and not list(spool.glob("*.json"))

    c = MlflowClient(store)
    exp = c.get_run(parent.run_id).info.experiment_id
    [run] = c.search_runs([exp], "tags.`ramit.model` = 'RAMiT'")
    assert run.data.tags["mlflow.parentRunId"] == parent.run_id and run.info.status == "FINISHED"
    assert run.data.params["recipe.base_lr"] == "0.001"
    assert [(m.step, m.value) for m in c.get_metric_history(run.info.run_id, "loss")] == [(1, 0.5), (2, 0.4)]
    assert {a.path for a in c.list_artifacts(run.info.run_id)} >= {"history.csv", "model"}
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    import numpy as np

    assert model.predict(np.zeros((1, 3, 16, 16), np.float32)).shape == (1, 3, 32, 32)
