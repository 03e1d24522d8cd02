"""The report's numbers: tables and statistics computed from runs, as data frames (no words, no figures).

- :func:`comparison_table`, :func:`hyperparameter_table`: the loss-function table, the settings of each run;
- :func:`paired_differences`: per-image PSNR differences between runs scored on the same images;
- :func:`prompt_separation`, :func:`prompt_swap_table`: how the prompt weights differ between rain and snow,
  and what swapping them costs (from the per-image evaluation of ``hw4lib.probe``);
- :func:`load_benchmarks`, :func:`load_transfer`: the real-data benchmark results;
- :func:`to_markdown`, :func:`to_latex`, :func:`save_table`: formatted tables for the report.
"""

from __future__ import annotations

import glob
import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hw4lib import paths
from hw4lib.data import KINDS
from hw4lib.io import atomic_write, write_text_atomic
from hw4lib.runs import Run

__all__ = [
    "ReportError",
    "SEED_RESULTS",
    "TABLE_COLUMNS",
    "run_labels",
    "comparison_table",
    "hyperparameter_table",
    "paired_differences",
    "prompt_levels",
    "prompt_separation",
    "prompt_swap_table",
    "centroid_loo_accuracy",
    "pca_2d",
    "load_benchmarks",
    "load_transfer",
    "benchmark_markdown",
    "transfer_markdown",
    "format_table",
    "to_markdown",
    "to_latex",
    "save_table",
]

# the seed solution of the course assignment: its loss study on the hidden test set (full PromptIR, 25 epochs
# of whole images); quoted for context, never compared as if it were ours
SEED_RESULTS = {"l1": 28.88, "l1_ssim": 29.34, "mse": 29.74}


class ReportError(ValueError):
    """Runs the report cannot use together; the message says what is missing and how to produce it."""


def _history_at_best(run: Run) -> pd.Series | None:
    if "epoch" not in run.history.columns:
        return None
    rows = run.history[run.history["epoch"] == run.metrics["best_epoch"]]
    return rows.iloc[-1] if len(rows) else None


def _metric(run: Run, key: str) -> float:
    """``metrics[key]``, else history column ``key`` (minus ``best_``) at the best epoch, else NaN."""
    if key in run.metrics and run.metrics[key] is not None:
        return float(run.metrics[key])
    best = _history_at_best(run)
    column = key.removeprefix("best_")
    if best is not None and column in best.index and pd.notna(best[column]):
        return float(best[column])
    return float("nan")


def run_labels(runs: Sequence[Run]) -> list[str]:
    labels = [r.label for r in runs]
    return labels if len(set(labels)) == len(labels) else [r.name for r in runs]


TABLE_COLUMNS = [
    "PSNR (dB)",
    "PSNR rain",
    "PSNR snow",
    "SSIM",
    "SSIM rain",
    "SSIM snow",
    "gain (dB)",
    "best epoch",
    "epochs",
    "wall time (s)",
    "params",
]


