"""``python -m hw4lib <command>``: the core's commands, each a thin library call.

Data: ``check-data``, ``import-pairs``. Training: ``train``. Inference: ``predict`` (the submission),
``restore`` (a folder of your own photos), ``score``, ``check-submission``. Sweeps: ``experiments``. The two
rooms add theirs (``demo-data``, ``study-data``; ``report``, ``demo``, ``study``): ``hw4lib.__main__``
composes them. Relative paths are taken from the repository root (as in the notebooks), so the commands
work from any folder.

Every user error ends the command with one line on stderr and exit status 1 (2 for a command line that does
not parse); ``--debug`` shows the traceback instead.
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
from typing import Any

from tqdm import tqdm

from hw4lib import __version__, paths
from hw4lib.checks import check_data
from hw4lib.config import RECIPE_NOTES, RECIPES, TrainConfig, make_config
from hw4lib.data import KINDS, LAYOUT
from hw4lib.device import resolve_device
from hw4lib.experiments import DEFAULT_LOSSES, TRAIN_NOTEBOOK, run_variants
from hw4lib.importers import LAYOUTS, import_pairs, supported_layouts
from hw4lib.infer import TTA_CHOICES, check_submission, load_submission, restore_photos, write_submission
from hw4lib.losses import LOSS_TERMS
from hw4lib.model import PRESETS
from hw4lib.paths import write_text_atomic
from hw4lib.runs import find_run, load_model, prediction_tta

__all__ = ["build_parser", "main", "parse_parameter"]

Room = Callable[[Any], None]  # adds a room's commands to the subparsers
_NONE = object()  # "none" given on the command line: clear the field (make_config reads None as "not given")


# ----------------------------------------------------------------------------------------------------------
# data: check-data, import-pairs


def _check_data(args: argparse.Namespace) -> int:
    report = check_data(paths.resolve(args.root), max_images=args.max_images, patch_size=args.patch_size)
    print(report.format(max_problems=args.max_problems))
    return 0 if report.ok else 1


def _add_check_data(sub: Any) -> None:
    p = sub.add_parser(
        "check-data",
        help="check a data set folder: pairs, decodable images, sizes, input PSNR",
        description=f"Check a data set in the course layout ({LAYOUT}) before a long run. Exit status 1: "
        "training would fail.",
    )
    p.add_argument("root", help="data set folder (relative paths from the repository root)")
    p.add_argument("--max-images", type=int, metavar="N", help="decode at most N pairs per type and N tests")
    p.add_argument("--patch-size", type=int, metavar="PX", help="also flag images smaller than this crop")
    p.add_argument("--max-problems", type=int, default=20, metavar="N", help="problems to print (default 20)")
    p.set_defaults(func=_check_data)


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
        )  # fmt: skip
    finally:
        bar.close()
    print(summary)
    print(f"check it with: python -m hw4lib check-data {summary.out}")
    return 0


def _add_import_pairs(sub: Any) -> None:
    p = sub.add_parser(
        "import-pairs",
        help="convert a public paired benchmark (Rain100L/H, PromptIR folders) into the course layout",
        description="Copy a paired benchmark into the course layout. Supported layouts: "
        + supported_layouts() + ".",
    )
    p.add_argument("src", help="folder holding the benchmark (relative paths from the repository root)")
    p.add_argument("--type", dest="kind", default="rain", choices=KINDS, help="degradation (default rain)")
    p.add_argument("--out", default=None, help="output data set folder (default data/<SRC folder name>)")
    p.add_argument("--test-fraction", type=float, default=0.0, metavar="F",
                   help="share of pairs held out in test/ with answers in test/clean (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test draw (default 0)")
    p.add_argument("--layout", default="auto", choices=("auto", *LAYOUTS), help="source layout")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--append", action="store_const", dest="mode", const="append",
                       help="add to an existing data set, continuing its numbering")
    group.add_argument("--force", action="store_const", dest="mode", const="force",
                       help="replace an existing output folder")
    p.set_defaults(func=_import_pairs, mode="new")


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
            return _NONE
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
                raise ValueError("not a boolean: true or false")
            return kind(text)  # int, float, str
        except ValueError as err:
            message = f"{flag}: cannot read {text!r} as {_type_name(hint)} ({err})"
            raise argparse.ArgumentTypeError(message) from None

    parse.__name__ = _type_name(hint)  # argparse names the type in its own messages
    return parse


def _type_name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    name = getattr(typing.get_origin(base) or base, "__name__", str(base))
    return f"{name} or none" if len(typing.get_args(hint)) > len(args) else name


def _config_fields() -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(TrainConfig)
    return [(f, hints[f.name]) for f in dataclasses.fields(TrainConfig) if f.name != "recipe"]


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """``--config FILE``, then ``--recipe`` (or the one that fits the data and the device), then every
    explicit ``--field``: :func:`hw4lib.config.make_config`, as in the notebook."""
    given = {f.name: getattr(args, f.name, None) for f, _ in _config_fields()}
    unset = [name for name, value in given.items() if value is _NONE]  # "--time-budget none": clear it
    base = TrainConfig.from_json(args.config) if args.config else None
    config = make_config(args.recipe, base=base, **{k: v for k, v in given.items() if k not in unset})
    return dataclasses.replace(config, **dict.fromkeys(unset)) if unset else config


def _train(args: argparse.Namespace) -> int:
    from hw4lib.planning import estimate_run  # imported here: --help should not pay for the engine
    from hw4lib.train import fit

    config = _train_config(args)
    if args.dry_run:
        print(f"recipe {config.recipe or '-'}: {config.to_json()}", end="")
        print(estimate_run(config, resolve_device(config.device)).describe())
        return 0
    result = fit(config, resume=args.resume, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {paths.relative(result.path)}")
    return 0


def _train_epilog() -> str:
    recipes = "\n".join(f"  {name:<9} {RECIPE_NOTES[name]}" for name in RECIPES)
    terms = ", ".join(LOSS_TERMS)
    return (
        "recipes (--recipe; without one: demo for a generated set, seed on a GPU, cpu on a CPU):\n"
        f"{recipes}\n\n"
        f"losses (--loss): a sum of optionally weighted terms, each optionally for one degradation type:\n"
        f"  terms: {terms}\n  e.g. l1, l1_ssim, l1+0.1*edge_y, mse@snow+l1_ssim@rain\n\n"
        f"presets (--preset): {', '.join(PRESETS)}\n"
        "sizes (--epochs N, or --time-budget DURATION: 90s, 45m, 6h, 1h30m; not both)\n\n"
        "examples:\n"
        "  python -m hw4lib train --data-dir data/hw4_realse_dataset --dry-run     # the estimate only\n"
        "  python -m hw4lib train --recipe strong --time-budget 6h --data-dir data/hw4_realse_dataset\n"
        "  python -m hw4lib train --config runs/strong/config.json --resume\n"
        "  torchrun --nproc_per_node 2 -m hw4lib train --config runs/strong/config.json   # two GPUs"
    )


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train PromptIR (a CPU, one GPU, or torchrun for several) into runs/<name>/",
        description="Train PromptIR and write runs/<name>/. Start from --config FILE and/or --recipe, then "
        "set any field below. Before anything is allocated the run prints its estimate (FLOPs, memory, time) "
        "and refuses one that would not fit or would take hours on a CPU; then it measures itself and "
        "prints its plan.",
        epilog=_train_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", help="a run's config.json to start from")
    p.add_argument("--recipe", choices=list(RECIPES), metavar="NAME",
                   help=f"starting point: {', '.join(RECIPES)} (see below)")
    p.add_argument("--resume", action="store_true", help="continue runs/<name>/last.pt (its plan too)")
    p.add_argument("--overwrite", action="store_true", help="replace runs/<name>/ when it holds a run")
    p.add_argument("--dry-run", action="store_true", help="print the config and the estimate; train nothing")
    for f, hint in _config_fields():
        default = f.default if f.default is not dataclasses.MISSING else "{}"
        shown = "none" if default is None else default
        p.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f.name, default=None, type=_field_parser(f.name, hint),
            metavar=_type_name(hint).split()[0].upper(),
            help=f"{f.metadata.get('help', '')} (default {shown}, unless the recipe sets it)",
        )  # fmt: skip
    p.set_defaults(func=_train)


# ----------------------------------------------------------------------------------------------------------
# inference: predict, restore, score, check-submission


def _model_source(args: argparse.Namespace) -> tuple[Any, str | None]:
    """(the run folder or checkpoint file to load, the run folder when it is one); a missing run names the
    runs that exist."""
    if args.run is None and args.checkpoint in (None, "best", "last"):
        raise ValueError("pass a run (--run NAME or folder) or a checkpoint file (--checkpoint PATH)")
    if args.run is None:
        return args.checkpoint, None
    return find_run(args.run), args.run  # a missing run: the error lists the runs that exist


def _load(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """The model on its device, the device, and the self-ensemble to use."""
    device = resolve_device(args.device)
    source, run = _model_source(args)
    checkpoint = args.checkpoint if run is not None else "best"
    trust = args.trust_checkpoint
    model = load_model(source, checkpoint, map_location=device, preset=args.preset, trust=trust)
    return model, device, prediction_tta(run if run is not None else source, args.tta)


def _tile(text: str) -> int | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tile: {text!r} is not auto, none or a size in pixels") from None


def _out_of_memory(err: BaseException, args: argparse.Namespace) -> BaseException:
    """An out-of-memory error of prediction as one line naming the settings that lower the need."""
    text = str(err)
    if not (isinstance(err, MemoryError) or "out of memory" in text or "can't allocate memory" in text):
        return err
    tile = "smaller tiles (--tile 256)" if args.tile not in (None, "auto") else "tiles (--tile 512, or 256)"
    batch = ", --batch-size 1" if getattr(args, "batch_size", 1) > 1 else ""
    return MemoryError(f"out of memory restoring the images: use {tile}{batch}, or --tta none")


def _predict(args: argparse.Namespace) -> int:
    try:
        return _predict_unguarded(args)
    except (RuntimeError, MemoryError) as err:
        raise _out_of_memory(err, args) from err


def _predict_unguarded(args: argparse.Namespace) -> int:
    model, device, tta = _load(args)
    if args.out is not None:
        out = paths.resolve(args.out)
    elif args.run is not None:
        out = find_run(args.run) / "pred.npz"
    else:
        out = paths.resolve("pred.npz")
    path = write_submission(
        model, paths.resolve(args.test_dir), out, tta=tta, png_dir=args.png_dir, tile=args.tile,
        tile_overlap=args.tile_overlap, batch_size=args.batch_size, device=device,
        amp=False if args.no_amp else None, progress=not args.no_progress, replace=args.force,
    )  # fmt: skip
    problems = check_submission(path, paths.resolve(args.test_dir))
    for line in problems:
        print(f"problem: {line}")
    n = len(load_submission(path))
    print(f"wrote {paths.relative(path)} ({n} images, self-ensemble {tta}); upload "
          f"{paths.relative(path.with_suffix('.zip'))} (pred.npz at its root)")  # fmt: skip
    return 1 if problems else 0


def _restore(args: argparse.Namespace) -> int:
    model, device, tta = _load(args)
    try:
        written = restore_photos(
            model, paths.resolve(args.src), paths.resolve(args.out), tta=tta, tile=args.tile, device=device,
            amp=False if args.no_amp else None, progress=not args.no_progress,
        )  # fmt: skip
    except (RuntimeError, MemoryError) as err:
        raise _out_of_memory(err, args) from err
    out = paths.relative(paths.resolve(args.out))
    print(f"restored {len(written)} image(s) into {out}/ as PNGs; side by side: {out}/preview.jpg")
    return 0


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", help="a run: its name in runs/ or its folder (its best.pt unless --checkpoint)")
    p.add_argument("--checkpoint", default="best",
                   help="best | last | a checkpoint file (ours, or the official PromptIR model.ckpt)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="unpickle a checkpoint that asks to run code while loading (ONLY for files from a "
                   "source you trust: a pickled callable runs on your machine)")
    p.add_argument("--preset", choices=list(PRESETS), help="architecture of an official-format checkpoint")
    p.add_argument("--tta", nargs="?", const="x8", choices=TTA_CHOICES, default="auto",
                   help="self-ensemble: auto (default: what the run's augmentation allows: x8 after flips "
                   "and rotations, flips after flips, else hflip), none, hflip (2x), flips (4x), x8 (8x)")
    p.add_argument("--tile", type=_tile, default="auto", metavar="auto|none|PX",
                   help="tiles for images too large for memory: auto (default: only when needed), none, or a "
                   "size in pixels")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1 ...")
    p.add_argument("--no-amp", action="store_true", help="full float32 on a GPU")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_predict(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="restore the test images and write the submission (pred.npz and the zip to upload)",
        description="Restore every test image with a trained model and write the course submission: "
        "pred.npz (one (3, H, W) uint8 array per test file name) and, beside it, the zip the leaderboard "
        "takes (pred.npz at its root). The output folders are checked before the work; an existing "
        "submission for other images is not replaced without --force.",
    )
    _add_model_options(p)
    p.add_argument("--test-dir", required=True, help="the degraded test images (or the data set root)")
    p.add_argument("--out", help="the submission file (default: <run>/pred.npz; the zip goes beside it)")
    p.add_argument("--force", action="store_true", help="replace --out even when it holds other images")
    p.add_argument("--tile-overlap", type=int, default=32, metavar="PX", help="tile overlap (default 32)")
    p.add_argument("--png-dir", help="also save the restored images as PNGs here")
    p.add_argument("--batch-size", type=int, default=1, help="images of equal size per forward pass")
    p.set_defaults(func=_predict)


def _add_restore(sub: Any) -> None:
    p = sub.add_parser(
        "restore",
        help="restore a folder of your own photos into PNGs and a side-by-side preview",
        description="Restore every image of SRC (.jpg, .jpeg, .png, ... any size; large ones in tiles) into "
        "OUT as PNGs of the same names, plus OUT/preview.jpg (input beside output). Writes no submission.",
    )
    p.add_argument("src", help="folder of photos")
    p.add_argument("out", help="folder for the restored PNGs (created)")
    _add_model_options(p)
    p.set_defaults(func=_restore)


def _score(args: argparse.Namespace) -> int:
    from hw4lib.scoring import score_predictions  # imported here: it pulls pandas

    result = score_predictions(paths.resolve(args.pred), paths.resolve(args.clean), labels=args.labels)
    print(result)
    print(f"PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.4f} over {len(result.per_image)} images")
    if args.csv:
        write_text_atomic(result.per_image.to_csv(index=False), paths.resolve(args.csv))
        print(f"per-image scores: {args.csv}")
    return 0


def _add_score(sub: Any) -> None:
    p = sub.add_parser(
        "score",
        help="PSNR/SSIM of a submission (or a folder of PNGs) against clean images",
        description="Score restored images against clean ones with the same file names, per image (PSNR on "
        "[0, 1] pixels, then the mean, like the leaderboard) and per degradation type.",
    )
    p.add_argument("pred", help="pred.npz, the submission zip, or a folder of restored PNGs")
    p.add_argument("--clean", required=True, help="folder of clean answers with the same file names")
    p.add_argument("--labels", help="name,kind CSV of the types (default: labels.csv beside the answers)")
    p.add_argument("--csv", help="also write the per-image scores to this CSV")
    p.set_defaults(func=_score)


def _check_submission(args: argparse.Namespace) -> int:
    problems = check_submission(paths.resolve(args.pred), paths.resolve(args.test_dir))
    for line in problems:
        print(f"problem: {line}")
    print("ok: ready to upload" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _add_check_submission(sub: Any) -> None:
    p = sub.add_parser(
        "check-submission",
        help="check a submission (pred.npz or its zip) the way the leaderboard will",
        description="Check a submission against the test images: readable, one key per test file and no "
        "other, uint8 arrays shaped (3, H, W) like each image; a zip must hold pred.npz at its root.",
    )
    p.add_argument("pred", help="pred.npz or the zip to upload")
    p.add_argument("--test-dir", required=True, help="the degraded test images (or the data set root)")
    p.set_defaults(func=_check_submission)


# ----------------------------------------------------------------------------------------------------------
# sweeps: experiments


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
    )  # fmt: skip
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} of {len(results)} variants finished")
    for r in failed:
        print(f"  {r.name}: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _add_experiments(sub: Any) -> None:
    p = sub.add_parser(
        "experiments",
        help="train several loss variants through notebooks/train.ipynb (papermill), resumably",
        description="Execute the training notebook once per loss into runs/<prefix>-<loss>.ipynb and "
        "runs/<prefix>-<loss>/; a finished variant is skipped (--force re-trains it), a failed one does not "
        "stop the others. Each run's plan and epoch lines show here as they come.",
    )
    p.add_argument("--losses", default=",".join(DEFAULT_LOSSES),
                   help="comma-separated loss specs (default: %(default)s)")
    p.add_argument("--prefix", default="demo", help="runs are named <prefix>-<loss> (default: %(default)s)")
    p.add_argument("-p", "--parameter", dest="parameters", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="a notebook parameter shared by all variants (repeatable), e.g. -p preset full")
    p.add_argument("--notebook", default=TRAIN_NOTEBOOK, help="notebook to execute (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="re-run variants that already finished")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: %(default)s)")
    p.set_defaults(func=_experiments)


# ----------------------------------------------------------------------------------------------------------
# the parser and the one place errors are reported

_CORE = (_add_check_data, _add_import_pairs, _add_train, _add_predict, _add_restore, _add_score,
         _add_check_submission, _add_experiments)  # fmt: skip


def build_parser(rooms: Sequence[Room] = ()) -> argparse.ArgumentParser:
    """The parser of the core's commands and of the ``rooms`` (each adds its own to the subparsers)."""
    parser = argparse.ArgumentParser(
        prog="python -m hw4lib",
        description="PromptIR rain and snow removal: data, training, prediction and the report. "
        "`python -m hw4lib COMMAND --help` explains a command.",
    )
    parser.add_argument("--version", action="version", version=f"hw4lib {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in (*_CORE, *rooms):
        add(sub)
    return parser


def _one_line(err: BaseException) -> str:
    """An error as one line: its message, later lines joined with '; '."""
    text = str(err).strip() or type(err).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None, rooms: Sequence[Room] = ()) -> int:
    parser = build_parser(rooms)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    command = next((a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("-")), "")
    if args.debug:
        return int(args.func(args) or 0)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, MemoryError, argparse.ArgumentTypeError) as err:
        # user errors (bad data, names, files, folders, memory): the message says what to change
        print(f"hw4lib {command}: {_one_line(err)}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 -- a bug: one line here, the traceback with --debug
        print(f"hw4lib {command}: internal error {type(err).__name__}: {_one_line(err)} (rerun with --debug "
              "for the traceback)", file=sys.stderr)  # fmt: skip
        return 1

