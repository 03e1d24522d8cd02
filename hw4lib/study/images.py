"""The images the report shows, as a snapshot stores them: each once, and only those a figure draws.

The per-image numbers of every run are in its ``eval/per_image.csv``; pictures are only for display. Two
figures draw them: the visual comparison (a few validation images, restored by one run per loss) and the
worst regressions (the :data:`N_WORST` images the runs restore furthest below their input). So a snapshot
holds::

    run-data/images/<name>_degraded.png, <name>_clean.png   the data's images, once for every run
    run-data/<run>/eval/<name>_restored.png                   a run's output, where a figure shows it

Lossless PNG: the figures come out the same from the snapshot as from the evaluation, error maps included
(they are differences of restored and clean pixels). ``probe.evaluate_run`` writes this layout;
:func:`prune_images` drops what no figure of the report draws. A run evaluated on its own keeps its clean and
degraded images beside its restored ones, where :func:`image_path` finds them too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hw4lib.data import KINDS
from hw4lib.runs import Run
from hw4lib.study.tables import shown_runs, study_arms

__all__ = ["IMAGES", "TAGS", "N_WORST", "image_path", "read_image", "visual_images", "worst_images",
           "shown_images", "prune_images"]  # fmt: skip

IMAGES = "images"  # the snapshot's folder of clean and degraded images, beside the run folders
TAGS = ("degraded", "restored", "clean")
SHARED_TAGS = ("degraded", "clean")  # the same for every run on the data
N_WORST = 3  # images in the worst-regressions figure


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


def worst_images(runs: Sequence[Run], n: int = N_WORST) -> list[tuple[float, Run, Any]]:
    """(PSNR change, run, its per-image row) of the ``n`` images restored furthest below their input PSNR,
    among those whose restored image the evaluation kept; the most negative change first."""
    candidates = []
    for run in runs:
        if run.per_image is None:
            continue
        for _, row in run.per_image.iterrows():
            change = float(row["psnr"] - row["input_psnr"])
            if change < 0 and image_path(run, row["name"], "restored").is_file():
                candidates.append((change, run.name, row["name"], run, row))
    chosen = sorted(candidates, key=lambda c: (c[0], c[1], c[2]))[:n]
    return [(change, run, row) for change, _, _, run, row in chosen]


def shown_images(runs: Sequence[Run]) -> set[Path]:
    """Every image file the report's figures draw for ``runs`` (see ``figures.plot_visual_grid`` and
    ``figures.plot_worst_regressions``)."""
    shown = shown_runs(runs)
    compared = [r for arm in study_arms(runs).values() for r in arm]
    drawn: list[tuple[Run, str, str]] = []
    for kind in KINDS:
        for name, _ in visual_images(shown, kind):
            drawn += [(shown[0], name, "degraded"), (shown[0], name, "clean")]
            drawn += [(run, name, "restored") for run in shown]
    for _, run, row in worst_images(compared):
        drawn += [(run, row["name"], tag) for tag in TAGS]
    return {image_path(run, name, tag).resolve() for run, name, tag in drawn}


def prune_images(runs: Sequence[Run], folder: Path) -> None:
    """Remove the images of the snapshot ``folder`` (its runs: ``runs``) that no figure draws."""
    keep = shown_images(runs)
    stored = [p for run in runs for p in run.eval_dir.glob("*.png")] + list((folder / IMAGES).glob("*.png"))
    for path in stored:
        if path.name.rpartition("_")[2][: -len(".png")] in TAGS and path.resolve() not in keep:
            path.unlink()
