"""Figures: learning curves, restored samples, the report's comparisons and prompt plots, all from run files.

The report's figures use constrained layout (no overlapping labels), put a unit on every axis, connect runs
that are paired (the same seed across losses), and draw 95% intervals from ``hw4lib.tables``.

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
from hw4lib.data import KINDS, load_image
from hw4lib.infer import as_hwc, list_test_images
from hw4lib.losses import loss_label
from hw4lib.metrics import psnr_uint8
from hw4lib.paths import atomic_write
from hw4lib.planning import Plan
from hw4lib.runs import SAMPLES, Run
from hw4lib.study import tables as tables_mod
from hw4lib.study.tables import centroid_loo_accuracy, pca_2d, prompt_levels, run_labels, run_seed
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
    "plot_loss_seeds",
    "plot_level_dependence",
    "plot_worst_regressions",
    "plot_compute_curve",
    "plot_prompt_ablations",
]

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
    """Learning curves of a run: train loss, validation PSNR (overall and per type, with the identity
    baseline) and the learning rate (every step, from the run's plan; else the last step of each epoch).
    Saves a PNG to ``path`` when given; returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    h, input_psnr = run.history, run.metrics.get("input_psnr")
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


def _series_labels(runs: Sequence[Run]) -> tuple[list[str], bool]:
    """One legend label per run: its loss when runs are grouped by loss (several seeds each), else the run's
    label; and whether runs share labels (then each label is shown once, in one colour)."""
    losses = [loss_label(r.loss) for r in runs]
    grouped = len(set(losses)) < len(losses) and len({(r.loss, run_seed(r)) for r in runs}) == len(runs)
    return (losses, True) if grouped else (run_labels(runs), False)


def plot_learning_curves(runs: Sequence[Run]) -> Any:
    """Overlaid curves, a point per validation: training loss (log scale, each in its own units), validation
    PSNR (star: best epoch), PSNR per type. Runs of the same loss (several seeds) share a colour."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels, grouped = _series_labels(runs)
    palette = {label: colors[i % len(colors)] for i, label in enumerate(dict.fromkeys(labels))}
    shown: set[str] = set()
    for label, run in zip(labels, runs, strict=True):
        h, c = run.history, palette[label]
        legend = None if label in shown else (f"{label} (each seed)" if grouped else label)
        shown.add(label)
        x = h[_col(h, "epoch") or h.columns[0]]
        loss_col = _col(h, "train_loss", "loss")
        if loss_col:
            axes[0].plot(x, h[loss_col], color=c, marker="o", ms=3, lw=1, label=legend)
        psnr_col = _col(h, "val_psnr")
        if psnr_col:  # validated epochs only (val_every > 1 leaves gaps), so the points join into a curve
            seen = h[psnr_col].notna()
            axes[1].plot(x[seen], h[psnr_col][seen], color=c, marker="o", ms=3, lw=1, label=legend)
            axes[1].plot(run.metrics["best_epoch"], run.metrics["best_val_psnr"], "*", color=c, ms=10)
        for kind, style in (("rain", "-"), ("snow", "--")):
            col = _col(h, f"val_psnr_{kind}")
            if col:
                kind_legend = None if legend is None else f"{label} {kind}"
                seen = h[col].notna()
                axes[2].plot(x[seen], h[col][seen], style, color=c, marker=".", ms=3, lw=1, label=kind_legend)
    base = float(runs[0].metrics["input_psnr"])
    for ax in axes[1:]:
        ax.axhline(base, color="gray", ls=":", lw=1.2, label="input (no restoration)")
    axes[0].set(title="training loss (each in its own units)", xlabel="epoch", ylabel="loss (log scale)",
                yscale="log")  # fmt: skip
    axes[1].set(title="validation PSNR (star: best epoch)", xlabel="epoch", ylabel="PSNR (dB)")
    axes[2].set(title="validation PSNR per type (rain -, snow --)", xlabel="epoch", ylabel="PSNR (dB)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
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
            ax.imshow(img, interpolation="antialiased")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title if psnr is None else f"{title}\n{psnr:.2f} dB", fontsize=9)
            inset = ax.inset_axes(_inset_corner(img.shape, top, left, size))
            # magnified: a smooth resampling filter, so the zoom shows the restoration, not square pixels
            inset.imshow(img[top : top + size, left : left + size], interpolation="lanczos")
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
    fig, axes = plt.subplots(
        1, len(KINDS), figsize=(5.5 * len(KINDS), 3.8), sharey=True, layout="constrained"
    )
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
        ax.set(title=f"{kind}: per-image validation PSNR ({len(values[0])} images)", ylabel="PSNR (dB)")
        ax.grid(alpha=0.3, axis="y")
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
        layout="constrained",
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
    fig, axes = plt.subplots(
        1, len(evaluated), figsize=(4.2 * len(evaluated), 3.8), squeeze=False, layout="constrained"
    )
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
    return fig


def plot_prompt_swap(tables: dict[str, pd.DataFrame]) -> Any | None:
    """Bars of :func:`prompt_swap_table` per run: PSNR with own prompt, own-type and other-type mean."""
    import matplotlib.pyplot as plt

    tables = {label: t for label, t in tables.items() if t is not None}
    if not tables:
        return None
    fig, axes = plt.subplots(
        1, len(tables), figsize=(4.2 * len(tables), 3.4), squeeze=False, sharey=True, layout="constrained"
    )
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
    return fig


# ----------------------------------------------------------------------------------------------------------
# the report: a study (several seeds per loss, a compute series)


def _yerr(mean: Any, low: Any, high: Any) -> np.ndarray:
    """Asymmetric error bars for ``errorbar``/``bar`` from interval bounds (0 where there is no interval)."""
    mean, low, high = (np.asarray(v, float) for v in (mean, low, high))
    return np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0)


def _seed_mean(ax: Any, x: Any, mean: Any, low: Any, high: Any) -> None:
    """Black squares with 95% interval bars: the mean over seeds beside the per-seed lines."""
    ax.errorbar(x, mean, yerr=_yerr(mean, low, high), fmt="s", color="k", capsize=4,
                label="mean, 95% CI over seeds")  # fmt: skip


def plot_loss_seeds(runs: Sequence[Run], reference: str = "l1") -> Any | None:
    """The loss comparison, paired by seed: best validation PSNR per loss with one line per seed connecting
    the same seed across losses, and the per-image paired difference against ``reference`` per seed; black:
    mean with its 95% interval over seeds. ``None`` with fewer than two seeds per loss."""
    import matplotlib.pyplot as plt

    arms = tables_mod.study_arms(runs)
    if max((len(arm) for arm in arms.values()), default=0) < 2:
        return None
    labels = [loss_label(loss) for loss in arms]
    seeds = sorted({run_seed(r) for arm in arms.values() for r in arm})
    x = np.arange(len(arms))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    shades = plt.get_cmap("viridis")(np.linspace(0.15, 0.85, len(seeds)))
    for color, seed in zip(shades, seeds, strict=True):
        ys = [
            next((float(r.metrics["best_val_psnr"]) for r in arm if run_seed(r) == seed), np.nan)
            for arm in arms.values()
        ]
        axes[0].plot(x, ys, "-o", color=color, ms=4, lw=1, alpha=0.8, label=f"seed {seed}")
    summary = tables_mod.loss_summary(runs).iloc[1:]
    _seed_mean(axes[0], x + 0.1, summary["PSNR (dB)"], summary["PSNR low"], summary["PSNR high"])
    axes[0].set(title="best validation PSNR per loss (lines: the same seed)", ylabel="PSNR (dB)")
    axes[0].set_xticks(x, labels, rotation=15, ha="right")

    paired = tables_mod.paired_vs_reference(runs, reference)
    comparisons = list(dict.fromkeys(paired["comparison"]))
    xc = np.arange(len(comparisons))
    for color, seed in zip(shades, seeds, strict=True):
        rows = paired[paired["scope"] == f"seed {seed}"].set_index("comparison").reindex(comparisons)
        axes[1].plot(xc, rows["mean (dB)"], "-o", color=color, ms=4, lw=1, alpha=0.8, label=f"seed {seed}")
    over = paired[paired["scope"] == "over seeds"].set_index("comparison").reindex(comparisons)
    _seed_mean(axes[1], xc + 0.1, over["mean (dB)"], over["low (dB)"], over["high (dB)"])
    axes[1].axhline(0, color="gray", lw=1, ls=":")
    axes[1].set(title="paired difference, mean over the same images", ylabel="PSNR difference (dB)")
    axes[1].set_xticks(xc, comparisons, rotation=15, ha="right")
    for ax in axes:
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    return fig


def plot_level_dependence(
    points: pd.DataFrame, bands: Sequence[float] = tables_mod.DEFAULT_BANDS
) -> Any | None:
    """Per comparison: each image's PSNR difference against the reference (mean over seeds) against its input
    PSNR, coloured by type, with the band means and their 95% intervals (black) and Pearson's r with its
    Fisher z interval in the title. ``None`` without points."""
    import matplotlib.pyplot as plt

    if points is None or points.empty:
        return None
    corr, band_table = tables_mod.level_dependence(points, bands)
    comparisons = list(dict.fromkeys(points["comparison"]))
    ncols = min(3, len(comparisons))
    nrows = -(-len(comparisons) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.6 * ncols, 3.8 * nrows), squeeze=False, sharey=True, layout="constrained"
    )
    lo_x, hi_x = float(points["input_psnr"].min()) - 0.5, float(points["input_psnr"].max()) + 0.5
    edges = [lo_x, *(float(b) for b in bands), hi_x]
    for ax, comparison in zip(axes.ravel(), comparisons, strict=False):
        sel = points[points["comparison"] == comparison]
        for kind in KINDS:
            part = sel[sel["kind"] == kind]
            ax.scatter(
                part["input_psnr"], part["diff"], s=14, alpha=0.6, color=KIND_COLORS.get(kind), label=kind
            )
        rows = band_table[band_table["comparison"] == comparison].reset_index(drop=True)
        for i, row in rows.iterrows():
            if not row["n"]:
                continue
            a, b = max(edges[i], lo_x), min(edges[i + 1], hi_x)
            mid = (a + b) / 2
            ax.hlines(row["mean (dB)"], a, b, color="k", lw=2)
            ax.errorbar(
                mid,
                row["mean (dB)"],
                yerr=_yerr([row["mean (dB)"]], [row["low (dB)"]], [row["high (dB)"]]),
                fmt="none",
                ecolor="k",
                capsize=4,
            )
        for edge in bands:
            ax.axvline(float(edge), color="gray", lw=0.8, ls="--")
        ax.axhline(0, color="gray", lw=1, ls=":")
        c = corr[corr["comparison"] == comparison].iloc[0]
        interval = "" if np.isnan(c["r low"]) else f" [{c['r low']:+.2f}, {c['r high']:+.2f}]"
        ax.set_title(f"{comparison}: r = {c['r']:+.2f}{interval}", fontsize=9)
        ax.set(xlabel="input PSNR of the image (dB; lower = more degraded)")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("PSNR difference (dB)")
    for ax in axes.ravel()[len(comparisons) :]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        "Per-image difference against the image's degradation (black: band mean, 95% CI)", fontsize=10
    )
    return fig


def plot_worst_regressions(runs: Sequence[Run], n: int = 3) -> Any | None:
    """The images the runs make most worse (restored PSNR below the input's), among those whose images the
    evaluation saved: degraded | restored | clean | error map ``|restored - clean|`` (grey levels, mean over
    the colour channels, one scale for all rows). ``None`` when no saved image regressed."""
    import matplotlib.pyplot as plt

    candidates = []
    for run in runs:
        if run.per_image is None:
            continue
        for _, row in run.per_image.iterrows():
            change = float(row["psnr"] - row["input_psnr"])
            if change < 0 and (run.eval_dir / f"{row['name']}_restored.png").is_file():
                candidates.append((change, run.name, row["name"], run, row))
    if not candidates:
        return None
    chosen = sorted(candidates, key=lambda c: (c[0], c[1], c[2]))[:n]
    images = []
    for _, _, name, run, _ in chosen:
        degraded, restored, clean = (
            _read_png(run.eval_dir / f"{name}_{tag}.png") for tag in ("degraded", "restored", "clean")
        )
        error = np.abs(restored.astype(np.int16) - clean.astype(np.int16)).mean(-1)
        images.append((degraded, restored, clean, error))
    vmax = max(1.0, max(float(e.max()) for *_, e in images))
    fig, axes = plt.subplots(
        len(chosen), 4, figsize=(11.5, 2.9 * len(chosen)), squeeze=False, layout="constrained"
    )
    for ax_row, (change, run_name, name, _run, row), (degraded, restored, clean, error) in zip(
        axes, chosen, images, strict=True
    ):
        titles = (
            f"{run_name}: {name}\ninput {row['input_psnr']:.2f} dB",
            f"restored {row['psnr']:.2f} dB\n({change:+.2f} dB)",
            "clean",
            "|restored - clean|",
        )
        for ax, img, title in zip(ax_row[:3], (degraded, restored, clean), titles, strict=False):
            ax.imshow(img)
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        shown = ax_row[3].imshow(error, cmap="magma", vmin=0, vmax=vmax)
        ax_row[3].set_title(titles[3], fontsize=9)
        ax_row[3].set_xticks([])
        ax_row[3].set_yticks([])
        fig.colorbar(shown, ax=ax_row[3], label="error (grey levels, 0-255)", shrink=0.9)
    fig.suptitle("Worst regressions: images restored below their input PSNR", fontsize=10)
    return fig


def plot_compute_curve(runs: Sequence[Run]) -> Any | None:
    """PSNR per compute: mean best validation PSNR per step count with its 95% interval over seeds against the
    images seen and the wall time (log x axes), each run as a faint point. ``None`` without a series."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    table = tables_mod.compute_table(runs)
    if table is None:
        return None
    series = tables_mod.compute_series(runs)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.9), sharey=True, layout="constrained")
    for loss, group in table.groupby("loss", sort=False):
        err = _yerr(group["PSNR (dB)"], group["PSNR low"], group["PSNR high"])
        for ax, col in zip(axes, ("images seen", "wall time (s)"), strict=True):
            ax.errorbar(
                group[col],
                group["PSNR (dB)"],
                yerr=err,
                fmt="-o",
                capsize=4,
                label=f"{loss}: mean, 95% CI over seeds",
            )
    for points in series.values():
        every = [r for group in points.values() for r in group]
        for ax, key in zip(axes, ("images_seen", "wall_seconds"), strict=True):
            xs = [
                tables_mod.run_images_seen(r) if key == "images_seen" else float(r.metrics.get(key, np.nan))
                for r in every
            ]
            ax.plot(xs, [float(r.metrics["best_val_psnr"]) for r in every], ".", color="gray", alpha=0.6)
    axes[0].set(
        xscale="log",
        xlabel="images seen in training (log scale)",
        ylabel="best validation PSNR (dB)",
        title="PSNR against images seen",
    )
    axes[1].set(xscale="log", xlabel="wall time (s, log scale)", title="PSNR against wall time")
    for ax, col in zip(axes, ("images seen", "wall time (s)"), strict=True):
        ticks = sorted(float(v) for v in table[col].dropna().unique())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(ticks, [f"{v:,.0f}" for v in ticks], rotation=30 if len(ticks) > 4 else 0)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return fig


