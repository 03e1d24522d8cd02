"""The report: a snapshot of the runs, and ``report.md`` / ``report.html`` written from it.

Each report is one folder, ``report/<name>/`` (the committed demo: ``report/demo/``)::

    report.md, report.html   the report (the HTML self-contained: figures embedded, tables styled)
    tables/                  every table as Markdown, LaTeX and CSV
    figures/                 the figures, PNG
    run-data/                the snapshot: each run's small files and evaluation, dataset.json, bench/

Pipeline (``notebooks/report.ipynb`` calls these in order):

1. :func:`collect_runs` copies the small files of each run folder (``config.json``, ``history.csv``,
   ``metrics.json``) into ``<report>/run-data/<name>/`` and, where the run's checkpoint and data are at hand,
   evaluates it once on its validation images (``hw4lib.probe``: ``eval/per_image.csv``, the prompt
   ablations, the images of the visual comparison and of the worst regressions). It also carries the data
   set's description (its ``synth.json``) into ``run-data/dataset.json``. The snapshot is small and
   committed, so the report can be rebuilt (and tested) on a clone that has neither checkpoints nor data.
2. The numbers come from ``hw4lib.tables``, the figures from ``hw4lib.plots``.
3. :func:`write_report` renders ``report.md``: :func:`report_context` gathers the numbers, tables and the
   decisions taken from them into one dict, and the words are in ``hw4lib/templates/report.md.j2`` (and the
   parts it includes); :func:`render_html` renders the Markdown to one self-contained HTML file and
   :func:`render_pdf` prints that to PDF where the machine has a tool for it.

Which runs are which: :func:`hw4lib.tables.study_arms` groups the runs by loss (several seeds each) at the
longest training each loss has; shorter runs of a loss are its compute series. Figures that show single runs
use one run per loss (its lowest seed); the statistics pool every seed.
"""

from __future__ import annotations

import base64
import glob
import html
import json
import math
import mimetypes
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from hw4lib import paths
from hw4lib import runs as runs_mod
from hw4lib.data import KINDS, MANIFEST
from hw4lib.losses import loss_label
from hw4lib.paths import atomic_write, write_text_atomic
from hw4lib.runs import EVAL, Run
from hw4lib.study import tables
from hw4lib.study.probe import evaluate_run
from hw4lib.study.tables import (
    ReportError,
    benchmark_markdown,
    comparison_table,
    run_labels,
    study_arms,
    to_markdown,
    transfer_markdown,
)

__all__ = [
    "DEFAULT_REPORT",
    "SNAPSHOT_DIR",
    "DATASET_FILE",
    "FIGURE_KEYS",
    "ReportError",
    "report_folders",
    "collect_runs",
    "collect_dataset",
    "load_dataset",
    "collect_benchmarks",
    "shown_runs",
    "report_context",
    "render_markdown",
    "template_environment",
    "write_report",
    "render_html",
    "pdf_command",
    "render_pdf",
]

DEFAULT_REPORT = "report/demo"  # the committed demo report's folder
SNAPSHOT_DIR = f"{DEFAULT_REPORT}/run-data"  # its snapshot: copies of the runs' small files and evaluations
DATASET_FILE = "dataset.json"  # in a snapshot: the data set's own description (its synth.json)


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
    so the report shows exactly the runs asked for. The data set's description is carried into
    ``dest/dataset.json`` (:func:`collect_dataset`).
    """
    dest_dir = paths.output(dest)
    sources = runs_mod.load_runs(runs)
    compared = {id(r) for arm in study_arms(sources).values() for r in arm}
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
    _carry_benchmarks(sources, dest_dir)
    collect_dataset(sources, dest_dir, data_dir)
    return snapshots


def _carry_benchmarks(sources: Sequence[Run], dest_dir: Path) -> None:
    """Copy the ``bench/`` results of a snapshot the runs come from into ``dest_dir/bench/`` (a report rebuilt
    from a committed snapshot elsewhere keeps its real-data results)."""
    for parent in dict.fromkeys(run.path.parent for run in sources):
        bench = parent / "bench"
        if not bench.is_dir() or parent.resolve() == dest_dir.resolve():
            continue
        for path in sorted(bench.glob("*.json")):
            (dest_dir / "bench").mkdir(parents=True, exist_ok=True)
            with atomic_write(dest_dir / "bench" / path.name, "wb") as f:
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


def collect_benchmarks(
    pattern: str = "runs/bench-*.json", dest: str = f"{SNAPSHOT_DIR}/bench"
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
        tables.load_benchmarks(str(folder / "bench-rain100l-*.json")),
        tables.load_transfer(str(folder / "bench-transfer*.json")),
    )


def shown_runs(runs: Sequence[Run]) -> list[Run]:
    """One run per loss of the comparison (its lowest seed): the runs that figures of single runs show."""
    return [arm[0] for arm in study_arms(runs).values()]


# --------------------------------------------------------------------------------------------------- report

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "report.md.j2"  # the report's words (it includes the other .j2 files of the folder)
FIGURE_KEYS = (
    "curves", "loss_seeds", "visual_rain", "visual_snow", "psnr", "level", "worst", "prompt_weights",
    "prompt_pca", "prompt_swap", "ablations", "compute",
)  # fmt: skip
NA = "n/a"  # a number the runs do not have
TITLE = "Rain and snow removal with PromptIR: a loss-function study"

# the decisions the report states, and the thresholds that take them
PROMPT_VERDICTS = ((0.9, "clear"), (0.7, "partial"))  # leave-one-out accuracy -> verdict; below: "none"
SWAP_COST_DB = -0.3  # a swap cost below this means the decoder relies on the prompt
INERT_DB = 0.01  # re-weighted prompts whose whole interval stays within +-this changed nothing
TRANSFER_GAIN_DB = 2.0  # a transfer gain of at least this is a lasting part of real deraining
MANY_RUNS = 6  # the header lists the runs by name up to this many, else counts them


def _fmt(value: Any, nd: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    return f"{value:.{nd}f}"


def _signed(value: Any) -> str:
    """``+0.12``; ``n/a`` when missing; never ``-0.00``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    return f"{round(float(value), 2) + 0.0:+.2f}"


