"""Training engine: one config in, one run folder out; the same code on CPU, one GPU or many (torchrun + DDP).

``fit(config)`` trains PromptIR on paired (degraded, clean) images and writes ``runs/<name>/`` (the files are
described in ``hw4lib.runs``). It reads as its phases: prepare the run folder, build the data, build the model
and optimiser, restore a resume, then per epoch train and end the epoch (validate, checkpoint, log).

Its pieces (processes, randomness, the global batch order, the schedule, the EMA) are in :mod:`hw4lib.loop`.
Random crops and flips are derived by the dataset from (seed, epoch, index), so they do not depend on which
process or worker loads an image: runs are reproducible on CPU and resumable mid-way.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Subset

from hw4lib import paths, runs
from hw4lib.config import TrainConfig, format_duration
from hw4lib.data import (
    KINDS,
    PairedDataset,
    balanced,
    center_crop,
    to_float,
    to_uint8,
)
from hw4lib.device import amp_dtype, autocast, precision_name
from hw4lib.loop import (
    Dist,
    EpochView,
    GlobalOrderBatches,
    ModelEMA,
    agree,
    collate,
    gather_rows,
    init_distributed,
    lr_schedule,
    mean_over_processes,
    rng_state,
    seed_everything,
    seed_worker,
    set_rng_state,
)
from hw4lib.losses import build_loss
from hw4lib.metrics import psnr
from hw4lib.model import build_model, count_parameters
from hw4lib.paths import save_png_atomic, write_json_atomic
from hw4lib.planning import (
    LongRunRefused,
    Plan,
    RunWontFit,
    Timings,
    check_estimate,
    estimate_run,
    plan_run,
    refusal,
)
from hw4lib.scoring import samples_from_dataset, score_model, summarise

__all__ = [
    "fit",
    "OutOfMemory",
    "initial_model",
    "TrainingDiverged",
    "evaluate",
    "identity_baseline",
]


PROBE_WARMUP = 2  # untimed optimiser steps first (allocations, kernel choice, compilation)
PROBE_STEPS = 5  # then timed steps (their median) that size the run before its first real step
PROBE_IMAGES = 4  # validation images timed to estimate a validation pass
CHECK_EVERY = 50  # on a GPU, steps between checks that the loss is finite (each check waits for the GPU)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left in place."""


class OutOfMemory(RuntimeError):
    """The device ran out of memory; the message names the settings that lower what the run needs."""


# ----------------------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Any,
    device: torch.device | str = "cpu",
    crop: int | None = None,
    amp: torch.dtype | None = None,
    _ddp: Dist | None = None,
) -> dict[str, float]:
    """Mean PSNR/SSIM of the clamped model output over a validation dataset (items as ``PairedDataset``
    gives them), overall and per degradation type (``psnr_rain``, ...), one whole image (or center crop) at a
    time, in ``amp`` precision (``None``: float32)."""
    ddp = _ddp or Dist()
    samples = samples_from_dataset(dataset, range(ddp.rank, len(dataset), ddp.world), crop)
    per_image = score_model(model, samples, device=torch.device(device), amp=amp is not None)
    return summarise(gather_rows(per_image, ddp))


def identity_baseline(dataset: Any, crop: int | None = None) -> dict[str, float]:
    """PSNR/SSIM of the degraded inputs themselves (no restoration): the score a model has to beat."""
    per_image = score_model(lambda x: x, samples_from_dataset(dataset, range(len(dataset)), crop))
    return summarise(per_image)


# ----------------------------------------------------------------------------------------------------------
# Training: fit() and its phases


