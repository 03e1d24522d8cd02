"""Sizing a training run before its first step: will it fit the machine, how many steps, how long.

Two stages, both before the first real step:

1. :func:`estimate_run`, before anything is allocated: the FLOPs of a step and the memory of the run
   (activations, model and optimiser, decoded images), counted on PyTorch's ``meta`` device (shapes only, no
   memory), and a duration from this machine's measured matrix-multiply speed. :func:`check_estimate` refuses,
   in one line with the fix, a run that would not fit the memory or would take hours on a CPU.
2. :func:`plan_run`, after the model and data exist: the run measures itself on the actual device (a few
   throwaway steps on real batches, validation images, a checkpoint written as training writes it) and fixes
   a :class:`Plan`: epochs, steps per epoch, warm-up and cosine horizon, and an estimated duration. With a
   budget the plan has as many steps as fit in it, so the warm-up + cosine schedule ends when the budget
   does. The plan is printed, written to ``runs/<name>/plan.json`` and kept in the checkpoints, so a resumed
   run continues the same plan.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from hw4lib.config import TrainConfig, format_duration, parse_duration
from hw4lib.device import amp_dtype, free_memory_gb
from hw4lib.model import build_model

__all__ = [
    "BUDGET_EPOCHS",
    "BUDGET_OVERHEAD",
    "MAX_CPU_HOURS",
    "UTILISATION",
    "Estimate",
    "Plan",
    "Timings",
    "BudgetTooSmall",
    "LongRunRefused",
    "RunWontFit",
    "estimate_run",
    "count_on_meta",
    "check_estimate",
    "plan_run",
    "plan_epochs",
    "plan_budget",
    "refusal",
]

BUDGET_EPOCHS = 10  # a budget run validates and checkpoints up to this many times (resume points, curve)
BUDGET_OVERHEAD = 0.2  # ... as long as validations and checkpoints take at most this share of the budget
MAX_CPU_HOURS = 3.0  # a longer estimate on a CPU is refused unless allow_long_cpu
# share of the measured matrix-multiply speed a training step reaches: on CPUs benchmarks/bench_train.py
# measures it (report/engine/bench_train-*.json, a test keeps the two together); on a GPU it is an assumption
# until scripts/gpu_check.sh measures one
UTILISATION = {"cpu": 0.14, "cuda": 0.25}
MEMORY_MARGIN = 0.85  # an estimate must fit in this share of the free memory


class BudgetTooSmall(ValueError):
    """The time budget does not cover even the setup and one step."""


class LongRunRefused(ValueError):
    """A CPU run estimated at hours; the message names the GPU command and the budget option."""


class RunWontFit(ValueError):
    """A run whose estimated memory exceeds what the machine has free; the message names what to lower."""


@dataclass
class Plan:
    """How a run is sized; the measured timings it was planned from; what it should cost."""

    epochs: int
    steps_per_epoch: int
    warmup_steps: int
    horizon_steps: int  # the cosine reaches min_lr here (after the last step when it equals the run's steps)
    global_batch: int
    crop: int | None  # training crop side, None for whole images
    sized_by: str  # "epochs" or "time_budget"
    budget_s: float | None = None
    step_s: float = float("nan")  # measured seconds per optimiser step (data loading included)
    validation_s: float = float("nan")  # measured seconds of one validation pass
    checkpoint_s: float = float("nan")  # measured seconds to serialise one checkpoint
    setup_s: float = float("nan")  # from fit() to the first step: data, model, baseline, the probe itself
    validations: int = 0

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def images_seen(self) -> int:
        return self.total_steps * self.global_batch

    def pixels_seen(self, image_side: int | None = None) -> float:
        side = self.crop or image_side
        return float("nan") if side is None else float(self.images_seen) * side * side

    @property
    def estimate_s(self) -> float:
        """Wall time from fit() to the end: setup, steps, validations, checkpoints, the final samples."""
        return (
            self.setup_s
            + self.total_steps * self.step_s
            + self.validations * self.validation_s
            + self.epochs * self.checkpoint_s
            + self.validation_s
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(total_steps=self.total_steps, images_seen=self.images_seen, estimate_s=self.estimate_s)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        fields = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in fields})

    def describe(self) -> str:
        """Two lines for the log: the size of the run and what it is expected to cost."""
        crop = f"crops of {self.crop} px" if self.crop else "whole images"
        budget = f" (time budget {format_duration(self.budget_s)})" if self.budget_s else ""
        return (
            f"plan: {self.epochs} epochs x {self.steps_per_epoch} steps of {self.global_batch} {crop} = "
            f"{self.total_steps:,} steps, {self.images_seen:,} images seen{budget}\n"
            f"estimate: {self.step_s:.3g} s/step, validation {self.validation_s:.3g} s x {self.validations}, "
            f"checkpoint {self.checkpoint_s:.2g} s x {self.epochs}, setup {self.setup_s:.1f} s "
            f"-> {format_duration(self.estimate_s)} in all"
        )


def _validations(epochs: int, val_every: int) -> int:
    return len({e for e in range(1, epochs + 1) if e % val_every == 0 or e == epochs})


def plan_epochs(config: TrainConfig, natural_steps: int, global_batch: int) -> Plan:
    """The plan of an epoch-sized run: its epochs of ``natural_steps`` (capped by ``max_train_steps``)."""
    steps = max(1, natural_steps)
    if config.max_train_steps is not None:
        steps = max(1, min(steps, config.max_train_steps))
    horizon = config.schedule_epochs if config.schedule_epochs is not None else config.epochs
    return Plan(
        epochs=config.epochs,
        steps_per_epoch=steps,
        warmup_steps=round(config.warmup_epochs * steps),
        horizon_steps=round(horizon * steps),
        global_batch=global_batch,
        crop=config.patch_size,
        sized_by="epochs",
        validations=_validations(config.epochs, config.val_every),
    )


def plan_budget(
    config: TrainConfig,
    global_batch: int,
    spent_s: float,
    step_s: float,
    validation_s: float,
    checkpoint_s: float,
) -> Plan:
    """The plan of a budget-sized run: as many steps as fit in ``config.time_budget`` after the ``spent_s``
    seconds of setup, in up to ``BUDGET_EPOCHS`` epochs each ending with a checkpoint (and a validation every
    ``val_every`` epochs), plus the final validation-sized work (samples). A short budget gets fewer epochs,
    so that validations and checkpoints take at most ``BUDGET_OVERHEAD`` of it (but at least one epoch).
    Warm-up keeps the recipe's share of the run (``warmup_epochs / epochs``); the cosine ends on the last
    step."""
    budget = parse_duration(config.time_budget)
    left = budget - spent_s - validation_s  # the end of the run: samples from the best model, metrics

    def overhead(epochs: int) -> float:  # checkpoints, validations and at least one step per epoch
        return epochs * (checkpoint_s + step_s) + _validations(epochs, config.val_every) * validation_s

    def evaluation(epochs: int) -> float:  # what the epochs cost beyond their steps
        return epochs * checkpoint_s + _validations(epochs, config.val_every) * validation_s

    fits = [e for e in range(1, BUDGET_EPOCHS + 1) if overhead(e) <= left]
    cheap = [e for e in fits if evaluation(e) <= BUDGET_OVERHEAD * left]
    epochs = max(cheap or fits[:1] or [0])
    if epochs < 1:
        raise BudgetTooSmall(
            f"a time budget of {format_duration(budget)} leaves no time to train: the setup took "
            f"{format_duration(spent_s)}, one step takes {step_s:.2g} s and one validation "
            f"{validation_s:.2g} s; give at least {format_duration(spent_s + 2 * validation_s + 10 * step_s)}"
        )
    validations = _validations(epochs, config.val_every)
    steps = math.floor((left - epochs * checkpoint_s - validations * validation_s) / step_s)
    steps_per_epoch = max(1, steps // epochs)
    total = epochs * steps_per_epoch
    share = config.warmup_epochs / config.epochs if config.epochs else 0.0
    return Plan(
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        warmup_steps=round(share * total),
        horizon_steps=total,
        global_batch=global_batch,
        crop=config.patch_size,
        sized_by="time_budget",
        budget_s=budget,
        step_s=step_s,
        validation_s=validation_s,
        checkpoint_s=checkpoint_s,
        setup_s=spent_s,
        validations=validations,
    )


def refusal(config: TrainConfig, plan: Plan, device: torch.device) -> LongRunRefused | None:
    """Why a run should not start on this device (a measured estimate of hours on a CPU), or ``None``."""
    if device.type != "cpu" or config.allow_long_cpu or plan.estimate_s <= MAX_CPU_HOURS * 3600:
        return None
    return LongRunRefused(
        f"this run is estimated at {format_duration(plan.estimate_s)} on this CPU ({plan.total_steps:,} "
        f"steps of the {config.preset} model at {plan.step_s:.2g} s each, measured), so it was not started; "
        + _cheaper(config)
    )


@dataclass(frozen=True)
class Timings:
    """What a run measured of itself on its device, in seconds."""

    step_s: float  # one optimiser step, its batch's loading included
    validation_s: float  # one validation pass
    checkpoint_s: float  # the checkpoint writes of one epoch, as training writes them


def plan_run(
    config: TrainConfig,
    *,
    natural_steps: int,
    global_batch: int,
    measure: Callable[[], Timings],
    elapsed: Callable[[], float],
    previous: Plan | None = None,
) -> Plan:
    """The plan of a run. A resumed budget run keeps the plan it started with; a resumed epoch run keeps the
    timings it measured; a fresh run calls ``measure`` (the throwaway probe), then ``elapsed`` (seconds since
    the run started: setup and probe) and sizes itself in epochs or by its budget."""
    if previous is not None and previous.sized_by == "time_budget" and config.time_budget is not None:
        return previous
    if previous is None:
        timings = measure()
    else:
        timings = Timings(previous.step_s, previous.validation_s, previous.checkpoint_s)
    if config.time_budget is not None:
        return plan_budget(config, global_batch, elapsed(), *asdict(timings).values())
    plan = plan_epochs(config, natural_steps, global_batch)
    plan.step_s, plan.validation_s, plan.checkpoint_s = asdict(timings).values()
    plan.setup_s = elapsed()
    return plan


# ----------------------------------------------------------------------------------------------------------
# Before anything is allocated: the estimate


@dataclass
class Estimate:
    """What a run will cost, estimated before it allocates anything (``estimate_run``)."""

    device: str
    step_gflop: float  # one optimiser step of the global batch (3 x forward; 4 x with checkpointing)
    steps: int | None  # planned optimiser steps (None: sized by a time budget)
    activations_gb: float  # what the backward keeps of one step (one process)
    model_gb: float  # weights, gradients, AdamW's two moments, the EMA copy
    data_gb: float  # the decoded training and validation images kept in memory
    free_gb: float | None  # memory free on the device that holds the activations (None: unknown)
    tflops: float  # the device's measured matrix-multiply speed
    seconds: float | None  # steps x step FLOPs at the expected share of that speed (None: budget-sized)
    host_free_gb: float | None = None  # free host memory when the device is a GPU (the data lives there)

    @property
    def device_gb(self) -> float:
        return self.activations_gb + self.model_gb + (0.0 if self.device == "cuda" else self.data_gb)

    def describe(self) -> str:
        """One line for the log."""
        free = f" of {self.free_gb:.1f} GB free" if self.free_gb is not None else ""
        time_text = "sized by its budget" if self.seconds is None else f"{format_duration(self.seconds)}"
        return (
            f"estimate before allocating: {self.step_gflop:,.0f} GFLOP per step, {time_text} on this "
            f"{self.device} ({self.tflops * 1000:,.0f} GFLOP/s matmul, {UTILISATION[self.device]:.0%} of it "
            f"expected); memory {self.device_gb:.1f} GB{free} (activations {self.activations_gb:.1f}, model "
            f"and optimiser {self.model_gb:.2f}, images {self.data_gb:.2f})"
        )


def count_on_meta(config: TrainConfig, batch: int, side: tuple[int, int]) -> tuple[float, float, int]:
    """(bytes the backward keeps, forward FLOPs, parameters) of one training step of ``config``'s model on a
    batch of ``side`` (H, W) images, counted on the ``meta`` device: shapes only, nothing allocated."""
    with torch.device("meta"):
        model = build_model(config.preset, **config.model_kwargs()).train()
    x = torch.empty(batch, 3, *side, device="meta")
    storages: dict[int, int] = {}

    def keep(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage._cdata] = storage.nbytes()  # a tensor saved twice counts once
        return t

    hooks = torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t)
    with FlopCounterMode(display=False) as counter, hooks:
        model(x)
    params = sum(p.numel() for p in model.parameters())
    return float(sum(storages.values())), float(counter.get_total_flops()), params


def _matmul_tflops(device: torch.device, dtype: torch.dtype | None, n: int = 1024, repeats: int = 3) -> float:
    """Dense matrix-multiply speed of ``device`` in ``dtype`` (float32 when None), best of a few (~0.1 s).
    Its operands come from a generator of its own: the run's seeded RNG must not depend on the estimate."""
    own = torch.Generator(device=device).manual_seed(0)
    a, b = (torch.rand(n, n, device=device, dtype=dtype or torch.float32, generator=own) for _ in range(2))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e12


