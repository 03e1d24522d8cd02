"""The two protocols that end in a report: the demo (``make demo``) and the loss study (``make study``).

- **demo**: the demo data (generated if missing), the three loss variants on the CPU ``demo`` recipe, then
  their report in ``runs/demo-report/``.
- **study**: every loss at three seeds and the same compute on the study set (real Rain100L rain and synthetic
  snow over the same scenes, built if missing), a compute series of one loss, and (``scale=True``) the seed
  solution's three losses at four times the steps; then the report of every finished study run.

Both run through :func:`hw4lib.experiments.run_jobs` (one execution of ``notebooks/train.ipynb`` per run,
resumable: finished runs are skipped) and write only git-ignored folders.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from hw4lib import paths, synth
from hw4lib.config import RECIPES
from hw4lib.experiments import (
    DEFAULT_LOSSES,
    DEMO_RUN_REPORT,
    Job,
    describe_error,
    run_jobs,
    run_report,
    run_variants,
)
from hw4lib.runs import is_finished, variant_name
from hw4lib.synth.study_set import STUDY_DIR, build_study_dataset

__all__ = [
    "STUDY_RECIPE",
    "STUDY_LOSSES",
    "STUDY_SEEDS",
    "COMPUTE_STEPS",
    "SCALE_LOSSES",
    "study_jobs",
    "scale_jobs",
    "run_study",
    "run_demo",
]


# ----------------------------------------------------------------------------------------------------------
# the loss study

STUDY_RECIPE = "study"  # hw4lib.config.RECIPES["study"]: the same fixed steps for every run
# the seed solution's three, the public winners' edge term, and two losses that test the study's own
# hypothesis (MSE helps heavily degraded images, L1 the light ones): by type (the course names each pair's
# type) and by error size per pixel (the reverse Huber loss, which needs no type)
STUDY_LOSSES = ("l1", "mse", "l1_ssim", "l1+0.1*edge_y", "mse@snow+l1_ssim@rain", "berhu")
STUDY_SEEDS = (0, 1, 2)
COMPUTE_STEPS = (6, 12, 25)  # steps per epoch of the compute series (the study runs themselves have 50)
COMPUTE_LOSS = "l1"
SCALE_LOSSES = ("l1", "mse", "l1_ssim")  # the seed solution's three, at SCALE x the study's steps
SCALE = 4


def study_jobs(
    data_dir: str = STUDY_DIR,
    prefix: str = "study",
    losses: tuple[str, ...] = STUDY_LOSSES,
    seeds: tuple[int, ...] = STUDY_SEEDS,
    compute_steps: tuple[int, ...] = COMPUTE_STEPS,
) -> list[Job]:
    """The study's runs: ``<prefix>-<loss>-s<seed>`` for every loss and seed, then the compute series
    ``<prefix>-steps<N>-<loss>-s<seed>`` (the same recipe cut to ``N`` steps per epoch, so each run still
    completes its warm-up and cosine)."""
    base = _base(data_dir)
    jobs = [
        Job(variant_name(prefix, f"{loss}-s{seed}"), loss, {**base, "seed": seed})
        for seed in seeds
        for loss in losses
    ]
    epochs = RECIPES[STUDY_RECIPE]["epochs"]
    for steps in compute_steps:
        jobs += [
            Job(variant_name(prefix, f"steps{steps * epochs}-{COMPUTE_LOSS}-s{seed}"), COMPUTE_LOSS,
                {**base, "seed": seed, "max_train_steps": steps})
            for seed in seeds
        ]  # fmt: skip
    return jobs


def scale_jobs(
    data_dir: str = STUDY_DIR,
    prefix: str = "study",
    losses: tuple[str, ...] = SCALE_LOSSES,
    seeds: tuple[int, ...] = STUDY_SEEDS,
    scale: int = SCALE,
) -> list[Job]:
    """The study's losses at ``scale`` times its steps: ``<prefix>-steps<N>-<loss>-s<seed>``, the same recipe
    with ``scale`` times the epochs (same steps per epoch, warm-up and validation every 2 epochs, so the same
    number of steps between validations; the cosine spans the longer run)."""
    recipe = RECIPES[STUDY_RECIPE]
    epochs = scale * recipe["epochs"]
    steps = epochs * recipe["max_train_steps"]
    return [
        Job(variant_name(prefix, f"steps{steps}-{loss}-s{seed}"), loss, {**_base(data_dir), "seed": seed,
            "epochs": epochs})
        for seed in seeds
        for loss in losses
    ]  # fmt: skip


def _base(data_dir: str) -> dict[str, Any]:
    return {"recipe": STUDY_RECIPE, "data_dir": data_dir, "min_gain_db": None}  # every loss is reported


def run_study(
    data_dir: str = STUDY_DIR,
    prefix: str = "study",
    out: str = "runs/study-report",
    force: bool = False,
    kernel_name: str = "python3",
    jobs: list[Job] | None = None,
    scale: bool = False,
) -> int:
    """The study, resumably: the data set (built if missing), every run of :func:`study_jobs` (``scale``: of
    :func:`scale_jobs`; finished ones skipped unless ``force``), then the report in ``out`` of every finished
    run of both. Returns an exit code."""
    started = time.perf_counter()
    root = paths.resolve(data_dir)
    if not (root / synth.MANIFEST).is_file():
        print(f"building the study set in {paths.relative(root)} ...", flush=True)
        summary = build_study_dataset(root)
        print(f"study set: {summary['source']}" + (f" ({summary['note']})" if summary.get("note") else ""))
    every = study_jobs(paths.relative(root), prefix) + scale_jobs(paths.relative(root), prefix)
    if jobs is None:
        jobs = scale_jobs(paths.relative(root), prefix) if scale else study_jobs(paths.relative(root), prefix)
    results = run_jobs(jobs, force=force, kernel_name=kernel_name)
    failed = [r for r in results if not r.ok]
    trained = time.perf_counter() - started
    folders = dict.fromkeys([*(paths.runs_dir() / j.name for j in every), *(r.run_dir for r in results)])
    finished = [paths.relative(folder) for folder in folders if is_finished(folder)]
    if not finished:
        print("no study run finished; no report written", file=sys.stderr)
        return 1
    print(f"writing the study report from {len(finished)} run(s) into {out} ...", flush=True)
    try:
        run_report(finished, out=out, kernel_name=kernel_name)
    except Exception as err:  # noqa: BLE001 -- say what failed and where to look
        print(f"the report failed: {describe_error(err)}", file=sys.stderr)
        return 1
    total = time.perf_counter() - started
    print(f"study finished in {total:.0f} s (runs {trained:.0f} s): {out}/report.html")
    for r in failed:
        print(f"run {r.name} failed: {r.error}", file=sys.stderr)
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------------------------
# the demo


def run_demo(
    force: bool = False, kernel_name: str = "python3", parameters: Mapping[str, Any] | None = None
) -> int:
    """Demo data (generated if missing), the three loss variants on the CPU ``demo`` recipe, then their report
    in ``runs/demo-report/``: everything goes into git-ignored folders, so the working tree stays as it was
    (the committed ``report/demo/`` is the reference made the same way; ``make publish-demo`` replaces it).

    Returns an exit code: 0 when every variant finished and the report was written.
    """
    t0 = time.perf_counter()
    data = paths.data_dir("demo")
    if not (data.is_dir() and any(data.iterdir())):
        print(f"generating the demo data set in {data} ...", flush=True)
    data = synth.ensure_demo_dataset(data)  # the same files `make demo-data` writes
    params = {
        "recipe": "demo",
        "data_dir": paths.relative(data),
        **(parameters or {}),
    }
    results = run_variants(
        DEFAULT_LOSSES, prefix="demo", parameters=params, force=force, kernel_name=kernel_name
    )
    failed = [r for r in results if not r.ok]
    t_train = time.perf_counter() - t0
    # a run whose notebook failed after training (e.g. the gain check) is still reported, and flagged below
    finished = [paths.relative(r.run_dir) for r in results if is_finished(r.run_dir)]
    if not finished:
        print("no variant finished; no report written", file=sys.stderr)
        return 1
    print(f"writing the report from {len(finished)} run(s) ...", flush=True)
    try:
        executed = run_report(finished, out=DEMO_RUN_REPORT, kernel_name=kernel_name)
    except Exception as err:  # noqa: BLE001 -- say what failed and where to look, without a 200-line traceback
        print(f"the report failed: {describe_error(err)} (see runs/demo-report.ipynb)", file=sys.stderr)
        return 1
    total = time.perf_counter() - t0
    print(
        f"demo finished in {total:.0f} s (variants {t_train:.0f} s, report {total - t_train:.0f} s): "
        f"{DEMO_RUN_REPORT}/report.html; executed notebooks in runs/ ({executed.name})"
    )
    for r in failed:
        print(f"variant {r.name} failed: {r.error}", file=sys.stderr)
    return 1 if failed else 0
