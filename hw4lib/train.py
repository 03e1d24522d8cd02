"""Training engine: one config in, one run folder out; the same code on CPU, one GPU or many (torchrun + DDP).

``fit(config)`` trains PromptIR on paired (degraded, clean) images and writes ``runs/<name>/``:

- ``config.json``: the :class:`TrainConfig` (``TrainConfig.from_json`` reads it back, ``--config`` takes it);
- ``history.csv`` / ``history.json``: one row per epoch (train loss, validation PSNR/SSIM overall and per
  degradation type, learning rate, seconds, images per second);
- ``metrics.json``: the summary (best epoch and its PSNR/SSIM, the identity baseline ``input_psnr`` on the
  same validation images, parameters, wall time, device, loss, ...);
- ``best.pt`` / ``last.pt``: checkpoints (written atomically) with the keys ``model`` (the weights to infer
  with: the EMA weights when EMA is on), ``model_config`` (``build_model`` arguments incl. ``preset``),
  ``epoch``, ``optimizer``, ``scheduler``, ``scaler``, ``ema`` (``None`` or ``{"decay", "num_updates"}``),
  ``train_model`` (the raw trained weights when EMA is on, else ``None``), ``rng``, ``config``, ``history``,
  ``best``;
- ``samples/``: a few validation images restored by the best model (``samples.json`` says which);
- ``log.txt``: the lines printed during the run.

Design choices, each for a reason:

- The learning rate follows a per-step schedule (linear warm-up, then cosine to ``min_lr``), so a resumed run
  takes exactly the steps an uninterrupted one would.
- The order of training samples comes from one seeded permutation per epoch; every global batch is cut into
  equal per-process slices. With mean-reduced losses and DDP's gradient averaging, N processes with batch B
  take the same steps as one process with batch N*B.
- Random crops and flips are derived by the dataset from (seed, epoch, index), so they do not depend on which
  process or worker loads an image: runs are reproducible on CPU and resumable mid-way.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import os
import random
import re
import shutil
import sys
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from hw4lib import paths
from hw4lib.data import DEGRADATIONS, DataError, PairedDataset, find_pairs, split_pairs, to_uint8
from hw4lib.io import save_png_atomic, save_torch_atomic, write_json_atomic, write_text_atomic
from hw4lib.losses import build_loss
from hw4lib.metrics import psnr, ssim
from hw4lib.model import PRESETS, build_model, count_parameters

__all__ = [
    "TrainConfig",
    "RECIPES",
    "make_config",
    "fit",
    "initial_model",
    "RunResult",
    "TrainingDiverged",
    "RunExistsError",
    "load_run_model",
    "read_run",
    "evaluate",
    "identity_baseline",
    "plot_history",
    "lr_curve",
    "plot_samples",
    "TIME_COLUMNS",
    "add_commands",
]

CHECKPOINT_VERSION = 1
TIME_COLUMNS = ("seconds", "images_per_s")  # the history columns that legitimately differ between equal runs


# ----------------------------------------------------------------------------------------------------------
# Configuration and recipes


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults reproduce the course's known (seed) solution."""

    name: str = "train"  # run folder runs/<name>/ (unless run_dir is set)
    run_dir: str | None = None  # explicit run folder; relative paths are taken from the repository root
    recipe: str | None = None  # the recipe this config started from (recorded only)
    data_dir: str = "data/demo"  # course layout: train/degraded, train/clean
    # loss
    loss: str = "mse"  # hw4lib.losses.build_loss spec: l1, mse, l1_ssim, charbonnier, "l1+0.1*edge", ...
    alpha: float = 0.84  # SSIM weight of l1_ssim
    # optimisation
    epochs: int = 25
    schedule_epochs: float | None = None  # cosine horizon in epochs (None: epochs); official stops early
    batch_size: int = 1  # per process: N processes train with a global batch of N * batch_size
    lr: float = 2e-4
    weight_decay: float = 1e-2
    min_lr: float = 1e-6
    warmup_epochs: float = 0.0
    grad_clip: float = 0.0  # max global gradient norm; 0 turns clipping off
    ema: float = 0.0  # EMA decay of the weights (e.g. 0.999); 0 turns EMA off
    # data
    patch_size: int | None = None  # random square crops; None (or 0) trains on whole images
    patches_per_image: int = 1  # crops per training pair and epoch
    augment: bool = False  # random flips / 90-degree rotations, identical on both images of a pair
    val_fraction: float = 0.1
    val_max_images: int | None = None  # evaluate on at most this many validation pairs (balanced by type)
    val_crop: int | None = None  # evaluate on fixed center crops of this size (large images); None: whole
    val_every: int = 1  # validate every N epochs (and always after the last)
    cache: bool = True  # keep decoded images in memory
    num_workers: int = -1  # DataLoader workers; -1: 0 on CPU, min(8, cores per process) on CUDA
    max_train_steps: int | None = None  # cap on steps per epoch (smoke runs)
    # model
    preset: str = "full"  # hw4lib.model.PRESETS: full (official), small, tiny
    model_overrides: dict[str, Any] = field(default_factory=dict)  # extra build_model keyword arguments
    identity_init: bool = False  # zero the output convolution: the untrained model is the identity map
    # hardware
    seed: int = 0
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:1, ...
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16 + GradScaler); fp32 on CPU
    channels_last: bool | None = None  # model memory layout (None: the model's default, channels-last)
    compile: bool = False  # torch.compile the training forward (CUDA; worth it for long runs)
    deterministic: bool = False  # deterministic CUDA kernels (CPU runs are deterministic anyway)
    # output
    save_samples: int = 4  # validation images restored by the best model into samples/
    progress: bool | None = None  # tqdm step bars; None: only when stderr is a terminal
    tta: bool = False  # use 8x flip/rotate self-ensemble at inference (recorded for hw4lib.infer)

    def __post_init__(self) -> None:
        if self.patch_size in (0, None):
            self.patch_size = None
        if self.model_overrides is None:
            self.model_overrides = {}
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1 (got {self.epochs})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.lr <= 0:
            problems.append(f"lr must be > 0 (got {self.lr})")
        if not 0 <= self.ema < 1:
            problems.append(f"ema is a decay in [0, 1), e.g. 0.999 (got {self.ema})")
        if not 0 < self.val_fraction < 1:
            problems.append(f"val_fraction must be in (0, 1) (got {self.val_fraction})")
        if self.patches_per_image < 1:
            problems.append(f"patches_per_image must be >= 1 (got {self.patches_per_image})")
        if self.patch_size is not None and self.patch_size < 8:
            problems.append(f"patch_size must be >= 8 or None for whole images (got {self.patch_size})")
        if self.preset not in PRESETS:
            problems.append(f"preset {self.preset!r} is not one of {sorted(PRESETS)}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    # -- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The config as JSON text; also written (atomically) to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            write_text_atomic(text, path)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"{source}: unknown TrainConfig keys {unknown}; valid keys are {sorted(known)}"
            )
        return cls(**data)

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike[str]) -> TrainConfig:
        """Read a config from a JSON file (e.g. ``runs/x/config.json``) or from JSON text."""
        text = str(path_or_text)
        if text.lstrip().startswith("{"):
            return cls.from_dict(json.loads(text), "config text")
        path = paths.resolve(path_or_text)
        if not path.is_file():
            raise FileNotFoundError(
                f"config file {path} does not exist; write one with TrainConfig.to_json(path)"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); fix or regenerate it") from err
        return cls.from_dict(data, str(path))

    def resolved_run_dir(self) -> Path:
        return paths.resolve(self.run_dir) if self.run_dir else paths.runs_dir() / self.name

    def model_kwargs(self) -> dict[str, Any]:
        """``build_model(preset, **kwargs)`` keyword arguments: the overrides plus the memory layout."""
        kwargs = dict(self.model_overrides)
        if self.channels_last is not None:
            kwargs["channels_last"] = self.channels_last
        return kwargs


