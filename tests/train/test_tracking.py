"""MLflow helper: a real local sqlite store gets params/metrics/artifacts; a dead server is a warning."""

from __future__ import annotations

import socket
import time

import pytest

from ramit.tracking import PARENT_ENV, mlflow_run


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.fixture
def store(tracked):
    return tracked  # the session's sqlite store, an experiment per test (conftest.py)


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