def _link(path: str | os.PathLike[str], out_dir: Path) -> str:
    return Path(os.path.relpath(paths.output(path), out_dir)).as_posix()


def _unwrap(text: str) -> str:
    """The lines of a template block joined by spaces: a wrapped paragraph becomes one Markdown line, ending
    with a newline (nothing at all when the block is empty)."""
    joined = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return joined + "\n" if joined else ""


def _sentence(text: Any) -> str:
    """``text`` ending with a full stop (added unless it ends with one already)."""
    text = str(text).strip()
    return text if text.endswith((".", "!", "?")) else text + "."


_UNESCAPED = {c: re.compile(r"(?<!\\)" + re.escape(c)) for c in "*|"}


def _escape(text: Any, chars: str) -> str:
    """``text`` with each of ``chars`` backslash-escaped, once (an escaped one stays as it is)."""
    out = str(text)
    for c in chars:
        out = _UNESCAPED[c].sub("\\" + c, out)
    return out


def _esc(text: Any) -> str:
    """A label safe in Markdown prose: ``L1 + 0.1*Edge(Y)`` keeps its ``*`` (two of them would start
    emphasis)."""
    return _escape(text, "*")


def _md_cell(value: Any) -> str:
    """A value safe inside a Markdown table cell (no emphasis from ``*``, no column break from ``|``); a label
    already escaped for prose is not escaped twice."""
    return _escape(value, "|*")


def template_environment() -> jinja2.Environment:
    """The Jinja2 environment of ``hw4lib/templates`` (strict: a variable the context lacks is an error)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(
        f2="{:.2f}".format,
        f2_or_na=_fmt,
        signed2=_signed,
        pct="{:.0%}".format,
        thousands="{:,.0f}".format,
        g="{:g}".format,
        code="`{}`".format,
        unwrap=_unwrap,
        cell=_md_cell,
        interval=_interval_text,
        ci=lambda c: _interval_text(c["mean"], c["low"], c["high"]),
        sentence=_sentence,
    )
    return env


# ------------------------------------------------------------------------------------------ context pieces


def _method(first: Run) -> dict[str, Any]:
    """Data split, augmentation, model size and loss weights of the first run."""
    cfg = first.config
    counts = first.per_image["kind"].value_counts().to_dict() if first.per_image is not None else {}
    visual_meta = first.eval_dir / "visual.json"
    split = json.loads(visual_meta.read_text()).get("split", {}) if visual_meta.is_file() else {}
    if split:
        evaluated = split.get("evaluated", split["val"])
        split = {**split, "evaluated": evaluated, "capped": evaluated < split["val"]}
    arch = first.metrics.get("model_config") or {}
    alpha = float(cfg.get("alpha", 0.84))
    per_image = cfg.get("patches_per_image", 1)
    return {
        "counts": sorted(counts.items()),  # validation images per type
        "split": split or None,  # pairs / val / train / evaluated (capped: fewer evaluated than held out)
        "val_fraction": float(cfg["val_fraction"]) if "val_fraction" in cfg else None,
        "seed": cfg.get("seed", 0),
        "patch_size": cfg.get("patch_size"),
        "patches_per_image": None if per_image in (1, None) else per_image,
        "augment": bool(cfg.get("augment", True)),
        "preset": cfg.get("preset", NA),
        # None: the run recorded no model config
        "model_config": [(k, v) for k, v in arch.items() if k != "preset"] if arch else None,
        "params": int(first.metrics["params"]),
        "ssim_weight": alpha,
        "l1_weight": 1 - alpha,
    }


def _describe(value: Any) -> str | None:
    """A data set field as words: a string as it is, a list joined, a mapping as ``key: value`` pairs."""
    if value is None or value == "" or value == {} or value == []:
        return None
    if isinstance(value, dict):
        parts = [f"{k}: {_describe(v)}" for k, v in value.items() if _describe(v) is not None]
        return "; ".join(parts) or None
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _dataset(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the report says about the data: its own fields (``source``, ``rain``, ``snow``, ``split``,
    ``note``) and, for a set made by ``hw4lib.synth``, the generator and the photographs it drew from."""
    if not meta:
        return None
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    described = {
        key: _describe(meta.get(key)) for key in ("description", "source", "rain", "snow", "split", "note")
    }
    photos = settings.get("train_photos") or meta.get("photos")
    split_meta = meta.get("split") if isinstance(meta.get("split"), dict) else {}
    return {
        **described,
        "described": any(described[k] for k in ("description", "source", "rain", "snow")),
        "generator": meta.get("generator"),
        # the demo generator crops its validation pairs from the training photographs (no scene split)
        "same_photos": str(meta.get("generator", "")).endswith("generate_demo_dataset")
        and not described["split"],
        "photos": list(photos) if isinstance(photos, (list, tuple)) else None,
        "test_photos": list(settings["test_photos"]) if settings.get("test_photos") else None,
        "size": settings.get("size"),
        # a split fixed by the data set (split.csv, e.g. by scene): the same for every run and seed
        "split_file": split_meta.get("file"),
        "split_by": split_meta.get("by"),
    }