def comparison_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Best validation PSNR/SSIM per run (overall, rain, snow), gain over input, epochs, wall time, params.

    The first row, ``input (no restoration)``, is the identity baseline on the same validation images. One row
    per run, labelled by its loss (or by run name when two runs share a loss).
    """
    if not runs:
        raise ReportError("comparison_table needs at least one run")
    inputs = np.array([float(r.metrics["input_psnr"]) for r in runs])
    if np.ptp(inputs) > 1e-3:
        warnings.warn(
            "the runs were validated on different images (input PSNR "
            f"{', '.join(f'{v:.3f}' for v in inputs)}); their scores are not comparable",
            stacklevel=2,
        )
    first = runs[0]
    base = {
        "PSNR (dB)": float(first.metrics["input_psnr"]),
        "PSNR rain": _metric(first, "input_psnr_rain"),
        "PSNR snow": _metric(first, "input_psnr_snow"),
        "SSIM": _metric(first, "input_ssim"),
        "SSIM rain": _metric(first, "input_ssim_rain"),
        "SSIM snow": _metric(first, "input_ssim_snow"),
        "gain (dB)": 0.0,
    }
    if first.per_image is not None:  # fill what metrics.json does not hold from the per-image evaluation
        groups = first.per_image.groupby("kind")
        for kind in KINDS:
            if math.isnan(base[f"PSNR {kind}"]) and kind in groups.groups:
                base[f"PSNR {kind}"] = float(groups.get_group(kind)["input_psnr"].mean())
            if math.isnan(base[f"SSIM {kind}"]) and kind in groups.groups:
                base[f"SSIM {kind}"] = float(groups.get_group(kind)["input_ssim"].mean())
        if math.isnan(base["SSIM"]):
            base["SSIM"] = float(first.per_image["input_ssim"].mean())
    rows = {"input (no restoration)": base}
    for label, run in zip(run_labels(runs), runs, strict=True):
        rows[label] = {
            "PSNR (dB)": float(run.metrics["best_val_psnr"]),
            "PSNR rain": float(run.metrics["best_val_psnr_rain"]),
            "PSNR snow": float(run.metrics["best_val_psnr_snow"]),
            "SSIM": float(run.metrics["best_val_ssim"]),
            "SSIM rain": _metric(run, "best_val_ssim_rain"),
            "SSIM snow": _metric(run, "best_val_ssim_snow"),
            "gain (dB)": float(run.metrics["best_val_psnr"]) - float(run.metrics["input_psnr"]),
            "best epoch": int(run.metrics["best_epoch"]),
            "epochs": run.epochs,
            "wall time (s)": float(run.metrics["wall_seconds"]),
            "params": int(run.metrics["params"]),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table = table.reindex(columns=TABLE_COLUMNS)
    table.index.name = "loss"
    for col in ("best epoch", "epochs", "params"):
        table[col] = table[col].astype("Int64")
    return table


_CONFIG_ROWS = [
    ("preset", "model preset"),
    ("loss", "loss"),
    ("epochs", "epochs"),
    ("batch_size", "batch size"),
    ("patch_size", "patch size (px, none = whole image)"),
    ("patches_per_image", "random crops per image per epoch"),
    ("augment", "random flips / rotations"),
    ("lr", "learning rate (AdamW)"),
    ("weight_decay", "weight decay"),
    ("warmup_epochs", "warm-up epochs (linear)"),
    ("min_lr", "final learning rate (cosine)"),
    ("grad_clip", "gradient clipping (norm)"),
    ("ema", "EMA decay of the weights (0: off)"),
    ("identity_init", "identity start (last conv zeroed)"),
    ("precision", "precision (training)"),
    ("val_fraction", "validation fraction"),
    ("seed", "seed"),
    ("max_train_steps", "max steps per epoch"),
]


def hyperparameter_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Training settings from each run's ``config.json``, one column per run (rows no run has dropped)."""
    data: dict[str, dict[str, Any]] = {}
    for label, run in zip(run_labels(runs), runs, strict=True):
        # device and precision as the run used them (config.amp is ignored on CPU, which trains in fp32)
        cfg = {**run.config, "device": run.metrics.get("device"), "precision": run.metrics.get("precision")}
        data[label] = {title: cfg.get(key) for key, title in [*_CONFIG_ROWS, ("device", "device")]}
    table = pd.DataFrame(data)
    table = table.dropna(how="all")
    table.index.name = "setting"
    return table.astype(object).where(table.notna(), "-")


