"""A training run's settings: :class:`TrainConfig`, the named starting points (``RECIPES``), ``make_config``.

A config is everything a run depends on; ``runs/<name>/config.json`` holds it, and ``TrainConfig.from_json``
reads it back (``python -m hw4lib train --config runs/x/config.json`` retrains or resumes from it).
:func:`make_config` is the one way to build one, for the notebook and the command line alike: a recipe (or
the one that fits the data and the device), then explicit values on top; every name (recipe, loss, preset,
self-ensemble, augmentation) is checked before any file or folder is written.

A run is sized either in epochs (``epochs``, ``schedule_epochs``) or by a compute budget (``time_budget``,
e.g. ``"45m"``): then the engine measures its own speed and fixes the number of optimiser steps so that the
warm-up + cosine schedule ends when the budget does. A run states one or the other, not both.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hw4lib import paths
from hw4lib.data import MANIFEST, Pair, augment_mode, validation_split
from hw4lib.device import resolve_device
from hw4lib.infer import TTA_CHOICES
from hw4lib.losses import parse_spec
from hw4lib.model import PRESETS

__all__ = [
    "TrainConfig",
    "RECIPES",
    "RECIPE_NOTES",
    "make_config",
    "default_recipe",
    "merge_sizing",
    "parse_duration",
    "format_duration",
    "recipe_table",
]


def _knob(default: Any, help: str) -> Any:  # noqa: A002 -- the argparse word
    """A config field with its one-line help (shown by ``python -m hw4lib train --help``)."""
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults reproduce the course's known (seed) solution."""

    name: str = _knob("train", "run folder runs/<name>/ (unless run_dir is set)")
    run_dir: str | None = _knob(None, "explicit run folder (relative paths from the repository root)")
    recipe: str | None = _knob(None, "the recipe this config started from (recorded only)")
    data_dir: str = _knob("data/demo", "data set in the course layout: train/degraded, train/clean")
    # loss
    loss: str = _knob("mse", "loss spec: a sum of weighted terms, e.g. l1, mse, l1_ssim, berhu, "
                      "l1+0.1*edge_y, mse@snow+l1@rain (a term for one type)")  # fmt: skip
    alpha: float = _knob(0.84, "SSIM weight of l1_ssim")
    # optimisation
    epochs: int = _knob(25, "epochs (ignored when time_budget is set: the engine plans the run)")
    schedule_epochs: float | None = _knob(None, "cosine horizon in epochs (default: epochs)")
    time_budget: str | None = _knob(None, "size the run by wall time instead: 90s, 45m, 6h, 1h30m")
    batch_size: int = _knob(1, "per process: N processes train with a global batch of N x batch_size")
    lr: float = _knob(2e-4, "peak learning rate of AdamW")
    weight_decay: float = _knob(1e-2, "AdamW weight decay")
    min_lr: float = _knob(1e-6, "learning rate at the end of the cosine")
    warmup_epochs: float = _knob(0.0, "linear warm-up before the cosine, in epochs")
    grad_clip: float = _knob(0.0, "max global gradient norm; 0 turns clipping off")
    ema: float = _knob(0.0, "EMA decay of the weights (e.g. 0.999); 0 turns EMA off")
    # data
    patch_size: int | None = _knob(None, "random square training crops in px; none (or 0): whole images")
    patches_per_image: int = _knob(1, "crops per training pair and epoch")
    augment: str = _knob("none", "identical on both images of a pair: none, flips (mirrors and half turns), "
                         "x8 (also 90-degree turns)")  # fmt: skip
    val_fraction: float = _knob(0.1, "share of each type held out for validation (unless split.csv says)")
    val_max_images: int | None = _knob(None, "validate on at most this many pairs (balanced by type)")
    val_crop: int | None = _knob(None, "validate on centre crops of this size (large images); none: whole")
    val_every: int = _knob(1, "validate every N epochs (and after the last)")
    cache: bool = _knob(True, "keep decoded images in memory")
    num_workers: int = _knob(-1, "DataLoader workers; -1: 0 on a CPU, min(8, cores per process) on CUDA")
    max_train_steps: int | None = _knob(None, "cap on the steps of an epoch (quick or compute-matched runs)")
    # model
    preset: str = _knob("full", f"model size: {', '.join(PRESETS)} (full: the paper's 35.4 M parameters)")
    model_overrides: dict[str, Any] = _knob({}, "extra PromptIR keyword arguments, as JSON")
    identity_init: bool = _knob(False, "zero the output convolution: the untrained model is the identity map")
    # hardware
    seed: int = _knob(0, "data split, crops and initial weights")
    device: str = _knob("auto", "auto (a GPU when there is one), cpu, cuda, cuda:1, ...")
    amp: bool = _knob(True, "mixed precision on CUDA (bfloat16 on cards that have it, else float16); "
                      "a CPU trains in float32")  # fmt: skip
    channels_last: bool | None = _knob(None, "model memory layout (none: the model's default, channels-last)")
    compile: bool = _knob(False, "torch.compile the training forward (CUDA; worth it for long runs)")
    grad_checkpointing: bool = _knob(False, "recompute the transformer blocks in backward: less memory")
    deterministic: bool = _knob(False, "deterministic CUDA kernels (CPU runs are deterministic anyway)")
    # output
    save_samples: int = _knob(4, "validation images restored by the best model into samples/")
    progress: bool | None = _knob(None, "live step bars; none: in JupyterLab and terminals, not in logs")
    tensorboard: bool = _knob(False, "also log the curves for TensorBoard into runs/<name>/tb/")
    allow_long_cpu: bool = _knob(False, "train even when the estimate says hours on a CPU (else: refuse)")
    tta: str = _knob("auto", f"self-ensemble when predicting: {', '.join(TTA_CHOICES)} "
                     "(auto: what the augmentation allows)")  # fmt: skip

    def __post_init__(self) -> None:
        self.device = str(self.device)  # a torch.device works too
        if self.patch_size in (0, None):
            self.patch_size = None
        if self.model_overrides is None:
            self.model_overrides = {}
        if isinstance(self.tta, bool) or self.tta is None:  # configs written before tta became a choice
            self.tta = "x8" if self.tta else "none"
        problems = []
        try:
            self.augment = augment_mode(self.augment)  # configs written before: true / false
        except ValueError as err:
            problems.append(str(err))
        if self.tta not in TTA_CHOICES:
            problems.append(f"tta must be one of {', '.join(TTA_CHOICES)} (got {self.tta!r})")
        try:
            parse_spec(self.loss)
        except ValueError as err:
            problems.append(str(err))
        if self.time_budget is not None:
            try:
                parse_duration(self.time_budget)
            except ValueError as err:
                problems.append(str(err))
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
            problems.append(f"patch_size must be >= 8 or none for whole images (got {self.patch_size})")
        if self.preset not in PRESETS:
            problems.append(f"preset {self.preset!r} is not one of {', '.join(PRESETS)}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    # -- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The config as JSON text; also written (atomically) to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            paths.write_text_atomic(text, path)
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

    def split(
        self, data_dir: str | os.PathLike[str] | None = None
    ) -> tuple[list[Pair], list[Pair], list[Pair], Path]:
        """The run's data split (:func:`hw4lib.data.validation_split` with its settings): training pairs,
        validation pairs, the validation pairs it scores, and the data folder (``data_dir`` overrides)."""
        root = self.data_dir if data_dir is None else data_dir
        return validation_split(root, self.val_fraction, self.seed, self.val_max_images)

    def resolved_run_dir(self) -> Path:
        return paths.output(self.run_dir) if self.run_dir else paths.runs_dir() / self.name

    def model_kwargs(self) -> dict[str, Any]:
        """``build_model(preset, **kwargs)`` keyword arguments: the overrides, the memory layout, and
        activation checkpointing (neither changes the architecture)."""
        kwargs = dict(self.model_overrides)
        if self.channels_last is not None:
            kwargs["channels_last"] = self.channels_last
        if self.grad_checkpointing:
            kwargs["checkpointing"] = True
        return kwargs


# ----------------------------------------------------------------------------------------------------------
# Recipes: named starting points. A recipe fills the config; explicit values override it (make_config).
# Each names its source; `recipe_table` shows how many crops and pixels each one shows the model.

# What every CPU recipe shares: the tiny model on small crops, a high learning rate with a short warm-up,
# clipping, an EMA, and the identity start (the untrained model returns its input), so that lightly degraded
# images do not get worse early on. No flips: the short runs learn one rain slant faster than every one.
_CPU = dict(
    loss="l1", batch_size=8, patch_size=48, augment="none", lr=1e-3, weight_decay=1e-2, min_lr=1e-5,
    warmup_epochs=0.5, ema=0.99, grad_clip=1.0, identity_init=True, preset="tiny",
)  # fmt: skip

RECIPES: dict[str, dict[str, Any]] = {
    # The course's known solution (29.74 dB on the course's public leaderboard), as its report describes it:
    # MSE, whole images, batch 1, 25 epochs, AdamW 2e-4, cosine to 1e-6, mixed precision, and random
    # horizontal and vertical flips of each pair (no rotations), hence the flips self-ensemble.
    "seed": dict(
        loss="mse", epochs=25, batch_size=1, patch_size=None, patches_per_image=1, augment="flips", lr=2e-4,
        weight_decay=1e-2, min_lr=1e-6, warmup_epochs=0.0, ema=0.0, preset="full", tta="auto",
    ),  # fmt: skip
    # The PromptIR paper's training (official va1shn9v/PromptIR, train.py and options.py): L1 on random
    # 128 px crops, batch 8 per GPU (4 GPUs in the paper: torchrun gives the same global batch), AdamW 2e-4,
    # 15 warm-up epochs then cosine to 0 over 150 epochs, stopped at 120, random flips and rotations. One
    # official "epoch" repeats the derain set 120 times (utils/dataset_utils.py: `self.rs_ids * 120`): 120
    # random crops of every training image per epoch.
    "official": dict(
        loss="l1", epochs=120, schedule_epochs=150, batch_size=8, patch_size=128, patches_per_image=120,
        augment="x8", lr=2e-4, weight_decay=1e-2, min_lr=0.0, warmup_epochs=15.0, ema=0.0, preset="full",
        tta="x8",
    ),  # fmt: skip
    # What the best public solutions of this assignment did (their reports: 32.95 and 32.79 dB on the public
    # leaderboard): stock PromptIR, 120 random 128 px crops per training image per epoch, 150 epochs, 15
    # warm-up epochs then cosine to 1e-6, AdamW 2e-4 with weight decay 1e-4, L1 + 0.1 x Sobel edge loss on
    # luma, mixed precision, a global batch of about 16, flips and rotations, and the 8x flip/rotate
    # self-ensemble at full resolution. Their ablation: EMA and fancier losses gave nothing, the repeats per
    # image mattered most; so no EMA here.
    "strong": dict(
        loss="l1+0.1*edge_y", epochs=150, batch_size=16, patch_size=128, patches_per_image=120, augment="x8",
        lr=2e-4, weight_decay=1e-4, min_lr=1e-6, warmup_epochs=15.0, ema=0.0, grad_clip=0.0, tta="x8",
        preset="full",
    ),  # fmt: skip
    # `strong` on a free Colab GPU (a 16 GB T4): float16 (a T4 has no bfloat16), activation checkpointing
    # and batch 8 of 128 px crops so the full model fits, sized by a time budget (resume after a disconnect
    # continues the same plan). `python -m hw4lib train --recipe colab --dry-run` prints its estimate.
    "colab": dict(
        loss="l1+0.1*edge_y", time_budget="3h", epochs=150, batch_size=8, patch_size=128,
        patches_per_image=120, augment="x8", lr=2e-4, weight_decay=1e-4, min_lr=1e-6, warmup_epochs=15.0,
        ema=0.0, tta="x8", preset="full", grad_checkpointing=True,
    ),  # fmt: skip
    # A run a laptop CPU finishes: the CPU settings on 64 px crops of the course's 256 px images, sized by a
    # 20-minute budget instead of epochs. A demonstration, not a competitive model. It validates on 40 pairs
    # (20 per type): the course set's whole 10 % (320 whole images) would spend much of the budget on one
    # validation instead of training.
    "cpu": {**_CPU, "patch_size": 64, "time_budget": "20m", "epochs": 3, "patches_per_image": 1,
            "val_max_images": 40},  # fmt: skip
    # `make demo` on a laptop CPU: the tiny model on the demo data, a few minutes per loss variant. What it
    # scores is in the demo report (report/demo/), not here.
    "demo": {**_CPU, "epochs": 3, "patches_per_image": 2},
    # The loss study (`make study`): the CPU settings on the study set's photographs (real Rain100L rain and
    # synthetic snow over the same scenes), the same fixed number of steps for every loss and seed so that
    # runs are comparable and reproducible: 10 epochs x 50 steps of 8 crops, validated every second epoch.
    "study": {**_CPU, "epochs": 10, "max_train_steps": 50, "patches_per_image": 5, "val_every": 2,
              "save_samples": 4, "data_dir": "data/study"},  # fmt: skip
    # The tests' and predict.ipynb's quick run: the demo recipe cut to well under a minute.
    "smoke": {**_CPU, "epochs": 1, "patches_per_image": 1, "val_max_images": 16, "save_samples": 4},
}

# one line each, for `train --help` and the notebook's table
RECIPE_NOTES: dict[str, str] = {
    "seed": "the course's known solution: MSE, whole images, batch 1, 25 epochs, flips (a GPU job)",
    "official": "the PromptIR paper's training: L1, 120 crops of 128 px per image per epoch, 120 epochs",
    "strong": "the best public solutions: official's crops, L1 + 0.1 edge, batch 16, 150 epochs (GPU)",
    "colab": "strong on a 16 GB T4: float16, activation checkpointing, batch 8, a 3 h budget (GPU)",
    "cpu": "a 20-minute CPU run of the tiny model on 64 px crops (a demonstration)",
    "demo": "make demo: the tiny model on the demo set, 3 epochs, a few CPU minutes",
    "study": "the loss study: the tiny model, 500 steps per run, the same for every loss and seed",
    "smoke": "tests and quick looks: under a minute on a CPU",
}


def default_recipe(data_dir: str | os.PathLike[str], device: torch.device | str = "auto") -> str:
    """The recipe a run gets when none is named: ``demo`` for a generated set (it carries ``synth.json``),
    else ``seed`` on a GPU (the course's known solution) and the budget-sized ``cpu`` recipe on a CPU."""
    if (paths.resolve(data_dir) / MANIFEST).is_file():
        return "demo"
    kind = resolve_device(device).type if str(device) == "auto" else torch.device(device).type
    return "seed" if kind == "cuda" else "cpu"


def make_config(
    recipe: str | None = None, *, base: TrainConfig | dict[str, Any] | None = None, **overrides: Any
) -> TrainConfig:
    """The :class:`TrainConfig` of a run: ``base`` (e.g. a run's config.json), then ``recipe``, then the
    explicit ``overrides`` on top. Without a recipe or base, :func:`default_recipe` picks one for the data
    and the device (``data_dir`` and ``device`` of the overrides).

    ``None`` values in ``overrides`` mean "not given" and are dropped, so a notebook can pass every parameter.
    Use ``patch_size=0`` for whole images. A run is sized by epochs or by ``time_budget``: giving one
    explicitly replaces the recipe's other; giving both is an error. Every name is checked here, before a
    run writes anything.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    values: dict[str, Any] = {}
    if base is not None:
        values.update(base.to_dict() if isinstance(base, TrainConfig) else base)
    if recipe is None and base is None:
        data_dir = given.get("data_dir", TrainConfig.data_dir)
        recipe = default_recipe(data_dir, given.get("device", "auto"))
    if recipe is not None:
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
        values.update(RECIPES[recipe])
        values["recipe"] = recipe
    return TrainConfig.from_dict(merge_sizing(values, given), f"make_config(recipe={recipe!r})")


def merge_sizing(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the explicitly ``given`` values on top; an explicit epoch count drops the base's budget
    and an explicit budget makes the epochs the engine's to plan. Both given: ``ValueError``."""
    if given.get("time_budget") is not None and given.get("epochs") is not None:
        raise ValueError(
            f"a run is sized by epochs or by a time budget, not both (got epochs={given['epochs']} and "
            f"time_budget={given['time_budget']!r}): drop one"
        )
    values = dict(base)
    if given.get("epochs") is not None:
        values["time_budget"] = None
    values.update(given)
    return values


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | float | int) -> float:
    """Seconds in a duration: ``"45m"``, ``"6h"``, ``"1h30m"``, ``"90s"``, ``"2.5h"`` or plain seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", text.strip().lower())
        rebuilt = "".join(f"{n}{u}" for n, u in parts)
        if re.fullmatch(r"\d+(?:\.\d+)?", text.strip()):
            seconds = float(text)
        elif parts and rebuilt == re.sub(r"\s+", "", text.strip().lower()):
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
        else:
            raise ValueError(f"time_budget {text!r} is not a duration; write e.g. 90s, 45m, 6h, 1h30m")
    if seconds <= 0:
        raise ValueError(f"time_budget must be positive (got {text!r})")
    return seconds


def format_duration(seconds: float) -> str:
    """``3725`` -> ``"1 h 02 min"``, ``95`` -> ``"1 min 35 s"``, ``12.3`` -> ``"12 s"``."""
    seconds = max(0.0, float(seconds))
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.0f} s"


def recipe_table(train_pairs: int, image_side: int = 256) -> Any:
    """What each recipe shows the model on a data set of ``train_pairs`` training pairs of ``image_side`` px:
    crops per image per epoch, epochs, images seen (crops x epochs x pairs), pixels seen, and images seen as a
    multiple of the seed solution's. Budget-sized recipes show their budget instead (the run decides)."""
    import pandas as pd

    def seen(r: dict[str, Any]) -> tuple[float, float]:
        if r.get("time_budget") is not None:
            return float("nan"), float("nan")
        steps = train_pairs * r.get("patches_per_image", 1) // r["batch_size"]
        if r.get("max_train_steps"):
            steps = min(steps, r["max_train_steps"])
        images = steps * r["batch_size"] * r["epochs"]
        side = r.get("patch_size") or image_side
        return images, images * side * side

    seed_images = seen(RECIPES["seed"])[0]
    rows = {}
    for name, r in RECIPES.items():
        images, pixels = seen(r)
        rows[name] = {
            "loss": r["loss"], "preset": r["preset"], "batch": r["batch_size"],
            "crop (px)": r.get("patch_size") or "whole", "crops/image/epoch": r.get("patches_per_image", 1),
            "epochs or budget": r.get("time_budget") or r["epochs"], "images seen": images,
            "pixels seen": pixels, "x seed": images / seed_images,
        }  # fmt: skip
    table = pd.DataFrame.from_dict(rows, orient="index")
    for col in ("images seen", "pixels seen"):  # whole counts; <NA> where the run decides
        table[col] = table[col].astype("Int64")
    table["x seed"] = table["x seed"].round(1)
    table.index.name = "recipe"
    return table