def _ci(
    row: pd.Series | dict[str, Any], mean: str = "mean (dB)", low: str = "low (dB)", high: str = "high (dB)"
):
    """``{mean, low, high, n, resolved}`` of a table row (the interval columns of ``hw4lib.tables``)."""
    return {
        "mean": float(row[mean]),
        "low": float(row[low]),
        "high": float(row[high]),
        "n": int(row["n"]) if "n" in row and pd.notna(row["n"]) else 0,
        "resolved": bool(row.get("resolved", tables.excludes_zero(float(row[low]), float(row[high])))),
    }


def _interval_text(mean: float, low: float, high: float) -> str:
    """``+0.12 [-0.03, +0.27]`` (the bracket left out where there is no interval)."""
    if low is None or math.isnan(low):
        return _signed(mean)
    return f"{_signed(mean)} [{_signed(low)}, {_signed(high)}]"


def _plain_interval(mean: float, low: float, high: float, spec: str = "{:.2f}") -> str:
    if low is None or math.isnan(low):
        return spec.format(mean)
    return f"{spec.format(mean)} [{spec.format(low)}, {spec.format(high)}]"


def _summary_markdown(summary: pd.DataFrame) -> str:
    """Table 1 of a study: per loss the seeds, mean PSNR and SSIM with their 95% intervals, per-type means."""
    shown = pd.DataFrame(index=summary.index)
    shown["seeds"] = summary["seeds"]
    shown["PSNR (dB) [95% CI]"] = [
        _plain_interval(m, lo, hi) for m, lo, hi in summary[["PSNR (dB)", "PSNR low", "PSNR high"]].to_numpy()
    ]
    shown["SSIM [95% CI]"] = [
        _plain_interval(m, lo, hi, "{:.4f}")
        for m, lo, hi in summary[["SSIM", "SSIM low", "SSIM high"]].to_numpy()
    ]
    for col in ("PSNR rain", "PSNR snow"):
        shown[col] = [_fmt(v) for v in summary[col]]
    shown["gain (dB)"] = [_signed(v) for v in summary["gain (dB)"]]
    shown.index = [_md_cell(i) for i in shown.index]
    shown.index.name = "loss"
    return shown.to_markdown(disable_numparse=True, colalign=["left"] + ["right"] * len(shown.columns))


def _comparison_markdown(runs: Sequence[Run]) -> str:
    """Table 1 of single runs (``tables.comparison_table``), Markdown-safe labels."""
    table = comparison_table(runs)
    table.index = pd.Index([_md_cell(i) for i in table.index], name=table.index.name)
    return to_markdown(table).rstrip()


def _frame_markdown(df: pd.DataFrame, index: bool = True) -> str:
    """A formatted table (``tables.format_table``), Markdown-safe cells."""
    shown = tables.format_table(df).map(_md_cell)
    if index:
        shown.index = [_md_cell(i) for i in df.index]
        shown.index.name = df.index.name or ""
    numeric = [
        pd.api.types.is_numeric_dtype(df[c]) or "(dB)" in str(c) or str(c).startswith("PSNR") for c in df
    ]
    align = (["left"] if index else []) + ["right" if num else "left" for num in numeric]
    return shown.to_markdown(index=index, colalign=align, disable_numparse=True)


def _seed_order_agrees(means: dict[str, float]) -> bool | None:
    """Whether our mean scores rank the seed solution's losses as it did; None with fewer than two of them."""
    ours = [loss for loss in means if loss in tables.SEED_RESULTS]
    if len(ours) < 2:
        return None
    seed_order = sorted(ours, key=tables.SEED_RESULTS.get, reverse=True)
    return sorted(ours, key=means.get, reverse=True) == seed_order


