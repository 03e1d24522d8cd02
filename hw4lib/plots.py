"""Figures: learning curves, restored samples, the report's comparisons and prompt plots, all from run files.

Every function returns a matplotlib figure (``None`` when the runs hold nothing to draw) and saves nothing
unless asked: :func:`save_figure` writes PNG (or JPEG for a ``.jpg`` name: photographs compress far better)
atomically and without a version stamp, so an unchanged figure keeps the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hw4lib import paths
from hw4lib.config import TrainConfig
from hw4lib.data import KINDS, load_image
from hw4lib.infer import as_hwc, list_test_images
from hw4lib.io import atomic_write
from hw4lib.metrics import psnr_uint8
from hw4lib.runs import SAMPLES, Run
from hw4lib.tables import centroid_loo_accuracy, pca_2d, prompt_levels, run_labels
from hw4lib.train import lr_curve

__all__ = [
    "KIND_COLORS",
    "save_figure",
    "plot_history",
    "plot_samples",
    "plot_before_after",
    "plot_learning_curves",
    "plot_visual_grid",
    "plot_psnr_distribution",
    "plot_prompt_weights",
    "plot_prompt_projection",
    "plot_prompt_swap",
]

KIND_COLORS = {"rain": "#1f77b4", "snow": "#d62728"}


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Save ``fig`` to ``path`` (relative to the repository root) atomically; returns the path.

    The format follows the suffix (``.png``, ``.jpg``: quality 85); PNGs carry no version stamp.
    """
    path = paths.resolve(path)
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

    h = pd.DataFrame(history) if isinstance(history, list) else history
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    axes[0].plot(h["epoch"], h["train_loss"], marker="o")
    axes[0].set(title="train loss (mean over the epoch)", xlabel="epoch", yscale="log")
    axes[1].plot(h["epoch"], h["val_psnr"], marker="o", label="all", color="k")
    for kind in KINDS:
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
        save_figure(fig, path)
    return fig


def plot_samples(run_dir: str | os.PathLike[str], n: int = 4, path: str | os.PathLike[str] | None = None):
    """A grid of validation samples: degraded | restored (best model) | clean, with PSNRs in the titles.
    Saves to ``path`` when given (PNG, or JPEG for a .jpg name: photographs compress 10x better)."""
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
# the report: several runs


def _col(history: pd.DataFrame, *names: str) -> str | None:
    return next((n for n in names if n in history.columns), None)


def plot_learning_curves(runs: Sequence[Run]) -> Any:
    """Overlaid curves: training loss (log scale, each in its own units), validation PSNR, PSNR per type."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, run) in enumerate(zip(run_labels(runs), runs, strict=True)):
        h, c = run.history, colors[i % len(colors)]
        x = h[_col(h, "epoch") or h.columns[0]]
        loss_col = _col(h, "train_loss", "loss")
        if loss_col:
            axes[0].plot(x, h[loss_col], color=c, marker="o", ms=3, label=label)
        psnr_col = _col(h, "val_psnr")
        if psnr_col:
            axes[1].plot(x, h[psnr_col], color=c, marker="o", ms=3, label=label)
            axes[1].plot(run.metrics["best_epoch"], run.metrics["best_val_psnr"], "*", color=c, ms=11)
        for kind, style in (("rain", "-"), ("snow", "--")):
            col = _col(h, f"val_psnr_{kind}")
            if col:
                axes[2].plot(x, h[col], style, color=c, label=f"{label} {kind}")
    base = float(runs[0].metrics["input_psnr"])
    for ax in axes[1:]:
        ax.axhline(base, color="gray", ls=":", lw=1.2, label="input (no restoration)")
    axes[0].set(title="training loss (each in its own units)", xlabel="epoch", yscale="log")
    axes[1].set(title="validation PSNR (star: best epoch)", xlabel="epoch", ylabel="dB")
    axes[2].set(title="validation PSNR per type (rain -, snow --)", xlabel="epoch", ylabel="dB")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _inset_corner(shape: tuple[int, ...], top: int, left: int, size: int) -> list[float]:
    """Axes-fraction bounds of a zoom inset in the image corner farthest from the zoomed box."""
    h, w = shape[:2]
    cy, cx = (top + size / 2) / h, (left + size / 2) / w  # box centre, 0..1 from the top left
    x0 = 0.0 if cx > 0.5 else 0.58
    y0 = 0.58 if cy > 0.5 else 0.0  # inset_axes counts y from the bottom, the image from the top
    return [x0, y0, 0.42, 0.42]


def _visual_images(runs: Sequence[Run], kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, box) of the visual-comparison images of ``kind`` that every evaluated run has."""
    common: dict[str, dict[str, Any]] | None = None
    for run in runs:
        meta_path = run.eval_dir / "visual.json"
        if not meta_path.is_file():
            return []
        images = {k: v for k, v in json.loads(meta_path.read_text())["images"].items() if v["kind"] == kind}
        common = images if common is None else {k: v for k, v in common.items() if k in images}
    return sorted((common or {}).items())


