"""The two protocols that end in a report: the demo (``make demo``) and the loss study (``make study``).

- **demo**: the demo data (generated if missing), the three loss variants on the CPU ``demo`` recipe, then
  their report in ``runs/demo-report/``.
- **study**: every loss at three seeds and the same compute on the study set (real Rain100L rain and synthetic
  snow over the same scenes, built if missing), a compute series of one loss, and (``scale=True``) the seed
  solution's three losses at four times the steps; then the report of every finished study run.
- **study on a data set of one's own** (``data_jobs``, e.g. the course's data on a GPU): the seed solution's
  loss experiment with seeds and a recipe, its validation split taken from the training pairs.

Every run is estimated before the first one starts (:func:`plan_jobs`: FLOPs and memory counted on the
``meta`` device, the device's measured speed); the plan and its total are printed, and a run that would not
fit, or would take hours on a CPU, stops the study before anything is trained.

Both run through :func:`hw4lib.experiments.run_jobs` (one execution of ``notebooks/train.ipynb`` per run,
resumable: finished runs are skipped) and write only git-ignored folders.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hw4lib import paths, synth
from hw4lib.config import RECIPES, TrainConfig, format_duration, make_config, parse_duration
from hw4lib.device import resolve_device
from hw4lib.experiments import (
    DEFAULT_LOSSES,
    DEMO_RUN_REPORT,
    Job,
    describe_error,
    run_jobs,
    run_report,
    run_variants,
)
from hw4lib.planning import Estimate, check_estimate, estimate_run
from hw4lib.runs import is_finished, safe_name, variant_name
from hw4lib.synth.study_set import STUDY_DIR, build_study_dataset

__all__ = [
    "STUDY_RECIPE",
    "STUDY_LOSSES",
    "STUDY_SEEDS",
    "COMPUTE_STEPS",
    "SCALE_LOSSES",
    "SEED_LOSSES",
    "study_jobs",
    "scale_jobs",
    "data_jobs",
    "data_prefix",
    "StudyPlan",
    "plan_jobs",
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
SEED_LOSSES = ("l1", "mse", "l1_ssim")  # the seed solution's loss experiment (its report's three)
SCALE_LOSSES = SEED_LOSSES  # at SCALE x the study's steps
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


def data_prefix(data_dir: str, recipe: str, preset: str | None = None) -> str:
    """The run-name prefix of a study of one's own: ``<data folder>-<recipe>[-<preset>]``, folder-safe."""
    return safe_name("-".join([Path(data_dir).name or "data", recipe, *([preset] if preset else [])]))