def _analysis(summary: pd.DataFrame, arms: dict[str, list[Run]]) -> dict[str, Any]:
    """Ranking by mean PSNR, gains over the input, best per type, agreement with the seed's order."""
    labels = [loss_label(loss) for loss in arms]
    scores = {label: float(summary.loc[label, "PSNR (dB)"]) for label in labels}
    base = summary.iloc[0]
    best_per_kind = []
    for kind in KINDS:
        col = f"PSNR {kind}"
        best = max(labels, key=lambda lbl, c=col: summary.loc[lbl, c])
        best_per_kind.append(
            {"kind": kind, "label": _esc(best), "psnr": summary.loc[best, col], "input": base[col]}
        )
    return {
        "ranking": [
            {"label": _esc(lbl), "psnr": scores[lbl]} for lbl in sorted(scores, key=scores.get, reverse=True)
        ],
        "input_psnr": float(base["PSNR (dB)"]),
        "gains": [{"label": _esc(lbl), "gain": float(summary.loc[lbl, "gain (dB)"])} for lbl in labels],
        "spread": max(scores.values()) - min(scores.values()),
        "best_per_kind": best_per_kind,
        "seed_order_agrees": _seed_order_agrees({loss: scores[loss_label(loss)] for loss in arms}),
    }


def _seed() -> dict[str, Any]:
    """The seed solution's scores (``tables.SEED_RESULTS``) and their gaps over its first loss."""
    seed = tables.SEED_RESULTS
    reference, *others = seed
    return {
        "seed_results": [{"label": loss_label(loss), "psnr": psnr} for loss, psnr in seed.items()],
        "seed_reference": loss_label(reference),
        "seed_gaps": [seed[loss] - seed[reference] for loss in others],
    }


def _paired(paired: pd.DataFrame | None) -> dict[str, Any]:
    """Per comparison: the per-seed intervals, the interval over seeds and over all images, and the decision:
    the interval over seeds when there are several, else the one seed's interval over images."""
    if paired is None or paired.empty:
        return {"paired": None, "resolved": []}
    comparisons = []
    for name, rows in paired.groupby("comparison", sort=False):
        per_seed = [
            {"seed": r["scope"].removeprefix("seed "), "better": int(r["better"]), **_ci(r)}
            for _, r in rows.iterrows()
            if r["scope"].startswith("seed ")
        ]
        over = rows[rows["scope"] == "over seeds"]
        pooled = rows[rows["scope"] == "all images"]
        over_ci = {**_ci(over.iloc[0]), "better": int(over.iloc[0]["better"])} if len(over) else None
        pooled_ci = _ci(pooled.iloc[0]) if len(pooled) else None
        decisive = over_ci or (per_seed[0] if per_seed else None)
        if decisive is None:
            continue
        comparisons.append({
            "name": _esc(name), "seeds": per_seed, "over": over_ci, "images": pooled_ci, "decisive": decisive,
            "resolved": decisive["resolved"], "better": decisive["mean"] > 0,
        })  # fmt: skip
    return {"paired": comparisons or None, "resolved": [c["name"] for c in comparisons if c["resolved"]]}


def _squared(spec: str) -> bool:
    """Whether the loss has a squared-error term (MSE)."""
    return any(term.rpartition("*")[2].strip() in ("mse", "l2") for term in spec.split("+"))


def _level(points: pd.DataFrame, bands: Sequence[float], arms: dict[str, list[Run]]) -> dict[str, Any]:
    """Per comparison: Pearson r of the difference with the input PSNR (Fisher z interval) and band means."""
    if points is None or points.empty:
        return {"level": None, "level_bands": tables.band_labels(bands)}
    corr, band_table = tables.level_dependence(points, bands)
    spec_of = {loss_label(loss): loss for loss in arms}
    rows = []
    for _, c in corr.iterrows():
        label = c["comparison"].split(" - ")[0]
        bands_of = band_table[band_table["comparison"] == c["comparison"]]
        rows.append({
            "name": _esc(c["comparison"]), "label": _esc(label), "squared": _squared(spec_of.get(label, "")),
            "r": float(c["r"]), "low": float(c["r low"]), "high": float(c["r high"]), "n": int(c["n"]),
            "resolved": bool(c["resolved"]),
            "bands": [
                {"band": b["band"], **_ci(b)} for _, b in bands_of.iterrows()
            ],
        })  # fmt: skip
    return {"level": rows, "level_bands": tables.band_labels(bands)}


