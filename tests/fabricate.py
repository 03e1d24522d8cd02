"""Fabricated runs and data sets for the tests: written through ``hw4lib.runs``, never by hand."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hw4lib import runs
from hw4lib.config import make_config
from hw4lib.model import PRESETS, build_model


def make_run(
    root: Path,
    name: str,
    loss: str,
    psnr: float,
    rain: float,
    snow: float,
    ssim: float = 0.8,
    epochs: int = 3,
    best_epoch: int = 2,
    input_psnr: float = 20.0,
    wall: float = 61.4,
    params: int = 123_456,
    per_image: pd.DataFrame | None = None,
) -> Path:
    """A finished run folder, written through hw4lib.runs as training writes it; history's best epoch holds
    the metrics' numbers."""
    run = root / name
    run.mkdir(parents=True)
    rows = []
    for epoch in range(1, epochs + 1):
        shift = 0.0 if epoch == best_epoch else -0.5 * abs(epoch - best_epoch)
        rows.append(
            {
                "epoch": epoch,
                "train_loss": 0.1 / epoch,
                "lr": 1e-3,
                "val_psnr": psnr + shift,
                "val_psnr_rain": rain + shift,
                "val_psnr_snow": snow + shift,
                "val_ssim": ssim,
                "val_ssim_rain": ssim - 0.01,
                "val_ssim_snow": ssim + 0.01,
                "seconds": 20.0,
            }
        )
    runs.write_history(run, rows)
    runs.write_metrics(
        run,
        {
            "best_epoch": best_epoch,
            "best_val_psnr": psnr,
            "best_val_psnr_rain": rain,
            "best_val_psnr_snow": snow,
            "best_val_ssim": ssim,
            "input_psnr": input_psnr,
            "input_psnr_rain": input_psnr - 1,
            "input_psnr_snow": input_psnr + 1,
            "input_ssim": 0.6,
            "params": params,
            "wall_seconds": wall,
            "device": "cpu",
            "loss": loss,
            "complete": True,
            "epochs_done": epochs,
        },
    )
    config = make_config(
        loss=loss, epochs=epochs, preset="tiny", lr=2e-3, seed=0, val_fraction=0.1, data_dir="data/demo",
        batch_size=8, patch_size=48, name=name,
    )
    runs.write_config(run, config)
    if per_image is not None:
        (run / runs.EVAL).mkdir()
        per_image.to_csv(run / runs.EVAL / "per_image.csv", index=False)
    return run


def set_config(run: Path, **values: object) -> None:
    """Change fields of a fabricated run's config.json."""
    config = runs.load_run(run).train_config
    runs.write_config(run, dataclasses.replace(config, **values))


def fake_per_image(offset: float, separated: bool = True) -> pd.DataFrame:
    """Four images; prompt weights (2 levels x 2 components) that put rain on component 0, snow on 1."""
    rows = []
    for i, kind in enumerate(["rain", "rain", "snow", "snow"]):
        w = 0.9 if (kind == "rain") == separated else 0.1
        rows.append(
            {
                "name": f"{kind}-{i}",
                "kind": kind,
                "psnr": 25.0 + offset + i,
                "ssim": 0.8,
                "input_psnr": 20.0 + i,
                "input_ssim": 0.6,
                "prompt1_0": w,
                "prompt1_1": 1 - w,
                "prompt2_0": 0.5,
                "prompt2_1": 0.5,
                "psnr_own_mean": 25.0 + offset + i,
                "psnr_other_mean": 24.0 + offset + i,
            }
        )
    return pd.DataFrame(rows)


def tiny_dataset(root: Path, per_kind: int = 4, size: int = 32) -> Path:
    """Course layout with noise images; the degraded one has bright streaks."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ("train/degraded", "train/clean"):
        (root / sub).mkdir(parents=True)
    for kind in ("rain", "snow"):
        for n in range(1, per_kind + 1):
            clean = rng.integers(60, 190, (size, size, 3), dtype=np.uint8)
            degraded = clean.copy()
            degraded[:, n::6] = 250 if kind == "rain" else 230
            Image.fromarray(clean).save(root / "train" / "clean" / f"{kind}_clean-{n}.png")
            Image.fromarray(degraded).save(root / "train" / "degraded" / f"{kind}-{n}.png")
    return root


def write_png(path: Path, array: np.ndarray) -> Path:
    """Save an array as PNG, creating folders (uint16 (H, W) saves a 16-bit PNG)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def rng_image(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """Random uint8 pixels, (H, W, C) or (H, W) for one channel."""
    shape = (h, w, channels) if channels > 1 else (h, w)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def tiny_run(root: Path, name: str = "tiny-run") -> tuple[Path, torch.nn.Module]:
    """A run folder holding best.pt and last.pt of a seeded tiny PromptIR (no history): what a model loader
    needs; returns (folder, the model)."""
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    run = root / name
    run.mkdir(parents=True)
    ckpt = {"model": model.state_dict(), "model_config": {**PRESETS["tiny"], "preset": "tiny"}, "epoch": 1}
    torch.save(ckpt, run / runs.BEST)
    torch.save(ckpt, run / runs.LAST)
    return run, model
