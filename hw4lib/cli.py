"""``python -m hw4lib <command>``: every command of the project in one place, each a thin library call.

Data: ``demo-data``, ``study-data``, ``import-pairs``, ``check-data``. Training: ``train``. Inference:
``predict``, ``score``, ``check-submission``. Sweeps and the report: ``experiments``, ``report``, ``demo``.
Relative paths are taken from the repository root (as in the notebooks), so the commands work from any folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hw4lib import __version__, paths
from hw4lib.config import RECIPES, TrainConfig, merge_sizing
from hw4lib.data import KINDS, LAYOUT, DataError, check_data
from hw4lib.device import resolve_device
from hw4lib.experiments import (
    DEFAULT_LOSSES,
    TRAIN_NOTEBOOK,
    run_variants,
)
from hw4lib.importers import LAYOUTS, import_pairs, supported_layouts
from hw4lib.infer import TTA_MODES, check_submission, load_submission, write_submission
from hw4lib.paths import write_text_atomic
from hw4lib.runs import RunExistsError, find_run, load_model, prediction_tta
from hw4lib.scoring import score_predictions
from hw4lib.train import TrainingDiverged, fit

__all__ = ["build_parser", "main", "config_from_args", "parse_parameter"]

# ----------------------------------------------------------------------------------------------------------
# data: demo-data, import-pairs, check-data


def _import_pairs(args: argparse.Namespace) -> int:
    out = paths.resolve(args.out) if args.out is not None else None
    bar = tqdm(desc="import", unit="pair", disable=None, file=sys.stderr)  # None: only on a terminal

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(1)

    try:
        summary = import_pairs(
            paths.resolve(args.src), kind=args.kind, out=out, test_fraction=args.test_fraction,
            seed=args.seed, layout=args.layout, mode=args.mode, progress=progress,
        )
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    print(summary)
    print(f"check it with: python -m hw4lib check-data {summary.out}")
    return 0


def _check_data(args: argparse.Namespace) -> int:
    report = check_data(paths.resolve(args.root), max_images=args.max_images, patch_size=args.patch_size)
    print(report.format(max_problems=args.max_problems))
    return 0 if report.ok else 1


def _add_data_commands(sub: Any) -> None:
    p = sub.add_parser(
        "import-pairs",
        help="convert a public paired benchmark (Rain100L/H, PromptIR folders) into the course layout",
        description="Copy a paired benchmark into the course layout. Supported layouts: "
        + supported_layouts() + ".",
    )
    p.add_argument("src", help="folder holding the benchmark, e.g. ../shared/data/rain100l "
                   "(relative paths are taken from the repository root, as in check-data)")
    p.add_argument("--type", dest="kind", default="rain", choices=KINDS, help="degradation (default rain)")
    p.add_argument("--out", default=None, help="output dataset folder (default data/<SRC folder name>)")
    p.add_argument("--test-fraction", type=float, default=0.0,
                   help="share of pairs held out in test/ with answers in test/clean (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test draw (default 0)")
    p.add_argument("--layout", default="auto", choices=("auto", *LAYOUTS), help="source layout")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--append", action="store_const", dest="mode", const="append",
                       help="add to an existing dataset, continuing its numbering")
    group.add_argument("--force", action="store_const", dest="mode", const="force",
                       help="replace an existing output folder")
    p.set_defaults(func=_import_pairs, mode="new")

    p = sub.add_parser(
        "check-data",
        help="check a dataset folder (pairs, decodable images, sizes, input PSNR)",
        description=f"Check a dataset in the course layout ({LAYOUT}). Exit status 1: training would fail.",
    )
    p.add_argument("root", help="dataset folder (relative paths are taken from the repository root)")
    p.add_argument("--max-images", type=int, metavar="N", help="decode at most N pairs per kind and N tests")
    p.add_argument("--patch-size", type=int, metavar="P", help="also flag images smaller than this crop size")
    p.add_argument("--max-problems", type=int, default=20, metavar="N", help="how many problems to print")
    p.set_defaults(func=_check_data)


# ----------------------------------------------------------------------------------------------------------
# train


def _field_parser(name: str, hint: Any) -> Callable[[str], Any]:
    """A parser of command-line text for a TrainConfig field of type ``hint`` (``int | None``, ``dict``)."""
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else hint
    kind = typing.get_origin(base) or base
    flag = "--" + name.replace("_", "-")

    def parse(text: str) -> Any:
        if optional and text.lower() in ("none", "null"):
            return None
        try:
            if kind is dict:
                value = json.loads(text)
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
                return value
            if kind is bool:
                lowered = text.lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError("not a boolean")
            return kind(text)  # int, float, str
        except ValueError as err:
            message = f"{flag}: cannot read {text!r} as {_type_name(hint)} ({err})"
            raise argparse.ArgumentTypeError(message) from err

    return parse


def _type_name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    name = getattr(typing.get_origin(base) or base, "__name__", str(base))
    return f"{name} or none" if len(typing.get_args(hint)) > len(args) else name


def _config_fields() -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(TrainConfig)
    return [(f, hints[f.name]) for f in dataclasses.fields(TrainConfig) if f.name != "recipe"]


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """--config FILE, then --recipe, then every explicit --field on top."""
    values: dict[str, Any] = {}
    if args.config:
        values.update(TrainConfig.from_json(args.config).to_dict())
    if args.recipe:
        values.update(RECIPES[args.recipe])
        values["recipe"] = args.recipe
    given = {}
    for f, hint in _config_fields():
        text = getattr(args, f.name, None)
        if text is not None:
            given[f.name] = _field_parser(f.name, hint)(text)
    return TrainConfig.from_dict(merge_sizing(values, given), "command line")


# errors that mean "fix the input": print one line instead of a traceback (DataError is a ValueError)
_USER_ERRORS = (TrainingDiverged, RunExistsError, ValueError, FileNotFoundError, argparse.ArgumentTypeError)


def _train(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        result = fit(config, resume=args.resume, overwrite=args.overwrite)
    except _USER_ERRORS as err:
        print(f"train: {err}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {result.path}")
    return 0


def _add_train_command(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train PromptIR (one GPU, CPU, or torchrun for several GPUs)",
        description=(
            "Train PromptIR and write runs/<name>/. Start from --config FILE and/or --recipe, then override "
            "any TrainConfig field, e.g. --loss l1 --preset tiny --epochs 3 --patch-size 64. Several GPUs: "
            "torchrun --nproc_per_node N -m hw4lib train --config runs/x/config.json"
        ),
    )
    p.add_argument("--config", help="a TrainConfig JSON file (e.g. runs/x/config.json)")
    p.add_argument("--recipe", choices=sorted(RECIPES), help="starting point: " + ", ".join(sorted(RECIPES)))
    p.add_argument("--resume", action="store_true", help="continue from runs/<name>/last.pt")
    p.add_argument("--overwrite", action="store_true", help="start over even if runs/<name>/ holds a run")
    for f, hint in _config_fields():
        default = f.default if f.default is not dataclasses.MISSING else "{}"
        p.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f.name, default=None, metavar=f.name.upper(),
            help=f"{_type_name(hint)} (default {default})",
        )
    p.set_defaults(func=_train)


# ----------------------------------------------------------------------------------------------------------
# inference: predict, score, check-submission


def _predict(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    source = args.run if args.run is not None else args.checkpoint
    if source in (None, "best", "last"):
        print("predict: pass a run folder (--run) or a checkpoint file (--checkpoint PATH)", file=sys.stderr)
        return 2
    model = load_model(source, args.checkpoint, map_location=device, preset=args.preset)
    tta = prediction_tta(args.run if args.run is not None else source, args.tta)
    if args.out is not None:
        out = Path(args.out)
    elif args.run is not None:
        out = find_run(args.run) / "pred.npz"
    else:
        out = Path("pred.npz")
    path = write_submission(
        model,
        args.test_dir,
        out,
        tta=None if tta == "none" else tta,
        png_dir=args.png_dir,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        batch_size=args.batch_size,
        device=device,
        amp=False if args.no_amp else None,
        progress=not args.no_progress,
    )
    problems = check_submission(path, args.test_dir)
    for line in problems:
        print(f"problem: {line}")
    n = len(load_submission(path))
    print(f"wrote {path} ({n} images, TTA {tta}{' (auto)' if args.tta == 'auto' else ''})")
    return 1 if problems else 0


def _score(args: argparse.Namespace) -> int:
    result = score_predictions(args.pred, args.clean, labels=args.labels)
    print(result)
    print(f"PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.4f} over {len(result.per_image)} images")
    if args.csv:
        write_text_atomic(result.per_image.to_csv(index=False), args.csv)
        print(f"per-image scores: {args.csv}")
    return 0


def _check_submission(args: argparse.Namespace) -> int:
    problems = check_submission(args.pred, args.test_dir)
    for line in problems:
        print(f"problem: {line}")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _add_inference_commands(sub: Any) -> None:
    p = sub.add_parser("predict", help="restore the test images and write the submission pred.npz")
    p.add_argument("--run", help="run folder (runs/<name>) or a run name")
    p.add_argument(
        "--checkpoint", default="best", help="best | last | a checkpoint file (or the official model.ckpt)"
    )
    p.add_argument("--preset", help="architecture of an official-format checkpoint (default: the paper's)")
    p.add_argument("--test-dir", required=True, help="folder of degraded test images (or the dataset root)")
    p.add_argument("--out", help="submission file (default: <run>/pred.npz)")
    p.add_argument(
        "--tta",
        nargs="?",
        const="x8",
        choices=("auto", "none", *sorted(TTA_MODES)),
        default="auto",
        help="self-ensemble: auto (default: x8 when the run trained with flips and rotations, else hflip), "
        "none, x8 (8 flips/rotations, 8x slower; --tta alone) or hflip (left-right mirror, 2x)",
    )
    p.add_argument("--tile", type=int, help="tile size for images too large for memory")
    p.add_argument("--tile-overlap", type=int, default=32)
    p.add_argument("--png-dir", help="also save the restored images as PNGs here")
    p.add_argument("--batch-size", type=int, default=1, help="images of equal size per forward pass")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1 ...")
    p.add_argument("--no-amp", action="store_true", help="full float32 on GPU")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_predict)

    p = sub.add_parser("score", help="PSNR/SSIM of a pred.npz (or PNG folder) against clean images")
    p.add_argument("pred", help="pred.npz or a folder of restored PNGs")
    p.add_argument("--clean", required=True, help="folder of clean answers with the same file names")
    p.add_argument("--labels", help="name,kind CSV (default: labels.csv beside the clean folder)")
    p.add_argument("--csv", help="write per-image scores to this CSV")
    p.set_defaults(func=_score)

    p = sub.add_parser("check-submission", help="validate a pred.npz against the test images")
    p.add_argument("pred")
    p.add_argument("--test-dir", required=True)
    p.set_defaults(func=_check_submission)


# ----------------------------------------------------------------------------------------------------------
# sweeps and the report: experiments, report, demo


def parse_parameter(text: str) -> Any:
    """A ``-p key value`` value: JSON when it parses (numbers, true/false/null, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _experiments(args: argparse.Namespace) -> int:
    losses = [s.strip() for s in args.losses.split(",") if s.strip()]
    params = {key: parse_parameter(value) for key, value in (args.parameters or [])}
    results = run_variants(
        losses, prefix=args.prefix, parameters=params, notebook=args.notebook, force=args.force,
        kernel_name=args.kernel,
    )
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} of {len(results)} variants finished")
    for r in failed:
        print(f"  {r.name}: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _add_experiment_commands(sub: Any) -> None:
    p = sub.add_parser(
        "experiments",
        help="train several loss variants through notebooks/train.ipynb (papermill)",
        description="Execute the training notebook once per loss; finished variants are skipped (--force).",
    )
    p.add_argument("--losses", default=",".join(DEFAULT_LOSSES),
                   help="comma-separated losses (default: %(default)s)")
    p.add_argument("--prefix", default="demo", help="runs are named <prefix>-<loss> (default: %(default)s)")
    p.add_argument("-p", "--parameter", dest="parameters", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="a notebook parameter shared by all variants (repeatable), e.g. -p preset full")
    p.add_argument("--notebook", default=TRAIN_NOTEBOOK, help="notebook to execute (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="re-run variants that already finished")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: %(default)s)")
    p.set_defaults(func=_experiments)


# ----------------------------------------------------------------------------------------------------------
# the parser


def build_parser(rooms: Sequence[Callable[[Any], None]] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hw4lib",
        description="PromptIR rain and snow removal: data, training, prediction and the report.",
    )
    parser.add_argument("--version", action="version", version=f"hw4lib {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_data_commands(sub)
    _add_train_command(sub)
    _add_inference_commands(sub)
    _add_experiment_commands(sub)
    for add_commands in rooms:  # the synthesizer's and the report's commands (hw4lib.__main__ passes them)
        add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None, rooms: Sequence[Callable[[Any], None]] = ()) -> int:
    parser = build_parser(rooms)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
