#!/usr/bin/env bash
# GPU check for the training engine (not part of CI; needs one CUDA GPU):
#   1. generates the demo data if missing,
#   2. times one train step of the full preset (128x128 crops, batch 8, AMP), eager and torch.compile,
#   3. trains the full preset on the demo data for a few minutes with AMP + EMA,
# and prints images/s, peak GPU memory and the validation PSNR against the identity baseline.
#
#   bash scripts/gpu_check.sh            # about 5 minutes on an H100
#   EPOCHS=1 bash scripts/gpu_check.sh   # shorter
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
EPOCHS=${EPOCHS:-3}
RUN=${RUN:-runs/gpu-check}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible to torch'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
[ -d data/demo/train ] || "$PY" -m hw4lib demo-data --out data/demo

echo "== train step, full preset, 8 x 128x128, eager"
"$PY" -m benchmarks.bench_train --preset full --patch 128 --batch 8 --steps 30 --device cuda --data data/demo --workers 0 4
echo "== train step, full preset, 8 x 128x128, torch.compile"
"$PY" -m benchmarks.bench_train --preset full --patch 128 --batch 8 --steps 30 --device cuda --compile || echo "compile failed (see above)"

echo "== training the full preset on data/demo for $EPOCHS epochs (AMP, EMA)"
RUN="$RUN" EPOCHS="$EPOCHS" "$PY" - <<'PYEOF'
import os
import torch
from hw4lib import runs, train

config = train.make_config(
    "official", data_dir="data/demo", run_dir=os.environ["RUN"], epochs=int(os.environ["EPOCHS"]),
    schedule_epochs=None, warmup_epochs=0.2, patches_per_image=8, lr=4e-4, min_lr=1e-6, ema=0.999,
    grad_clip=1.0, device="cuda", amp=True, progress=False,
)
torch.cuda.reset_peak_memory_stats()
result = train.fit(config, overwrite=True)
m = result.metrics
print(
    f"GPU CHECK: {m['device']} {m['precision']}: {m['images_per_s']:.1f} img/s (median epoch), "
    f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, "
    f"val PSNR {m['best_val_psnr']:.2f} dB vs identity {m['input_psnr']:.2f} dB "
    f"(gain {m['gain_db']:+.2f} dB; rain {m['best_val_psnr_rain']:.2f}, snow {m['best_val_psnr_snow']:.2f}), "
    f"{m['wall_seconds']:.0f} s"
)
model = runs.load_model(result.path)  # the checkpoint reloads
PYEOF