def data_jobs(
    data_dir: str,
    recipe: str = "seed",
    preset: str | None = None,
    seeds: Sequence[int] = STUDY_SEEDS,
    losses: Sequence[str] = SEED_LOSSES,
    prefix: str | None = None,
) -> list[Job]:
    """The seed solution's loss experiment with seeds on a course-layout set of one's own (e.g. the course's
    data): ``<prefix>-<loss>-s<seed>`` for every loss and seed, trained with ``recipe`` (and ``preset`` when
    given); the validation pairs are the recipe's share of each type's training pairs (``val_fraction``,
    drawn with each run's seed) unless the set has a ``split.csv``. ``prefix``: the data folder's name and the
    recipe (and preset)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if not losses or not seeds:
        raise ValueError("a study needs at least one loss and one seed (e.g. --losses l1,mse --seeds 0,1,2)")
    prefix = prefix or data_prefix(data_dir, recipe, preset)
    base: dict[str, Any] = {"recipe": recipe, "data_dir": data_dir, "min_gain_db": None}
    if preset:
        base["preset"] = preset
    return [
        Job(variant_name(safe_name(prefix), f"{loss}-s{seed}"), loss, {**base, "seed": int(seed)})
        for seed in seeds
        for loss in losses
    ]


# ----------------------------------------------------------------------------------------------------------
# the plan: every run estimated before the first starts

_CONFIG_FIELDS = {f.name for f in fields(TrainConfig)}


def job_config(job: Job) -> TrainConfig:
    """The config the training notebook builds for ``job`` (its recipe, then its values)."""
    params = dict(job.parameters)
    values = {k: v for k, v in params.items() if k in _CONFIG_FIELDS and k != "recipe"}
    return make_config(params.get("recipe"), **values, loss=job.loss, name=job.name)


@dataclass
class StudyPlan:
    """What a study will run and cost, estimated before its first step: per job its estimate (``None``:
    finished already, skipped) and the seconds it should take."""

    device: str
    jobs: list[tuple[Job, Estimate | None, float]]  # (job, estimate or None when skipped, seconds)

    @property
    def todo(self) -> list[Job]:
        return [job for job, estimate, _ in self.jobs if estimate is not None]

    @property
    def total_s(self) -> float:
        return sum(seconds for _, estimate, seconds in self.jobs if estimate is not None)

    def describe(self) -> str:
        """The plan, a line per group of runs that cost the same, and the total."""
        lines, groups = [], {}
        for job, estimate, seconds in self.jobs:
            if estimate is not None:
                key = (estimate.step_gflop, estimate.steps, round(seconds))
                groups.setdefault(key, [estimate, seconds, []])[2].append(job.name)
        skipped = len(self.jobs) - len(self.todo)
        lines.append(
            f"plan: {len(self.todo)} run(s) to train on this {self.device}"
            + (f" ({skipped} finished already, skipped)" if skipped else "")
        )
        for estimate, seconds, names in groups.values():
            steps = "sized by its time budget" if estimate.steps is None else f"{estimate.steps:,} steps"
            names_text = names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]}"
            lines.append(
                f"  {len(names)} x {format_duration(seconds)} ({steps} of {estimate.step_gflop:,.0f} GFLOP, "
                f"{estimate.device_gb:.1f} GB): {names_text}"
            )
        lines.append(
            f"estimated total: {format_duration(self.total_s)} of training on this {self.device} "
            "(FLOPs counted on the meta device at this device's measured speed; validations not included)"
        )
        return "\n".join(lines)


def plan_jobs(jobs: Sequence[Job], force: bool = False, device: str = "auto") -> StudyPlan:
    """Estimate every job that will run (finished ones are skipped unless ``force``) on ``device`` before any
    starts; a run that would not fit the memory or would take hours on a CPU raises the one-line refusal of
    :func:`hw4lib.planning.check_estimate`, naming the run. Runs of the same settings share one estimate."""
    target = resolve_device(device)
    cache: dict[str, Estimate] = {}
    planned = []
    for job in jobs:
        if not force and is_finished(paths.runs_dir() / job.name):
            planned.append((job, None, 0.0))
            continue
        config = job_config(job)
        shared = {k: v for k, v in config.to_dict().items() if k not in ("name", "seed", "loss")}
        key = json.dumps(shared, sort_keys=True, default=str)
        if key not in cache:
            speed = next((e.tflops for e in cache.values()), None)  # one speed measurement for the plan
            estimate = estimate_run(config, target, tflops=speed)
            try:
                check_estimate(config, estimate)
            except ValueError as err:
                raise type(err)(f"run {job.name}: {err}") from None
            cache[key] = estimate
        estimate = cache[key]
        seconds = estimate.seconds if estimate.seconds is not None else parse_duration(config.time_budget)
        planned.append((job, estimate, float(seconds)))
    return StudyPlan(target.type, planned)


def run_study(
    data_dir: str = STUDY_DIR,
    prefix: str = "study",
    out: str | None = None,
    force: bool = False,
    kernel_name: str = "python3",
    jobs: list[Job] | None = None,
    scale: bool = False,
    dry_run: bool = False,
) -> int:
    """A study, resumably: the data set (the study set is built if missing), the plan of every run to train
    (printed, with its total, before the first step; ``dry_run``: only the plan), every run (finished ones
    skipped unless ``force``), then the report in ``out`` (default ``runs/<prefix>-report``) of every finished
    run of the study. ``jobs``: the runs of a study of one's own (:func:`data_jobs`); by default those of
    :func:`study_jobs`, or of :func:`scale_jobs` with ``scale``. Returns an exit code."""
    started = time.perf_counter()
    root = paths.resolve(data_dir)
    own = jobs is not None
    if not own and not (root / synth.MANIFEST).is_file():
        if dry_run:
            raise FileNotFoundError(
                f"the study set {paths.relative(root)} is not built yet, so its runs cannot be estimated: "
                "build it with python -m hw4lib study-data (make study builds it too)"
            )
        print(f"building the study set in {paths.relative(root)} ...", flush=True)
        summary = build_study_dataset(root)
        print(f"study set: {summary['source']}" + (f" ({summary['note']})" if summary.get("note") else ""))
    if own:
        every = list(jobs)
    else:
        every = study_jobs(paths.relative(root), prefix) + scale_jobs(paths.relative(root), prefix)
        jobs = scale_jobs(paths.relative(root), prefix) if scale else study_jobs(paths.relative(root), prefix)
    out = out or f"runs/{prefix}-report"
    plan = plan_jobs(jobs, force=force)
    print(plan.describe(), flush=True)
    if dry_run:
        return 0
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
    print(
        f"study finished in {format_duration(total)} (runs {format_duration(trained)}; the plan said "
        f"{format_duration(plan.total_s)} of training): {out}/report.html"
    )
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
