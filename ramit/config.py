"""Loading YAML params into pydantic schemas with one clear error per bad file.

Each stage family owns the schema of its own params file (datasets registry in `ramit.data.registry`,
training recipes in `ramit.train.recipe`, the run plan in `ramit.pipeline`); they all load through
`load_yaml` so that a bad key or value always reads the same way:

    params/run.yaml: key 'train.models.0.task': Input should be 'sr', 'cdn', ... (got 'sx')
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)
# libyaml's loader when the wheel has it: plans and registries are read by every stage command.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = PROJECT_ROOT / "params"


from ramit.errors import RamitError


class ConfigError(RamitError, ValueError):
    """A params file is missing, unreadable or does not match its schema."""


class Strict(BaseModel):
    """Base for every params schema: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def format_validation_error(path: str | Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        got = e.get("input")
        got_s = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
        lines.append(f"{path}: key '{loc}': {e['msg']}{got_s}")
    return "\n".join(lines)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def validate(data: dict, model: type[M], source: str | Path) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(source, e)) from None


def load_yaml(path: str | Path, model: type[M]) -> M:
    """Read `path` and validate it against `model`; raise ConfigError naming file and key."""
    return validate(read_yaml(path), model, path)
