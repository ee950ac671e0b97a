"""A trained ramit model as an MLflow pyfunc model, logged "from code" (no pickled objects).

`ramit.tracking.log_trained_model` logs this file as the model's code, with two artifacts: the
weights (`model.safetensors`, official key names) and `config.json` (the `build_model` arguments).
Loading needs the `ramit` package installed, nothing else:

    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    y = model.predict(x)       # x: float32 [B,C,h,w] in [0,1] -> [B,C,h*s,w*s], unclamped

`model.unwrap_python_model().net` is the plain `nn.Module`.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class RamitPyfunc(PythonModel):
    """Builds the network from `config.json` and loads `weights` strictly, as `ramit evaluate` does."""

    def load_context(self, context):
        from ramit.models import build_model, load_weights

        cfg = json.loads(Path(context.artifacts["config"]).read_text(encoding="utf-8"))
        self.config = cfg
        self.net = build_model(cfg["model"], cfg["task"], scale=cfg.get("scale"), in_chans=cfg.get("in_chans"),
                               **(cfg.get("overrides") or {})).eval()
        load_weights(self.net, context.artifacts["weights"])

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        import torch

        x = np.asarray(model_input, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4:
            raise ValueError(f"expected float32 [B,C,h,w] (or [C,h,w]) in [0,1], got shape {x.shape}")
        with torch.no_grad():
            return self.net(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()


mlflow.models.set_model(RamitPyfunc())