# Starting points. A recipe fills the config; explicit parameters override it (make_config).
RECIPES: dict[str, dict[str, Any]] = {
    # The course's known solution (29.74 dB): whole images, batch 1, 25 epochs, MSE, AdamW 2e-4, cosine
    # to 1e-6.
    "seed": dict(
        loss="mse", epochs=25, batch_size=1, patch_size=None, patches_per_image=1, augment=False,
        lr=2e-4, weight_decay=1e-2, min_lr=1e-6, warmup_epochs=0.0, ema=0.0, preset="full",
    ),
    # The PromptIR paper: L1 on random 128 crops, batch 8 per GPU, 15 warm-up epochs then cosine over 150
    # epochs, stopped at 120 (official train.py / options.py).
    "official": dict(
        loss="l1", epochs=120, schedule_epochs=150, batch_size=8, patch_size=128, patches_per_image=1,
        augment=True, lr=2e-4, weight_decay=1e-2, min_lr=0.0, warmup_epochs=15.0, ema=0.0, preset="full",
    ),
    # What the best public solutions did (31-33 dB): 128 crops, L1 + 0.1 x Sobel edge loss, warm-up + cosine
    # over 150 epochs, an EMA of the weights, and 8x flip/rotate self-ensemble at inference.
    "strong": dict(
        loss="l1+0.1*edge", epochs=150, batch_size=8, patch_size=128, patches_per_image=1, augment=True,
        lr=2e-4, weight_decay=1e-2, min_lr=1e-6, warmup_epochs=15.0, ema=0.999, grad_clip=1.0, tta=True,
        preset="full",
    ),
    # `make demo` on 2 CPU cores: the tiny model on the demo data, about 2 minutes per loss variant (270
    # steps).
    # Measured on data/demo (seed 0, 40 validation pairs): l1 +1.60 dB, l1_ssim +1.48, mse +1.45 over the
    # identity. No flips/rotations: the demo rain falls along one slant, and learning every orientation
    # halved the gain at this budget; starting from the identity map and an EMA keep the lightly degraded
    # images from getting worse early on.
    "demo": dict(
        loss="l1", epochs=3, batch_size=8, patch_size=48, patches_per_image=2, augment=False, lr=1e-3,
        weight_decay=1e-2, min_lr=1e-5, warmup_epochs=0.5, ema=0.99, grad_clip=1.0, identity_init=True,
        preset="tiny",
    ),
    # The notebook's test run (pytest --nbval): the demo recipe cut to well under a minute.
    "smoke": dict(
        loss="l1", epochs=1, batch_size=8, patch_size=48, patches_per_image=1, augment=False, lr=1e-3,
        weight_decay=1e-2, min_lr=1e-5, warmup_epochs=0.5, ema=0.99, grad_clip=1.0, identity_init=True,
        preset="tiny", val_max_images=16, save_samples=4,
    ),
}