def _failures(runs: Sequence[Run]) -> dict[str, Any]:
    summary, worst = tables.failure_cases(runs, worst=3)
    if summary.empty:
        return {"failures": None}
    rows = []
    for label, r in summary.iterrows():
        picks = worst[worst["loss"] == label]
        rows.append({
            "label": _esc(label), "regressed": int(r["regressed"]), "evaluated": int(r["evaluated"]),
            "share": float(r["share"]), "improved": None,
            "worst": [
                {"name": w["name"], "seed": int(w["seed"]), "kind": w["kind"], "input": w["input PSNR (dB)"],
                 "output": w["PSNR (dB)"], "change": w["change (dB)"]}
                for _, w in picks.iterrows()
            ],
        })  # fmt: skip
    return {"failures": rows}


def _improved(arms: dict[str, list[Run]]) -> list[dict[str, Any]]:
    """Per loss: image-seed evaluations restored above their input PSNR."""
    out = []
    for loss, arm in arms.items():
        frames = [r.per_image for r in arm if r.per_image is not None]
        if frames:
            df = pd.concat(frames)
            out.append({"label": _esc(loss_label(loss)), "better": int((df["psnr"] > df["input_psnr"]).sum()),
                        "images": len(df)})  # fmt: skip
    return out


def _curves(arms: dict[str, list[Run]]) -> list[dict[str, Any]]:
    """Per loss: best epoch and epochs of each seed's run, how many peaked at the last epoch, last PSNR."""
    out = []
    for loss, arm in arms.items():
        last = [float(r.history["val_psnr"].iloc[-1]) for r in arm if "val_psnr" in r.history.columns]
        best = [int(r.metrics["best_epoch"]) for r in arm]
        epochs = [r.epochs for r in arm]
        out.append({
            "label": _esc(loss_label(loss)), "best_epoch": best[0], "epochs": epochs[0], "runs": len(arm),
            "at_end": sum(b == e for b, e in zip(best, epochs, strict=True)),
            "last": sum(last) / len(last) if last else float("nan"),
        })  # fmt: skip
    return out


def _separation_markdown(separation: pd.DataFrame) -> str:
    sep = separation.copy()
    sep["L1 gap"] = sep["L1 gap"].map(lambda v: f"{v:.2f}")
    sep["separation"] = sep["separation"].map(lambda v: f"{v:.2f}")
    sep["LOO acc"] = sep["LOO acc"].map(lambda v: f"{v:.0%}")
    sep = sep.rename(columns={"LOO acc": "LOO accuracy"})
    sep["run"] = sep["run"].map(_md_cell)
    return sep.to_markdown(index=False, disable_numparse=True, colalign=("left", "left") + ("right",) * 3)


def _prompts(separation: pd.DataFrame | None, swaps: dict[str, pd.DataFrame | None] | None) -> dict[str, Any]:
    """Separation table, best rain/snow accuracy with its verdict, swap costs and whether they matter."""
    context: dict[str, Any] = {"separation_table": None, "prompt_accuracy": None}
    if separation is not None and not separation.empty:
        context["separation_table"] = _separation_markdown(separation)
        total = separation[separation["level"] == "all"]
        if not total.empty:
            best = total.loc[total["LOO acc"].idxmax()]
            acc = float(best["LOO acc"])
            verdict = next((name for threshold, name in PROMPT_VERDICTS if acc >= threshold), "none")
            context["prompt_accuracy"] = {"accuracy": acc, "run": _esc(best["run"]), "verdict": verdict}
    swaps = {k: v for k, v in (swaps or {}).items() if v is not None}
    context["swaps"] = [
        {
            "label": _esc(label),
            # rounded as shown, + 0.0: no "-0.00"
            "costs": [{"kind": k, "cost": round(v, 2) + 0.0} for k, v in t["swap cost (dB)"].items()],
        }
        for label, t in swaps.items()
    ]
    worst = min((float(t["swap cost (dB)"].min()) for t in swaps.values()), default=None)
    context["swap_cost_matters"] = worst is not None and worst < SWAP_COST_DB
    return context


def _type_accuracy(runs: Sequence[Run]) -> list[dict[str, Any]] | None:
    table = tables.prompt_type_accuracy(runs)
    if table is None:
        return None
    return [
        {"label": _esc(label), "correct": int(r["correct"]), "images": int(r["images"]),
         "accuracy": float(r["accuracy"]), "low": float(r["accuracy low"]), "high": float(r["accuracy high"]),
         "above": bool(r["above chance"]), "gap": float(r["L1 gap"])}
        for label, r in table.iterrows()
    ]  # fmt: skip