def fit(
    config: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> runs.Run:
    """Train a model as ``config`` says and write the run folder; returns it as a :class:`hw4lib.runs.Run`.

    ``resume=True`` continues from ``last.pt`` (starts fresh when there is none). Without it, a folder
    that already holds a run raises ``hw4lib.runs.RunExistsError`` unless ``overwrite=True``. Nothing is
    written before the run is estimated, built and planned: a run refused (too long for a CPU, too large for
    the memory) or failing to start leaves no folder behind, and ``overwrite`` replaces the old run only then.
    ``on_epoch_end(row)`` is called after each epoch's checkpoint is written (the history row as a dict).
    Under ``torchrun`` every process calls ``fit`` with the same config; the main process writes the folder.
    Raises :class:`TrainingDiverged` when the loss becomes NaN/inf, :class:`OutOfMemory` when the device
    runs out of memory.
    """
    ddp, device = init_distributed(config.device)
    try:
        return _fit(config, ddp, device, resume, overwrite, on_epoch_end)
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if not _is_out_of_memory(err):
            raise
        raise OutOfMemory(_out_of_memory_message(config, device)) from err
    finally:
        if ddp.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _is_out_of_memory(err: BaseException) -> bool:
    text = str(err)
    cpu = "can't allocate memory" in text or "out of memory" in text
    return isinstance(err, torch.OutOfMemoryError) or cpu


def _out_of_memory_message(config: TrainConfig, device: torch.device) -> str:
    crop = f"{config.patch_size} px crops" if config.patch_size else "whole images"
    kept = f"; {paths.relative(config.resolved_run_dir() / runs.LAST)} is kept, resume it with --resume"
    kept = kept if (config.resolved_run_dir() / runs.LAST).is_file() else ""
    return (
        f"out of memory on the {device.type} training the {config.preset} model at batch {config.batch_size} "
        f"of {crop}: lower batch_size or patch_size, use a smaller preset or grad_checkpointing=True{kept}"
    )


def initial_model(config: TrainConfig) -> nn.Module:
    """The untrained model of a run (seed the RNG first for reproducible weights)."""
    model = build_model(config.preset, **config.model_kwargs())
    if config.identity_init:
        # With the global residual (output = conv(features) + input), a zero last convolution makes the
        # untrained model return its input: no early steps spent unlearning random noise on clean pixels.
        nn.init.zeros_(model.output.weight)
        if model.output.bias is not None:
            nn.init.zeros_(model.output.bias)
    return model


@dataclass
class _Run:
    """What a training run holds while it trains; the phases below fill it in order."""

    config: TrainConfig
    ddp: Dist
    device: torch.device
    run_dir: Path
    log: runs.RunLog
    amp_dtype: torch.dtype | None
    started: float
    # data
    train_pairs: list[Any] = field(default_factory=list)
    data_root: Path | None = None
    train_set: Any = None
    val_set: Any = None
    loader: Any = None
    sampler: Any = None
    natural_steps: int = 0  # steps per epoch that show every crop once (len(train_set) / global batch)
    plan: Plan | None = None
    # model and optimisation
    model: Any = None
    train_model: Any = None
    ema: ModelEMA | None = None
    criterion: Any = None
    optimizer: Any = None
    scheduler: Any = None
    scaler: Any = None
    model_config: dict[str, Any] = field(default_factory=dict)
    n_params: int = 0
    # progress (what a resume restores)
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": 0, "val_psnr": -math.inf})
    first_epoch: int = 1
    elapsed_before: float = 0.0
    global_step: int = 0
    baseline: dict[str, float] = field(default_factory=dict)
    resumed: dict[str, Any] | None = None  # the checkpoint a resume started from
    loop_started: float = 0.0  # when the first step of this session began
    epochs_this_session: int = 0
    board: Any = None  # a TensorBoard SummaryWriter (config.tensorboard, main process)

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.ddp.world

    @property
    def steps_per_epoch(self) -> int:
        assert self.plan is not None, "the run has no plan yet"
        return self.plan.steps_per_epoch

    def wall(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started


def _fit(
    config: TrainConfig,
    ddp: Dist,
    device: torch.device,
    resume: bool,
    overwrite: bool,
    on_epoch_end: Callable[[dict[str, Any]], None] | None,
) -> runs.Run:
    started = time.perf_counter()
    run_dir, resuming = _check_run_dir(config, ddp, resume, overwrite)
    log = runs.RunLog() if ddp.main else runs.RunLog(silent=True)
    if resume and not resuming:
        log(f"no {paths.relative(run_dir / runs.LAST)} to resume from: starting a fresh run")
    seed_everything(config.seed)
    if not resuming:  # a resumed run passed this before it first started
        _check_estimate(config, ddp, device, log)
    _speed_switches(config, device)
    r = _Run(config, ddp, device, run_dir, log, _amp_dtype(config, device), started)
    _build_data(r)
    _build_model(r)
    if resuming:
        _restore_resume(r)
    r.baseline = identity_baseline(r.val_set, config.val_crop)
    _make_plan(r)
    _open_run_dir(r, overwrite and not resuming)
    _apply_plan(r)
    r.loop_started = time.perf_counter()
    for epoch in range(r.first_epoch, r.plan.epochs + 1):
        row = _train_epoch(r, epoch)
        _end_epoch(r, row, on_epoch_end)
    return _finish(r)


def _amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA when ``config.amp``; CPU training stays float32 (reproducible)."""
    return amp_dtype(device, config.amp and device.type == "cuda")


def _check_run_dir(config: TrainConfig, ddp: Dist, resume: bool, overwrite: bool) -> tuple[Path, bool]:
    """The run folder and whether a resume will happen; nothing is written. A folder that already holds a
    run is refused unless ``resume`` or ``overwrite``; every process gets the refusal."""
    run_dir = config.resolved_run_dir()
    resuming = resume and (run_dir / runs.LAST).is_file()
    refused = None
    if ddp.main and not resuming and not overwrite and runs.holds_run(run_dir):
        refused = runs.RunExistsError(
            f"{paths.relative(run_dir)} already holds a run; pass resume=True (--resume) to continue it or "
            "overwrite=True (--overwrite) to start over, or choose another name"
        )
    agree(ddp, refused, "the run folder check")
    return run_dir, resuming


def _check_estimate(config: TrainConfig, ddp: Dist, device: torch.device, log: runs.RunLog) -> None:
    """The estimate before anything is allocated (FLOPs and memory on the meta device), logged; a run that
    would not fit the memory or would take hours on a CPU is refused here, in one line with the fix."""
    refused = None
    if config.tensorboard and importlib.util.find_spec("tensorboard") is None:
        refused = ValueError(
            "tensorboard=True needs the tensorboard package: pip install tensorboard (or the project's [tb] "
            "extra: pip install -e '.[tb]'), or train without it"
        )
    elif ddp.main:
        estimate = estimate_run(config, device, ddp.world)
        log(estimate.describe())
        try:
            check_estimate(config, estimate)
        except (RunWontFit, LongRunRefused) as err:
            refused = err
    agree(ddp, refused, "the estimate")


def _open_run_dir(r: _Run, overwrite: bool) -> None:
    """Create the run folder (replacing an earlier run when ``overwrite``), write config.json and plan.json,
    and the log so far: the run has been estimated, built and planned."""
    if r.ddp.main:
        if overwrite:
            runs.clear_run(r.run_dir)
        r.run_dir.mkdir(parents=True, exist_ok=True)
        runs.write_config(r.run_dir, r.config)
        write_json_atomic(runs.jsonable(r.plan.to_dict()), r.run_dir / runs.PLAN)
        r.log.attach(r.run_dir)
        if r.config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # needs the optional tensorboard package

            first = (r.first_epoch - 1) * r.plan.steps_per_epoch  # a resume drops what came after last.pt
            r.board = SummaryWriter(str(r.run_dir / runs.TENSORBOARD), purge_step=first or None)


def _speed_switches(config: TrainConfig, device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not config.deterministic and config.patch_size is not None
        torch.set_float32_matmul_precision("high")
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)


def _default_workers(config: TrainConfig, device: torch.device, world: int) -> int:
    if config.num_workers >= 0:
        return config.num_workers
    if device.type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) // world - 1))


def _build_data(r: _Run) -> None:
    """Datasets (decoded once into memory), the seeded global batch order and the DataLoader."""
    config, ddp = r.config, r.ddp
    r.train_pairs, _, val_pairs, r.data_root = config.split()
    r.train_set = PairedDataset(
        r.train_pairs,
        patch_size=config.patch_size,
        augment=config.augment,
        cache=config.cache,
        repeat=config.patches_per_image,
        seed=config.seed,
        uint8=True,
    )
    r.val_set = PairedDataset(val_pairs, patch_size=None, augment=False, cache=config.cache)
    if config.cache:  # decode once, before DataLoader workers fork (they then share the pages)
        r.train_set.preload()
        r.val_set.preload()
    r.natural_steps = max(1, len(r.train_set) // r.global_batch)
    # the plan fixes the steps per epoch before the first step (the sampler reads it at every epoch)
    r.sampler = GlobalOrderBatches(
        len(r.train_set), config.batch_size, r.natural_steps, ddp.world, ddp.rank, config.seed
    )
    workers = _default_workers(config, r.device, ddp.world)
    r.loader = DataLoader(
        EpochView(r.train_set), batch_sampler=r.sampler, collate_fn=collate, num_workers=workers,
        pin_memory=r.device.type == "cuda", persistent_workers=workers > 0, worker_init_fn=seed_worker,
        prefetch_factor=4 if workers > 0 else None,
    )


def _build_model(r: _Run) -> None:
    """Model, loss, AdamW, loss scaling, EMA, DDP and compile (the schedule comes with the plan)."""
    config = r.config
    r.model = initial_model(config).to(r.device)
    r.model_config = {"preset": config.preset, **r.model.config}
    r.n_params = count_parameters(r.model)
    r.criterion = build_loss(config.loss, alpha=config.alpha).to(r.device)
    r.optimizer = torch.optim.AdamW(r.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    r.scaler = torch.amp.GradScaler("cuda", enabled=r.amp_dtype == torch.float16)
    r.ema = ModelEMA(r.model, config.ema) if config.ema > 0 else None
    r.train_model = r.model
    if r.ddp.active:
        r.train_model = nn.parallel.DistributedDataParallel(
            r.model, device_ids=[r.device.index] if r.device.type == "cuda" else None, broadcast_buffers=False
        )
    if config.compile:
        r.train_model = torch.compile(r.train_model)


def _restore_resume(r: _Run) -> None:
    """Weights, optimiser, scaler, EMA, history and RNG state of ``last.pt`` (the schedule: _apply_plan)."""
    last_path = r.run_dir / runs.LAST
    # loaded to the CPU: load_state_dict places weights and optimiser moments on the parameters' device (and
    # keeps AdamW's step counters on the CPU, where they cost no sync); RNG states must be CPU tensors
    ckpt = runs.load_checkpoint(last_path)
    r.model.load_state_dict(ckpt["train_model"] if ckpt.get("train_model") is not None else ckpt["model"])
    r.optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scaler"):
        r.scaler.load_state_dict(ckpt["scaler"])
    if r.ema is not None:
        if ckpt.get("ema") is None:
            raise ValueError(f"{last_path} was trained without EMA; resume with ema=0 or start a new run")
        r.ema.module.load_state_dict(ckpt["model"])
        r.ema.num_updates = int(ckpt["ema"]["num_updates"])
    r.history = list(ckpt["history"])
    r.best = dict(ckpt["best"])
    r.first_epoch = int(ckpt["epoch"]) + 1
    r.elapsed_before = float(ckpt.get("wall_seconds", 0.0))
    r.resumed = ckpt
    set_rng_state(ckpt["rng"])


# ----------------------------------------------------------------------------------------------------------
# The plan: measured before the first step


def _step(r: _Run, batch: dict[str, Any]) -> torch.Tensor:
    """One optimiser step on a batch; returns the (detached, not synchronised) loss."""
    x = to_float(batch["degraded"].to(r.device, non_blocking=True))
    y = to_float(batch["clean"].to(r.device, non_blocking=True))
    with autocast(r.device, r.amp_dtype):
        out = r.train_model(x)
    loss = r.criterion(out.float(), y, kinds=batch["kind_id"].to(r.device, non_blocking=True))
    r.optimizer.zero_grad(set_to_none=True)
    r.scaler.scale(loss).backward()
    if r.config.grad_clip > 0:
        r.scaler.unscale_(r.optimizer)
        torch.nn.utils.clip_grad_norm_(r.model.parameters(), r.config.grad_clip)
    r.scaler.step(r.optimizer)
    r.scaler.update()
    return loss.detach()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _probe(r: _Run) -> Timings:
    """Seconds per step, per validation pass and per epoch's checkpoints, measured on this device.

    The probe steps are thrown away: weights, optimiser and scaler state are restored afterwards, the EMA and
    the schedule are not touched, and the batches come from an epoch (0) that training never uses, so the run
    trains exactly as it would without the probe.
    """
    saved = copy.deepcopy((r.model.state_dict(), r.optimizer.state_dict(), r.scaler.state_dict()))
    r.model.train()
    r.sampler.set_epoch(0)
    r.sampler.steps = PROBE_WARMUP + PROBE_STEPS
    batches = iter(r.loader)
    for _ in range(PROBE_WARMUP):  # allocations, kernel choice, compilation: not timed
        _step(r, next(batches))
    _sync(r.device)
    times = []
    for _ in range(PROBE_STEPS):  # each step timed with its batch's loading; the median ignores a stall
        start = time.perf_counter()
        _step(r, next(batches))
        _sync(r.device)
        times.append(time.perf_counter() - start)
    step_s = float(np.median(times))
    r.model.load_state_dict(saved[0])
    r.optimizer.load_state_dict(saved[1])
    r.scaler.load_state_dict(saved[2])
    n_val = len(range(r.ddp.rank, len(r.val_set), r.ddp.world))
    k = min(PROBE_IMAGES, n_val)
    start = time.perf_counter()
    evaluate(r.eval_model, Subset(r.val_set, range(k)), r.device, r.config.val_crop, r.amp_dtype)
    _sync(r.device)
    validation_s = (time.perf_counter() - start) / max(k, 1) * n_val
    checkpoint_s = _time_checkpoints(r) if r.ddp.main else 0.0
    timings = torch.tensor([step_s, validation_s, checkpoint_s], dtype=torch.float64, device=r.device)
    if r.ddp.active:  # every process plans from the slowest one's timings
        dist.all_reduce(timings, op=dist.ReduceOp.MAX)
    return Timings(*(float(t) for t in timings.cpu()))


def _time_checkpoints(r: _Run) -> float:
    """Seconds to write an epoch's checkpoints as training does (last.pt and best.pt, each atomic and
    fsynced), into a temporary folder on the run folder's file system."""
    near = next(p for p in (r.run_dir, *r.run_dir.parents) if p.is_dir())
    with tempfile.TemporaryDirectory(prefix=".probe-", dir=near) as tmp:
        start = time.perf_counter()
        runs.save_checkpoint(_checkpoint(r, 0, 0.0), Path(tmp), best=True)
        return time.perf_counter() - start


def _make_plan(r: _Run) -> None:
    """Size the run from a probe on this device (:func:`hw4lib.planning.plan_run`; a resumed run keeps its
    plan), the main process's plan for every process; log it; refuse a CPU run measured at hours."""
    config = r.config
    previous = Plan.from_dict(r.resumed["plan"]) if r.resumed and r.resumed.get("plan") else None
    plan = plan_run(
        config, natural_steps=r.natural_steps, global_batch=r.global_batch, measure=lambda: _probe(r),
        elapsed=r.wall, previous=previous,
    )  # fmt: skip
    r.plan = _shared(plan, r.ddp)  # each process's clock differs: one plan, or their collectives mismatch
    r.log(
        f"run {paths.relative(r.run_dir)}: recipe {config.recipe or '-'}, preset {config.preset} "
        f"({r.n_params:,} parameters), loss {config.loss}, {len(r.train_pairs)} train / {len(r.val_set)} val "
        f"pairs from {paths.relative(r.data_root)}, {r.ddp.world} process(es) on {r.device.type}, "
        f"{precision_name(r.amp_dtype)}; identity PSNR {r.baseline['psnr']:.2f} dB"
        + (f"; resuming after epoch {r.first_epoch - 1}" if r.resumed else "")
    )
    r.log(r.plan.describe())
    refused = refusal(config, r.plan, r.device) if r.resumed is None else None
    if refused is not None:
        raise refused


def _shared(plan: Plan, ddp: Dist) -> Plan:
    """The main process's plan, in every process."""
    if not ddp.active:
        return plan
    box: list[Any] = [plan.to_dict() if ddp.main else None]
    dist.broadcast_object_list(box, src=0)
    return Plan.from_dict(box[0])


def _apply_plan(r: _Run) -> None:
    """The sampler's epoch length and the per-step warm-up + cosine schedule of the plan (continued on a
    resume: the horizon follows the plan, so resuming with more epochs stretches the cosine)."""
    plan = r.plan
    r.sampler.steps = plan.steps_per_epoch
    r.scheduler = torch.optim.lr_scheduler.LambdaLR(r.optimizer, lr_schedule(r.config, plan))
    if r.resumed is not None:
        r.scheduler.load_state_dict(r.resumed["scheduler"])
        # load_state_dict copied the saved schedule's fields into the schedule object: install a fresh one
        schedule = lr_schedule(r.config, plan)
        r.scheduler.lr_lambdas[0] = schedule
        for group, base_lr in zip(r.optimizer.param_groups, r.scheduler.base_lrs, strict=True):
            group["lr"] = base_lr * schedule(r.scheduler.last_epoch)
    r.global_step = (r.first_epoch - 1) * plan.steps_per_epoch


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, nbval, papermill)."""
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None else None  # type: ignore[attr-defined]
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _progress_kind(setting: bool | None) -> str | None:
    """``"widget"`` (a live bar in JupyterLab), ``"text"`` (a terminal) or ``None`` (off), from the config's
    ``progress`` alone: ``False`` off; ``True`` on; ``None`` where someone watches (a widget in a notebook
    when ipywidgets is installed, text on a terminal), off in logs. Sweeps pass ``progress=False``."""
    if setting is False:
        return None
    if _in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        return "widget"
    return "text" if setting or sys.stderr.isatty() else None


def _progress(total: int, desc: str, kind: str | None) -> Any:
    if kind == "widget":
        from tqdm.notebook import tqdm as bar
    else:
        from tqdm import tqdm as bar  # plain text: no widget warnings where ipywidgets is missing
    return bar(total=total, desc=desc, leave=False, disable=kind is None, dynamic_ncols=True, file=sys.stderr)


def _diverged(r: _Run, value: float, epoch: int, first: int, last: int, lr: float) -> TrainingDiverged:
    where = runs.LAST if (r.run_dir / runs.LAST).is_file() else "no checkpoint yet"
    steps = f"step {last}" if first == last else f"steps {first}-{last}"
    return TrainingDiverged(
        f"loss became {value} at epoch {epoch}, {steps} (global step {r.global_step}, lr {lr:.3g}); the last "
        f"good checkpoint is kept ({r.run_dir / where}). Lower lr (now {r.config.lr:g}), set grad_clip "
        "(e.g. 1.0) or turn amp off, and start again"
    )


def _train_epoch(r: _Run, epoch: int) -> dict[str, Any]:
    """One epoch of optimiser steps; returns the start of its history row (epoch, step, loss, lr, timing).

    The loss is summed on the device (float64): the host waits for the GPU only every ``CHECK_EVERY`` steps,
    to check that the loss is finite, and at the end of the epoch.
    """
    config, ddp = r.config, r.ddp
    epoch_start = time.perf_counter()
    r.model.train()
    r.sampler.set_epoch(epoch)
    check_every = 1 if r.device.type == "cpu" else CHECK_EVERY  # a CPU step waits for its result anyway
    loss_sum = torch.zeros((), dtype=torch.float64, device=r.device)
    checked_sum, checked_steps = 0.0, 0
    steps_done, lr_now = 0, r.optimizer.param_groups[0]["lr"]
    bar = _progress(
        r.plan.steps_per_epoch,
        f"epoch {epoch}/{r.plan.epochs}",
        _progress_kind(config.progress) if ddp.main else None,
    )
    for batch in r.loader:
        lr_now = r.optimizer.param_groups[0]["lr"]
        loss = _step(r, batch)
        r.scheduler.step()
        if r.ema is not None:
            r.ema.update(r.model)
        loss_sum += loss.double()
        r.global_step += 1
        steps_done += 1
        bar.update(1)
        if steps_done % check_every == 0 or steps_done == r.plan.steps_per_epoch:
            total = float(mean_over_processes(loss_sum, ddp))
            if not math.isfinite(total):
                bar.close()
                raise _diverged(r, total - checked_sum, epoch, checked_steps + 1, steps_done, lr_now)
            checked_sum, checked_steps = total, steps_done
            if bar.n % 10 == 0 or steps_done == r.plan.steps_per_epoch:
                bar.set_postfix(loss=f"{total / steps_done:.4f}")
    bar.close()
    return {
        "epoch": epoch,
        "step": r.global_step,
        "train_loss": checked_sum / max(1, steps_done),
        "lr": lr_now,
        "_started": epoch_start,
        "_train_seconds": time.perf_counter() - epoch_start,
        "_steps": steps_done,
    }


def _end_epoch(r: _Run, row: dict[str, Any], on_epoch_end: Callable[[dict[str, Any]], None] | None) -> None:
    """Validate, then (main process) write the checkpoints, history and metrics and log the epoch's line with
    the time left to the end of the run."""
    config, epoch, epochs = r.config, row["epoch"], r.plan.epochs
    epoch_start, train_seconds, steps = row.pop("_started"), row.pop("_train_seconds"), row.pop("_steps")
    if epoch % config.val_every == 0 or epoch == epochs:
        val = evaluate(r.eval_model, r.val_set, r.device, config.val_crop, r.amp_dtype, r.ddp)
    else:
        val = dict.fromkeys(summarise(pd.DataFrame(columns=["kind", "psnr", "ssim"])), float("nan"))
    row.update({f"val_{k}": v for k, v in val.items()})
    row["seconds"] = time.perf_counter() - epoch_start
    row["images_per_s"] = steps * r.global_batch / max(train_seconds, 1e-9)
    r.history.append(row)
    improved = math.isfinite(row["val_psnr"]) and row["val_psnr"] > r.best["val_psnr"]
    if improved:
        r.best = {"epoch": epoch, "val_psnr": row["val_psnr"]}
    if r.ddp.main:
        runs.save_checkpoint(_checkpoint(r, epoch, r.wall()), r.run_dir, best=improved)
        runs.write_history(r.run_dir, r.history)
        runs.write_metrics(r.run_dir, _metrics(r, r.wall(), complete=epoch == epochs))
        if r.board is not None:
            for key in ("train_loss", "val_psnr", "val_psnr_rain", "val_psnr_snow", "val_ssim", "lr"):
                if math.isfinite(row[key]):
                    r.board.add_scalar(key.replace("_", "/", 1), row[key], r.global_step)
            r.board.flush()
        r.epochs_this_session += 1
        per_epoch = (time.perf_counter() - r.loop_started) / r.epochs_this_session
        eta = format_duration(per_epoch * (epochs - epoch))
        r.log(
            f"epoch {epoch}/{epochs}  loss {row['train_loss']:.4f}  "
            f"val PSNR {_fmt(row['val_psnr'], '.2f')} dB (rain {_fmt(row['val_psnr_rain'], '.2f')}, "
            f"snow {_fmt(row['val_psnr_snow'], '.2f')})  SSIM {_fmt(row['val_ssim'], '.4f')}  "
            f"lr {row['lr']:.2e}  {row['seconds']:.1f} s  {row['images_per_s']:.1f} img/s"
            + (f"  ETA {eta}" if epoch < epochs else "")
            + ("  *" if improved else "")
        )
    if on_epoch_end is not None:
        on_epoch_end(dict(row))


def _finish(r: _Run) -> runs.Run:
    """Samples from the best model and the final metrics.json; the run folder as a :class:`runs.Run`."""
    wall = r.wall()
    metrics = _metrics(r, wall, complete=True)
    if r.ddp.main:
        if r.config.save_samples > 0 and (r.run_dir / runs.BEST).is_file():
            _save_samples(r)
        runs.write_metrics(r.run_dir, metrics)
        if r.board is not None:
            r.board.close()
        r.log(
            f"done: best val PSNR {metrics['best_val_psnr']:.2f} dB at epoch {metrics['best_epoch']} "
            f"(identity {r.baseline['psnr']:.2f} dB, gain {metrics['gain_db']:+.2f} dB) in {wall:.1f} s"
        )
    if r.ddp.active:
        dist.barrier()
    plan = r.plan.to_dict() if r.plan is not None else None
    return runs.Run(r.run_dir, r.config.to_dict(), metrics, pd.DataFrame(r.history), plan=plan)


def _checkpoint(r: _Run, epoch: int, wall: float) -> dict[str, Any]:
    """Everything ``last.pt`` holds: the weights to infer with (EMA when on) and what a resume needs."""
    eval_weights = r.ema.module.state_dict() if r.ema is not None else r.model.state_dict()
    return {
        "version": runs.CHECKPOINT_VERSION,
        "model": eval_weights,
        "model_config": r.model_config,
        "epoch": epoch,
        "optimizer": r.optimizer.state_dict(),
        "scheduler": r.scheduler.state_dict() if r.scheduler is not None else None,
        "scaler": r.scaler.state_dict() if r.scaler.is_enabled() else None,
        "ema": r.ema.state() if r.ema is not None else None,
        "train_model": r.model.state_dict() if r.ema is not None else None,
        "rng": rng_state(),
        "config": r.config.to_dict(),
        "history": r.history,
        "best": r.best,
        "world_size": r.ddp.world,
        "wall_seconds": wall,
        "plan": r.plan.to_dict() if r.plan is not None else None,
    }


def _fmt(value: float, spec: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _metrics(r: _Run, wall: float, complete: bool) -> dict[str, Any]:
    """``metrics.json``: the best epoch's scores, the identity baseline, and what the run was."""
    config, history, baseline = r.config, r.history, r.baseline
    best_row = next((row for row in history if row["epoch"] == r.best["epoch"]), None)
    nan = float("nan")
    out: dict[str, Any] = {
        "best_epoch": r.best["epoch"],
        "best_val_psnr": best_row["val_psnr"] if best_row else nan,
        "best_val_ssim": best_row["val_ssim"] if best_row else nan,
    }
    for kind in KINDS:
        out[f"best_val_psnr_{kind}"] = best_row[f"val_psnr_{kind}"] if best_row else nan
        out[f"best_val_ssim_{kind}"] = best_row[f"val_ssim_{kind}"] if best_row else nan
    out["input_psnr"] = baseline["psnr"]
    out["input_ssim"] = baseline["ssim"]
    for kind in KINDS:
        out[f"input_psnr_{kind}"] = baseline[f"psnr_{kind}"]
        out[f"input_ssim_{kind}"] = baseline[f"ssim_{kind}"]
    out["gain_db"] = out["best_val_psnr"] - baseline["psnr"]
    last = history[-1] if history else {}
    timed = [row["images_per_s"] for row in history]
    device = r.device
    out.update(
        {
            "final_val_psnr": last.get("val_psnr", nan),
            "epochs_done": last.get("epoch", 0),
            "epochs_planned": r.plan.epochs,
            "steps": last.get("step", 0),
            "steps_planned": r.plan.total_steps,
            "images_seen": last.get("step", 0) * r.global_batch,
            "images_planned": r.plan.images_seen,
            "sized_by": r.plan.sized_by,
            "time_budget_s": r.plan.budget_s,
            "estimated_seconds": r.plan.estimate_s,
            "complete": complete,
            "params": r.n_params,
            "wall_seconds": wall,
            "images_per_s": float(np.median(timed)) if timed else nan,
            "device": str(device.type if device.type == "cpu" else torch.cuda.get_device_name(device)),
            "world_size": r.ddp.world,
            "threads": torch.get_num_threads(),  # CPU runs repeat bit for bit with the same number
            "precision": precision_name(r.amp_dtype),
            "loss": config.loss,
            "recipe": config.recipe,
            "preset": config.preset,
            "name": config.name,
        }
    )
    return out


