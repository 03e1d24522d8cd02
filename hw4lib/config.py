"""A training run's settings: :class:`TrainConfig`, the named starting points (``RECIPES``), ``make_config``.

A config is everything a run depends on; ``runs/<name>/config.json`` holds it, and ``TrainConfig.from_json``
reads it back (``python -m hw4lib train --config runs/x/config.json`` retrains or resumes from it).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw4lib import paths
from hw4lib.io import write_text_atomic
from hw4lib.model import PRESETS

__all__ = ["TrainConfig", "RECIPES", "make_config"]


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
    # `make demo` on a laptop CPU: the tiny model on the demo data, a few minutes per loss variant. No
    # flips/rotations: the demo rain falls along one slant, and at this budget learning every orientation
    # costs more than it gives; starting from the identity map and an EMA keep the lightly degraded images
    # from getting worse early on. What it scores is in the demo report (report/), not here.
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