def _format_cell(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    if column.startswith("SSIM"):
        return f"{value:.4f}"
    if column.startswith(("PSNR", "gain")):
        return f"{value:+.2f}" if column.startswith("gain") else f"{value:.2f}"
    if column == "wall time (s)":
        return f"{value:.0f}"
    if column == "params":
        return f"{int(value):,}"
    return str(value)


def format_table(df: pd.DataFrame) -> pd.DataFrame:
    """The same table with every cell a display string (PSNR 2 decimals, SSIM 4, params with separators)."""
    shown = df.copy().astype(object)
    for col in df.columns:
        shown[col] = [_format_cell(str(col), v) for v in df[col]]
    return shown


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "_": r"\_",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(df: pd.DataFrame) -> str:
    """A booktabs ``tabular`` (formatted cells), written by hand so no LaTeX templating package is needed."""
    shown = format_table(df)
    cols = [str(df.index.name or "")] + [str(c) for c in shown.columns]
    lines = [
        r"\begin{tabular}{l" + "r" * len(shown.columns) + "}",
        r"\toprule",
        " & ".join(_latex_escape(c) for c in cols) + r" \\",
        r"\midrule",
    ]
    for label, row in shown.iterrows():
        lines.append(" & ".join(_latex_escape(str(v)) for v in [label, *row.tolist()]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of the formatted cells."""
    shown = format_table(df)
    shown.index.name = df.index.name or ""
    align = ["left"] + ["right"] * len(shown.columns)
    return shown.to_markdown(colalign=align, disable_numparse=True) + "\n"


def save_table(df: pd.DataFrame, stem: str, out_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Write ``<out_dir>/<stem>.md``, ``.tex`` (formatted), ``.csv``; default report/tables."""
    folder = paths.resolve(out_dir) if out_dir is not None else paths.report_dir("tables")
    folder.mkdir(parents=True, exist_ok=True)
    written = {
        "md": write_text_atomic(to_markdown(df), folder / f"{stem}.md"),
        "tex": write_text_atomic(to_latex(df), folder / f"{stem}.tex"),
    }
    with atomic_write(folder / f"{stem}.csv", "w") as f:
        df.to_csv(f, float_format="%.6g")
    written["csv"] = folder / f"{stem}.csv"
    return written


def paired_differences(runs: Sequence[Run], reference: int = 0) -> pd.DataFrame:
    """Per-image PSNR difference of each run against ``runs[reference]``: mean, standard error, images better.

    The same validation images are scored by every model, so the paired difference separates a real gap from
    image-to-image spread (the standard error is std / sqrt(n)). Needs the per-image evaluation.
    """
    ref = runs[reference]
    if ref.per_image is None:
        raise ReportError(
            f"{ref.name} has no eval/per_image.csv; build the report with its checkpoint at hand"
        )
    rows = {}
    labels = run_labels(runs)
    for label, run in zip(labels, runs, strict=True):
        if run is ref or run.per_image is None:
            continue
        merged = run.per_image.merge(ref.per_image, on="name", suffixes=("", "_ref"))
        diff = merged["psnr"] - merged["psnr_ref"]
        n = len(diff)
        rows[f"{label} - {labels[reference]}"] = {
            "mean (dB)": float(diff.mean()),
            "s.e. (dB)": float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
            "images better": int((diff > 0).sum()),
            "images": n,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


# -------------------------------------------------------------------------------------------------- prompts


def prompt_levels(per_image: pd.DataFrame) -> dict[str, list[str]]:
    levels: dict[str, list[str]] = {}
    for col in per_image.columns:
        head, _, idx = col.rpartition("_")
        if head.startswith("prompt") and idx.isdigit():
            levels.setdefault(head, []).append(col)
    return {k: sorted(v, key=lambda c: int(c.rpartition("_")[2])) for k, v in sorted(levels.items())}


def centroid_loo_accuracy(x: np.ndarray, kinds: np.ndarray) -> float:
    """Leave-one-out accuracy of a nearest-class-mean classifier (rain vs snow) on the rows of ``x``."""
    correct = 0
    for i in range(len(x)):
        mask = np.ones(len(x), bool)
        mask[i] = False
        dists = {}
        for kind in KINDS:
            sel = mask & (kinds == kind)
            if not sel.any():
                return float("nan")
            dists[kind] = float(np.sum((x[i] - x[sel].mean(0)) ** 2))
        correct += min(dists, key=dists.get) == kinds[i]
    return correct / len(x)


def prompt_separation(runs: Sequence[Run]) -> pd.DataFrame:
    """How differently each prompt level weights its components for rain and for snow.

    Per run and level: ``L1 gap`` = sum over components of |mean rain weight - mean snow weight| (0 = the
    level treats both types alike, 2 = disjoint components); ``separation`` = squared distance of class means
    divided by the mean within-class variance (a Fisher ratio); ``LOO acc`` = leave-one-out accuracy of a
    nearest-class-mean classifier on that level's weights (0.5 = chance).
    """
    rows = []
    for label, run in zip(run_labels(runs), runs, strict=True):
        if run.per_image is None:
            continue
        df = run.per_image
        kinds = df["kind"].to_numpy()
        levels = prompt_levels(df)
        for level, cols in [*levels.items(), ("all", [c for cs in levels.values() for c in cs])]:
            if not cols:
                continue
            x = df[cols].to_numpy(float)
            means = {k: x[kinds == k].mean(0) for k in KINDS if (kinds == k).any()}
            if len(means) < 2:
                continue
            within = np.mean([x[kinds == k].var(0).sum() for k in KINDS])
            gap = float(np.sum((means["rain"] - means["snow"]) ** 2))
            rows.append(
                {
                    "run": label,
                    "level": level,
                    "L1 gap": float(np.abs(means["rain"] - means["snow"]).sum()),
                    "separation": gap / within if within > 0 else (0.0 if gap == 0 else float("inf")),
                    "LOO acc": centroid_loo_accuracy(x, kinds),
                }
            )
    return pd.DataFrame(rows)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` on their first two principal components (numpy SVD); returns (coords, explained)."""
    centered = x - x.mean(0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    # fix each component's sign (largest |loading| positive) so the picture does not flip between machines
    signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    vt = vt * signs[:, None]
    var = s**2
    explained = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    coords = centered @ vt[:2].T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
        explained = np.pad(explained, (0, 2 - len(explained)))
    return coords, explained[:2]


# ----------------------------------------------------------------------------------------------- benchmarks

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


def _cell(value: Any, spec: str = "{:.2f}") -> str:
    """A table cell: ``spec`` applied to ``value``, or "-" when it is missing (None or NaN)."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return "-" if missing else spec.format(value)


def transfer_markdown(table: pd.DataFrame) -> str:
    rows = []
    for _, r in table.iterrows():
        base = r.get("input_psnr_on_tta_subset")  # TTA gains are over the input of the TTA subset
        gain = {
            key: None if r.get(key) is None or base is None else r[key] - base
            for key in ("real_psnr_tta", "real_psnr_tta_hflip")
        }
        rows.append({
            "preset": r["preset"], "budget (s)": _cell(r["budget_s"], "{:.0f}"),
            "steps": _cell(r["steps"], "{:.0f}"),
            "real pairs": _cell(r["n_real"], "{:.0f}"), "input PSNR": _cell(r["input_psnr"]),
            "PSNR": _cell(r["real_psnr"]), "gain (dB)": _cell(r["gain_db"], "{:+.2f}"),
            "TTA (8) gain": _cell(gain["real_psnr_tta"], "{:+.2f}"),
            "mirror TTA gain": _cell(gain["real_psnr_tta_hflip"], "{:+.2f}"),
            "TTA pairs": _cell(r["tta_images"], "{:.0f}"), "device": r["device"] or "-",
        })  # fmt: skip
    shown = pd.DataFrame(rows, index=table.index)
    shown.index.name = "result"
    return shown.to_markdown(disable_numparse=True, colalign=["left"] + ["right"] * len(shown.columns))


def benchmark_markdown(table: pd.DataFrame) -> str:
    names = {
        "preset": "preset", "budget_s": "budget (s)", "input_psnr": "input PSNR", "val_psnr": "PSNR",
        "val_psnr_tta": "PSNR + TTA", "val_psnr_tta_hflip": "PSNR + mirror",
        "val_ssim": "SSIM", "steps_per_s": "steps/s", "peak_mem_mb": "peak MiB",
        "n_val": "test pairs", "device": "device",
    }  # fmt: skip
    fmt = {"budget_s": "{:.0f}", "val_ssim": "{:.4f}", "steps_per_s": "{:.2f}", "peak_mem_mb": "{:.0f}"}
    shown = pd.DataFrame(index=table.index)
    for key, title in names.items():
        if key in table.columns:
            spec = fmt.get(key, "{:.2f}" if "psnr" in key else "{}")
            shown[title] = [_cell(v, spec) for v in table[key]]
    shown.index.name = "result"
    return shown.to_markdown(disable_numparse=True, colalign=["left"] + ["right"] * len(shown.columns))


def prompt_swap_table(run: Run) -> pd.DataFrame | None:
    """Per-type mean PSNR: own prompt weights, own type's mean weights, the *other* type's mean weights.

    ``swap cost`` = other - own-type-mean: how much a rain image loses when the model is handed the prompt it
    uses for snow (and the reverse). A large cost means the prompts carry the degradation type and the decoder
    relies on them; near zero means the prompts are not what tells the two apart. ``None`` when the run's
    evaluation has no swap columns.
    """
    df = run.per_image
    if df is None or "psnr_other_mean" not in df.columns or df["psnr_other_mean"].isna().all():
        return None
    table = df.groupby("kind")[["psnr", "psnr_own_mean", "psnr_other_mean"]].mean()
    table.columns = ["own prompt", "own type mean", "other type mean"]
    table["swap cost (dB)"] = table["other type mean"] - table["own type mean"]
    table.index.name = "images"
    return table