def _ablations(runs: Sequence[Run], arms: dict[str, list[Run]]) -> dict[str, Any]:
    """The prompt ablations per loss and type (mean change with its interval), and the decisions: removing
    the prompt costs PSNR (every zeroed-prompt interval below 0), uniform weights cost PSNR."""
    table = tables.prompt_ablations(runs)
    evaluated = [r.per_image for arm in arms.values() for r in arm if r.per_image is not None]
    has_prompts = any(tables.prompt_levels(df) for df in evaluated)
    if table is None:
        return {"ablations": None, "ablations_missing": has_prompts}
    cells = table.assign(
        cell=[
            _interval_text(m, lo, hi)
            for m, lo, hi in table[["mean (dB)", "low (dB)", "high (dB)"]].to_numpy()
        ]
    )
    display = cells.pivot_table(
        index=["loss", "ablation"], columns="kind", values="cell", aggfunc="first", sort=False
    )
    display.columns = [f"{kind} (dB) [95% CI]" for kind in display.columns]
    display = display.reset_index().set_index("loss")
    by_loss = []
    for label, rows in table.groupby("loss", sort=False):

        def pick(column: str, rows: pd.DataFrame = rows) -> list[dict[str, Any]]:
            sel = rows[rows["column"] == column]
            return [{"kind": r["kind"], **_ci(r)} for _, r in sel.iterrows()]

        onehot = rows[rows["column"].str.startswith("psnr_onehot_")]
        best = [
            {
                "kind": kind,
                "ablation": g.loc[g["mean (dB)"].idxmax(), "ablation"],
                **_ci(g.loc[g["mean (dB)"].idxmax()]),
            }
            for kind, g in onehot.groupby("kind", sort=False)
        ]
        by_loss.append({"label": _esc(label), "zero": pick("psnr_zero_prompt"),
                        "uniform": pick("psnr_uniform"), "other": pick("psnr_other_mean"),
                        "best_onehot": best})  # fmt: skip
    zero = [c for loss in by_loss for c in loss["zero"]]
    uniform = [c for loss in by_loss for c in loss["uniform"]]
    reweighted = uniform + [c for loss in by_loss for c in loss["other"]]
    return {
        "ablations": {
            "table": _frame_markdown(display),
            "by_loss": by_loss,
            "prompt_used": bool(zero) and all(c["resolved"] and c["high"] < 0 for c in zero),
            "prompt_unused": bool(zero) and not any(c["resolved"] for c in zero),
            "uniform_costs": bool(uniform) and all(c["resolved"] and c["high"] < 0 for c in uniform),
            # other weights (uniform, the other type's) change nothing: the weighting carries no signal
            "weights_inert": bool(reweighted)
            and all(max(abs(c["low"]), abs(c["high"])) < INERT_DB for c in reweighted),
            "inert_db": INERT_DB,
        },
        "ablations_missing": False,
    }


def _compute(runs: Sequence[Run]) -> dict[str, Any] | None:
    """The compute series: its table and the change over its last step (see ``tables.compute_gain``)."""
    table = tables.compute_table(runs)
    if table is None:
        return None
    shown = table.copy()
    shown["PSNR (dB) [95% CI]"] = [
        _plain_interval(m, lo, hi) for m, lo, hi in table[["PSNR (dB)", "PSNR low", "PSNR high"]].to_numpy()
    ]
    shown = shown[["loss", "steps", "seeds", "images seen", "wall time (s)", "PSNR (dB) [95% CI]"]]
    gain = tables.compute_gain(runs)
    gain = {**gain, "loss": _esc(gain["loss"])} if gain else gain
    return {
        "table": _frame_markdown(shown, index=False),
        "gain": gain,
        "max_images": float(table["images seen"].max()),
        "max_steps": int(table["steps"].max()),
        "points": len(table),
    }


