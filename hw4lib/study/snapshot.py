"""The snapshot: what a report keeps of its runs, so that it can be rebuilt on a clone that has neither
checkpoints nor data.

A report is one folder, ``report/<name>/`` (the committed ones: ``report/demo/``, ``report/study/``)::

    report.md, report.html   the report (the HTML self-contained: figures embedded, tables styled)
    tables/                  every table as Markdown, LaTeX and CSV
    figures/                 the figures
    run-data/                the snapshot: per run its small files and evaluation (``<run>/``), the images
                             the figures draw (``images/``, see ``images``), dataset.json, bench/

:func:`collect_runs` fills ``run-data/``: it copies each run's small files and, where the run's checkpoint is
at hand, evaluates it once on its validation images (``probe.evaluate_run``). :func:`collect_dataset` keeps
the data set's own description, :func:`collect_benchmarks` the real-data benchmark results.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hw4lib import paths
from hw4lib import runs as runs_mod
from hw4lib.data import MANIFEST
from hw4lib.paths import atomic_write
from hw4lib.runs import EVAL, Run
from hw4lib.study.images import IMAGES, prune_images
from hw4lib.study.probe import evaluate_run
from hw4lib.study.tables import study_arms

__all__ = [
    "DEFAULT_REPORT", "SNAPSHOT_DIR", "DATASET_FILE", "report_folders", "collect_runs", "collect_dataset",
    "load_dataset", "collect_benchmarks", "load_benchmarks", "load_transfer",
]  # fmt: skip

DEFAULT_REPORT = "report/demo"  # the committed demo report's folder
SNAPSHOT_DIR = f"{DEFAULT_REPORT}/run-data"  # its snapshot: copies of the runs' small files and evaluations
DATASET_FILE = "dataset.json"  # in a snapshot: the data set's own description (its synth.json)
BENCH = "bench"  # in a snapshot: the real-data benchmark results


def report_folders(out: str | os.PathLike[str] = DEFAULT_REPORT) -> dict[str, Path]:
    """The folders of report ``out`` (relative: under the output root): ``root``, ``run_data``, ``tables``,
    ``figures``; created on demand."""
    root = paths.output(out)
    folders = {
        "root": root,
        "run_data": root / "run-data",
        "tables": root / "tables",
        "figures": root / "figures",
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def collect_runs(
    runs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    dest: str | os.PathLike[str] = SNAPSHOT_DIR,
    data_dir: str | os.PathLike[str] | None = None,
    n_visual: int = 2,
    checkpoint: str = "best",
    prune: bool = True,
    verbose: bool = True,
    device: str = "auto",
    ablations: bool = True,
    n_worst: int = 2,
) -> list[Run]:
    """Snapshot runs into ``dest/<name>/`` (small files + evaluation); returns them loaded from the snapshot.

    A run that is already in ``dest`` is used as it is. A run with a checkpoint is (re-)evaluated on its
    validation images; one without keeps the evaluation its snapshot has, if any. ``ablations``: whether the
    runs of the loss comparison get the prompt ablations (the shorter runs of a compute series never do:
    they would only cost time). With ``prune``, snapshots in ``dest`` that are not among ``runs`` are removed,
    so the report shows exactly the runs asked for, and so are the images no figure draws
    (``images.prune_images``). The data set's description is carried into ``dest/dataset.json``
    (:func:`collect_dataset`), benchmark results and images of a snapshot the runs come from along with them.
    """
    dest_dir = paths.output(dest)
    sources = runs_mod.load_runs(runs)
    compared = {id(r) for arm in study_arms(sources).values() for r in arm}
    for folder in (BENCH, IMAGES):
        _carry(sources, dest_dir, folder)
    snapshots: list[Run] = []
    for run in sources:
        target = dest_dir / run.name
        if run.path.resolve() != target.resolve():
            runs_mod.copy_small_files(run, target)
            if (run.path / f"{checkpoint}.pt").is_file():
                if verbose:
                    print(f"evaluating {run.name} ({checkpoint}.pt) on its validation images")
                if (target / EVAL).is_dir():
                    shutil.rmtree(target / EVAL)
                evaluate_run(
                    run,
                    target / EVAL,
                    data_dir=data_dir,
                    checkpoint=checkpoint,
                    n_visual=n_visual,
                    device=device,
                    ablations=ablations and id(run) in compared,
                    n_worst=n_worst,
                    images_dir=dest_dir / IMAGES,
                )
            elif (run.path / EVAL / "per_image.csv").is_file():
                shutil.copytree(run.path / EVAL, target / EVAL, dirs_exist_ok=True)
            elif verbose:
                print(f"{run.name}: no {checkpoint}.pt, so no per-image evaluation or visual comparison")
        snapshots.append(runs_mod.load_run(target))
    if prune and dest_dir.is_dir():
        keep = {r.name for r in snapshots}
        for folder in sorted(dest_dir.iterdir()):
            if folder.is_dir() and folder.name not in keep and (folder / runs_mod.METRICS).is_file():
                shutil.rmtree(folder)
        prune_images(snapshots, dest_dir)
    collect_dataset(sources, dest_dir, data_dir)
    return snapshots


def _carry(sources: Sequence[Run], dest_dir: Path, name: str) -> None:
    """Copy the files of folder ``name`` (``bench/``, ``images/``) of each snapshot the runs come from into
    ``dest_dir/name/``: a report rebuilt from a committed snapshot elsewhere keeps its real-data results and
    the images its figures draw."""
    for parent in dict.fromkeys(run.path.parent for run in sources):
        folder = parent / name
        if not folder.is_dir() or parent.resolve() == dest_dir.resolve():
            continue
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            (dest_dir / name).mkdir(parents=True, exist_ok=True)
            with atomic_write(dest_dir / name / path.name, "wb") as f:
                f.write(path.read_bytes())


def collect_dataset(
    runs: Sequence[Run], dest: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any] | None:
    """Carry the data set's description into ``dest/dataset.json`` and return it (``None``: there is none).

    Read from the data set's ``synth.json`` (``data_dir``, else the first run's ``data_dir``) when the data is
    at hand, else from a snapshot the runs come from (``dataset.json`` beside them); a snapshot that already
    has one keeps it. The file is copied byte for byte.
    """
    dest_dir = paths.output(dest)
    candidates = [paths.resolve(data_dir) / MANIFEST] if data_dir is not None else []
    for run in runs:
        if run.config.get("data_dir"):
            candidates.append(paths.resolve(run.config["data_dir"]) / MANIFEST)
    candidates += [run.path.parent / DATASET_FILE for run in runs]
    source = next((c for c in candidates if c.is_file()), None)
    target = dest_dir / DATASET_FILE
    if source is not None and source.resolve() != target.resolve():
        data = source.read_bytes()
        try:
            json.loads(data)
        except json.JSONDecodeError:
            warnings.warn(
                f"{source} is not valid JSON; the report will not describe the data set", stacklevel=2
            )
        else:
            dest_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(target, "wb") as f:
                f.write(data)
    return load_dataset(dest_dir)


def load_dataset(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``<folder>/dataset.json`` (a snapshot's description of its data set), or ``None``."""
    path = paths.resolve(folder) / DATASET_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------------------------- benchmarks


