"""The report room's commands: ``report`` (a report folder from runs), ``demo`` and ``study`` (protocols)."""

from __future__ import annotations

import argparse
from typing import Any

from hw4lib import paths
from hw4lib.experiments import DEMO_REPORT, DEMO_SNAPSHOT, run_report
from hw4lib.study.protocol import run_demo, run_study
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


def _study(args: argparse.Namespace) -> int:
    return run_study(
        data_dir=args.data_dir or STUDY_DIR, force=args.force, kernel_name=args.kernel, scale=args.scale
    )


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
        help="the loss study: every loss x 3 seeds at equal compute, a compute series, then its report",
        description="Train the study's runs through notebooks/train.ipynb on the study set (built if "
        "missing), then write the report of every finished study run in runs/study-report. Resumable: "
        "finished runs are skipped.",
    )
    p.add_argument("--scale", action="store_true",
                   help="the scale series instead: L1, MSE and L1+SSIM at 4x the steps, 3 seeds each")
    p.add_argument("--data-dir", default=None, help="the study set (default: data/study)")
    p.add_argument("--force", action="store_true", help="re-train runs that already finished")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: %(default)s)")
    p.set_defaults(func=_study)
