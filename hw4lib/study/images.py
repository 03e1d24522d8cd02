"""The images the report shows, as a snapshot stores them: each once, and only those a figure draws.

The per-image numbers of every run are in its ``eval/per_image.csv``; pictures are only for display. Two
figures draw them: the visual comparison (a few validation images, restored by one run per loss) and the
worst case of each loss (:func:`worst_cases`: the image a loss restores furthest below its input). So a
snapshot holds::

    run-data/images/<name>_degraded.png, <name>_clean.png   the data's images, once for every run
    run-data/<run>/eval/<name>_restored.png                   a run's output, where a figure shows it

Lossless PNG: the figures come out the same from the snapshot as from the evaluation, error maps included
(they are differences of restored and clean pixels). ``probe.evaluate_run`` writes this layout;
:func:`prune_images` drops what no figure of the report draws. A run evaluated on its own keeps its clean and
degraded images beside its restored ones, where :func:`image_path` finds them too. :func:`visual_summary`
puts the visual comparison into numbers: the PSNR inside its magnified window and over the whole image.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hw4lib.data import KINDS
from hw4lib.metrics import psnr_uint8
from hw4lib.runs import Run
from hw4lib.study.tables import run_labels, shown_runs, study_arms

__all__ = ["IMAGES", "TAGS", "WorstCase", "image_path", "read_image", "visual_images", "worst_cases",
           "visual_summary", "shown_images", "prune_images"]  # fmt: skip

IMAGES = "images"  # the snapshot's folder of clean and degraded images, beside the run folders
TAGS = ("degraded", "restored", "clean")
SHARED_TAGS = ("degraded", "clean")  # the same for every run on the data


def image_path(run: Run, name: str, tag: str) -> Path:
    """Where ``<name>_<tag>.png`` of ``run`` is: the run's ``eval/`` folder for its restored image (and for
    clean and degraded images kept beside it), else the snapshot's ``images/`` folder."""
    own = run.eval_dir / f"{name}_{tag}.png"
    if tag not in SHARED_TAGS or own.is_file():
        return own
    return run.path.parent / IMAGES / f"{name}_{tag}.png"


def read_image(run: Run, name: str, tag: str) -> np.ndarray:
    """The image as (H, W, 3) uint8."""
    from PIL import Image

    with Image.open(image_path(run, name, tag)) as im:
        return np.asarray(im.convert("RGB"))


def visual_images(runs: Sequence[Run], kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, zoom box) of the visual-comparison images of ``kind`` that every run's evaluation chose."""
    common: dict[str, dict[str, Any]] | None = None
    for run in runs:
        meta_path = run.eval_dir / "visual.json"
        if not meta_path.is_file():
            return []
        images = {k: v for k, v in json.loads(meta_path.read_text())["images"].items() if v["kind"] == kind}
        common = images if common is None else {k: v for k, v in common.items() if k in images}
    return sorted((common or {}).items())


@dataclasses.dataclass
class WorstCase:
    """A loss's worst case: the image one of its runs restored furthest below its input PSNR (the smallest
    gain when it made none worse); ``at_hand``: whether its restored, degraded and clean images are kept."""

    loss: str  # the loss label
    run: Run
    row: pd.Series  # the image's row of the run's per_image.csv
    change: float  # restored - input PSNR (dB)
    at_hand: bool


def worst_cases(runs: Sequence[Run], kind: str | None = None) -> list[WorstCase]:
    """Per loss of the comparison (``tables.study_arms``, in its order) with an evaluation: its worst case
    over every seed (among images of type ``kind``, default all); ties go to the first run and image name.
    ``probe.evaluate_run`` keeps the restored images of each run's lowest changes, so a new evaluation has
    every loss's worst case at hand; an older snapshot may not."""
    cases = []
    for arm in study_arms(runs).values():
        rows = []
        for run in arm:
            if run.per_image is None:
                continue
            for _, row in run.per_image.iterrows():
                if kind is None or row["kind"] == kind:
                    change = float(row["psnr"] - row["input_psnr"])
                    rows.append((change, run.name, str(row["name"]), run, row))
        if not rows:
            continue
        change, _, name, run, row = min(rows, key=lambda c: (round(c[0], 9), c[1], c[2]))  # equal: a tie
        at_hand = all(image_path(run, name, tag).is_file() for tag in TAGS)
        cases.append(WorstCase(arm[0].label, run, row, change, at_hand))
    return cases


