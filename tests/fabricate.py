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
    seed: int = 0,
    metrics: dict[str, object] | None = None,
) -> Path:
    """A finished run folder, written through hw4lib.runs as training writes it; history's best epoch holds
    the metrics' numbers. ``metrics``: further metrics.json entries (e.g. ``steps``, ``images_seen``)."""
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
            **(metrics or {}),
        },
    )
    config = make_config(
        loss=loss, epochs=epochs, preset="tiny", lr=2e-3, seed=seed, val_fraction=0.1, data_dir="data/demo",
        batch_size=8, patch_size=48, name=name,
    )  # fmt: skip
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


# ------------------------------------------------------------------------------------------------- a study

STUDY_LOSSES = ("l1", "mse", "l1_ssim", "l1+0.1*edge_y")
STUDY_INPUTS = [
    16.0 + 1.25 * i for i in range(12)
]  # input PSNR of the 12 validation images (16 ... 29.75 dB)


def study_noise(i: int, seed: int) -> float:
    """A small deterministic per-image, per-seed wobble (-0.1 ... +0.1 dB), averaging 0 over 5 images."""
    return 0.05 * ((i * 7 + seed * 3) % 5 - 2)


def study_effect(loss: str, input_psnr: float) -> float:
    """The fabricated PSNR difference of ``loss`` against L1 on an image of ``input_psnr``: MSE gains on the
    most degraded images and loses on the light ones (slope -0.2 per dB around 23 dB); L1+SSIM is 0.1 dB
    better everywhere; the edge loss 0.05 dB worse."""
    return {"l1": 0.0, "mse": -0.2 * (input_psnr - 23.0), "l1_ssim": 0.1}.get(loss, -0.05)


def study_per_image(loss: str, seed: int, ablations: bool = True) -> pd.DataFrame:
    """Twelve validation images (6 rain, 6 snow; input 16 ... 29.75 dB). L1 restores to input + 3 - 0.25 x
    (input - 16) + 0.1 x seed (so it makes the two lightest images worse); other losses add
    :func:`study_effect` and :func:`study_noise`. Prompt weights: 2 levels x 3 components, rain on component
    0, snow on 2. Ablations: own-type mean -0.01 dB, other type -0.5 (rain) / -0.3 (snow), uniform -0.2,
    one-hot j -0.1 x (j + 1), prompt zeroed -1.0 (rain) / -0.8 (snow), each ± 0.1 by image (i % 3 - 1)."""
    rows = []
    for i, input_psnr in enumerate(STUDY_INPUTS):
        kind = "rain" if i % 2 == 0 else "snow"
        psnr = input_psnr + 3 - 0.25 * (input_psnr - 16) + 0.1 * seed
        if loss != "l1":
            psnr += study_effect(loss, input_psnr) + study_noise(i, seed)
        w = [0.6, 0.3, 0.1] if kind == "rain" else [0.1, 0.3, 0.6]
        w = [w[0] + 0.01 * (i % 3), w[1], w[2] - 0.01 * (i % 3)]
        row = {"name": f"{kind}-{i}", "kind": kind, "psnr": psnr, "ssim": 0.8, "input_psnr": input_psnr,
               "input_ssim": 0.6}  # fmt: skip
        for level in ("prompt1", "prompt2"):
            row.update({f"{level}_{j}": w[j] for j in range(3)})
        row["psnr_own_mean"] = psnr - 0.01
        row["psnr_other_mean"] = psnr - (0.5 if kind == "rain" else 0.3)
        if ablations:
            wobble = 0.1 * (i % 3 - 1)
            row["psnr_uniform"] = psnr - 0.2 + wobble
            for j in range(3):
                row[f"psnr_onehot_{j}"] = psnr - 0.1 * (j + 1) + wobble
            row["psnr_zero_prompt"] = psnr - (1.0 if kind == "rain" else 0.8) + wobble
        rows.append(row)
    return pd.DataFrame(rows)


def make_study(
    root: Path,
    losses: tuple[str, ...] = STUDY_LOSSES,
    seeds: tuple[int, ...] = (0, 1, 2),
    steps: int = 400,
    series: tuple[int, ...] = (50, 100, 200),
    batch: int = 8,
) -> list[Path]:
    """A loss study as the study writes it: ``study-<loss>-s<seed>`` (``steps`` steps, per-image tables with
    the ablations) and the compute series ``study-steps<N>-l1-s<seed>`` (no ablations). Best validation PSNR
    = the mean of the per-image table; a series run at N steps scores 1.5 dB less per halving of the steps.
    Images seen = steps x ``batch``, wall time = steps / 2 s."""
    from hw4lib.runs import safe_name

    made = []

    def one(name: str, loss: str, seed: int, n_steps: int, per_image: pd.DataFrame, shift: float) -> Path:
        kinds = per_image.groupby("kind")["psnr"].mean() + shift
        inputs = per_image.groupby("kind")["input_psnr"].mean()
        return make_run(
            root, name, loss, float(per_image["psnr"].mean()) + shift, float(kinds["rain"]),
            float(kinds["snow"]), epochs=4, best_epoch=4, input_psnr=float(per_image["input_psnr"].mean()),
            wall=n_steps / 2, per_image=per_image if shift == 0 else None, seed=seed,
            metrics={"steps": n_steps, "images_seen": n_steps * batch,
                     "input_psnr_rain": float(inputs["rain"]), "input_psnr_snow": float(inputs["snow"])},
        )  # fmt: skip

    for loss in losses:
        for seed in seeds:
            made.append(
                one(f"study-{safe_name(loss)}-s{seed}", loss, seed, steps, study_per_image(loss, seed), 0)
            )
    for n in series:
        for seed in seeds:
            shift = -1.5 * np.log2(steps / n)
            made.append(
                one(f"study-steps{n}-l1-s{seed}", "l1", seed, n, study_per_image("l1", seed, False), shift)
            )
    return made


def fake_eval_images(run: Path, names: list[str], size: int = 16) -> None:
    """The images of ``names`` as ``hw4lib.study.probe.evaluate_run`` saves them into a snapshot: the restored
    PNG (a little off the clean one) in the run's eval folder, the degraded and clean PNGs in the snapshot's
    ``images/`` folder beside the runs; and a visual.json listing them."""
    import json

    from hw4lib.study.images import IMAGES

    visual = {}
    for k, name in enumerate(names):
        clean = rng_image(size, size, seed=k)
        restored = np.clip(clean.astype(int) + 12, 0, 255).astype(np.uint8)
        degraded = np.clip(clean.astype(int) + 40, 0, 255).astype(np.uint8)
        write_png(run / runs.EVAL / f"{name}_restored.png", restored)
        for tag, img in (("degraded", degraded), ("clean", clean)):
            write_png(run.parent / IMAGES / f"{name}_{tag}.png", img)
        visual[name] = {"kind": name.split("-")[0], "top": 2, "left": 2, "size": 8}
    (run / runs.EVAL / "visual.json").write_text(json.dumps({"images": visual, "worst": {}}))


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