def make_config(recipe: str | None = None, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a recipe (or the defaults) with explicit overrides on top.

    ``None`` values in ``overrides`` mean "not given" and are dropped, so a notebook can pass every parameter.
    Use ``patch_size=0`` for whole images.
    """
    values: dict[str, Any] = {}
    if recipe is not None:
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)}")
        values.update(RECIPES[recipe])
        values["recipe"] = recipe
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values, f"make_config(recipe={recipe!r})")


def safe_run_name(text: str) -> str:
    """A folder-safe run name: ``train-l1+0.1*edge`` -> ``train-l1_0.1_edge``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


# ----------------------------------------------------------------------------------------------------------
# Errors and results


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left in place."""


class RunExistsError(FileExistsError):
    """A fresh run would overwrite an earlier run's checkpoints."""


@dataclass
class RunResult:
    """What ``fit`` returns (``read_run`` reads it back): the folder, the summary, the per-epoch history."""

    run_dir: Path
    metrics: dict[str, Any]
    history: Any  # pandas.DataFrame, one row per epoch
    config: TrainConfig

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / "best.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / "last.pt"


# ----------------------------------------------------------------------------------------------------------
# Processes and devices


@dataclass
class _Dist:
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


def _pick_device(spec: str, local_rank: int) -> torch.device:
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {spec!r} asked for, but this torch has no CUDA; use device='cpu' or 'auto'"
            )
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def _init_distributed(device_spec: str) -> _Dist:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK, ...)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return _Dist(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=False)
    wants_cuda = device_spec.startswith("cuda") or (device_spec == "auto" and torch.cuda.is_available())
    if wants_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
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


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # a different number of GPUs than when saved
            torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------------------
# Data: a seeded global order, cut into equal per-process slices


class _GlobalOrderBatches:
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


class _EpochView(Dataset):
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


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    shapes = {tuple(item["degraded"].shape) for item in items}
    if len(shapes) > 1:
        names = ", ".join(f"{item['name']} {tuple(item['degraded'].shape[1:])}" for item in items)
        raise DataError(
            f"images in one batch differ in size ({names}): train on crops (patch_size, e.g. 128) "
            "or use batch_size 1 for whole images"
        )
    return {
        "degraded": torch.stack([item["degraded"] for item in items]),
        "clean": torch.stack([item["clean"] for item in items]),
        "kind": [item["kind"] for item in items],
        "name": [item["name"] for item in items],
    }


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _balanced(pairs: Sequence[Any], limit: int | None) -> list[Any]:
    """At most ``limit`` pairs, alternating between degradation types (rain, snow, rain, ...)."""
    if limit is None or limit >= len(pairs):
        return list(pairs)
    by_kind: dict[str, list[Any]] = {}
    for pair in pairs:
        by_kind.setdefault(pair.kind, []).append(pair)
    out: list[Any] = []
    queues = [list(v) for _, v in sorted(by_kind.items())]
    while len(out) < limit and any(queues):
        for q in queues:
            if q and len(out) < limit:
                out.append(q.pop(0))
    return out


def validation_split(
    config: TrainConfig, data_dir: str | os.PathLike[str] | None = None
) -> tuple[list[Any], list[Any], list[Any], Path]:
    """The split a run trains on: (training pairs, validation pairs, the validation pairs it scores, root).

    The scored pairs are at most ``val_max_images`` of the validation side, balanced by type. The report
    uses this too, so its evaluation can never drift from the training engine's.
    """
    root = paths.resolve(data_dir if data_dir is not None else config.data_dir)
    if not root.is_dir():
        hint = " (generate it: python -m hw4lib demo-data --out data/demo)" if root.name == "demo" else ""
        raise DataError(
            f"data folder {root} does not exist{hint}; set data_dir to a folder in the course layout"
        )
    pairs = find_pairs(root)
    if len(pairs) < 2:
        raise DataError(
            f"{root} holds {len(pairs)} training pair(s); need at least 2 (one to train, one to validate)"
        )
    train_pairs, val_pairs = split_pairs(pairs, val_fraction=config.val_fraction, seed=config.seed)
    if not train_pairs or not val_pairs:
        raise DataError(
            f"splitting {len(pairs)} pairs of {root} with val_fraction={config.val_fraction} left an empty "
            "side; add pairs or change val_fraction"
        )
    return train_pairs, val_pairs, _balanced(val_pairs, config.val_max_images), root


def _load_pairs(config: TrainConfig) -> tuple[list[Any], list[Any], Path]:
    train_pairs, _, scored, root = validation_split(config)
    return train_pairs, scored, root


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


def _schedule(config: TrainConfig, steps_per_epoch: int) -> WarmupCosine:
    horizon = config.schedule_epochs if config.schedule_epochs is not None else config.epochs
    return WarmupCosine(
        warmup=round(config.warmup_epochs * steps_per_epoch),
        total=round(horizon * steps_per_epoch),
        min_ratio=config.min_lr / config.lr,
    )


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


# ----------------------------------------------------------------------------------------------------------
# Evaluation


