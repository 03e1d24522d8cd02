"""PSNR per CPU budget on real data: train a preset on Rain100L for a fixed wall-clock budget and score it.

Rain100L (100 real photographs with rendered rain, ``../shared/data/README.md``) is imported into the course
layout with a fixed 80/20 split (``import-pairs --test-fraction 0.2 --seed 0``); the preset is trained with
``hw4lib.train.fit`` on the 80 training pairs (one of them is kept aside by ``fit`` to watch its own
validation) for ``--budget-s`` seconds, and the last weights are scored on the 20 held-out pairs at full size:
PSNR/SSIM with and without the 8x flip/rotate TTA, against the identity baseline (the rainy input itself).

    python -m benchmarks.rain100l_budget --preset tiny            # 600 s; then --preset small

Writes ``runs/bench-rain100l-<preset>.json`` (the report's "real data" table reads preset, budget_s, val_psnr,
val_psnr_tta, val_ssim, input_psnr, steps_per_s, peak_mem_mb). The figures depend on what else runs on the
same cores: the JSON records the load average, the steps done and the wall time actually used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks._budget import (
    machine,
    peak_mem_mb,
    score_real,
    set_threads,
    table,
    train_for_budget,
)
from hw4lib.config import make_config
from hw4lib.data import DataError, Pair
from hw4lib.importers import import_pairs
from hw4lib.paths import resolve, write_json_atomic
from hw4lib.runs import LAST, load_model

DEFAULT_RAIN100L = "../shared/data/rain100l"
TEST_FRACTION, SPLIT_SEED = 0.2, 0  # the fixed 80/20 split


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny", choices=("tiny", "small", "full"), help="model preset")
    p.add_argument("--budget-s", type=float, default=600.0, help="training wall-clock budget in seconds")
    p.add_argument("--rain100l", default=DEFAULT_RAIN100L,
                   help="Rain100L folder (input/N.png + target/N.png), relative to the repository root")
    p.add_argument("--data-out", default="data/rain100l_bench", help="where the 80/20 import is written")
    p.add_argument("--max-steps", type=int, default=None, help="plan this many steps (no speed probe)")
    p.add_argument("--tta-images", type=int, default=None, help="score TTA on this many val pairs (all)")
    p.add_argument("--patch-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--loss", default="l1")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: one per core; 1 is faster on cores other processes share)")
    p.add_argument("--seed", type=int, default=0, help="training seed (the split is fixed: seed 0)")
    p.add_argument("--run-dir", default=None, help="run folder (default runs/bench-rain100l-<preset>)")
    p.add_argument("--out", default=None, help="JSON file (default runs/bench-rain100l-<preset>.json)")
    p.add_argument("--score-only", action="store_true",
                   help="no training: re-score the run's last.pt and update the JSON (training figures kept)")
    return p


def _held_out_pairs(root: Path) -> list[Pair]:
    pairs = []
    for degraded in sorted((root / "test" / "degraded").glob("*.png"), key=lambda p: int(p.stem)):
        pairs.append(Pair(degraded=degraded, clean=root / "test" / "clean" / degraded.name, kind="rain",
                          name=degraded.stem))
    return pairs


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    set_threads(args.threads)
    info = machine()
    src = resolve(args.rain100l)
    if not (src / "input").is_dir() or not (src / "target").is_dir():
        print(f"error: Rain100L not found at {src} (expected input/N.png + target/N.png); "
              "pass --rain100l DIR, e.g. ../shared/data/rain100l", file=sys.stderr)
        return 2
    data_out = resolve(args.data_out)
    try:
        summary = import_pairs(src, kind="rain", out=data_out, test_fraction=TEST_FRACTION, seed=SPLIT_SEED,
                               mode="force")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary, flush=True)
    val_pairs = _held_out_pairs(data_out)

    run_dir = resolve(args.run_dir or f"runs/bench-rain100l-{args.preset}")
    out = resolve(args.out or f"runs/bench-rain100l-{args.preset}.json")
    if args.score_only:
        if not out.is_file() or not (run_dir / LAST).is_file():
            print(f"error: --score-only needs an earlier run: {out} and {run_dir / LAST}",
                  file=sys.stderr)
            return 2
        earlier = json.loads(out.read_text(encoding="utf-8"))
        training, model = earlier["training"], load_model(run_dir, "last")
        budget_s, recipe = earlier["budget_s"], earlier["recipe"]
        info = {k: earlier.get(k, v) for k, v in info.items()}  # the machine of the training run
    else:
        config = make_config(
            "demo", name=run_dir.name, run_dir=str(run_dir), data_dir=str(data_out), preset=args.preset,
            loss=args.loss, lr=args.lr, batch_size=args.batch_size, patch_size=args.patch_size,
            seed=args.seed, val_fraction=0.01, val_max_images=1, val_crop=128, save_samples=0, progress=False,
        )
        run = train_for_budget(config, args.budget_s, args.max_steps)
        training, model, budget_s = run.to_dict(), run.model, args.budget_s
        recipe = {"loss": args.loss, "lr": args.lr, "batch_size": args.batch_size,
                  "patch_size": args.patch_size, "seed": args.seed, "base": "demo"}
    scores = score_real(model, val_pairs, args.tta_images)

    result = {
        "preset": args.preset,
        "budget_s": budget_s,
        "val_psnr": scores["psnr"],
        "val_psnr_tta": scores["psnr_tta"],
        "val_ssim": scores["ssim"],
        "input_psnr": scores["input_psnr"],
        "steps_per_s": training["steps_per_s"],
        "peak_mem_mb": training["peak_mem_mb"],
        "val_ssim_tta": scores["ssim_tta"],
        "val_psnr_tta_hflip": scores["psnr_tta_hflip"],
        "val_ssim_tta_hflip": scores["ssim_tta_hflip"],
        "val_psnr_on_tta_subset": scores["psnr_on_tta_subset"],
        "input_ssim": scores["input_ssim"],
        "gain_db": scores["gain_db"],
        "gain_tta_db": scores["psnr_tta"] - scores["input_psnr_on_tta_subset"],
        "n_val": scores["n"],
        "tta_images": scores["tta_images"],
        "split": f"{summary.n_train}/{summary.n_test} (test_fraction {TEST_FRACTION}, seed {SPLIT_SEED})",
        "training": training,
        "recipe": recipe,
        "eval_s": scores["eval_s"], "eval_tta_s": scores["eval_tta_s"],
        "peak_mem_mb_with_eval": round(peak_mem_mb(), 1),
        "total_s": round(time.perf_counter() - started, 1),
        **info,
    }
    write_json_atomic(result, out)

    n, k = scores["n"], scores["tta_images"]
    print()
    print(f"Rain100L held-out {n} pairs, preset {args.preset}, {training['steps']} steps in "
          f"{training['train_wall_s']:.0f} s (budget {budget_s:.0f} s): "
          f"{training['steps_per_s']:.3f} steps/s "
          f"({training['loop_steps_per_s']:.3f} in the loop), peak memory {training['peak_mem_mb']:.0f} MiB")
    print(table([
        ("identity (rainy input)", scores["input_psnr"], scores["input_ssim"], n),
        (f"{args.preset} model", scores["psnr"], scores["ssim"], n),
        (f"{args.preset} model + TTA (8 flips/rotations)", scores["psnr_tta"], scores["ssim_tta"], k),
        (f"{args.preset} model + left-right mirror", scores["psnr_tta_hflip"], scores["ssim_tta_hflip"], k),
    ]))
    print(f"gain over identity: {scores['gain_db']:+.2f} dB "
          f"(TTA {result['gain_tta_db']:+.2f} dB on {k} pairs)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