@torch.no_grad()
def _save_samples(r: _Run) -> None:
    """Restore a few validation images (alternating types) with the best model: samples/<name>.png plus
    samples/samples.json (name, type, source files, input and restored PSNR)."""
    config, val_set = r.config, r.val_set
    model = runs.load_model(r.run_dir, "best", map_location=r.device)
    records = []
    for pair in balanced(val_set.pairs, config.save_samples):
        item = val_set[val_set.pairs.index(pair)]
        x = center_crop(item["degraded"], config.val_crop).unsqueeze(0).to(r.device)
        y = center_crop(item["clean"], config.val_crop).unsqueeze(0).to(r.device)
        with autocast(r.device, r.amp_dtype):
            out = model(x)
        out = out.float().clamp(0, 1)
        save_png_atomic(to_uint8(out[0].cpu()), r.run_dir / runs.SAMPLES / f"{pair.name}.png")
        records.append(
            {
                "name": pair.name,
                "kind": pair.kind,
                "restored": f"{pair.name}.png",
                "degraded_path": str(pair.degraded),
                "clean_path": str(pair.clean),
                "crop": config.val_crop,
                "psnr_input": float(psnr(x.float(), y)),
                "psnr_restored": float(psnr(out, y)),
            }
        )
    write_json_atomic(records, r.run_dir / runs.SAMPLES / "samples.json")
