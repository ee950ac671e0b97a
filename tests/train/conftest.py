"""Fixtures for the training tests (helpers live in train_helpers.py)."""

from __future__ import annotations

import pytest

from train_helpers import make_sr_data


@pytest.fixture(scope="session")
def sr_data(tmp_path_factory) -> dict:
    """x2 training pairs (two photos at 1/4 size) and a held-out 64x64 validation pair."""
    return make_sr_data(tmp_path_factory)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> str:
    """One sqlite store for the session: creating its tables takes seconds, so it is done once."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    return uri


@pytest.fixture
def tracked(mlflow_store, monkeypatch, request) -> str:
    """In-process runs log to the session store, in an experiment of their own."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", request.node.name)
    monkeypatch.delenv("RAMIT_MLFLOW_PARENT_RUN_ID", raising=False)
    return mlflow_store
