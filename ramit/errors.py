"""The project's expected-failure exceptions: the CLI prints these as one line, without a traceback."""

from __future__ import annotations


class RamitError(Exception):
    """Base class: bad input a user can fix (the message says which file/key and what was expected)."""


class DataError(RamitError):
    """A dataset is missing, corrupt, has a wrong checksum, or cannot be reached."""


class CheckpointError(RamitError):
    """A checkpoint file does not fit the model it is loaded into, or is not a checkpoint."""


class TrainingError(RamitError):
    """Training cannot go on (e.g. the loss became NaN/Inf); the last good checkpoint is kept."""
