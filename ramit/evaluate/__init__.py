"""Evaluation: official-protocol metrics, inference helpers, `ramit evaluate`, released checkpoints.

* `metrics`   - `psnr`, `ssim`, `psnr_ssim`, `to_y`, `to_uint8` (BasicSR/RAMiT conventions)
* `inference` - `restore(model, lq, tile=, tile_overlap=, self_ensemble=, precision=, device=)`
* `evaluate`  - `evaluate_cli` (the CLI command), `score_pairs`, `parse_setting`, `log_to_mlflow`
* `released`  - registry of the authors' checkpoints (params/checkpoints.yaml), `fetch_weights`,
  `checkpoint_file(model, model_key)`
* `profile`   - params / MACs / latency (`ramit profile`)

Submodules are imported on use: `ramit --help` must not pay for torch.
"""