def collect_benchmarks(
    pattern: str = "runs/bench-*.json", dest: str | os.PathLike[str] = f"{SNAPSHOT_DIR}/{BENCH}"
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Copy benchmark JSON files matching ``pattern`` into the snapshot (kept when none match) and read the
    snapshot's results: (Rain100L budget runs, synthetic-to-real transfer), each ``None`` when absent."""
    for path in sorted(glob.glob(str(paths.resolve(pattern)))):
        target = paths.output(dest) / Path(path).name
        if Path(path).resolve() == target.resolve():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target, "wb") as f:
            f.write(Path(path).read_bytes())
    folder = paths.output(dest)
    return (
        load_benchmarks(str(folder / "bench-rain100l-*.json")),
        load_transfer(str(folder / "bench-transfer*.json")),
    )


BENCH_KEYS = (
    "preset",
    "budget_s",
    "val_psnr",
    "val_psnr_tta",
    "val_psnr_tta_hflip",
    "val_ssim",
    "input_psnr",
    "steps_per_s",
    "peak_mem_mb",
)


def _load_result_files(
    pattern: str, required: str, what: str, row: Callable[[dict[str, Any]], dict[str, Any]]
) -> pd.DataFrame | None:
    """One row per JSON file matching ``pattern`` (index: the file stem), or ``None`` when there is none.

    Files that do not parse or lack the ``required`` key are skipped with a warning naming them.
    """
    rows = {}
    for path in sorted(glob.glob(str(paths.resolve(pattern)))):
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            warnings.warn(f"skipping {what} file {path}: {err}", stacklevel=3)
            continue
        if not isinstance(data, dict) or required not in data:
            warnings.warn(f"skipping {what} file {path}: no {required} key", stacklevel=3)
            continue
        rows[Path(path).stem] = row(data)
    if not rows:
        return None
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "benchmark"
    return table


def load_benchmarks(pattern: str) -> pd.DataFrame | None:
    """Real-data benchmark results (``bench-rain100l-*.json``: preset, budget, PSNR with and without TTA ...).

    Returns one row per file (index: the file stem) or ``None`` when there is none. Files that do not parse or
    lack ``val_psnr`` are skipped with a warning naming them.
    """

    def row(data: dict[str, Any]) -> dict[str, Any]:
        extra = {key: data[key] for key in ("n_val", "device") if key in data}
        return {key: data.get(key) for key in BENCH_KEYS} | extra

    return _load_result_files(pattern, "val_psnr", "benchmark", row)


TRANSFER_KEYS = (
    "preset", "budget_s", "input_psnr", "real_psnr", "gain_db", "tta_images", "input_psnr_on_tta_subset",
    "real_psnr_tta", "real_psnr_tta_hflip", "steps_per_s", "n_real", "device",
)  # fmt: skip


def load_transfer(pattern: str) -> pd.DataFrame | None:
    """Synthetic-to-real transfer results (``benchmarks/transfer.py``): one row per file, or ``None``.

    Files that do not parse or lack ``real_psnr`` are skipped with a warning naming them.
    """

    def row(data: dict[str, Any]) -> dict[str, Any]:
        steps = (data.get("training") or {}).get("steps")
        return {key: data.get(key) for key in TRANSFER_KEYS} | {"steps": steps}

    return _load_result_files(pattern, "real_psnr", "transfer", row)
