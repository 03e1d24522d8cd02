"""Sizing a training run before its first step: how many steps, how long, and which recipe fits the machine.

A run is sized in epochs (the recipe's) or by a time budget. Either way ``hw4lib.train.fit`` first measures
its own speed on the actual device (a few throwaway steps on real batches, one validation image or more, one
checkpoint serialisation), then fixes a :class:`Plan`: epochs, steps per epoch, warm-up and cosine horizon,
and an estimated duration. With a budget the plan has as many steps as fit in the budget after setup,
validations and checkpoints, so the warm-up + cosine schedule ends when the budget does. The plan is printed,
written to ``runs/<name>/plan.json`` and kept in the checkpoints, so a resumed run continues the same plan.

The functions here are pure (numbers in, numbers out) so that they are tested without timing anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from hw4lib.config import TrainConfig, format_duration, parse_duration
from hw4lib.data import MANIFEST

__all__ = [
    "BUDGET_EPOCHS",
    "BUDGET_OVERHEAD",
    "MAX_CPU_HOURS",
    "Plan",
    "BudgetTooSmall",
    "LongRunRefused",
    "plan_epochs",
    "plan_budget",
    "refusal",
    "default_recipe",
    "is_generated_set",
]

BUDGET_EPOCHS = 10  # a budget run validates and checkpoints up to this many times (resume points, curve)
BUDGET_OVERHEAD = 0.2  # ... as long as validations and checkpoints take at most this share of the budget
MAX_CPU_HOURS = 3.0  # a longer estimate on a CPU is refused unless allow_long_cpu


class BudgetTooSmall(ValueError):
    """The time budget does not cover even the setup and one step."""


class LongRunRefused(ValueError):
    """A CPU run estimated at hours; the message names the GPU command and the budget option."""


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
    """Why a run should not start on this device (an estimate of hours on a CPU), or ``None``."""
    if device.type != "cpu" or config.allow_long_cpu or plan.estimate_s <= MAX_CPU_HOURS * 3600:
        return None
    data = config.data_dir
    return LongRunRefused(
        f"this run is estimated at {format_duration(plan.estimate_s)} on this CPU ({plan.total_steps:,} "
        f"steps of the {config.preset} model at {plan.step_s:.2g} s each), so it was not started. Options: "
        f"train on a GPU (papermill notebooks/train.ipynb runs/<name>.ipynb -p data_dir {data}, or "
        "python -m hw4lib train --config <run>/config.json there); or give it a budget that fits "
        "this machine (-p time_budget 45m, --time-budget 45m); or the CPU recipe (-p recipe cpu); "
        "or pass allow_long_cpu=True (-p allow_long_cpu True, --allow-long-cpu true) to run it anyway"
    )


def is_generated_set(data_dir: str | Path) -> bool:
    """True for a data set made by ``python -m hw4lib demo-data`` (it carries ``synth.json``)."""
    return (Path(data_dir) / MANIFEST).is_file()


def default_recipe(data_dir: str | Path, device: torch.device | str) -> str:
    """The recipe a run gets when none is named: ``demo`` for a generated demo set (any name), else ``seed``
    on a GPU (the course's known solution) and the budget-sized ``cpu`` recipe on a CPU."""
    if is_generated_set(data_dir):
        return "demo"
    return "seed" if torch.device(device).type == "cuda" else "cpu"