def plot_visual_grid(runs: Sequence[Run], kind: str) -> Any | None:
    """Rows: validation images of ``kind``; columns: degraded | one per run | clean, each with a zoomed inset.

    The inset magnifies the window where the degradation is strongest; titles give each image's PSNR.
    Returns ``None`` when the runs have no visual evaluation (no checkpoint was available).
    """
    import matplotlib.pyplot as plt

    images = _visual_images(runs, kind)
    if not images:
        return None
    labels = run_labels(runs)
    ncols = len(runs) + 2
    fig, axes = plt.subplots(
        len(images), ncols, figsize=(2.3 * ncols, 2.8 * len(images)), squeeze=False, layout="constrained"
    )
    for r, (name, box) in enumerate(images):
        ref = runs[0]
        row_pi = ref.per_image.set_index("name").loc[name] if ref.per_image is not None else None
        panels = [
            (
                "degraded",
                _read_png(ref.eval_dir / f"{name}_degraded.png"),
                None if row_pi is None else row_pi["input_psnr"],
            )
        ]
        for label, run in zip(labels, runs, strict=True):
            psnr = run.per_image.set_index("name").loc[name, "psnr"] if run.per_image is not None else None
            panels.append((label, _read_png(run.eval_dir / f"{name}_restored.png"), psnr))
        panels.append(("clean", _read_png(ref.eval_dir / f"{name}_clean.png"), None))
        top, left, size = box["top"], box["left"], box["size"]
        for c, (title, img, psnr) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title if psnr is None else f"{title}\n{psnr:.2f} dB", fontsize=9)
            inset = ax.inset_axes(_inset_corner(img.shape, top, left, size))
            inset.imshow(img[top : top + size, left : left + size], interpolation="nearest")
            inset.set_xticks([])
            inset.set_yticks([])
            for spine in inset.spines.values():
                spine.set_edgecolor("yellow")
            ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), size, size, fill=False, ec="yellow", lw=1))
        axes[r, 0].set_ylabel(name, fontsize=9)
    fig.suptitle(
        f"{kind}: degraded | restored by each loss | clean (inset: zoom on the yellow box)", fontsize=10
    )
    return fig