def _center_crop(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return x
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[..., top : top + size, left : left + size]


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _score_images(
    restore: Callable[[torch.Tensor], torch.Tensor],
    dataset: Any,
    indices: Sequence[int],
    device: torch.device,
    crop: int | None,
) -> torch.Tensor:
    """Per-kind sums [psnr, ssim, count] (float64, shape (K, 3)) over ``indices`` of ``dataset``."""
    sums = torch.zeros(len(DEGRADATIONS), 3, dtype=torch.float64)
    for i in indices:
        item = dataset[i]
        x = _center_crop(item["degraded"], crop).unsqueeze(0).to(device)
        y = _center_crop(item["clean"], crop).unsqueeze(0).to(device)
        out = restore(x).float().clamp(0, 1)
        k = DEGRADATIONS.index(item["kind"])
        sums[k, 0] += float(psnr(out, y))
        sums[k, 1] += float(ssim(out, y))
        sums[k, 2] += 1
    return sums


def _summarise(sums: torch.Tensor) -> dict[str, float]:
    total = sums.sum(0)
    out = {"psnr": float(total[0] / total[2]), "ssim": float(total[1] / total[2])}
    for k, kind in enumerate(DEGRADATIONS):
        n = float(sums[k, 2])
        out[f"psnr_{kind}"] = float(sums[k, 0]) / n if n else float("nan")
        out[f"ssim_{kind}"] = float(sums[k, 1]) / n if n else float("nan")
    return out


def _reduce_sums(sums: torch.Tensor, ddp: _Dist, device: torch.device) -> torch.Tensor:
    if not ddp.active:
        return sums
    t = sums.to(device)
    dist.all_reduce(t)
    return t.cpu()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Any,
    device: torch.device | str = "cpu",
    crop: int | None = None,
    amp_dtype: torch.dtype | None = None,
    _ddp: _Dist | None = None,
) -> dict[str, float]:
    """Mean PSNR/SSIM of the clamped model output over a validation dataset (items as ``PairedDataset``
    gives them), overall and per degradation type (``psnr_rain``, ...), one whole image (or center crop) at a
    time."""
    device = torch.device(device)
    ddp = _ddp or _Dist()
    was_training = model.training
    model.eval()
    try:

        def restore(x: torch.Tensor) -> torch.Tensor:
            with _autocast(device, amp_dtype):
                return model(x)

        indices = range(ddp.rank, len(dataset), ddp.world)
        sums = _score_images(restore, dataset, indices, device, crop)
    finally:
        model.train(was_training)
    return _summarise(_reduce_sums(sums, ddp, device))


def identity_baseline(dataset: Any, crop: int | None = None) -> dict[str, float]:
    """PSNR/SSIM of the degraded inputs themselves (no restoration): the score a model has to beat."""
    return _summarise(_score_images(lambda x: x, dataset, range(len(dataset)), torch.device("cpu"), crop))


# ----------------------------------------------------------------------------------------------------------
# Run folder


_RUN_FILES = ("best.pt", "last.pt", "history.csv", "history.json", "metrics.json", "log.txt")


def _clear_run(run_dir: Path) -> None:
    for name in _RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "samples", ignore_errors=True)


def _history_frame(history: list[dict[str, Any]]):
    import pandas as pd

    return pd.DataFrame(history)


def _write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    write_text_atomic(_history_frame(history).to_csv(index=False), run_dir / "history.csv")
    write_json_atomic(_jsonable(history), run_dir / "history.json")


def _jsonable(obj: Any) -> Any:
    """NaN/inf -> None so the JSON files stay standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _load_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; train first (hw4lib.train.fit) or check the path"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated or foreign file
        raise ValueError(
            f"{path} is not a readable hw4lib checkpoint ({err}); retrain or pick another file"
        ) from err
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
        raise ValueError(
            f"{path} is not an hw4lib training checkpoint (needs keys 'model' and 'model_config'); "
            "for the official PromptIR weights use hw4lib.model.load_official_checkpoint"
        )
    return ckpt


def _checkpoint_path(run_dir: str | os.PathLike[str], checkpoint: str | os.PathLike[str]) -> Path:
    if str(checkpoint) in ("best", "last"):
        return paths.resolve(run_dir) / f"{checkpoint}.pt"
    return paths.resolve(checkpoint)


def load_run_model(
    run_dir: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] = "best",
    map_location: Any = "cpu",
) -> nn.Module:
    """The trained PromptIR of a run folder (``best.pt``, ``last.pt`` or an explicit checkpoint path), rebuilt
    from the checkpoint's ``model_config``, in eval mode. With EMA on, these are the EMA weights."""
    path = _checkpoint_path(run_dir, checkpoint)
    ckpt = _load_checkpoint(path, map_location)
    kwargs = dict(ckpt["model_config"])
    preset = kwargs.pop("preset", "full")
    model = build_model(preset, **kwargs)
    model.load_state_dict(ckpt["model"])
    return model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu").eval()


def read_run(run_dir: str | os.PathLike[str]) -> RunResult:
    """A finished (or interrupted) run folder as a :class:`RunResult`."""
    import pandas as pd

    run_dir = paths.resolve(run_dir)
    for name in ("config.json", "history.csv"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir / name} is missing: {run_dir} is not a (started) training run")
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    history = pd.read_csv(run_dir / "history.csv")
    return RunResult(run_dir, metrics, history, TrainConfig.from_json(run_dir / "config.json"))


