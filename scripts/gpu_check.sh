#!/usr/bin/env bash
# The GPU check of the training engine (not part of CI; needs one CUDA GPU). One prepared script:
#   generates the demo data if missing, then runs benchmarks/gpu_check.py: full preset at 128 px, batch 8 and
#   16, eager / torch.compile / activation checkpointing (images/s, peak memory), bf16 vs fp32 outputs, and
#   the strong recipe under a 6-minute time budget on the demo data. Writes report/gpu/gpu_check.{json,md}.
#
#   bash scripts/gpu_check.sh              # about 10 minutes on one recent GPU
#   BUDGET=4m DEADLINE=480 bash scripts/gpu_check.sh   # to fit a short lease: compile runs last, if time is left
#   GPU_OUT=/some/dir bash scripts/gpu_check.sh         # write the figures elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
BUDGET=${BUDGET:-6m}
GPU_OUT=${GPU_OUT:-report/gpu}
DEADLINE=${DEADLINE:+--deadline $DEADLINE}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible to torch'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
[ -d data/demo/train ] || "$PY" -m hw4lib demo-data --out data/demo
# shellcheck disable=SC2086  # DEADLINE is empty or two words
"$PY" -m benchmarks.gpu_check --device cuda --budget "$BUDGET" --out "$GPU_OUT" $DEADLINE
