"""The synthesizer's commands: ``demo-data`` (the generated demo set) and ``study-data`` (the study's set)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from hw4lib import paths
from hw4lib.data import KINDS
from hw4lib.synth.datasets import generate_demo_dataset, generate_photo_dataset
from hw4lib.synth.study_set import RAIN100L_ENV, STUDY_CROP, STUDY_DIR, build_study_dataset

__all__ = ["add_commands"]

_DEMO_DEFAULTS = {"pairs_per_type": 200, "test_per_type": 20, "size": 128}  # without --photos
_PHOTO_DEFAULTS = {"val_fraction": 0.2, "max_side": None}  # with --photos


def _print_psnr(summary: dict[str, Any]) -> None:
    print("input PSNR (degraded vs clean), dB:")
    for key, s in summary["input_psnr_db"].items():
        if s.get("n"):
            print(
                f"  {key:<20} n={s['n']:<4d} mean {s['mean']:6.2f}  min {s['min']:6.2f}  max {s['max']:6.2f}"
            )


def _scene_counts(summary: dict[str, Any]) -> str:
    counts = summary["counts"]
    return ", ".join(f"{kind} {counts[kind]['train']} train + {counts[kind]['val']} val" for kind in KINDS)


def _demo_data(args: argparse.Namespace) -> int:
    own, other = (_PHOTO_DEFAULTS, _DEMO_DEFAULTS) if args.photos else (_DEMO_DEFAULTS, _PHOTO_DEFAULTS)
    misplaced = ["--" + k.replace("_", "-") for k in other if getattr(args, k) is not None]
    if misplaced:
        where = "the sample-photo demo set (without --photos)" if args.photos else "--photos"
        verb, it = ("applies", "it") if len(misplaced) == 1 else ("apply", "them")
        print(f"demo-data: {', '.join(misplaced)} {verb} only to {where}; drop {it}", file=sys.stderr)
        return 2
    options = {k: default if getattr(args, k) is None else getattr(args, k) for k, default in own.items()}
    masks = paths.resolve(args.snow_masks) if args.snow_masks is not None else None
    try:
        if args.photos:
            summary = generate_photo_dataset(
                paths.resolve(args.photos), paths.resolve(args.out), seed=args.seed, snow_masks=masks,
                real_mask_fraction=args.real_mask_fraction, overwrite=args.force, **options,
            )  # fmt: skip
        else:
            summary = generate_demo_dataset(
                paths.resolve(args.out), seed=args.seed, snow_masks=masks, overwrite=args.force,
                real_mask_fraction=args.real_mask_fraction, **options,
            )  # fmt: skip
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        print(f"demo-data: {err}", file=sys.stderr)
        return 2
    counts, settings, out = summary["counts"], summary["settings"], summary["out"]
    if args.photos:
        print(
            f"wrote {out}: {counts['scenes']} photos of {summary['photos']}, each as rain-N and snow-N: "
            f"{_scene_counts(summary)} (split.csv by scene, val fraction {settings['val_fraction']:g}), "
            f"seed {settings['seed']} ({summary['seconds']:.1f} s)"
        )
    else:
        print(
            f"wrote {out}: {counts['train/rain']} rain + {counts['train/snow']} snow training pairs, "
            f"{counts['test']} test images, {settings['size']} px, seed {settings['seed']} "
            f"({summary['seconds']:.1f} s)"
        )
    _print_psnr(summary)
    return 0


def _study_data(args: argparse.Namespace) -> int:
    rain100l = paths.resolve(args.rain100l) if args.rain100l is not None else None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="the study runs on synthetic data")  # printed below
            summary = build_study_dataset(
                paths.resolve(args.out), rain100l=rain100l, seed=args.seed, val_fraction=args.val_fraction,
                overwrite=args.force, crop=args.crop or None,
            )  # fmt: skip
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        print(f"study-data: {err}", file=sys.stderr)
        return 2
    if "note" in summary:
        print(f"warning: {summary['note']}", file=sys.stderr)
    what = summary.get("description") or (
        f"source {summary['source']} (rain {summary['rain']}, snow {summary['snow']})"
    )
    print(
        f"wrote {summary['out']}: {what}: {_scene_counts(summary)}, split by {summary['split']['by']} "
        f"(split.csv), seed {args.seed} ({summary['seconds']:.1f} s)"
    )
    _print_psnr(summary)
    return 0


def add_commands(sub: Any) -> None:
    """Add ``demo-data`` and ``study-data`` to the ``python -m hw4lib`` subcommands."""
    _add_demo_data(sub)
    _add_study_data(sub)


def _add_demo_data(sub: Any) -> None:
    p = sub.add_parser(
        "demo-data",
        help="generate the synthetic rain/snow demo dataset (course layout)",
        description="Synthetic rain and snow on sample photographs, written in the course layout, "
        "with test answers in test/clean. Deterministic for a seed.",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        default=paths.data_dir("demo"),
        help="output folder, relative paths from the repository root (default: data/demo)",
    )
    p.add_argument(
        "--photos",
        type=Path,
        default=None,
        metavar="DIR",
        help="synthesize over every clean photograph in DIR instead (each photo: one rain and one "
        "snow pair, own size) and write split.csv by photo",
    )
    p.add_argument(
        "--pairs-per-type",
        type=int,
        default=None,
        metavar="N",
        help="training pairs per degradation (default 200; not with --photos)",
    )
    p.add_argument(
        "--test-per-type",
        type=int,
        default=None,
        metavar="K",
        help="test images per degradation (default 20; not with --photos)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=None,
        metavar="PX",
        help="image side in pixels (default 128; not with --photos)",
    )
    p.add_argument(
        "--max-side",
        type=int,
        default=None,
        metavar="PX",
        help="with --photos: downscale photos whose longer side exceeds PX (default: keep sizes)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        metavar="F",
        help="with --photos: share of photos (scenes) in val, both versions (default 0.2)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="X", help="random seed (default 0)")
    p.add_argument("--snow-masks", type=Path, default=None, metavar="DIR",
                   help="folder of real snow masks to composite")
    p.add_argument("--real-mask-fraction", type=float, metavar="F", default=1.0,
                   help="share of snow images that use a real mask when --snow-masks is given (default 1)")
    p.add_argument("--force", action="store_true", help="replace an existing demo dataset in --out")
    p.set_defaults(func=_demo_data)


def _add_study_data(sub: Any) -> None:
    p = sub.add_parser(
        "study-data",
        help="the loss study's set: every scene with rain and with snow, split by scene",
        description="Rain100L's real rain pairs plus synthetic snow over the same clean targets (every scene "
        "twice), split by scene in split.csv; without a Rain100L copy, the demo set (with a warning).",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        default=Path(STUDY_DIR),
        help="output folder, relative paths from the repository root (default: %(default)s)",
    )
    p.add_argument(
        "--rain100l",
        type=Path,
        default=None,
        metavar="DIR",
        help="Rain100L copy, or any folder of input/N.png + target/N.png pairs "
        f"(default: the folder ${RAIN100L_ENV} names; without one, the demo set)",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="X", help="seed of the snow and of the split (default 0)"
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="share of scenes in val, both versions (default 0.2)",
    )
    p.add_argument(
        "--crop",
        type=int,
        default=STUDY_CROP,
        metavar="PX",
        help="keep the central PX x PX window of each Rain100L picture, 0 for whole pictures "
        "(default %(default)s)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing generated set in --out")
    p.set_defaults(func=_study_data)