def _settings(runs: Sequence[Run], dataset: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Rows of the hyperparameter table: the seed solution's value, ours, and whether they differ (the
    template adds the reason for each deviation)."""
    table = tables.settings_table(runs, tables.split_description(dataset))
    return [
        {
            "setting": setting,
            "seed": _md_cell(r["seed solution"]),
            "ours": _md_cell(r["ours"]),
            "differs": bool(r["differs"]),
        }
        for setting, r in table.iterrows()
    ]


def _accounting(runs: Sequence[Run]) -> dict[str, Any]:
    table = tables.compute_accounting(runs)
    wall = pd.to_numeric(table["wall time (s)"], errors="coerce")
    devices = sorted({str(d).split(" ")[0] for d in table["device"].dropna()})
    return {
        "accounting_table": _frame_markdown(table),
        "total_hours": float(wall.sum()) / 3600 if wall.notna().any() else None,
        "devices": devices,
        "steps": sorted({int(s) for s in pd.to_numeric(table["steps"], errors="coerce").dropna()}),
    }


def _benchmarks(benchmarks: pd.DataFrame | None, transfer: pd.DataFrame | None) -> dict[str, Any]:
    """Rain100L budget runs with their TTA change, and the synthetic-to-real transfer with its best gain."""
    context: dict[str, Any] = dict.fromkeys(("benchmark_table", "tta", "transfer_table", "transfer_best"))
    if benchmarks is not None and not benchmarks.empty:
        context["benchmark_table"] = benchmark_markdown(benchmarks)
        context["tta"] = _tta(benchmarks, "val_psnr", "val_psnr_tta", "val_psnr_tta_hflip")
    if transfer is not None and not transfer.empty:
        best = transfer.loc[transfer["gain_db"].astype(float).idxmax()]
        gain = float(best["gain_db"])
        context["transfer_table"] = transfer_markdown(transfer)
        lasting = gain >= TRANSFER_GAIN_DB
        context["transfer_best"] = {"gain": gain, "preset": best["preset"], "lasting": lasting}
    return context


def _tta(table: pd.DataFrame, plain: str, tta: str, mirror: str) -> dict[str, Any] | None:
    """Mean PSNR change (dB) of the 8-way self-ensemble and of the mirror alone, over rows that have both."""
    if tta not in table.columns or mirror not in table.columns:
        return None
    rows = table.dropna(subset=[plain, tta, mirror])
    if rows.empty:
        return None
    eight = float((rows[tta] - rows[plain]).mean())
    return {"eight": eight, "mirror": float((rows[mirror] - rows[plain]).mean()), "hurt": eight < 0}


def report_context(
    runs: Sequence[Run],
    figures: dict[str, Path | None],
    out_dir: Path,
    paired: pd.DataFrame | None = None,
    separation: pd.DataFrame | None = None,
    swaps: dict[str, pd.DataFrame | None] | None = None,
    benchmarks: pd.DataFrame | None = None,
    data_name: str | None = None,
    transfer: pd.DataFrame | None = None,
    dataset: dict[str, Any] | None = None,
    bands: Sequence[float] = tables.DEFAULT_BANDS,
    reference: str = "l1",
    title: str | None = None,
) -> dict[str, Any]:
    """What ``report.md.j2`` fills in: numbers, formatted tables, lists and the decisions taken from them.

    ``paired`` (``tables.paired_vs_reference``), ``separation`` (``tables.prompt_separation``) and ``swaps``
    (``tables.prompt_swap_table`` per label) are computed from ``runs`` when not given; ``dataset`` is the
    snapshot's ``dataset.json``. Figures are links relative to ``out_dir`` (``None`` when missing).
    """
    arms = study_arms(runs)
    compared = [r for arm in arms.values() for r in arm]
    shown = shown_runs(runs)
    evaluated = any(r.per_image is not None for r in compared)
    summary = tables.loss_summary(runs)
    multi_seed = max(len(arm) for arm in arms.values()) >= 2
    if paired is None and evaluated:
        paired = tables.paired_vs_reference(runs, reference)
    if separation is None and evaluated:
        separation = tables.prompt_separation(shown)
    if swaps is None:
        swaps = {
            label: tables.prompt_swap_table(r) for label, r in zip(run_labels(shown), shown, strict=True)
        }
    seeds = sorted({tables.run_seed(r) for r in compared})
    cfg = shown[0].config
    return {
        "title": title or TITLE,
        "reference": _esc(loss_label(reference if reference in arms else next(iter(arms)))),
        "run_names": [r.name for r in runs],
        "many_runs": len(runs) > MANY_RUNS,
        "labels": [_esc(label) for label in run_labels(shown)],
        "losses": [{"spec": loss, "label": _esc(loss_label(loss))} for loss in arms],
        "multi_seed": multi_seed,
        "seeds": seeds,
        "n_seeds": min(len(arm) for arm in arms.values()),
        "data_name": data_name or (str(cfg["data_dir"]) if "data_dir" in cfg else None),
        "dataset": _dataset(dataset),
        "is_study": bool(dataset) and str(dataset.get("generator", "")).startswith("hw4lib.study"),
        "figures": {key: _link(figures[key], out_dir) if figures.get(key) else None for key in FIGURE_KEYS},
        **_method(shown[0]),
        "settings": _settings(runs, dataset),
        **_accounting(runs),
        "comparison_table": _summary_markdown(summary) if multi_seed else _comparison_markdown(shown),
        **_analysis(summary, arms),
        **_paired(paired),
        **_level(tables.level_differences(runs, reference) if evaluated else None, bands, arms),
        **_failures(runs),
        **_seed(),
        "curves": _curves(arms),
        "improved": _improved(arms),
        **_prompts(separation, swaps),
        "type_accuracy": _type_accuracy(runs),
        **_ablations(runs, arms),
        "compute": _compute(runs),
        "context_table": _frame_markdown(tables.context_table(runs, data_name)),
        **_benchmarks(benchmarks, transfer),
    }


def render_markdown(context: dict[str, Any]) -> str:
    """``report.md.j2`` rendered with ``context`` (see :func:`report_context`)."""
    return template_environment().get_template(TEMPLATE).render(context)


def write_report(
    runs: Sequence[Run],
    figures: dict[str, Path | None],
    out_dir: str | os.PathLike[str] | None = None,
    paired: pd.DataFrame | None = None,
    separation: pd.DataFrame | None = None,
    swaps: dict[str, pd.DataFrame | None] | None = None,
    benchmarks: pd.DataFrame | None = None,
    data_name: str | None = None,
    transfer: pd.DataFrame | None = None,
    dataset: dict[str, Any] | None = None,
    bands: Sequence[float] = tables.DEFAULT_BANDS,
    title: str | None = None,
) -> Path:
    """Write ``<out_dir>/report.md`` (default ``report/demo``), every number and figure from ``runs``.

    ``figures`` maps keys (``FIGURE_KEYS``) to saved PNGs; missing ones leave out their paragraph. The other
    arguments as :func:`report_context`.
    """
    out = paths.output(out_dir if out_dir is not None else DEFAULT_REPORT)
    out.mkdir(parents=True, exist_ok=True)
    context = report_context(
        runs, figures, out, paired=paired, separation=separation, swaps=swaps, benchmarks=benchmarks,
        data_name=data_name, transfer=transfer, dataset=dataset, bands=bands, title=title,
    )  # fmt: skip
    return write_text_atomic(render_markdown(context), out / "report.md")


# ----------------------------------------------------------------------------------------------- HTML, PDF

_HTML_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1000px;
       margin: 2em auto; padding: 0 1em; line-height: 1.5; color: #222; }
h1 { font-size: 1.7em; border-bottom: 2px solid #ddd; padding-bottom: 0.2em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: 0.15em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.86em; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.65em; white-space: nowrap; }
th { background: #f3f5f7; font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfc; }
td { font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: 0.5em auto; }
p em:only-child { color: #555; }
code, pre { background: #f6f8fa; border-radius: 3px; }
code { padding: 0 0.2em; }
pre { padding: 0.6em; overflow-x: auto; }
@media print { body { max-width: none; } table { display: table; } img { page-break-inside: avoid; } }
"""

