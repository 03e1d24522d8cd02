"""The report as one pipeline: :func:`build` turns run folders into a report folder, and returns what it made.

1. **snapshot** (``snapshot``): the runs' small files, their per-image evaluation (a checkpoint at hand is
   evaluated once, ``probe``), the images the figures draw, the data set's description, the benchmarks;
2. **tables** (``report_tables``): every table computed once from the snapshot, then saved as Markdown,
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

from hw4lib.paths import write_text_atomic
from hw4lib.runs import Run
from hw4lib.study.context import render_markdown, report_context
from hw4lib.study.figures import FIGURE_KEYS, make_figures
from hw4lib.study.render import render_html, render_pdf
from hw4lib.study.report_tables import ReportTables, compute_tables, save_tables
from hw4lib.study.snapshot import (
    DEFAULT_REPORT,
    collect_benchmarks,
    collect_runs,
    load_dataset,
    report_folders,
)
from hw4lib.study.tables import DEFAULT_BANDS

__all__ = ["Report", "build"]


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
