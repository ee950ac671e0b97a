"""Baseline models (being written): names accepted by `ramit.models.build_model`."""

BASELINE_NAMES: tuple[str, ...] = ()


def build_baseline(name, task, scale=None, in_chans=None, **overrides):
    raise KeyError(name)