def plot_prompt_ablations(table: pd.DataFrame | None) -> Any | None:
    """Bars of :func:`hw4lib.tables.prompt_ablations`: per loss, the mean PSNR change of each ablation against
    the image's own prompts, by type, with 95% intervals. ``None`` without ablations."""
    import matplotlib.pyplot as plt

    if table is None or table.empty:
        return None
    losses = list(dict.fromkeys(table["loss"]))
    ncols = min(2, len(losses))
    nrows = -(-len(losses) // ncols)
    n_abl = table["ablation"].nunique()
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(max(5.5, 0.75 * n_abl + 2.5) * ncols, 3.9 * nrows),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, loss in zip(axes.ravel(), losses, strict=False):
        sub = table[table["loss"] == loss]
        names = list(dict.fromkeys(sub["ablation"]))
        x = np.arange(len(names))
        kinds = [k for k in KINDS if (sub["kind"] == k).any()]
        width = 0.8 / max(1, len(kinds))
        for k, kind in enumerate(kinds):
            rows = sub[sub["kind"] == kind].set_index("ablation").reindex(names)
            ax.bar(
                x + (k - (len(kinds) - 1) / 2) * width,
                rows["mean (dB)"],
                width,
                color=KIND_COLORS.get(kind),
                yerr=_yerr(rows["mean (dB)"], rows["low (dB)"], rows["high (dB)"]),
                capsize=3,
                label=kind,
            )
        ax.axhline(0, color="gray", lw=1)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_title(loss, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    for ax in axes[:, 0]:
        ax.set_ylabel("PSNR change vs own prompts (dB)")
    for ax in axes.ravel()[len(losses) :]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Prompt ablations: PSNR change against the image's own prompt weights (95% CI)", fontsize=10)
    return fig
