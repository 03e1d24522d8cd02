"""Figures of one run and of predictions: learning curves, restored samples, before/after grids, and the
data notebook's image grids. The report's figures are in ``figures``.

Every function returns a matplotlib figure and saves nothing unless asked: :func:`save_figure` writes PNG (or
JPEG for a ``.jpg`` name, for photographs) atomically and without a version stamp, so an unchanged figure
keeps the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hw4lib import paths
from hw4lib.data import KINDS, load_image
from hw4lib.infer import as_hwc, list_test_images
from hw4lib.loop import lr_curve
from hw4lib.metrics import psnr_uint8
from hw4lib.paths import atomic_write
from hw4lib.planning import Plan
from hw4lib.runs import SAMPLES, Run

__all__ = [
    "KIND_COLORS", "save_figure", "plot_history", "plot_samples", "plot_before_after", "show_images",
    "show_pairs_zoomed",
]  # fmt: skip

KIND_COLORS = {"rain": "#1f77b4", "snow": "#d62728"}


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Save ``fig`` to ``path`` (relative to the repository root) atomically; returns the path.

    The format follows the suffix (``.png``, ``.jpg``: quality 85); PNGs carry no version stamp.
    """
    path = paths.output(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    fmt = "jpeg" if fmt == "jpg" else fmt
    extra: dict[str, Any] = {"pil_kwargs": {"quality": 85}} if fmt == "jpeg" else {}
    if fmt == "png":
        extra["metadata"] = {"Software": None}
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight", **extra)
    return path


# ----------------------------------------------------------------------------------------------------------
# one training run


def plot_history(run: Run, path: str | os.PathLike[str] | None = None):
    """Learning curves of a run: train loss, validation PSNR (overall and per type, each with its own input
    PSNR, the identity baseline, dotted in its colour) and the learning rate (every step, from the run's plan;
    else the last step of each epoch). Saves a PNG to ``path`` when given; returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    h, input_psnr = run.history, run.metrics.get("input_psnr")
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    axes[0].plot(h["epoch"], h["train_loss"], marker="o")
    axes[0].set(title="train loss (mean over the epoch)", xlabel="epoch", yscale="log")
    axes[1].plot(h["epoch"], h["val_psnr"], marker="o", label="all", color="k")
    if input_psnr is not None:
        axes[1].axhline(input_psnr, ls=":", color="k", label="input (identity)")
    for kind in KINDS:
        if f"val_psnr_{kind}" in h:
            axes[1].plot(h["epoch"], h[f"val_psnr_{kind}"], marker=".", label=kind, color=KIND_COLORS[kind])
        if run.metrics.get(f"input_psnr_{kind}") is not None:
            axes[1].axhline(run.metrics[f"input_psnr_{kind}"], ls=":", color=KIND_COLORS[kind],
                            label=f"input, {kind}")  # fmt: skip
    axes[1].set(title="validation PSNR (dB)", xlabel="epoch")
    axes[1].legend(fontsize=8)
    if run.plan is not None and len(h):
        x, lr = lr_curve(run.train_config, Plan.from_dict(run.plan))
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
        save_figure(fig, path)
    return fig


def plot_samples(run_dir: str | os.PathLike[str], n: int = 4, path: str | os.PathLike[str] | None = None):
    """A grid of validation samples: degraded | restored (best model) | clean, with PSNRs in the titles.
    Saves to ``path`` when given (PNG, or JPEG for a .jpg name: photographs compress far better)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    run_dir = paths.resolve(run_dir)
    index = run_dir / SAMPLES / "samples.json"
    if not index.is_file():
        raise FileNotFoundError(
            f"{index} is missing: the run saved no samples (save_samples=0 or no best.pt)"
        )
    records = json.loads(index.read_text(encoding="utf-8"))[:n]
    fig, axes = plt.subplots(len(records), 3, figsize=(7.5, 2.6 * len(records)), squeeze=False)
    for row, rec in zip(axes, records, strict=True):
        restored = np.asarray(Image.open(run_dir / SAMPLES / rec["restored"]).convert("RGB"))
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
        save_figure(fig, path)
    return fig


def _crop_np(img: np.ndarray, size: int | None) -> np.ndarray:
    if size is None:
        return img
    h, w = img.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[top : top + size, left : left + size]


def plot_before_after(
    test_dir: str | os.PathLike[str],
    preds: Mapping[str, np.ndarray],
    clean_dir: str | os.PathLike[str] | None = None,
    names: Sequence[str] | None = None,
    n: int = 4,
    path: str | os.PathLike[str] | None = None,
):
    """A grid, one row per test image: degraded | restored | clean (if ``clean_dir`` has it), PSNR in titles.

    ``preds``: ``{name: (3, H, W) uint8}`` as :func:`predict_dir` returns or a loaded submission. ``names``:
    which images (default: the first ``n``). Saved atomically to ``path`` (PNG; JPEG for ``.jpg``) if given.
    """
    import matplotlib.pyplot as plt

    files = {p.name: p for p in list_test_images(test_dir)}
    names = list(names) if names is not None else [k for k in files if k in preds][:n]
    clean = Path(clean_dir) if clean_dir is not None else None
    cols = 3 if clean is not None else 2
    fig, axes = plt.subplots(len(names), cols, figsize=(2.5 * cols, 2.6 * len(names)), squeeze=False)
    for row, name in zip(axes, names, strict=True):
        degraded, restored = load_image(files[name]), as_hwc(name, np.asarray(preds[name]))
        target = load_image(clean / name) if clean is not None and (clean / name).is_file() else None

        def db(img: np.ndarray, target: np.ndarray | None = target) -> str:
            return "" if target is None else f" {psnr_uint8(img, target):.2f} dB"

        panels = [(degraded, f"{name}: input{db(degraded)}"), (restored, f"restored{db(restored)}")]
        if clean is not None:
            panels.append((target if target is not None else np.zeros_like(degraded), "clean"))
        for ax, (img, title) in zip(row, panels, strict=True):
            ax.imshow(img)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


# ----------------------------------------------------------------------------------------------------------
# data figures (notebooks/00_data.ipynb): image grids and zoomed pairs


def show_images(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    size: float = 2.4,
) -> Any:
    """A grid of images (uint8 RGB, or float (H, W) maps in [0, 1] shown in grey); returns the figure."""
    import matplotlib.pyplot as plt

    nrows = max(1, int(np.ceil(len(images) / ncols)))
    h, w = np.asarray(images[0]).shape[:2]
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * h / w + 0.3), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= len(images):
            continue
        img = np.asarray(images[i])
        if img.ndim == 2:
            ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(img, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def show_pairs_zoomed(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, str]], zoom: int = 32, size: float = 2.4
) -> Any:
    """One row per (degraded, clean, title): both images with a box, and the boxed window of each enlarged."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from hw4lib.data import most_degraded_window

    fig, axes = plt.subplots(len(pairs), 4, figsize=(4 * size, len(pairs) * size + 0.3), squeeze=False)
    for row, (degraded, clean, title) in zip(axes, pairs, strict=True):
        y, x = most_degraded_window(degraded, clean, zoom)
        window = (slice(y, y + zoom), slice(x, x + zoom))
        panels = (degraded, clean, degraded[window], clean[window])
        names = (f"{title}: degraded", "clean", "degraded (zoom)", "clean (zoom)")
        for k, (ax, img, name) in enumerate(zip(row, panels, names, strict=True)):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(name, fontsize=9)
            ax.axis("off")
            if k < 2:
                ax.add_patch(
                    Rectangle((x - 0.5, y - 0.5), zoom, zoom, fill=False, edgecolor="yellow", lw=1.2)
                )
    fig.tight_layout()
    return fig