def visual_summary(runs: Sequence[Run]) -> pd.DataFrame | None:
    """The visual comparison in numbers: per type, image and loss (the shown runs, ``tables.shown_runs``,
    one per loss, as ``figures.plot_visual_grid`` draws them), the PSNR inside the magnified window
    (``probe.zoom_box``, from the kept 8-bit images) and over the whole image (``per_image.csv``, as the
    figure's titles), the input's PSNR in both, and ``least window error``: the loss with the highest window
    PSNR of the image. Each type also gets ``image`` ``"all"`` rows: the means over its images, the least
    error going to the highest mean window PSNR. ``None`` without a visual comparison."""
    shown = shown_runs(runs)
    columns = ["kind", "image", "loss", "run", "window PSNR (dB)", "PSNR (dB)", "input window PSNR (dB)",
               "input PSNR (dB)"]  # fmt: skip
    rows = []
    for kind in KINDS:
        images = visual_images(shown, kind)
        for name, box in images:
            top, left, size = box["top"], box["left"], box["size"]
            window = (slice(top, top + size), slice(left, left + size))
            clean, degraded = read_image(shown[0], name, "clean"), read_image(shown[0], name, "degraded")
            whole_input = _table_value(shown[0], name, "input_psnr", degraded, clean)
            for label, run in zip(run_labels(shown), shown, strict=True):
                restored = read_image(run, name, "restored")
                rows.append([kind, name, label, run.name, psnr_uint8(restored[window], clean[window]),
                             _table_value(run, name, "psnr", restored, clean),
                             psnr_uint8(degraded[window], clean[window]), whole_input])  # fmt: skip
        if images:
            part = pd.DataFrame(rows, columns=columns)
            part = part[part["kind"] == kind].groupby(["loss", "run"], sort=False)[columns[4:]].mean()
            rows += [[kind, "all", loss, run, *values] for (loss, run), values in part.iterrows()]
    if not rows:
        return None
    table = pd.DataFrame(rows, columns=columns)
    best = table.groupby(["kind", "image"], sort=False)["window PSNR (dB)"].idxmax()  # ties: the first loss
    table["least window error"] = table.index.isin(best)
    return table


def _table_value(run: Run, name: str, column: str, image: np.ndarray, clean: np.ndarray) -> float:
    """The image's ``column`` of the run's per_image.csv, else the PSNR of the 8-bit ``image``."""
    table = run.per_image
    if table is not None and column in table.columns and (table["name"] == name).any():
        return float(table.loc[table["name"] == name, column].iloc[0])
    return psnr_uint8(image, clean)


def shown_images(runs: Sequence[Run]) -> set[Path]:
    """Every image file the report's figures draw for ``runs`` (see ``figures.plot_visual_grid`` and
    ``figures.plot_worst_regressions``)."""
    shown = shown_runs(runs)
    drawn: list[tuple[Run, str, str]] = []
    for kind in KINDS:
        for name, _ in visual_images(shown, kind):
            drawn += [(shown[0], name, "degraded"), (shown[0], name, "clean")]
            drawn += [(run, name, "restored") for run in shown]
    for case in worst_cases(runs):
        drawn += [(case.run, case.row["name"], tag) for tag in TAGS]
    return {image_path(run, name, tag).resolve() for run, name, tag in drawn}


def prune_images(runs: Sequence[Run], folder: Path) -> None:
    """Remove the images of the snapshot ``folder`` (its runs: ``runs``) that no figure draws."""
    keep = shown_images(runs)
    stored = [p for run in runs for p in run.eval_dir.glob("*.png")] + list((folder / IMAGES).glob("*.png"))
    for path in stored:
        if path.name.rpartition("_")[2][: -len(".png")] in TAGS and path.resolve() not in keep:
            path.unlink()
