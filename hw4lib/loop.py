"""The pieces the training loop is made of (:mod:`hw4lib.train` puts them together): the processes of a run
(one, or torchrun's N with DDP), reproducible randomness (seeding, the RNG state a checkpoint carries), the
global order of the training crops cut into equal per-process slices, the learning-rate schedule and the EMA
of the weights.

- The learning rate follows a per-step schedule (linear warm-up, then cosine to ``min_lr``), so a resumed run
  takes exactly the steps an uninterrupted one would.
- The order of training samples comes from one seeded permutation per epoch; every global batch is cut into
  equal per-process slices. With mean-reduced losses and DDP's gradient averaging, N processes with batch B
  take the same steps as one process with batch N*B.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import Dataset

from hw4lib.config import TrainConfig
from hw4lib.data import DataError
from hw4lib.device import resolve_device
from hw4lib.losses import kind_ids
from hw4lib.planning import Plan

__all__ = [
    "Dist", "init_distributed", "agree", "gather_rows", "mean_over_processes", "seed_everything", "rng_state",
    "set_rng_state", "GlobalOrderBatches", "EpochView", "collate", "seed_worker", "WarmupCosine",
    "lr_schedule", "ModelEMA", "lr_curve",
]  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Processes and devices


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this fit() started the process group and must end it

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(device_spec: str) -> tuple[Dist, torch.device]:
    """This process's device, then the process group torchrun describes in the environment (WORLD_SIZE,
    RANK, LOCAL_RANK): the device is checked first (``cuda`` on a torch without CUDA is a clear error), and
    under torchrun every process takes the GPU of its local rank, whatever index the config names."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if world > 1 else device.index or 0)
        torch.cuda.set_device(device)
    if world <= 1:
        return Dist(), device
    if dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=False), device
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True), device


def agree(ddp: Dist, error: Exception | None, what: str) -> None:
    """Raise ``error`` in every process when any process has one (instead of the others waiting forever)."""
    if ddp.active:
        flag = torch.tensor([float(error is not None)])
        dist.all_reduce(flag)
        if flag.item() and error is None:
            error = RuntimeError(f"{what} failed in another process (see its message)")
    if error is not None:
        raise error


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        # numpy's state as tensors and numbers so the checkpoint loads with torch.load(weights_only=True)
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states of a checkpoint loaded to the CPU (``torch.set_rng_state`` takes CPU ones)."""
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # a different number of GPUs than when saved
            torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------------------
# Data: a seeded global order, cut into equal per-process slices


class GlobalOrderBatches:
    """Batch sampler: each epoch, one permutation seeded by (seed, epoch) fixes the global order; global
    batch g holds positions [g*B*N, (g+1)*B*N) and process r takes the r-th slice of B. It yields (epoch,
    index) pairs so the dataset can derive its random crops from the epoch inside any worker process.
    """

    def __init__(self, n_items: int, batch_size: int, steps: int, world: int, rank: int, seed: int) -> None:
        self.n_items, self.batch_size, self.steps = n_items, batch_size, steps
        self.world, self.rank, self.seed = world, rank, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_order(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        need = self.steps * self.batch_size * self.world
        parts = [rng.permutation(self.n_items)]
        while sum(len(p) for p in parts) < need:  # tiny data sets: wrap around with a fresh permutation
            parts.append(rng.permutation(self.n_items))
        return np.concatenate(parts)[:need]

    def __iter__(self):
        order = self.global_order()
        global_batch = self.batch_size * self.world
        for g in range(self.steps):
            start = g * global_batch + self.rank * self.batch_size
            yield [(self.epoch, int(i)) for i in order[start : start + self.batch_size]]

    def __len__(self) -> int:
        return self.steps


class EpochView(Dataset):
    """Indexes a dataset with (epoch, index) and tells it the epoch (``set_epoch``) before loading."""

    def __init__(self, base: Dataset) -> None:
        self.base = base
        self._epoch: int | None = None

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        if epoch != self._epoch:
            if hasattr(self.base, "set_epoch"):
                self.base.set_epoch(epoch)
            self._epoch = epoch
        return self.base[index]


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    shapes = {tuple(item["degraded"].shape) for item in items}
    if len(shapes) > 1:
        names = ", ".join(f"{item['name']} {tuple(item['degraded'].shape[1:])}" for item in items)
        raise DataError(
            f"images in one batch differ in size ({names}): train on crops (patch_size, e.g. 128) "
            "or use batch_size 1 for whole images"
        )
    kinds = [item["kind"] for item in items]
    return {
        "degraded": torch.stack([item["degraded"] for item in items]),
        "clean": torch.stack([item["clean"] for item in items]),
        "kind": kinds,
        "kind_id": kind_ids(kinds),  # for losses that treat the types differently (``mse@snow+l1@rain``)
        "name": [item["name"] for item in items],
    }


def seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


# ----------------------------------------------------------------------------------------------------------
# Schedule and EMA


class WarmupCosine:
    """LR factor for optimizer step k: linear warm-up to 1 over ``warmup`` steps, then a half cosine down to
    ``min_ratio`` at ``total`` steps (held there after). A plain object: LambdaLR saves it in state_dict."""

    def __init__(self, warmup: int, total: int, min_ratio: float) -> None:
        self.warmup, self.total, self.min_ratio = int(warmup), max(1, int(total)), float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def lr_schedule(config: TrainConfig, plan: Plan) -> WarmupCosine:
    return WarmupCosine(plan.warmup_steps, plan.horizon_steps, min_ratio=config.min_lr / config.lr)


class ModelEMA:
    """Exponential moving average of a model's weights, with the usual warm-up of the decay
    (``min(decay, (1 + n) / (10 + n))`` after n updates) so short runs are not dominated by the initial
    weights."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.num_updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for ema_p, p in zip(self.module.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - d)
        for ema_b, b in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)

    def state(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates}


def lr_curve(config: TrainConfig, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """The learning rate of every optimizer step of a planned run: (epoch position of each step, lr)."""
    schedule = lr_schedule(config, plan)
    steps = np.arange(plan.total_steps)
    return (steps + 1) / plan.steps_per_epoch, np.array([config.lr * schedule(int(k)) for k in steps])


# ----------------------------------------------------------------------------------------------------------
# Across processes


def gather_rows(per_image: pd.DataFrame, ddp: Dist) -> pd.DataFrame:
    """Every process's per-image rows, in rank order (all processes get all rows)."""
    if not ddp.active:
        return per_image
    parts: list[Any] = [None] * ddp.world
    dist.all_gather_object(parts, per_image.to_dict("records"))
    return pd.DataFrame([row for part in parts for row in part], columns=per_image.columns)


def mean_over_processes(value: torch.Tensor, ddp: Dist) -> torch.Tensor:
    """The sum of ``value`` over processes divided by their number (itself for one process)."""
    if not ddp.active:
        return value
    total = value.clone()
    dist.all_reduce(total)
    return total / ddp.world
