"""Transfer: train on the rain pairs of one set only, score on the real pairs of another (by default the demo
set's synthetic rain and the 100 real Rain100L pairs).

This measures how realistic the demo rain is: the ``small`` preset is trained with ``hw4lib.train.fit`` on the
rain pairs of ``--demo`` (``data/demo`` generated if missing; the snow pairs are left out) for a fixed
wall-clock budget, then restores every pair of ``--rain100l`` at full size, a set it never saw. PSNR/SSIM
against the identity baseline (the rainy input itself), with and without the 8x flip/rotate TTA. A better
synthesizer gives a larger real gain. The table and the JSON name the two sets after the folders given, and
call the training rain "synthetic" only when the set says it was generated (its ``synth.json``).

    python -m benchmarks.transfer                 # 600 s of training, then about as long again to evaluate
    python -m benchmarks.transfer --tta-images 20 # TTA (8 forwards per image) on 20 evenly spaced pairs only

Writes ``runs/bench-transfer.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
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
from hw4lib.data import DataError, Pair, find_pairs
from hw4lib.importers import find_source_pairs
from hw4lib.paths import data_dir, relative, resolve, write_json_atomic
from hw4lib.synth import MANIFEST as SYNTH_MANIFEST
from hw4lib.synth import generate_demo_dataset

DEFAULT_RAIN100L = "../shared/data/rain100l"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small", choices=("tiny", "small", "full"), help="model preset")
    p.add_argument("--budget-s", type=float, default=600.0, help="training wall-clock budget in seconds")
    p.add_argument("--rain100l", default=DEFAULT_RAIN100L,
                   help="Rain100L folder (input/N.png + target/N.png), relative to the repository root")
    p.add_argument("--demo", default=str(data_dir("demo")), help="demo set (generated here when missing)")
    p.add_argument("--rain-only", default="data/demo_rain", help="where the demo set's rain pairs are copied")
    p.add_argument("--max-steps", type=int, default=None, help="plan this many steps (no speed probe)")
    p.add_argument("--real-images", type=int, default=None, help="score only this many Rain100L pairs (all)")
    p.add_argument("--tta-images", type=int, default=None, help="score TTA on this many of them (all)")
    p.add_argument("--patch-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--loss", default="l1")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: one per core; 1 is faster on cores other processes share)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default="runs/bench-transfer", help="run folder")
    p.add_argument("--out", default="runs/bench-transfer.json", help="JSON file")
    return p


def rain_only_copy(demo: Path, dest: Path) -> int:
    """Copy the rain training pairs of ``demo`` into ``dest`` (course layout, replaced); returns the count."""
    pairs = [p for p in find_pairs(demo) if p.kind == "rain"]
    if not pairs:
        raise DataError(f"{demo} holds no rain training pairs; regenerate it: python -m hw4lib demo-data")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for sub in ("degraded", "clean"):
            (tmp / "train" / sub).mkdir(parents=True)
        for pair in pairs:
            shutil.copyfile(pair.degraded, tmp / "train" / "degraded" / pair.degraded.name)
            shutil.copyfile(pair.clean, tmp / "train" / "clean" / pair.clean.name)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(pairs)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    set_threads(args.threads)
    info = machine()
    src = resolve(args.rain100l)
    try:
        real = [Pair(degraded=p.degraded, clean=p.clean, kind="rain", name=f"rain100l-{p.key}")
                for p in find_source_pairs(src, "mirror")]
    except DataError as err:
        print(f"error: Rain100L not usable: {err}\npass --rain100l DIR (input/N.png + target/N.png), e.g. "
              f"{DEFAULT_RAIN100L}", file=sys.stderr)
        return 2
    if args.real_images is not None:
        real = real[: args.real_images]

    demo = resolve(args.demo)
    if not demo.is_dir():
        print(f"generating the demo set in {demo} ...", flush=True)
        generate_demo_dataset(demo)
    train_dir = resolve(args.rain_only)
    n_rain = rain_only_copy(demo, train_dir)

    run_dir = resolve(args.run_dir)
    config = make_config(
        "demo", name=run_dir.name, run_dir=str(run_dir), data_dir=str(train_dir), preset=args.preset,
        loss=args.loss, lr=args.lr, batch_size=args.batch_size, patch_size=args.patch_size, seed=args.seed,
        val_fraction=0.05, val_max_images=8, save_samples=0, progress=False,
    )
    run = train_for_budget(config, args.budget_s, args.max_steps)
    scores = score_real(run.model, real, args.tta_images)
    synthetic = (demo / SYNTH_MANIFEST).is_file()
    trained_on = f"{'synthetic' if synthetic else demo.name} rain only"

    result = {
        "preset": args.preset,
        "budget_s": args.budget_s,
        "train_data": f"{relative(demo)} rain pairs only ({n_rain}; {run.n_train} trained on)",
        "train_synthetic": synthetic,
        "eval_data": f"{src.name}, {scores['n']} pairs (never trained on)",
        "eval_name": src.name,
        "real_psnr": scores["psnr"],
        "real_psnr_tta": scores["psnr_tta"],
        "real_ssim": scores["ssim"],
        "real_ssim_tta": scores["ssim_tta"],
        "real_psnr_tta_hflip": scores["psnr_tta_hflip"],
        "real_ssim_tta_hflip": scores["ssim_tta_hflip"],
        "input_psnr": scores["input_psnr"],
        "input_ssim": scores["input_ssim"],
        "gain_db": scores["gain_db"],
        "gain_tta_db": scores["psnr_tta"] - scores["input_psnr_on_tta_subset"],
        "tta_images": scores["tta_images"],
        "real_psnr_on_tta_subset": scores["psnr_on_tta_subset"],
        "input_psnr_on_tta_subset": scores["input_psnr_on_tta_subset"],
        "n_real": scores["n"],
        "steps_per_s": run.steps_per_s,
        "peak_mem_mb": run.peak_mem_mb,
        "training": run.to_dict(),
        "recipe": {"loss": args.loss, "lr": args.lr, "batch_size": args.batch_size,
                   "patch_size": args.patch_size, "seed": args.seed, "base": "demo"},
        "eval_s": scores["eval_s"], "eval_tta_s": scores["eval_tta_s"],
        "peak_mem_mb_with_eval": round(peak_mem_mb(), 1),
        "total_s": round(time.perf_counter() - started, 1),
        **info,
    }
    out = resolve(args.out)
    write_json_atomic(result, out)

    n, k = scores["n"], scores["tta_images"]
    print()
    print(f"trained {args.preset} on {run.n_train} {'synthetic' if synthetic else demo.name} rain pairs: "
          f"{run.steps} steps in {run.train_wall_s:.0f} s (budget {args.budget_s:.0f} s), "
          f"{run.steps_per_s:.3f} steps/s, peak memory {run.peak_mem_mb:.0f} MiB; scored on {n} pairs of "
          f"{src.name}")
    print(table([
        ("identity (rainy input)", scores["input_psnr"], scores["input_ssim"], n),
        (f"{args.preset}, {trained_on}", scores["psnr"], scores["ssim"], n),
        (f"{args.preset}, {trained_on} + TTA (8)", scores["psnr_tta"], scores["ssim_tta"], k),
        (f"{args.preset}, {trained_on} + mirror", scores["psnr_tta_hflip"], scores["ssim_tta_hflip"], k),
    ]))
    print(f"transfer gain over identity: {scores['gain_db']:+.2f} dB "
          f"(TTA {result['gain_tta_db']:+.2f} dB on {k} pairs)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