def _image_side(pair: Any) -> tuple[int, int]:
    with Image.open(pair.degraded) as im:  # the header only
        w, h = im.size
    return h, w


def estimate_run(
    config: TrainConfig, device: torch.device, world: int = 1, tflops: float | None = None
) -> Estimate:
    """The cost of ``config`` on ``device``, from file names and one image header only (no decoding, no
    model in memory): step FLOPs and the backward's memory counted on the ``meta`` device at the training
    crop, the model and optimiser memory from the parameter count, the decoded images from their sizes.
    ``tflops``: the device's matmul speed measured already (runs planned together share one measurement)."""
    train_pairs, val_pairs, _, _ = config.split()
    h, w = _image_side(train_pairs[0])
    crop = (config.patch_size, config.patch_size) if config.patch_size else (h, w)
    saved, forward, params = count_on_meta(config, config.batch_size, crop)
    passes = 4 if config.grad_checkpointing else 3  # forward + backward (2x), + the recomputed forward
    step_gflop = passes * forward * world / 1e9
    global_batch = config.batch_size * world
    natural = max(1, len(train_pairs) * config.patches_per_image // global_batch)
    per_epoch = min(natural, config.max_train_steps) if config.max_train_steps else natural
    steps = None if config.time_budget is not None else per_epoch * config.epochs
    dtype = amp_dtype(device, config.amp and device.type == "cuda")
    kind = "cuda" if device.type == "cuda" else "cpu"
    tflops = tflops if tflops is not None else _matmul_tflops(device, dtype)
    seconds = None if steps is None else steps * step_gflop / 1e3 / (tflops * UTILISATION[kind] * world)
    copies = 4 + (1 if config.ema > 0 else 0)  # weights, gradients, 2 AdamW moments, EMA
    images = len(train_pairs) + len(val_pairs)
    data_gb = images * 2 * h * w * 3 / 2**30 if config.cache else 0.0
    host = free_memory_gb(torch.device("cpu")) if kind == "cuda" else None
    return Estimate(kind, step_gflop, steps, saved / 2**30, copies * params * 4 / 2**30, data_gb,
                    free_memory_gb(device), tflops, seconds, host)  # fmt: skip


def check_estimate(config: TrainConfig, estimate: Estimate) -> None:
    """Raise :class:`RunWontFit` or :class:`LongRunRefused` (one line each, with the fix) when the estimate
    says the run would not fit the memory or would take hours on a CPU."""
    hours = (estimate.seconds or 0.0) / 3600
    if estimate.device == "cpu" and hours > MAX_CPU_HOURS and not config.allow_long_cpu:
        raise LongRunRefused(
            f"this run is estimated at {format_duration(estimate.seconds or 0)} on this CPU "
            f"({estimate.steps:,} steps of {estimate.step_gflop:,.0f} GFLOP), so it was not started; "
            + _cheaper(config)
        )
    needs, free = estimate.device_gb, estimate.free_gb
    if free is not None and needs > MEMORY_MARGIN * free:
        crop = f"{config.patch_size} px crops" if config.patch_size else "whole images"
        lighter = [f"batch_size (now {config.batch_size})", "patch_size" if config.patch_size else
                   "patch_size (train on crops)", f"a smaller preset (now {config.preset})"]  # fmt: skip
        if not config.grad_checkpointing:
            lighter.append("grad_checkpointing=True")
        raise RunWontFit(
            f"this run needs about {needs:.1f} GB on the {estimate.device} (the backward keeps "
            f"{estimate.activations_gb:.1f} GB at batch {config.batch_size} of {crop}, model and optimiser "
            f"{estimate.model_gb:.2f} GB, images {estimate.data_gb:.2f} GB) but {free:.1f} GB are free: "
            "lower " + ", ".join(lighter[:-1]) + f" or use {lighter[-1]}"
        )
    host = estimate.host_free_gb
    if host is not None and estimate.data_gb > MEMORY_MARGIN * host:
        raise RunWontFit(
            f"the decoded images need about {estimate.data_gb:.1f} GB of host memory but {host:.1f} GB are "
            "free: pass cache=False (--cache false) to read them from disk each time"
        )


def _cheaper(config: TrainConfig) -> str:
    """What to do instead of a run too long for a CPU, without suggesting what the run already does."""
    options = [
        f"train on a GPU (papermill notebooks/train.ipynb runs/<name>.ipynb -p data_dir {config.data_dir}, "
        "or python -m hw4lib train --config <run>/config.json there)",
        "give it a budget that fits (-p time_budget 45m, --time-budget 45m)",
    ]
    if config.recipe != "cpu":
        options.append("use the CPU recipe (-p recipe cpu, --recipe cpu)")
    options.append("or pass allow_long_cpu (-p allow_long_cpu True, --allow-long-cpu true) to run it anyway")
    return "; ".join(options)