def plot_psnr_distribution(runs: Sequence[Run]) -> Any | None:
    """Per-image validation PSNR for the input and each run, one panel per degradation type (box + points)."""
    import matplotlib.pyplot as plt

    evaluated = [
        (label, r) for label, r in zip(run_labels(runs), runs, strict=True) if r.per_image is not None
    ]
    if not evaluated:
        return None
    fig, axes = plt.subplots(1, len(KINDS), figsize=(5.5 * len(KINDS), 3.8), sharey=True)
    rng = np.random.default_rng(0)  # fixed jitter: the same picture every time
    for ax, kind in zip(axes, KINDS, strict=True):
        first = evaluated[0][1].per_image
        series = [("input", first.loc[first["kind"] == kind, "input_psnr"].to_numpy())]
        series += [
            (label, r.per_image.loc[r.per_image["kind"] == kind, "psnr"].to_numpy()) for label, r in evaluated
        ]
        values = [s[1] for s in series]
        ax.boxplot(values, widths=0.5, showfliers=False)
        ax.set_xticks(range(1, len(series) + 1), [s[0] for s in series])
        for i, v in enumerate(values, 1):
            ax.plot(i + rng.uniform(-0.12, 0.12, len(v)), v, "o", ms=3, alpha=0.6, color=KIND_COLORS[kind])
        ax.set(title=f"{kind}: per-image validation PSNR ({len(values[0])} images)", ylabel="dB")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def plot_prompt_weights(runs: Sequence[Run]) -> Any | None:
    """Mean prompt-component weights per degradation type: rows = runs, columns = prompt blocks."""
    import matplotlib.pyplot as plt

    evaluated = [
        (label, r) for label, r in zip(run_labels(runs), runs, strict=True) if r.per_image is not None
    ]
    evaluated = [(label, r) for label, r in evaluated if prompt_levels(r.per_image)]
    if not evaluated:
        return None
    levels = list(prompt_levels(evaluated[0][1].per_image))
    fig, axes = plt.subplots(
        len(evaluated),
        len(levels),
        figsize=(3.6 * len(levels), 2.4 * len(evaluated)),
        squeeze=False,
        sharey=True,
    )
    for r, (label, run) in enumerate(evaluated):
        df = run.per_image
        for c, level in enumerate(levels):
            cols = prompt_levels(df)[level]
            ax = axes[r, c]
            x = np.arange(len(cols))
            for k, kind in enumerate(KINDS):
                sel = df[df["kind"] == kind][cols]
                ax.bar(
                    x + (k - 0.5) * 0.4,
                    sel.mean(),
                    0.4,
                    yerr=sel.std(ddof=0),
                    capsize=2,
                    color=KIND_COLORS[kind],
                    label=kind,
                )
            ax.set_xticks(x, [str(i) for i in x])
            ax.set_title(f"{label}: {level}", fontsize=9)
            ax.axhline(1 / len(cols), color="gray", ls=":", lw=1)
            if c == 0:
                ax.set_ylabel("softmax weight")
            if r == len(evaluated) - 1:
                ax.set_xlabel("prompt component")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        "Prompt-generation weights, mean and std over validation images (dotted: uniform)", fontsize=10
    )
    fig.tight_layout()
    return fig


def plot_prompt_projection(runs: Sequence[Run]) -> Any | None:
    """2-D PCA of each image's prompt weights (all levels), coloured by rain/snow; one panel per run."""
    import matplotlib.pyplot as plt

    evaluated = [
        (label, r) for label, r in zip(run_labels(runs), runs, strict=True) if r.per_image is not None
    ]
    evaluated = [(label, r) for label, r in evaluated if prompt_levels(r.per_image)]
    if not evaluated:
        return None
    fig, axes = plt.subplots(1, len(evaluated), figsize=(4.2 * len(evaluated), 3.8), squeeze=False)
    for ax, (label, run) in zip(axes[0], evaluated, strict=True):
        df = run.per_image
        cols = [c for cs in prompt_levels(df).values() for c in cs]
        coords, explained = pca_2d(df[cols].to_numpy(float))
        for kind in KINDS:
            sel = (df["kind"] == kind).to_numpy()
            ax.scatter(coords[sel, 0], coords[sel, 1], s=18, color=KIND_COLORS[kind], label=kind, alpha=0.8)
        acc = centroid_loo_accuracy(df[cols].to_numpy(float), df["kind"].to_numpy())
        ax.set(
            title=f"{label}: nearest-mean accuracy {acc:.0%}",
            xlabel=f"PC1 ({explained[0]:.0%} of variance)",
            ylabel=f"PC2 ({explained[1]:.0%})",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Per-image prompt weights projected on two principal components", fontsize=10)
    fig.tight_layout()
    return fig


def plot_prompt_swap(tables: dict[str, pd.DataFrame]) -> Any | None:
    """Bars of :func:`prompt_swap_table` per run: PSNR with own prompt, own-type and other-type mean."""
    import matplotlib.pyplot as plt

    tables = {label: t for label, t in tables.items() if t is not None}
    if not tables:
        return None
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.4), squeeze=False, sharey=True)
    cols = ["own prompt", "own type mean", "other type mean"]
    values = np.concatenate([t[cols].to_numpy(float).ravel() for t in tables.values()])
    for ax, (label, table) in zip(axes[0], tables.items(), strict=True):
        x = np.arange(len(table.index))
        for i, col in enumerate(cols):
            ax.bar(x + (i - 1) * 0.27, table[col], 0.27, label=col)
        ax.set_xticks(x, [f"{k} images" for k in table.index])
        ax.set_ylim(float(values.min()) - 1.0, float(values.max()) + 0.5)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].set_ylabel("validation PSNR (dB)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Prompt weights swapped between rain and snow", fontsize=10)
    fig.tight_layout()
    return fig


