"""The report room's commands: ``report`` (a report folder from runs), ``demo`` and ``study`` (protocols)."""

from __future__ import annotations

import argparse
from typing import Any

from hw4lib import paths
from hw4lib.experiments import DEMO_REPORT, DEMO_SNAPSHOT, run_report
from hw4lib.study.protocol import SEED_LOSSES, STUDY_SEEDS, data_jobs, data_prefix, run_demo, run_study
from hw4lib.synth.study_set import STUDY_DIR

__all__ = ["add_commands"]


def _report(args: argparse.Namespace) -> int:
    runs: str | list[str] = args.runs[0] if len(args.runs) == 1 else list(args.runs)
    executed = run_report(runs, out=args.out, data_dir=args.data_dir, kernel_name=args.kernel)
    out = paths.relative(paths.output(args.out))
    notebook = paths.relative(executed)
    print(f"report written: {out}/report.md, {out}/report.html (executed notebook: {notebook})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    return run_demo(force=args.force, kernel_name=args.kernel)


def _numbers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds are whole numbers separated by commas, e.g. 0,1,2 (got {text!r})"
        ) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _study(args: argparse.Namespace) -> int:
    own = args.data is not None
    if not own:
        ignored = [
            flag
            for flag, value in (
                ("--recipe", args.recipe),
                ("--preset", args.preset),
                ("--seeds", args.seeds),
                ("--losses", args.losses),
                ("--prefix", args.prefix),
            )
            if value
        ]
        if ignored:
            raise ValueError(
                f"{', '.join(ignored)} choose the study of a data set of one's own: add --data "
                "DIR (e.g. --data data/hw4_realse_dataset), or leave them out for the loss study"
            )
        return run_study(data_dir=args.data_dir or STUDY_DIR, force=args.force, kernel_name=args.kernel,
                         scale=args.scale, dry_run=args.dry_run)  # fmt: skip
    if args.scale:
        raise ValueError(
            "--scale is the loss study's longer series; with --data, size the runs by the recipe"
        )
    if not paths.resolve(args.data).is_dir():
        raise FileNotFoundError(
            f"--data {args.data}: no such folder; give a data set in the course layout (train/degraded, "
            "train/clean), e.g. --data data/hw4_realse_dataset"
        )
    recipe = args.recipe or "seed"
    prefix = args.prefix or data_prefix(args.data, recipe, args.preset)
    jobs = data_jobs(args.data, recipe=recipe, preset=args.preset, seeds=args.seeds or STUDY_SEEDS,
                     losses=args.losses or SEED_LOSSES, prefix=prefix)  # fmt: skip
    if args.allow_long_cpu:
        jobs = [type(j)(j.name, j.loss, {**j.parameters, "allow_long_cpu": True}) for j in jobs]
    return run_study(data_dir=args.data, prefix=prefix, out=args.out, force=args.force,
                     kernel_name=args.kernel, jobs=jobs, dry_run=args.dry_run)  # fmt: skip


def add_commands(sub: Any) -> None:
    """Add ``report``, ``demo`` and ``study`` to the ``python -m hw4lib`` subcommands."""
    p = sub.add_parser(
        "report",
        help="write a report folder (report.md, report.html, tables, figures, snapshot) from run folders",
        description="Build the tables, figures and report from existing runs (or a committed snapshot); "
        "trains nothing. Default: rebuild the committed demo report from its snapshot.",
    )
    p.add_argument(
        "--runs",
        nargs="+",
        default=[DEMO_SNAPSHOT],
        help="run folders or a glob, e.g. 'runs/demo-*' (default: %(default)s)",
    )
    p.add_argument("--out", default=DEMO_REPORT, help="the report folder to write (default: %(default)s)")
    p.add_argument(
        "--data-dir", default=None, help="data set for the visual comparisons (default: each run's own)"
    )
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: %(default)s)")
    p.set_defaults(func=_report)

    p = sub.add_parser(
        "demo",
        help="the main job on CPU: demo data, the l1 / l1_ssim / mse variants, then the report",
        description="Generate data/demo if missing, train the three loss variants with the CPU demo recipe, "
        "and write the report. Finished variants are reused unless --force.",
    )
    p.add_argument("--force", action="store_true", help="re-train variants that already finished")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: %(default)s)")
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "study",
        help="the loss study (every loss x 3 seeds at equal compute, then its report), or with --data the "
        "seed solution's loss experiment on a data set of one's own",
        description="Without --data: train the study's runs on the study set (built if missing), then write "
        "the report of every finished study run in runs/study-report. With --data: the seed solution's "
        "experiment (L1, MSE, L1+SSIM) with seeds on a course-layout set, e.g. the course's data on a GPU; "
        "its validation pairs are the recipe's share of each type's training pairs. Every run is "
        "estimated before the first starts and the plan is printed with its total. Resumable: finished "
        "runs are skipped.",
    )
    p.add_argument(
        "--scale",
        action="store_true",
        help="the loss study's scale series instead: L1, MSE and L1+SSIM at 4x the steps, 3 seeds each",
    )
    p.add_argument(
        "--data",
        default=None,
        help="a course-layout data set of one's own, e.g. data/hw4_realse_dataset (default: the study set)",
    )
    p.add_argument("--recipe", default=None, help="with --data: the recipe of every run (default: seed)")
    p.add_argument("--preset", default=None, help="with --data: the model size (default: the recipe's)")
    p.add_argument("--seeds", type=_numbers, default=None, help="with --data: e.g. 0,1,2 (the default)")
    p.add_argument(
        "--losses",
        type=_names,
        default=None,
        help=f"with --data: loss specs separated by commas (default: {','.join(SEED_LOSSES)})",
    )
    p.add_argument(
        "--prefix",
        default=None,
        help="with --data: run names <prefix>-<loss>-s<seed> (default: <data folder>-<recipe>[-<preset>])",
    )
    p.add_argument("--out", default=None, help="the report folder (default: runs/<prefix>-report)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan and its estimated total; train nothing"
    )
    p.add_argument(
        "--allow-long-cpu",
        action="store_true",
        help="train even when a run's estimate says hours on a CPU (else: refused before the first run)",
    )
    p.add_argument("--data-dir", default=None, help="the study set (default: data/study)")
    p.add_argument("--force", action="store_true", help="re-train runs that already finished")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: %(default)s)")
    p.set_defaults(func=_study)
