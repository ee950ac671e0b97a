"""Shared fixtures. Tests that need ../shared skip with a reason when it is absent, except under CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RAMIT_SHARED", ROOT.parent / "shared")).resolve()


def _need(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the shared material is missing: {path}")
        pytest.skip(f"needs {path} (the shared benchmark material beside the checkout); set RAMIT_SHARED")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def golden_dir(shared_dir) -> Path:
    return _need(shared_dir / "golden")


@pytest.fixture(scope="session")
def datasets_mirror(shared_dir) -> Path:
    return _need(shared_dir / "datasets")


@pytest.fixture(scope="session")
def checkpoints_mirror(shared_dir) -> Path:
    return _need(shared_dir / "checkpoints")


@pytest.fixture(scope="session", autouse=True)
def _quiet_threads():
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
