#!/usr/bin/env bash
# The GPU check of the training engine: one prepared command for a bare CUDA machine (not part of CI).
#
# Needs: one CUDA GPU (an H100 or H200 in mind) and a `python3` that holds a CUDA build of PyTorch (with
#   Triton, for the torch.compile part), numpy, pillow, pandas, tqdm, einops, scipy, scikit-image and
#   matplotlib. Does NOT need pytorch-msssim, papermill, nbconvert, jupyter or import-linter (a test keeps
#   the check's imports free of them), nor the internet, nor .venv (a CPU torch), nor ../shared, nor an
#   install of this package: the repository goes on PYTHONPATH (the alternative is
#   `python3 -m pip install --no-deps --no-build-isolation -e .`). The demo data (data/demo, not in git) is
#   generated from the sample photos of scikit-image and matplotlib in a few seconds, as the first part.
#
# What it runs (benchmarks/gpu_check.py; its docstring has the details), in this order: the demo data; the
#   full model's train step at 128 px, batch 8 and 16, eager and activation-checkpointed (ms/step, images/s,
#   peak memory); mixed precision (bfloat16 on compute capability >= 8.0, else float16: the dtype and why
#   are recorded) against a true float32 forward (TF32 off); FLOPs and utilisation; fit's loop against the
#   bare step, and the loader; the strong recipe under a 4-minute budget on the demo data; last
#   torch.compile, run only when 120 s are left before the deadline.
# Time: the deadline (480 s) counts from this script's start: a part starts only when the time it needs is
#   left, and the budget run is shortened to fit. After every part, $GPU_OUT/gpu_check.json, gpu_check.md
#   and parts/<part>.json are written (the budget run's config, plan, metrics, history and log go to
#   $GPU_OUT/budget-run/), so a command stopped at its limit still returns what it measured. At HARD_LIMIT
#   (570 s) the check is stopped (SIGTERM: the running part is recorded as stopped), before a 600 s command
#   limit would kill it without a word.
#
# Settings (environment): BUDGET (4m), DEADLINE (480 seconds), HARD_LIMIT (570 seconds), GPU_OUT
#   (report/gpu), PY (python3); DRY_RUN=1 runs every part on the CPU with the tiny model (under a minute,
#   no GPU; writes to /tmp/gpu-check-dry-run unless GPU_OUT is set), e.g. on a development machine:
#     OMP_NUM_THREADS=1 PY=.venv/bin/python DRY_RUN=1 bash scripts/gpu_check.sh
#
# On a lent GPU through the device tool: one command of about 7-8 minutes (4 of them the budget run); the
# tool's $OUT folder is what comes back, so the figures go there:
#   run(command="GPU_OUT=$OUT/gpu bash scripts/gpu_check.sh", timeout_s=600)
#   -> $OUT/gpu/gpu_check.{json,md}, $OUT/gpu/parts/*.json, $OUT/gpu/budget-run/*: copy them to report/gpu/.
set -euo pipefail
STARTED=$(date +%s)  # the deadline counts from here
cd "$(dirname "$0")/.."
PY=${PY:-python3}
BUDGET=${BUDGET:-4m}
DEADLINE=${DEADLINE:-480}
HARD_LIMIT=${HARD_LIMIT:-570}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ "${DRY_RUN:-0}" = 1 ]; then
  GPU_OUT=${GPU_OUT:-${TMPDIR:-/tmp}/gpu-check-dry-run}
  ARGS=(--device cpu --preset tiny --patch 32 --batches 2 --steps 1 --budget "${DRY_BUDGET:-30s}"
        --min-budget 20 --val-images 4 --engine-repeats 1 --loader-workers 0 2 --loader-batches 20
        --skip-compile --run-dir runs/gpu-check-dry-run)
else
  GPU_OUT=${GPU_OUT:-report/gpu}
  ARGS=(--device cuda --budget "$BUDGET")
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
fi

# One clear line, and exit status 1, when this python has no torch (without importing it: the check does;
# a torch that sees no CUDA GPU is refused there, in one line too).
"$PY" -c 'import importlib.util as u, sys; u.find_spec("torch") or sys.exit(
    f"gpu_check: {sys.executable} has no PyTorch; set PY to a python that holds a CUDA build of it")'

LEFT=$((HARD_LIMIT - SECONDS))  # SECONDS: since this script started
[ "$LEFT" -gt 0 ] || { echo "gpu_check: no time left before HARD_LIMIT=$HARD_LIMIT s" >&2; exit 1; }
ARGS+=(--out "$GPU_OUT" --deadline "$DEADLINE" --started "$STARTED")
if command -v timeout >/dev/null; then
  exec timeout -k 15 "$LEFT" "$PY" -m benchmarks.gpu_check "${ARGS[@]}"
fi
exec "$PY" -m benchmarks.gpu_check "${ARGS[@]}"  # no coreutils timeout (macOS): the deadline alone
