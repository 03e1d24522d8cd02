"""The report's tables, computed once (:func:`compute_tables`) and saved as Markdown, LaTeX and CSV.

:class:`ReportTables` holds every table of a report; :mod:`hw4lib.study.build` computes it, the figures are
drawn from it (:mod:`hw4lib.study.figures`) and the template is filled from it (:mod:`hw4lib.study.context`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hw4lib.runs import Run
from hw4lib.study.analyses import (
    clustered_paired,
    hypothesis_tests,
    level_within_type,
    per_type_paired,
    scale_table,
)
from hw4lib.study.errors import error_location
from hw4lib.study.images import visual_summary
from hw4lib.study.output import save_table
from hw4lib.study.prompts import prompt_ablations, prompt_separation, prompt_swap_table, prompt_type_accuracy
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

__all__ = ["ReportTables", "compute_tables", "TABLE_FILES", "save_tables"]


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
    per_type: pd.DataFrame | None = None  # analyses.per_type_paired: each loss per type, over seeds
    clustered: pd.DataFrame | None = None  # analyses.clustered_paired: pooled, interval over scenes
    level_within: pd.DataFrame | None = None  # analyses.level_within_type: r within rain and within snow
    hypotheses: list[dict[str, Any]] | None = None  # analyses.hypothesis_tests: prediction, then result
    scale: pd.DataFrame | None = None  # analyses.scale_table: the ranking at the comparison's and more steps
    error_location: pd.DataFrame | None = None  # errors.error_location: where each loss's error sits
    visual: pd.DataFrame | None = None  # images.visual_summary: the visual comparison's windows, measured
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
    multi_seed = max((len(arm) for arm in study_arms(runs).values()), default=0) >= 2
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
        per_type=per_type_paired(runs, REFERENCE) if evaluated and multi_seed else None,
        clustered=clustered_paired(runs, REFERENCE) if evaluated else None,
        level_within=level_within_type(points) if points is not None and not points.empty else None,
        hypotheses=hypothesis_tests(runs) if evaluated and multi_seed else None,
        scale=scale_table(runs, REFERENCE),
        error_location=_reset(error_location(runs)),
        visual=visual_summary(runs),
        benchmarks=benchmarks,
        transfer=transfer,
    )


def _reset(table: pd.DataFrame | None) -> pd.DataFrame | None:
    return None if table is None else table.reset_index()  # the loss label becomes a column, as elsewhere


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
    "per_type": ("per_type_over_seeds", "comparison"),
    "clustered": ("paired_over_scenes", "comparison"),
    "level_within": ("level_within_type", "comparison"),
    "scale": ("ranking_at_more_compute", "loss"),
    "error_location": ("error_location", "loss"),
    "visual": ("visual_windows", None),
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