_IMG_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]+)(")')


def _embed_images(body: str, folder: Path) -> str:
    """``<img src="figures/x.png">`` -> a base64 ``data:`` URI of the file (relative to ``folder``); sources
    that are not local files are left as they are."""

    def embed(match: re.Match[str]) -> str:
        src = html.unescape(match.group(2))
        if src.startswith(("data:", "http://", "https://")):
            return match.group(0)
        path = (folder / src).resolve()
        if not path.is_file():
            return match.group(0)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"{match.group(1)}data:{mime};base64,{data}{match.group(3)}"

    return _IMG_SRC.sub(embed, body)


def render_html(md_path: str | os.PathLike[str], out_path: str | os.PathLike[str] | None = None) -> Path:
    """Render ``report.md`` to one self-contained ``report.html`` beside it (mistune, which nbconvert uses):
    the figures embedded as base64 data URIs, the tables styled; it opens anywhere without its folder."""
    import mistune

    md_path = paths.output(md_path)
    text = md_path.read_text(encoding="utf-8")
    markdown = mistune.create_markdown(plugins=["table"])
    body = _embed_images(markdown(text), md_path.parent)
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), "Report")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
    target = Path(out_path) if out_path is not None else md_path.with_suffix(".html")
    return write_text_atomic(page, target)


_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "msedge")
_OFFICE = ("libreoffice", "soffice")


def pdf_command(which: Callable[[str], str | None] | None = None) -> tuple[str, str] | None:
    """The PDF printer this machine has (looked up with ``which``, default ``shutil.which``): ``("browser",
    path)`` for a headless Chromium/Chrome, ``("office", path)`` for LibreOffice, or ``None``."""
    which = which or shutil.which
    for kind, names in (("browser", _BROWSERS), ("office", _OFFICE)):
        for name in names:
            found = which(name)
            if found:
                return kind, found
    return None


def render_pdf(html_path: str | os.PathLike[str], timeout: float = 180) -> Path | None:
    """Print ``report.html`` to ``report.pdf`` beside it with a headless Chromium/Chrome (``--print-to-pdf``)
    or LibreOffice (``--convert-to pdf``), whichever :func:`pdf_command` finds on PATH.

    Returns the PDF, or ``None`` (with a warning saying why) when there is no such tool or it failed: a
    missing PDF never fails the report.
    """
    html_path = paths.output(html_path)
    target = html_path.with_suffix(".pdf")
    found = pdf_command()
    if found is None:
        warnings.warn("no PDF written: no headless Chromium/Chrome or LibreOffice on PATH", stacklevel=2)
        return None
    kind, exe = found
    with tempfile.TemporaryDirectory(prefix="report-pdf-") as tmp:
        made = Path(tmp) / target.name
        if kind == "browser":
            cmd = [exe, "--headless", "--disable-gpu", "--no-sandbox", "--no-pdf-header-footer",
                   f"--print-to-pdf={made}", html_path.resolve().as_uri()]  # fmt: skip
        else:
            cmd = [exe, "--headless", "--convert-to", "pdf", "--outdir", tmp, str(html_path)]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError) as err:
            warnings.warn(f"no PDF written: {Path(exe).name} failed ({err})", stacklevel=2)
            return None
        if not made.is_file() or made.stat().st_size == 0:
            warnings.warn(f"no PDF written: {Path(exe).name} produced no file", stacklevel=2)
            return None
        with atomic_write(target, "wb") as f:
            f.write(made.read_bytes())
    return target