# ----------------------------------------------------------------------------------------------------------
# Training


class _Log:
    """Prints (main process only) and appends to runs/<name>/log.txt."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __call__(self, line: str) -> None:
        if self.path is None:
            return
        print(line, flush=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if not config.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _default_workers(config: TrainConfig, device: torch.device, world: int) -> int:
    if config.num_workers >= 0:
        return config.num_workers
    if device.type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) // world - 1))


def _fmt(value: float, spec: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def fit(
    config: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train a model as ``config`` says and write the run folder; returns its :class:`RunResult`.

    ``resume=True`` continues from ``last.pt`` (starts fresh when there is none). Without it, a folder that
    already holds a run raises :class:`RunExistsError` unless ``overwrite=True``. ``on_epoch_end(row)`` is
    called after each epoch's checkpoint is written (the history row as a dict). Under ``torchrun`` every
    process calls ``fit`` with the same config; the main process writes the folder. Raises
    :class:`TrainingDiverged` when the loss becomes NaN/inf.
    """
    ddp = _init_distributed(config.device)
    try:
        return _fit(config, ddp, resume, overwrite, on_epoch_end)
    finally:
        if ddp.owns_group and dist.is_initialized():
            dist.destroy_process_group()


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


def _fit(
    config: TrainConfig,
    ddp: _Dist,
    resume: bool,
    overwrite: bool,
    on_epoch_end: Callable[[dict[str, Any]], None] | None,
) -> RunResult:
    started = time.perf_counter()
    device = _pick_device(config.device, ddp.local_rank)
    run_dir = config.resolved_run_dir()
    last_path = run_dir / "last.pt"
    resuming = resume and last_path.is_file()
    refusal: RunExistsError | None = None
    if ddp.main:
        if not resuming and (last_path.is_file() or (run_dir / "history.csv").is_file()):
            if not overwrite:
                refusal = RunExistsError(
                    f"{run_dir} already holds a run; pass resume=True (--resume) to continue it or "
                    "overwrite=True (--overwrite) to start over, or choose another name"
                )
            else:
                _clear_run(run_dir)
        if refusal is None:
            run_dir.mkdir(parents=True, exist_ok=True)
            config.to_json(run_dir / "config.json")
    if ddp.active:  # every process stops when the main one refuses, instead of waiting for it forever
        flag = torch.tensor([float(refusal is not None)], device=device)
        dist.all_reduce(flag)
        if flag.item() and refusal is None:
            refusal = RunExistsError(f"{run_dir} already holds a run (see the main process's message)")
    if refusal is not None:
        raise refusal
    log = _Log(run_dir / "log.txt" if ddp.main else None)
    if resume and not resuming:
        log(f"no {last_path} to resume from: starting a fresh run")

    # -- determinism and speed switches
    _seed_everything(config.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not config.deterministic and config.patch_size is not None
        torch.set_float32_matmul_precision("high")
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
    amp_dtype = _amp_dtype(config, device)

    # -- data
    train_pairs, val_pairs, data_root = _load_pairs(config)
    train_set = PairedDataset(
        train_pairs, patch_size=config.patch_size, augment=config.augment, cache=config.cache,
        repeat=config.patches_per_image, seed=config.seed,
    )
    val_set = PairedDataset(val_pairs, patch_size=None, augment=False, cache=config.cache)
    if config.cache:  # decode once, before DataLoader workers fork (they then share the pages)
        train_set.preload()
        val_set.preload()
    global_batch = config.batch_size * ddp.world
    steps_per_epoch = max(1, len(train_set) // global_batch)
    if config.max_train_steps is not None:
        steps_per_epoch = max(1, min(steps_per_epoch, config.max_train_steps))
    sampler = _GlobalOrderBatches(len(train_set), config.batch_size, steps_per_epoch, ddp.world, ddp.rank,
                                  config.seed)
    workers = _default_workers(config, device, ddp.world)
    loader = DataLoader(
        _EpochView(train_set), batch_sampler=sampler, collate_fn=_collate, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0, worker_init_fn=_seed_worker,
        prefetch_factor=4 if workers > 0 else None,
    )

    # -- model, loss, optimizer, schedule
    model = initial_model(config).to(device)
    model_config = {"preset": config.preset, **model.config}
    n_params = count_parameters(model)
    criterion = build_loss(config.loss, alpha=config.alpha).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = _schedule(config, steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    ema = ModelEMA(model, config.ema) if config.ema > 0 else None
    train_model: nn.Module = model
    if ddp.active:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
    if config.compile:
        train_model = torch.compile(train_model)

    # -- state that a resume restores
    history: list[dict[str, Any]] = []
    best = {"epoch": 0, "val_psnr": -math.inf}
    first_epoch, elapsed_before = 1, 0.0
    if resuming:
        ckpt = _load_checkpoint(last_path, map_location=device)
        model.load_state_dict(ckpt["train_model"] if ckpt.get("train_model") is not None else ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        # load_state_dict copied the saved schedule's fields into `schedule`; a fresh one makes the horizon
        # follow the current config (resuming with more epochs stretches the cosine)
        schedule = _schedule(config, steps_per_epoch)
        scheduler.lr_lambdas[0] = schedule
        for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
            group["lr"] = base_lr * schedule(scheduler.last_epoch)
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        if ema is not None:
            if ckpt.get("ema") is None:
                raise ValueError(f"{last_path} was trained without EMA; resume with ema=0 or start a new run")
            ema.module.load_state_dict(ckpt["model"])
            ema.num_updates = int(ckpt["ema"]["num_updates"])
        history = list(ckpt["history"])
        best = dict(ckpt["best"])
        first_epoch = int(ckpt["epoch"]) + 1
        elapsed_before = float(ckpt.get("wall_seconds", 0.0))
        _set_rng_state(ckpt["rng"])

    baseline = identity_baseline(val_set, config.val_crop)
    log(
        f"run {paths.relative(run_dir)}: preset {config.preset} ({n_params:,} parameters), "
        f"loss {config.loss}, "
        f"{len(train_pairs)} train / {len(val_set)} val pairs from {paths.relative(data_root)}, "
        f"{config.epochs} epochs x {steps_per_epoch} steps of {config.batch_size} x {ddp.world} process(es), "
        f"device {device.type}, {str(amp_dtype).replace('torch.', '') if amp_dtype else 'fp32'}; "
        f"identity PSNR {baseline['psnr']:.2f} dB"
        + (f"; resuming after epoch {first_epoch - 1}" if resuming else "")
    )

    def checkpoint(epoch: int, wall: float) -> dict[str, Any]:
        eval_weights = ema.module.state_dict() if ema is not None else model.state_dict()
        return {
            "version": CHECKPOINT_VERSION,
            "model": eval_weights,
            "model_config": model_config,
            "epoch": epoch,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "ema": ema.state() if ema is not None else None,
            "train_model": model.state_dict() if ema is not None else None,
            "rng": _rng_state(),
            "config": config.to_dict(),
            "history": history,
            "best": best,
            "world_size": ddp.world,
            "wall_seconds": wall,
        }

    show_progress = config.progress if config.progress is not None else sys.stderr.isatty()
    show_progress = bool(show_progress and ddp.main)
    eval_model = ema.module if ema is not None else model
    global_step = (first_epoch - 1) * steps_per_epoch

    for epoch in range(first_epoch, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        sampler.set_epoch(epoch)
        loss_sum, steps_done = 0.0, 0
        bar = _progress(steps_per_epoch, f"epoch {epoch}/{config.epochs}", show_progress)
        for batch in loader:
            x = batch["degraded"].to(device, non_blocking=True)
            y = batch["clean"].to(device, non_blocking=True)
            with _autocast(device, amp_dtype):
                out = train_model(x)
            loss = criterion(out.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            lr_now = optimizer.param_groups[0]["lr"]
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update(model)
            value = loss.detach()
            if ddp.active:
                dist.all_reduce(value)
                value = value / ddp.world
            value = float(value)
            global_step += 1
            steps_done += 1
            if not math.isfinite(value):
                bar.close()
                where = "last.pt" if last_path.is_file() else "no checkpoint yet"
                raise TrainingDiverged(
                    f"loss became {value} at epoch {epoch}, step {steps_done} (global step {global_step}, "
                    f"lr {lr_now:.3g}); the last good checkpoint is kept ({run_dir / where}). "
                    f"Lower lr (now {config.lr:g}), set grad_clip (e.g. 1.0) or turn amp off, and start again"
                )
            loss_sum += value
            bar.update(1)
            if steps_done % 10 == 0:
                bar.set_postfix(loss=f"{loss_sum / steps_done:.4f}")
        bar.close()
        train_seconds = time.perf_counter() - epoch_start

        row: dict[str, Any] = {
            "epoch": epoch,
            "step": global_step,
            "train_loss": loss_sum / max(1, steps_done),
            "lr": lr_now,
        }
        if epoch % config.val_every == 0 or epoch == config.epochs:
            val = evaluate(eval_model, val_set, device, config.val_crop, amp_dtype, ddp)
        else:
            val = {k: float("nan") for k in _summarise(torch.ones(len(DEGRADATIONS), 3))}
        row.update({f"val_{k}": v for k, v in val.items()})
        seconds = time.perf_counter() - epoch_start
        row["seconds"] = seconds
        row["images_per_s"] = steps_done * global_batch / max(train_seconds, 1e-9)
        history.append(row)

        improved = math.isfinite(row["val_psnr"]) and row["val_psnr"] > best["val_psnr"]
        if improved:
            best = {"epoch": epoch, "val_psnr": row["val_psnr"]}
        wall = elapsed_before + time.perf_counter() - started
        if ddp.main:
            state = checkpoint(epoch, wall)
            save_torch_atomic(state, last_path)
            if improved:
                save_torch_atomic(state, run_dir / "best.pt")
            _write_history(run_dir, history)
            write_json_atomic(
                _jsonable(_metrics(config, history, best, baseline, n_params, wall, device, ddp, amp_dtype,
                                   complete=epoch == config.epochs)),
                run_dir / "metrics.json",
            )
            log(
                f"epoch {epoch}/{config.epochs}  loss {row['train_loss']:.4f}  "
                f"val PSNR {_fmt(row['val_psnr'], '.2f')} dB (rain {_fmt(row['val_psnr_rain'], '.2f')}, "
                f"snow {_fmt(row['val_psnr_snow'], '.2f')})  SSIM {_fmt(row['val_ssim'], '.4f')}  "
                f"lr {lr_now:.2e}  {seconds:.1f} s  {row['images_per_s']:.1f} img/s"
                + ("  *" if improved else "")
            )
        if on_epoch_end is not None:
            on_epoch_end(dict(row))

    wall = elapsed_before + time.perf_counter() - started
    metrics = _metrics(config, history, best, baseline, n_params, wall, device, ddp, amp_dtype, complete=True)
    if ddp.main:
        if config.save_samples > 0 and (run_dir / "best.pt").is_file():
            _save_samples(run_dir, val_set, config, device, amp_dtype)
        write_json_atomic(_jsonable(metrics), run_dir / "metrics.json")
        log(
            f"done: best val PSNR {metrics['best_val_psnr']:.2f} dB at epoch {metrics['best_epoch']} "
            f"(identity {baseline['psnr']:.2f} dB, gain {metrics['gain_db']:+.2f} dB) in {wall:.1f} s"
        )
    if ddp.active:
        dist.barrier()
    return RunResult(run_dir, metrics, _history_frame(history), config)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm  # the plain bar: no widget warnings inside notebooks

    return tqdm(total=total, desc=desc, leave=False, disable=not enabled, dynamic_ncols=True, file=sys.stderr)


def _metrics(
    config: TrainConfig,
    history: list[dict[str, Any]],
    best: dict[str, Any],
    baseline: dict[str, float],
    n_params: int,
    wall: float,
    device: torch.device,
    ddp: _Dist,
    amp_dtype: torch.dtype | None,
    complete: bool,
) -> dict[str, Any]:
    best_row = next((r for r in history if r["epoch"] == best["epoch"]), None)
    nan = float("nan")
    out: dict[str, Any] = {
        "best_epoch": best["epoch"],
        "best_val_psnr": best_row["val_psnr"] if best_row else nan,
        "best_val_ssim": best_row["val_ssim"] if best_row else nan,
    }
    for kind in DEGRADATIONS:
        out[f"best_val_psnr_{kind}"] = best_row[f"val_psnr_{kind}"] if best_row else nan
        out[f"best_val_ssim_{kind}"] = best_row[f"val_ssim_{kind}"] if best_row else nan
    out["input_psnr"] = baseline["psnr"]
    out["input_ssim"] = baseline["ssim"]
    for kind in DEGRADATIONS:
        out[f"input_psnr_{kind}"] = baseline[f"psnr_{kind}"]
        out[f"input_ssim_{kind}"] = baseline[f"ssim_{kind}"]
    out["gain_db"] = out["best_val_psnr"] - baseline["psnr"]
    last = history[-1] if history else {}
    timed = [r["images_per_s"] for r in history]
    out.update(
        {
            "final_val_psnr": last.get("val_psnr", nan),
            "epochs_done": last.get("epoch", 0),
            "steps": last.get("step", 0),
            "complete": complete,
            "params": n_params,
            "wall_seconds": wall,
            "images_per_s": float(np.median(timed)) if timed else nan,
            "device": str(device.type if device.type == "cpu" else torch.cuda.get_device_name(device)),
            "world_size": ddp.world,
            "precision": str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32",
            "loss": config.loss,
            "recipe": config.recipe,
            "preset": config.preset,
            "name": config.name,
        }
    )
    return out


@torch.no_grad()
def _save_samples(
    run_dir: Path, val_set: Any, config: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None
) -> None:
    """Restore a few validation images (alternating types) with the best model: samples/<name>.png plus
    samples/samples.json (name, type, source files, input and restored PSNR)."""
    model = load_run_model(run_dir, "best", map_location=device)
    records = []
    for pair in _balanced(val_set.pairs, config.save_samples):
        item = val_set[val_set.pairs.index(pair)]
        x = _center_crop(item["degraded"], config.val_crop).unsqueeze(0).to(device)
        y = _center_crop(item["clean"], config.val_crop).unsqueeze(0).to(device)
        with _autocast(device, amp_dtype):
            out = model(x)
        out = out.float().clamp(0, 1)
        save_png_atomic(to_uint8(out[0].cpu()), run_dir / "samples" / f"{pair.name}.png")
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
    write_json_atomic(records, run_dir / "samples" / "samples.json")


# ----------------------------------------------------------------------------------------------------------
# Figures (the notebook calls these)


def lr_curve(config: TrainConfig, steps_per_epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The learning rate of every optimizer step of a run: (epoch position of each step, lr)."""
    schedule = _schedule(config, steps_per_epoch)
    steps = np.arange(config.epochs * steps_per_epoch)
    return (steps + 1) / steps_per_epoch, np.array([config.lr * schedule(int(k)) for k in steps])


def plot_history(
    history: Any,
    input_psnr: float | None = None,
    path: str | os.PathLike[str] | None = None,
    config: TrainConfig | None = None,
):
    """Learning curves: train loss, validation PSNR (overall and per type, with the identity baseline) and the
    learning rate (every step when ``config`` is given, else the last step of each epoch). Saves a PNG to
    ``path`` when given; returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    h = _history_frame(history) if isinstance(history, list) else history
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    axes[0].plot(h["epoch"], h["train_loss"], marker="o")
    axes[0].set(title="train loss (mean over the epoch)", xlabel="epoch", yscale="log")
    axes[1].plot(h["epoch"], h["val_psnr"], marker="o", label="all", color="k")
    for kind in DEGRADATIONS:
        if f"val_psnr_{kind}" in h:
            axes[1].plot(h["epoch"], h[f"val_psnr_{kind}"], marker=".", label=kind)
    if input_psnr is not None:
        axes[1].axhline(input_psnr, ls="--", color="gray", label="input (identity)")
    axes[1].set(title="validation PSNR (dB)", xlabel="epoch")
    axes[1].legend(fontsize=8)
    if config is not None and len(h):
        x, lr = lr_curve(config, int(h["step"].iloc[0] // h["epoch"].iloc[0]))
        axes[2].plot(x, lr)
        axes[2].set(title="learning rate (every step)", xlabel="epoch", yscale="log")
    else:
        axes[2].plot(h["epoch"], h["lr"], marker="o")
        axes[2].set(title="learning rate (last step of each epoch)", xlabel="epoch", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    if path is not None:
        _save_figure(fig, path)
    return fig


def plot_samples(run_dir: str | os.PathLike[str], n: int = 4, path: str | os.PathLike[str] | None = None):
    """A grid of validation samples: degraded | restored (best model) | clean, with PSNRs in the titles.
    Saves to ``path`` when given (PNG, or JPEG for a .jpg name: photographs compress 10x better)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    from hw4lib.data import load_image

    run_dir = paths.resolve(run_dir)
    index = run_dir / "samples" / "samples.json"
    if not index.is_file():
        raise FileNotFoundError(
            f"{index} is missing: the run saved no samples (save_samples=0 or no best.pt)"
        )
    records = json.loads(index.read_text(encoding="utf-8"))[:n]
    fig, axes = plt.subplots(len(records), 3, figsize=(7.5, 2.6 * len(records)), squeeze=False)
    for row, rec in zip(axes, records, strict=True):
        restored = np.asarray(Image.open(run_dir / "samples" / rec["restored"]).convert("RGB"))
        panels = [
            (
                _crop_np(load_image(rec["degraded_path"]), rec["crop"]),
                f"{rec['name']}: input {rec['psnr_input']:.2f} dB",
            ),
            (restored, f"restored {rec['psnr_restored']:.2f} dB"),
            (_crop_np(load_image(rec["clean_path"]), rec["crop"]), "clean"),
        ]
        for ax, (img, title) in zip(row, panels, strict=True):
            ax.imshow(img)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    if path is not None:
        _save_figure(fig, path)
    return fig


def _crop_np(img: np.ndarray, size: int | None) -> np.ndarray:
    if size is None:
        return img
    h, w = img.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[top : top + size, left : left + size]


def _save_figure(fig: Any, path: str | os.PathLike[str]) -> None:
    from hw4lib.io import atomic_write

    path = paths.resolve(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    kwargs: dict[str, Any] = {"pil_kwargs": {"quality": 85}} if fmt in ("jpg", "jpeg") else {}
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=100, bbox_inches="tight", **kwargs)


# ----------------------------------------------------------------------------------------------------------
# CLI: python -m hw4lib train ...


def _parse_field(name: str, annotation: Any, text: str) -> Any:
    ann = _type_label(annotation)  # "float", "int | None", "dict[str, Any]", ...
    if text.lower() in ("none", "null") and "None" in ann:
        return None
    try:
        if ann.startswith("dict"):
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
            return value
        if ann.startswith("bool"):
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("not a boolean")
        if ann.startswith("int"):
            return int(text)
        if ann.startswith("float"):
            return float(text)
    except ValueError as err:
        flag = "--" + name.replace("_", "-")
        raise argparse.ArgumentTypeError(f"{flag}: cannot read {text!r} as {ann} ({err})") from err
    return text


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """--config FILE, then --recipe, then every explicit --field on top."""
    hints = typing.get_type_hints(TrainConfig)
    values: dict[str, Any] = {}
    if args.config:
        values.update(TrainConfig.from_json(args.config).to_dict())
    if args.recipe:
        if args.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {args.recipe!r}; choose one of {sorted(RECIPES)}")
        values.update(RECIPES[args.recipe])
        values["recipe"] = args.recipe
    for f in dataclasses.fields(TrainConfig):
        if f.name == "recipe":
            continue
        text = getattr(args, f.name, None)
        if text is not None:
            values[f.name] = _parse_field(f.name, hints[f.name], text)
    return TrainConfig.from_dict(values, "command line")


# errors that mean "fix the input": print one line instead of a traceback (DataError is a ValueError)
_USER_ERRORS = (TrainingDiverged, RunExistsError, ValueError, FileNotFoundError, argparse.ArgumentTypeError)


def _run_train(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        result = fit(config, resume=args.resume, overwrite=args.overwrite)
    except _USER_ERRORS as err:
        print(f"train: {err}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {result.run_dir}")
    return 0


def add_commands(subparsers: Any) -> None:
    """Adds ``train`` to ``python -m hw4lib``."""
    p = subparsers.add_parser(
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
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "recipe":
            continue
        default = f.default if f.default is not dataclasses.MISSING else "{}"
        p.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f.name, default=None, metavar=f.name.upper(),
            help=f"{_type_label(hints[f.name])} (default {default})",
        )
    p.set_defaults(func=_run_train)


def _type_label(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
