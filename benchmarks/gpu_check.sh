#!/usr/bin/env bash
# The device check of benchmarks/gpu_check.py on a bare GPU machine (no venv, no network), from the
# repository root:
#   bash benchmarks/gpu_check.sh --set5 gpu_assets/Set5/HR --weights gpu_assets/RAMiT-1_X2.pth
# Python packages the machine lacks (pydantic and its three helpers, for the recipe schema) are taken
# from .whl/ when that folder exists; mlflow is optional (training warns once and carries on).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
# 8 minutes at most: each part writes its results as it finishes, so a cut run still reports
exec timeout 480 "$PY" benchmarks/gpu_check.py --out "${OUT:-results/gpu_check}" "$@"
