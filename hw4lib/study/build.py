"""The report as one pipeline: :func:`build` turns run folders into a report folder, and returns what it made.

1. **snapshot** (``snapshot``): the runs' small files, their per-image evaluation (a checkpoint at hand is
   evaluated once, ``probe``), the images the figures draw, the data set's description, the benchmarks;
2. **tables** (:func:`compute_tables`): every table computed once from the snapshot, then saved as Markdown,
   LaTeX and CSV in ``tables/`` (``output``);
3. **figures** (``figures.make_figures``): drawn from the runs and those same tables, saved in ``figures/``;
4. **words** (``context``): the template ``templates/report.md.j2`` filled from those same tables and
   figures, written as ``report.md``;
5. **pages** (``render``): ``report.html`` (self-contained) and, on request, ``report.pdf``.

Each number is computed in one place, so the tables, the figures and the text cannot disagree.
``notebooks/report.ipynb`` calls :func:`build` once and shows what the returned :class:`Report` holds.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hw4lib.paths import write_text_atomic
from hw4lib.runs import Run
from hw4lib.study.context import render_markdown, report_context
from hw4lib.study.figures import FIGURE_KEYS, make_figures
from hw4lib.study.output import save_table
from hw4lib.study.prompts import prompt_ablations, prompt_separation, prompt_swap_table, prompt_type_accuracy
from hw4lib.study.render import render_html, render_pdf
from hw4lib.study.snapshot import (
    DEFAULT_REPORT,
    collect_benchmarks,
    collect_runs,
    load_dataset,
    report_folders,
)
from hw4lib.study.tables import (
    DEFAULT_BANDS,
    REFERENCE,
    comparison_table,
    compute_accounting,
    compute_gain,
    compute_table,
    context_table,
    failure_cases,
    level_dependence,
    level_differences,
    loss_summary,
    paired_vs_reference,
    run_labels,
    settings_table,
    shown_runs,
    split_description,
    study_arms,
)

__all__ = ["ReportTables", "compute_tables", "TABLE_FILES", "save_tables", "Report", "build"]


@dataclasses.dataclass
class ReportTables:
    """Every table of a report, computed once from its runs by :func:`compute_tables`; ``None`` (or empty)
    where the runs hold nothing for it. The report saves these, draws its figures from them and fills its
    template with them."""

    comparison: pd.DataFrame  # tables.comparison_table of the runs of the loss comparison
    summary: pd.DataFrame  # tables.loss_summary
    settings: pd.DataFrame  # tables.settings_table
    accounting: pd.DataFrame  # tables.compute_accounting
    context: pd.DataFrame  # tables.context_table
    paired: pd.DataFrame | None  # tables.paired_vs_reference (None without a per-image evaluation)
    level_points: pd.DataFrame | None  # tables.level_differences
    level_correlation: pd.DataFrame | None  # tables.level_dependence (None without level points)
    level_bands: pd.DataFrame | None
    band_edges: tuple[float, ...]  # the input-PSNR band edges of level_bands
    failures: pd.DataFrame  # tables.failure_cases: per loss, and the worst regressions of each
    worst: pd.DataFrame
    separation: pd.DataFrame  # prompts.prompt_separation of the shown runs
    swaps: dict[str, pd.DataFrame | None]  # prompts.prompt_swap_table per shown run, by its label
    type_accuracy: pd.DataFrame | None  # prompts.prompt_type_accuracy
    ablations: pd.DataFrame | None  # prompts.prompt_ablations
    compute: pd.DataFrame | None  # tables.compute_table
    compute_gain: dict[str, Any] | None  # tables.compute_gain
    benchmarks: pd.DataFrame | None = None  # snapshot.collect_benchmarks: the Rain100L budget runs
    transfer: pd.DataFrame | None = None  # and the synthetic-to-real transfer


def compute_tables(
    runs: Sequence[Run],
    dataset: dict[str, Any] | None = None,
    bands: Sequence[float] = DEFAULT_BANDS,
    benchmarks: pd.DataFrame | None = None,
    transfer: pd.DataFrame | None = None,
) -> ReportTables:
    """Every table of the report of ``runs``. ``dataset``: the snapshot's description of the data (it may fix
    the split); ``bands``: the input-PSNR band edges (dB); ``benchmarks``, ``transfer``: real-data results,
    carried as they are."""
    compared = [r for arm in study_arms(runs).values() for r in arm]
    shown = shown_runs(runs)
    evaluated = any(r.per_image is not None for r in compared)
    points = level_differences(runs, REFERENCE) if evaluated else None
    correlation, band_table = None, None
    if points is not None and not points.empty:
        correlation, band_table = level_dependence(points, bands)
    failures, worst = failure_cases(runs)
    return ReportTables(
        comparison=comparison_table(compared),
        summary=loss_summary(runs),
        settings=settings_table(runs, split_description(dataset)),
        accounting=compute_accounting(runs),
        context=context_table(runs),
        paired=paired_vs_reference(runs, REFERENCE) if evaluated else None,
        level_points=points,
        level_correlation=correlation,
        level_bands=band_table,
        band_edges=tuple(float(b) for b in bands),
        failures=failures,
        worst=worst,
        separation=prompt_separation(shown),
        swaps={label: prompt_swap_table(r) for label, r in zip(run_labels(shown), shown, strict=True)},
        type_accuracy=prompt_type_accuracy(runs),
        ablations=prompt_ablations(runs),
        compute=compute_table(runs),
        compute_gain=compute_gain(runs),
        benchmarks=benchmarks,
        transfer=transfer,
    )


# ReportTables field -> (its file stem in tables/, the column that becomes the row index, or None)
TABLE_FILES = {
    "comparison": ("loss_comparison", None),
    "summary": ("loss_summary", None),
    "settings": ("hyperparameters", None),
    "accounting": ("compute", None),
    "paired": ("paired_vs_l1", "comparison"),
    "level_correlation": ("level_correlation", "comparison"),
    "level_bands": ("level_bands", "comparison"),
    "failures": ("failures", None),
    "worst": ("worst_regressions", "loss"),
    "type_accuracy": ("prompt_type_accuracy", None),
    "ablations": ("prompt_ablations", "loss"),
    "compute": ("psnr_per_compute", "loss"),
    "context": ("context", None),
}


def save_tables(computed: ReportTables, folder: Path) -> dict[str, dict[str, Path]]:
    """Save each table that has rows (:data:`TABLE_FILES`; the worst regressions whenever there are failure
    counts) as ``<stem>.md``, ``.tex`` and ``.csv`` in ``folder``; returns stem -> the files written."""
    saved = {}
    for field, (stem, index) in TABLE_FILES.items():
        table = getattr(computed, field)
        present = table is not None and not table.empty
        if field == "worst":
            present = not computed.failures.empty
        if present:
            saved[stem] = save_table(table.set_index(index) if index else table, stem, folder)
    return saved


@dataclasses.dataclass
class Report:
    """What :func:`build` made: the report folder, the runs of its snapshot, the computed tables, the files
    (tables by stem, figures by key, the pages)."""

    folder: Path
    runs: list[Run]
    dataset: dict[str, Any] | None
    tables: ReportTables
    table_files: dict[str, dict[str, Path]]
    figures: dict[str, Path]
    markdown: Path
    html: Path
    pdf: Path | None = None

    def show(self, *keys: str, scale: float = 60 / 110) -> None:
        """Display the saved figures ``keys`` (``figures.FIGURE_KEYS``) in a notebook, each as a small JPEG
        copy (``scale`` of the saved size); a figure the runs hold nothing for is named as missing."""
        from IPython.display import Image, display

        for key in keys:
            if key not in FIGURE_KEYS:
                raise KeyError(f"no figure {key!r}; the figures are {', '.join(FIGURE_KEYS)}")
            if key in self.figures:
                display(Image(data=_preview(self.figures[key], scale), format="jpeg"))
            else:
                print(f"{key}: no figure (the runs hold nothing to draw it)")


def _preview(path: Path, scale: float) -> bytes:
    """A figure file as a JPEG ``scale`` times its size: small enough to keep in a notebook."""
    from PIL import Image

    with Image.open(path) as im:
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        small = im.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def build(
    runs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str] = DEFAULT_REPORT,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    bench: str = "runs/bench-*.json",
    n_visual: int = 2,
    device: str = "auto",
    title: str | None = None,
    bands: Sequence[float] = DEFAULT_BANDS,
    pdf: bool = False,
) -> Report:
    """Build the report folder ``out`` (relative: under the output root) from ``runs`` (run folders or a
    glob): snapshot, tables, figures, ``report.md``, ``report.html`` and, with ``pdf``, ``report.pdf``.

    ``data_dir``: the images for evaluating checkpoints (default: each run's own); ``bench``: real-data
    benchmark results to carry into the snapshot; ``n_visual``: validation images per type in the visual
    comparison; ``device``: where checkpoints are evaluated; ``title``: the report's title (default:
    ``context.TITLE``); ``bands``: the input-PSNR band edges (dB) of the by-degradation-level table.
    """
    folders = report_folders(out)
    collected = collect_runs(
        runs, dest=folders["run_data"], data_dir=data_dir, n_visual=n_visual, device=device
    )
    dataset = load_dataset(folders["run_data"])
    benchmarks, transfer = collect_benchmarks(bench, dest=folders["run_data"] / "bench")
    computed = compute_tables(collected, dataset, bands, benchmarks=benchmarks, transfer=transfer)
    table_files = save_tables(computed, folders["tables"])
    figures = make_figures(collected, computed, folders["figures"])
    context = report_context(collected, computed, figures, folders["root"], dataset=dataset, title=title)
    markdown = write_text_atomic(render_markdown(context), folders["root"] / "report.md")
    html = render_html(markdown)
    return Report(
        folder=folders["root"], runs=collected, dataset=dataset, tables=computed, table_files=table_files,
        figures=figures, markdown=markdown, html=html, pdf=render_pdf(html) if pdf else None,
    )  # fmt: skip
