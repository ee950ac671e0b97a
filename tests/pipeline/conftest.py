"""Fixtures for the pipeline tests (helpers live in pipeline_helpers.py)."""

from pipeline_helpers import make_project  # noqa: F401  (a fixture)
