"""The report's figures, drawn from the runs and from the tables the report computed (``build``): every
figure takes its numbers from those tables, so it shows what the text and the tables say.

The figures use constrained layout (no overlapping labels), put a unit on every axis, connect runs that are
paired (the same seed across losses) and draw 95% intervals. Each ``plot_*`` returns a matplotlib figure, or
``None`` when the runs hold nothing to draw; :func:`make_figures` draws and saves all of them
(:data:`FIGURE_FILES`: PNG for charts, JPEG for photographs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hw4lib.data import KINDS
from hw4lib.losses import loss_label
from hw4lib.runs import Run
from hw4lib.study.errors import CLASSES
from hw4lib.study.images import TAGS, read_image, visual_images, worst_cases
from hw4lib.study.plots import KIND_COLORS, save_figure
from hw4lib.study.prompts import prompt_levels
from hw4lib.study.stats import centroid_loo_accuracy, pca_2d
from hw4lib.study.tables import (
    DEFAULT_BANDS,
    compute_series,
    run_images_seen,
    run_labels,
    run_seed,
    shown_runs,
    study_arms,
)

if TYPE_CHECKING:
    from hw4lib.study.report_tables import ReportTables

__all__ = [
    "FIGURE_FILES", "FIGURE_KEYS", "make_figures", "plot_learning_curves", "plot_loss_seeds",
    "plot_visual_grid", "plot_psnr_distribution", "plot_level_dependence", "plot_worst_regressions",
    "plot_prompt_weights", "plot_prompt_projection", "plot_prompt_ablations",
    "plot_compute_curve",
]  # fmt: skip

# figure key (what the template calls it) -> its file in the report's figures/, in the report's order
FIGURE_FILES = {
    "curves": "learning_curves.png", "loss_seeds": "loss_seeds.png", "visual_rain": "visual_rain.jpg",
    "visual_snow": "visual_snow.jpg", "psnr": "psnr_per_image.png", "level": "level.png",
    "worst": "worst_regressions.jpg", "prompt_weights": "prompt_weights.png", "prompt_pca": "prompt_pca.png",
    "ablations": "prompt_ablations.png", "compute": "compute.png",
}  # fmt: skip
FIGURE_KEYS = tuple(FIGURE_FILES)


def make_figures(runs: Sequence[Run], computed: ReportTables, folder: Path) -> dict[str, Path]:
    """Draw every figure the runs have data for, save it in ``folder`` (:data:`FIGURE_FILES`) and close it;
    returns key -> saved file, in the report's order. Figures of single runs show one run per loss
    (``tables.shown_runs``); the others every run of the loss comparison."""
    import matplotlib.pyplot as plt

    shown = shown_runs(runs)
    compared = [r for arm in study_arms(runs).values() for r in arm]
    drawn = {
        "curves": lambda: plot_learning_curves(compared),
        "loss_seeds": lambda: plot_loss_seeds(runs, computed.summary, computed.paired),
        "visual_rain": lambda: plot_visual_grid(shown, "rain"),
        "visual_snow": lambda: plot_visual_grid(shown, "snow"),
        "psnr": lambda: plot_psnr_distribution(shown),
        "level": lambda: plot_level_dependence(
            computed.level_points, computed.level_correlation, computed.level_bands, computed.band_edges
        ),
        "worst": lambda: plot_worst_regressions(compared),
        "prompt_weights": lambda: plot_prompt_weights(shown),
        "prompt_pca": lambda: plot_prompt_projection(shown),
        "ablations": lambda: plot_prompt_ablations(computed.ablations),
        "compute": lambda: plot_compute_curve(runs, computed.compute),
    }
    saved = {}
    for key, draw in drawn.items():
        fig = draw()
        if fig is not None:
            saved[key] = save_figure(fig, folder / FIGURE_FILES[key])
            plt.close(fig)
    return saved


# ------------------------------------------------------ learning curves, visual comparison, per-image PSNR


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
    PSNR (star: best epoch) and PSNR on each type in a panel of its own, each with its type's input PSNR (the
    image unrestored). Runs of the same loss (several seeds) share a colour; one legend below the panels, so
    it hides no data whatever the number of losses."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig, grid = plt.subplots(2, 2, figsize=(12, 7.4), layout="constrained")
    axes = grid.ravel()
    kind_axes = dict(zip(KINDS, axes[2:], strict=True))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels, grouped = _series_labels(runs)
    palette = {label: colors[i % len(colors)] for i, label in enumerate(dict.fromkeys(labels))}
    for label, run in zip(labels, runs, strict=True):
        h, c = run.history, palette[label]
        x = h[_col(h, "epoch") or h.columns[0]]
        loss_col = _col(h, "train_loss", "loss")
        if loss_col:
            axes[0].plot(x, h[loss_col], color=c, marker="o", ms=3, lw=1)
        psnr_col = _col(h, "val_psnr")
        if psnr_col:  # validated epochs only (val_every > 1 leaves gaps), so the points join into a curve
            seen = h[psnr_col].notna()
            axes[1].plot(x[seen], h[psnr_col][seen], color=c, marker="o", ms=3, lw=1)
            axes[1].plot(run.metrics["best_epoch"], run.metrics["best_val_psnr"], "*", color=c, ms=10)
        for kind, ax in kind_axes.items():
            col = _col(h, f"val_psnr_{kind}")
            if col:
                seen = h[col].notna()
                ax.plot(x[seen], h[col][seen], color=c, marker="o", ms=3, lw=1)
    metrics = runs[0].metrics
    axes[1].axhline(float(metrics["input_psnr"]), color="gray", ls=":", lw=1.2)
    for kind, ax in kind_axes.items():
        own = metrics.get(f"input_psnr_{kind}")
        ax.axhline(float(own if own is not None else metrics["input_psnr"]), color="gray", ls=":", lw=1.2)
        which = f"{kind} images" if own is not None else "all images: no per-type input PSNR"
        ax.set(title=f"validation PSNR on {kind} (dotted: input of the {which})", xlabel="epoch",
               ylabel="PSNR (dB)")  # fmt: skip
    axes[0].set(title="training loss (each in its own units)", xlabel="epoch", ylabel="loss (log scale)",
                yscale="log")  # fmt: skip
    axes[1].set(title="validation PSNR (star: best epoch; dotted: input)", xlabel="epoch", ylabel="PSNR (dB)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    names = {label: f"{label} (each seed)" if grouped else label for label in palette}
    handles = [Line2D([], [], color=palette[k], marker="o", ms=3, lw=1, label=names[k]) for k in palette]
    handles += [
        Line2D([], [], color="gray", marker="*", ms=10, ls="", label="best epoch"),
        Line2D([], [], color="gray", ls=":", lw=1.2, label="input (no restoration)"),
    ]
    ncols = len(handles) if len(handles) <= 6 else -(-len(handles) // 2)  # at most two rows
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize=8)
    return fig


def _inset_corner(shape: tuple[int, ...], top: int, left: int, size: int) -> list[float]:
    """Axes-fraction bounds of a zoom inset in the image corner farthest from the zoomed box."""
    h, w = shape[:2]
    cy, cx = (top + size / 2) / h, (left + size / 2) / w  # box centre, 0..1 from the top left
    x0 = 0.0 if cx > 0.5 else 0.58
    y0 = 0.58 if cy > 0.5 else 0.0  # inset_axes counts y from the bottom, the image from the top
    return [x0, y0, 0.42, 0.42]


def plot_visual_grid(runs: Sequence[Run], kind: str) -> Any | None:
    """Rows: validation images of ``kind``; columns: degraded | one per run | clean, each with a zoomed inset.

    The inset magnifies the window where the degradation is strongest; titles give each image's PSNR.
    Returns ``None`` when the runs have no visual evaluation (no checkpoint was available).
    """
    import matplotlib.pyplot as plt

    images = visual_images(runs, kind)
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
                read_image(ref, name, "degraded"),
                None if row_pi is None else row_pi["input_psnr"],
            )
        ]
        for label, run in zip(labels, runs, strict=True):
            psnr = run.per_image.set_index("name").loc[name, "psnr"] if run.per_image is not None else None
            panels.append((label, read_image(run, name, "restored"), psnr))
        panels.append(("clean", read_image(ref, name, "clean"), None))
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


# ----------------------------------------- the loss comparison over seeds, the degradation level, failures


def _yerr(mean: Any, low: Any, high: Any) -> np.ndarray:
    """Asymmetric error bars for ``errorbar``/``bar`` from interval bounds (0 where there is no interval)."""
    mean, low, high = (np.asarray(v, float) for v in (mean, low, high))
    return np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0)


def _seed_mean(ax: Any, x: Any, mean: Any, low: Any, high: Any) -> None:
    """Black squares with 95% interval bars: the mean over seeds beside the per-seed lines."""
    ax.errorbar(x, mean, yerr=_yerr(mean, low, high), fmt="s", color="k", capsize=4,
                label="mean, 95% CI over seeds")  # fmt: skip


def plot_loss_seeds(runs: Sequence[Run], summary: pd.DataFrame, paired: pd.DataFrame | None) -> Any | None:
    """The loss comparison, paired by seed: best validation PSNR per loss with one line per seed connecting
    the same seed across losses, and the per-image paired difference against the reference per seed
    (``paired``: ``tables.paired_vs_reference``); black: mean with its 95% interval over seeds (``summary``:
    ``tables.loss_summary``). ``None`` with fewer than two seeds per loss."""
    import matplotlib.pyplot as plt

    arms = study_arms(runs)
    if max((len(arm) for arm in arms.values()), default=0) < 2 or paired is None:
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
    summary = summary.iloc[1:]
    _seed_mean(axes[0], x + 0.1, summary["PSNR (dB)"], summary["PSNR low"], summary["PSNR high"])
    axes[0].set(title="best validation PSNR per loss (lines: the same seed)", ylabel="PSNR (dB)")
    axes[0].set_xticks(x, labels, rotation=15, ha="right")

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
    points: pd.DataFrame | None,
    corr: pd.DataFrame | None,
    band_table: pd.DataFrame | None,
    bands: Sequence[float] = DEFAULT_BANDS,
) -> Any | None:
    """Per comparison: each image's PSNR difference against the reference (mean over seeds) against its input
    PSNR (``points``: ``tables.level_differences``), coloured by type, with the band means and their 95%
    intervals (black; ``band_table``, band edges ``bands``) and Pearson's r with its Fisher z interval in the
    title (``corr``): ``tables.level_dependence``. ``None`` without points."""
    import matplotlib.pyplot as plt

    if points is None or points.empty or corr is None or band_table is None:
        return None
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


ERROR_CLASS_NAMES = {"edges": "edges", "degradation": "streaks/flakes", "veil": "veil", "flat": "flat"}


def _error_split(row: pd.Series) -> str:
    """Title lines ``squared error on: edges 41%, streaks/flakes 30%, ...`` (two classes a line; classes with
    no pixels left out) from a per-image row; ``""`` for an evaluation without ``errors.ERROR_COLUMNS``."""
    if not all(f"err_{c}" in row.index for c in CLASSES) or any(pd.isna(row[f"err_{c}"]) for c in CLASSES):
        return ""
    parts = [f"{ERROR_CLASS_NAMES[c]} {row[f'err_{c}']:.0%}" for c in CLASSES if row[f"px_{c}"] > 0]
    lines = [", ".join(parts[i : i + 2]) for i in range(0, len(parts), 2)]  # narrow: the panel's width
    return "\nsquared error on:\n" + ",\n".join(lines)


def plot_worst_regressions(runs: Sequence[Run]) -> Any | None:
    """The worst case of every loss (``images.worst_cases``: the image it restored furthest below its input
    PSNR over its seeds, or with the smallest gain when it made none worse), a row per loss: degraded |
    restored | clean | error map ``|restored - clean|`` (grey levels, mean over the colour channels, one scale
    for all rows; the title splits the squared error over the pixel classes of ``errors`` when the evaluation
    has them). A loss whose images the snapshot did not keep is named in the title. ``None`` when no loss's
    images are at hand."""
    import matplotlib.pyplot as plt

    cases = worst_cases(runs)
    chosen = [case for case in cases if case.at_hand]
    if not chosen:
        return None
    images = []
    for case in chosen:
        degraded, restored, clean = (read_image(case.run, case.row["name"], tag) for tag in TAGS)
        error = np.abs(restored.astype(np.int16) - clean.astype(np.int16)).mean(-1)
        images.append((degraded, restored, clean, error))
    vmax = max(1.0, max(float(e.max()) for *_, e in images))
    fig, axes = plt.subplots(
        len(chosen), 4, figsize=(11.5, 2.9 * len(chosen) + 0.4), squeeze=False, layout="constrained"
    )
    for ax_row, case, panels in zip(axes, chosen, images, strict=True):
        row = case.row
        titles = (
            f"{case.loss} (seed {run_seed(case.run)}): {row['name']}\ninput {row['input_psnr']:.2f} dB",
            f"restored {row['psnr']:.2f} dB\n({case.change:+.2f} dB)",
            "clean",
            f"|restored - clean|{_error_split(row)}",
        )
        for ax, img, title in zip(ax_row, panels, titles, strict=True):
            if img.ndim == 2:
                shown = ax.imshow(img, cmap="magma", vmin=0, vmax=vmax)
            else:
                ax.imshow(img)
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(shown, ax=axes[:, 3], label="error (grey levels, 0-255)", shrink=0.9 / len(chosen) ** 0.5)
    missing = [case.loss for case in cases if not case.at_hand]
    note = f"; images not kept for {', '.join(missing)}" if missing else ""
    title = "The worst case of each loss: the image restored furthest below its input PSNR (else: least gain)"
    fig.suptitle(title + note, fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------------- prompts


def _with_prompt_weights(runs: Sequence[Run]) -> list[tuple[str, Run]]:
    """(label, run) of the runs whose evaluation holds prompt weights, in order."""
    labelled = zip(run_labels(runs), runs, strict=True)
    return [(label, r) for label, r in labelled if r.per_image is not None and prompt_levels(r.per_image)]


def plot_prompt_weights(runs: Sequence[Run]) -> Any | None:
    """Mean prompt-component weights per degradation type: rows = runs, columns = prompt blocks."""
    import matplotlib.pyplot as plt

    evaluated = _with_prompt_weights(runs)
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

    evaluated = _with_prompt_weights(runs)
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


def plot_prompt_ablations(table: pd.DataFrame | None) -> Any | None:
    """Bars of ``prompts.prompt_ablations``: per loss, the mean PSNR change of each ablation against
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


# ------------------------------------------------------------------------------------------------- compute


def plot_compute_curve(runs: Sequence[Run], table: pd.DataFrame | None) -> Any | None:
    """PSNR per compute (``table``: ``tables.compute_table``): mean best validation PSNR per step count with
    its 95% interval over seeds against the images seen and the wall time (log x axes), each run of the series
    as a faint point. ``None`` without a series."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    if table is None:
        return None
    series = compute_series(runs)
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
                run_images_seen(r) if key == "images_seen" else float(r.metrics.get(key, np.nan))
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
