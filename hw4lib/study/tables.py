"""The report's numbers: tables and statistics computed from runs, as data frames (no words, no figures).

- :func:`comparison_table`, :func:`hyperparameter_table`: the loss-function table, the settings of each run;
- :func:`paired_differences`: per-image PSNR differences between runs scored on the same images;
- :func:`prompt_separation`, :func:`prompt_swap_table`: how the prompt weights differ between rain and snow,
  and what swapping them costs (from the per-image evaluation of ``hw4lib.probe``);
- :func:`load_benchmarks`, :func:`load_transfer`: the real-data benchmark results;
- :func:`to_markdown`, :func:`to_latex`, :func:`save_table`: formatted tables for the report.

A study (several seeds per loss, a compute series of shorter runs) is read by the functions of the study
section: :func:`study_arms` and :func:`compute_series` group the runs; :func:`loss_summary` (means with 95%
intervals over seeds), :func:`paired_vs_reference` (per-image paired differences against L1, per seed and
pooled), :func:`level_differences` / :func:`level_dependence` (the difference against the image's input PSNR),
:func:`failure_cases`, :func:`prompt_ablations`, :func:`prompt_type_accuracy`, :func:`compute_table` /
:func:`compute_gain`, :func:`context_table`, :func:`settings_table` and :func:`compute_accounting` compute the
numbers; :func:`mean_interval`, :func:`pearson_interval` and :func:`wilson_interval` the intervals. Every
interval is a two-sided 95% interval; "resolved" means it excludes 0 (or chance).
"""

from __future__ import annotations

import dataclasses
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
from hw4lib.losses import loss_label
from hw4lib.paths import atomic_write, write_text_atomic
from hw4lib.runs import Run

__all__ = [
    "ReportError",
    "SEED_RESULTS",
    "SEED_SETTING",
    "PUBLIC_BEST",
    "PROMPTIR_PAPER",
    "LEVEL",
    "DEFAULT_BANDS",
    "ABLATIONS",
    "t_quantile",
    "normal_quantile",
    "mean_interval",
    "excludes_zero",
    "pearson_interval",
    "wilson_interval",
    "band_labels",
    "run_seed",
    "run_steps",
    "run_images_seen",
    "study_arms",
    "compute_series",
    "loss_summary",
    "paired_vs_reference",
    "level_differences",
    "level_dependence",
    "failure_cases",
    "prompt_ablations",
    "prompt_type_accuracy",
    "compute_table",
    "compute_gain",
    "context_table",
    "settings_table",
    "compute_accounting",
    "TABLE_COLUMNS",
    "run_labels",
    "comparison_table",
    "hyperparameter_table",
    "paired_differences",
    "prompt_levels",
    "prompt_separation",
    "prompt_swap_table",
    "centroid_loo_accuracy",
    "centroid_loo_correct",
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
# where those numbers were measured (the context table's columns)
SEED_SETTING = {
    "scored on": "course hidden test set",
    "model": "full PromptIR (35.4 M)",
    "hardware": "GPU",
    "source": "the assignment's seed solution (its report)",
}
# the best public solution of the assignment (../shared/reference/promptir_architecture.md, "Published
# results"): stock PromptIR, L1 + 0.1 x Sobel edge loss, 128 px crops, 150 epochs, 8x self-ensemble
PUBLIC_BEST = {
    "psnr": 32.95,
    "scored on": "course public leaderboard",
    "model": "full PromptIR (35.4 M)",
    "hardware": "GPU",
    "source": "best public solution of the assignment",
}
# PromptIR's published Rain100L test PSNR (Potlapalli et al., NeurIPS 2023, as tabulated in later papers; see
# ../shared/reference/promptir_architecture.md): trained on deraining alone, and all-in-one on three tasks
PROMPTIR_PAPER = {
    "single-task": {"psnr": 37.04, "scored on": "Rain100L test set", "model": "full PromptIR (35.4 M)",
                    "hardware": "GPU", "source": "PromptIR paper, single-task deraining"},
    "all-in-one": {"psnr": 36.37, "scored on": "Rain100L test set", "model": "full PromptIR (35.4 M)",
                   "hardware": "GPU", "source": "PromptIR paper, all-in-one (rain, noise, haze)"},
}  # fmt: skip
LEVEL = 0.95  # every interval of the report: two-sided 95%
DEFAULT_BANDS = (22.0, 26.0)  # input-PSNR band edges (dB) of the by-degradation-level table


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


_THOUSANDS = ("params", "images seen", "steps", "training steps")


def _format_cell(column: str, value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if column.startswith("SSIM"):
        return f"{value:.4f}"
    if column.startswith(("gain", "change", "mean (dB)", "low (dB)", "high (dB)")):
        return f"{value:+.2f}"
    if column.startswith("PSNR") or "(dB)" in column:
        return f"{value:.2f}"
    if column in ("r", "r low", "r high"):
        return f"{value:+.2f}"
    if column.startswith(("accuracy", "share")) or column.endswith("(share)"):
        return f"{value:.0%}"
    if column == "wall time (s)":
        return f"{value:.0f}"
    if column in _THOUSANDS:
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
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


def save_table(df: pd.DataFrame, stem: str, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``<out_dir>/<stem>.md``, ``.tex`` (formatted), ``.csv`` (a relative ``out_dir`` is written under
    the output root, e.g. ``report/demo/tables``)."""
    folder = paths.output(out_dir)
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


def centroid_loo_correct(x: np.ndarray, kinds: np.ndarray) -> int | None:
    """How many rows of ``x`` a leave-one-out nearest-class-mean classifier (rain vs snow) gets right;
    ``None`` when a type has too few rows to leave one out."""
    correct = 0
    for i in range(len(x)):
        mask = np.ones(len(x), bool)
        mask[i] = False
        dists = {}
        for kind in KINDS:
            sel = mask & (kinds == kind)
            if not sel.any():
                return None
            dists[kind] = float(np.sum((x[i] - x[sel].mean(0)) ** 2))
        correct += min(dists, key=dists.get) == kinds[i]
    return int(correct)


def centroid_loo_accuracy(x: np.ndarray, kinds: np.ndarray) -> float:
    """Leave-one-out accuracy of a nearest-class-mean classifier (rain vs snow) on the rows of ``x``."""
    correct = centroid_loo_correct(x, kinds)
    return float("nan") if correct is None else correct / len(x)


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


# ---------------------------------------------------------------------------------------------- statistics


def t_quantile(n: int, level: float = LEVEL) -> float:
    """The two-sided Student t quantile for the mean of ``n`` values (``n - 1`` degrees of freedom), from
    ``scipy.stats``: 12.71 for n = 2, 4.30 for n = 3, about 1.96 for large n. NaN for fewer than 2 values."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, n - 1)) if n >= 2 else float("nan")


def normal_quantile(level: float = LEVEL) -> float:
    """The two-sided standard normal quantile (1.96 for 95%)."""
    from scipy import stats

    return float(stats.norm.ppf(0.5 + level / 2))


def mean_interval(values: Any, level: float = LEVEL) -> dict[str, float]:
    """Mean of ``values`` (NaNs dropped) with its Student t interval: mean ± t(n-1) · sd / sqrt(n).

    Returns ``mean``, ``low``, ``high``, ``n``; the bounds are NaN for fewer than two values (one run or one
    image is a demonstration: it has no interval).
    """
    x = np.asarray(values, float).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "n": n}
    half = t_quantile(n, level) * float(x.std(ddof=1)) / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def excludes_zero(low: float, high: float, null: float = 0.0) -> bool:
    """True when the interval [low, high] lies entirely on one side of ``null`` (a resolved difference)."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return False
    return bool(low > null or high < null)


def pearson_interval(x: Any, y: Any, level: float = LEVEL) -> dict[str, float]:
    """Pearson's r between ``x`` and ``y`` with the Fisher z interval: tanh(atanh(r) ± z / sqrt(n - 3)).

    Returns ``r``, ``low``, ``high``, ``n``; the bounds are NaN for fewer than four pairs or a constant side.
    """
    a, b = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    nan = float("nan")
    if n < 2 or a.std() == 0 or b.std() == 0:
        return {"r": nan, "low": nan, "high": nan, "n": n}
    r = float(np.corrcoef(a, b)[0, 1])
    if n < 4:
        return {"r": r, "low": nan, "high": nan, "n": n}
    z = math.atanh(min(max(r, -0.999999), 0.999999))
    half = normal_quantile(level) / math.sqrt(n - 3)
    return {"r": r, "low": math.tanh(z - half), "high": math.tanh(z + half), "n": n}


def wilson_interval(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (stays inside [0, 1], fine at 0 or n)."""
    if n <= 0:
        return float("nan"), float("nan")
    z = normal_quantile(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _interval_row(ci: dict[str, float], prefix: str = "") -> dict[str, Any]:
    """``mean (dB)``, ``low (dB)``, ``high (dB)``, ``n`` and ``resolved`` of a :func:`mean_interval`."""
    return {
        "n": ci["n"],
        f"{prefix}mean (dB)": ci["mean"],
        f"{prefix}low (dB)": ci["low"],
        f"{prefix}high (dB)": ci["high"],
        "resolved": excludes_zero(ci["low"], ci["high"]),
    }


# --------------------------------------------------------------------------------------------------- a study


def run_seed(run: Run) -> int:
    """The run's training seed (``config.json``; 0 when it records none)."""
    return int(run.config.get("seed", run.metrics.get("seed", 0)) or 0)


def run_steps(run: Run) -> float:
    """Optimiser steps the run took (``metrics.json``), NaN when it does not say."""
    steps = run.metrics.get("steps")
    return float(steps) if steps is not None else float("nan")


def run_images_seen(run: Run) -> float:
    """Training images (crops) the run saw: ``metrics.json``'s ``images_seen``, else steps x batch size x
    processes (what training counts), NaN when neither is recorded."""
    if run.metrics.get("images_seen") is not None:
        return float(run.metrics["images_seen"])
    steps, batch = run_steps(run), run.config.get("batch_size")
    if math.isnan(steps) or batch is None:
        return float("nan")
    return steps * float(batch) * float(run.metrics.get("world_size") or 1)


def study_arms(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """The loss comparison: per loss spec (in order of first appearance), its runs at the longest training
    that loss has, sorted by seed. The shorter runs of a loss belong to its compute series
    (:func:`compute_series`)."""
    by_loss: dict[str, list[Run]] = {}
    for run in runs:
        by_loss.setdefault(run.loss, []).append(run)
    arms = {}
    for loss, group in by_loss.items():
        finite = [run_steps(r) for r in group if not math.isnan(run_steps(r))]
        top = max(finite) if finite else None
        chosen = [r for r in group if top is None or math.isnan(run_steps(r)) or run_steps(r) == top]
        arms[loss] = sorted(chosen, key=run_seed)
    return arms


def compute_series(runs: Sequence[Run]) -> dict[str, dict[float, list[Run]]]:
    """Per loss trained for more than one number of steps: ``{steps: runs sorted by seed}``, fewest first."""
    by_loss: dict[str, dict[float, list[Run]]] = {}
    for run in runs:
        steps = run_steps(run)
        if not math.isnan(steps):
            by_loss.setdefault(run.loss, {}).setdefault(steps, []).append(run)
    return {
        loss: {s: sorted(group[s], key=run_seed) for s in sorted(group)}
        for loss, group in by_loss.items()
        if len(group) > 1
    }


def _reference_loss(arms: dict[str, list[Run]], reference: str) -> str:
    if not arms:
        raise ReportError("no runs to compare")
    return reference if reference in arms else next(iter(arms))


def loss_summary(runs: Sequence[Run]) -> pd.DataFrame:
    """Per loss of :func:`study_arms`: best validation PSNR and SSIM, mean over seeds with a 95% Student t
    interval over seeds, per-type PSNR means, the gain over the input, the seeds and their number.

    The first row, ``input (no restoration)``, is the degraded input on the validation images of the first
    loss's runs (each seed draws its own split when the data is split by seed, so it has an interval too).
    One seed gives a mean without an interval.
    """
    arms = study_arms(runs)
    if not arms:
        raise ReportError("loss_summary needs at least one run")

    def row(values: dict[str, list[float]], seeds: list[int]) -> dict[str, Any]:
        psnr, ssim = mean_interval(values["psnr"]), mean_interval(values["ssim"])
        return {
            "seeds": ", ".join(str(s) for s in seeds),
            "n": len(seeds),
            "PSNR (dB)": psnr["mean"],
            "PSNR low": psnr["low"],
            "PSNR high": psnr["high"],
            "SSIM": ssim["mean"],
            "SSIM low": ssim["low"],
            "SSIM high": ssim["high"],
            "PSNR rain": float(np.nanmean(values["rain"])) if values["rain"] else float("nan"),
            "PSNR snow": float(np.nanmean(values["snow"])) if values["snow"] else float("nan"),
            "gain (dB)": float(np.mean(values["gain"])) if values["gain"] else float("nan"),
        }

    first = next(iter(arms.values()))
    base = {
        "psnr": [float(r.metrics["input_psnr"]) for r in first],
        "ssim": [_metric(r, "input_ssim") for r in first],
        "rain": [_metric(r, "input_psnr_rain") for r in first],
        "snow": [_metric(r, "input_psnr_snow") for r in first],
        "gain": [0.0],
    }
    rows = {"input (no restoration)": row(base, [run_seed(r) for r in first])}
    for loss, arm in arms.items():
        values = {
            "psnr": [float(r.metrics["best_val_psnr"]) for r in arm],
            "ssim": [_metric(r, "best_val_ssim") for r in arm],
            "rain": [_metric(r, "best_val_psnr_rain") for r in arm],
            "snow": [_metric(r, "best_val_psnr_snow") for r in arm],
            "gain": [float(r.metrics["best_val_psnr"]) - float(r.metrics["input_psnr"]) for r in arm],
        }
        rows[loss_label(loss)] = row(values, [run_seed(r) for r in arm])
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "loss"
    return table


def _seed_pairs(arms: dict[str, list[Run]], loss: str, ref_loss: str) -> list[tuple[int, pd.DataFrame]]:
    """(seed, the per-image rows of ``loss`` at that seed merged with the reference's at the same seed): the
    same images scored by both models, with ``psnr_ref`` and ``diff`` = psnr - psnr_ref."""
    refs = {run_seed(r): r for r in arms[ref_loss] if r.per_image is not None}
    out = []
    for run in arms[loss]:
        ref = refs.get(run_seed(run))
        if run.per_image is None or ref is None:
            continue
        merged = run.per_image.merge(ref.per_image[["name", "psnr"]], on="name", suffixes=("", "_ref"))
        merged["diff"] = merged["psnr"] - merged["psnr_ref"]
        out.append((run_seed(run), merged))
    return out


def paired_vs_reference(runs: Sequence[Run], reference: str = "l1") -> pd.DataFrame:
    """Per-image PSNR differences of each loss against ``reference`` (default L1, else the first loss).

    For each seed, the runs of both losses with that seed score the same validation images: ``seed s`` rows
    hold the mean per-image difference with its t interval over those images. With two or more seeds,
    ``over seeds`` is the mean of the per-seed means with its t interval over seeds (the interval that
    includes seed-to-seed variation: the one a conclusion rests on), and ``all images`` pools every
    image-seed difference (a t interval that treats them as independent, so narrower). ``resolved``: the
    interval excludes 0. ``better``: images (or seeds) where the loss beats the reference.
    """
    arms = study_arms(runs)
    ref_loss = _reference_loss(arms, reference)
    rows = []
    for loss in arms:
        if loss == ref_loss:
            continue
        pairs = _seed_pairs(arms, loss, ref_loss)
        comparison = f"{loss_label(loss)} - {loss_label(ref_loss)}"
        for seed, merged in pairs:
            ci = mean_interval(merged["diff"])
            rows.append({"comparison": comparison, "scope": f"seed {seed}", "unit": "images",
                         **_interval_row(ci), "better": int((merged["diff"] > 0).sum())})  # fmt: skip
        if len(pairs) >= 2:
            means = [float(m["diff"].mean()) for _, m in pairs]
            better = int(sum(m > 0 for m in means))
            rows.append({"comparison": comparison, "scope": "over seeds", "unit": "seeds",
                         **_interval_row(mean_interval(means)), "better": better})  # fmt: skip
            pooled = pd.concat([m["diff"] for _, m in pairs])
            better = int((pooled > 0).sum())
            rows.append({"comparison": comparison, "scope": "all images", "unit": "image-seed pairs",
                         **_interval_row(mean_interval(pooled)), "better": better})  # fmt: skip
    columns = ["comparison", "scope", "unit", "n", "mean (dB)", "low (dB)", "high (dB)", "better", "resolved"]
    return pd.DataFrame(rows, columns=columns)


def level_differences(runs: Sequence[Run], reference: str = "l1") -> pd.DataFrame:
    """Per loss and validation image: the PSNR difference against ``reference`` (same seed), averaged over
    the seeds that scored the image, with the image's input PSNR (how degraded it is) and type."""
    arms = study_arms(runs)
    ref_loss = _reference_loss(arms, reference)
    frames = []
    for loss in arms:
        if loss == ref_loss:
            continue
        pairs = _seed_pairs(arms, loss, ref_loss)
        if not pairs:
            continue
        rows = pd.concat([m[["name", "kind", "input_psnr", "diff"]] for _, m in pairs])
        per_image = rows.groupby("name", sort=True).agg(
            kind=("kind", "first"), input_psnr=("input_psnr", "mean"), diff=("diff", "mean"),
            seeds=("diff", "size"),
        )  # fmt: skip
        per_image.insert(0, "comparison", f"{loss_label(loss)} - {loss_label(ref_loss)}")
        frames.append(per_image.reset_index())
    columns = ["comparison", "name", "kind", "input_psnr", "diff", "seeds"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def band_labels(bands: Sequence[float]) -> list[str]:
    """``(22, 26)`` -> ``["< 22 dB", "22-26 dB", ">= 26 dB"]``."""
    edges = [float(b) for b in bands]
    labels = [f"< {edges[0]:g} dB"]
    labels += [f"{a:g}-{b:g} dB" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return labels + [f">= {edges[-1]:g} dB"]


def level_dependence(
    points: pd.DataFrame, bands: Sequence[float] = DEFAULT_BANDS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Does a loss's difference against the reference depend on how degraded the image is?

    From :func:`level_differences`: per comparison, Pearson's r between the input PSNR and the difference
    with its Fisher z 95% interval (``resolved``: it excludes 0); and per input-PSNR band (edges ``bands``,
    lower edge included) the mean difference with its t interval over the band's images. Returns
    (correlations, bands).
    """
    labels = band_labels(bands)
    edges = [-math.inf, *(float(b) for b in bands), math.inf]
    corr_rows, band_rows = [], []
    for comparison, group in points.groupby("comparison", sort=False):
        ci = pearson_interval(group["input_psnr"], group["diff"])
        corr_rows.append({"comparison": comparison, "r": ci["r"], "r low": ci["low"], "r high": ci["high"],
                          "n": ci["n"], "resolved": excludes_zero(ci["low"], ci["high"])})  # fmt: skip
        band = pd.cut(group["input_psnr"], edges, right=False, labels=labels)
        for label in labels:
            values = group.loc[band == label, "diff"]
            band_rows.append(
                {"comparison": comparison, "band": label, **_interval_row(mean_interval(values))}
            )
    corr_cols = ["comparison", "r", "r low", "r high", "n", "resolved"]
    band_cols = ["comparison", "band", "n", "mean (dB)", "low (dB)", "high (dB)", "resolved"]
    return pd.DataFrame(corr_rows, columns=corr_cols), pd.DataFrame(band_rows, columns=band_cols)


def failure_cases(runs: Sequence[Run], worst: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Images a model makes worse: restored PSNR below the input's.

    Returns (per loss: ``regressed`` of ``evaluated`` image-seed evaluations and the ``share``; the ``worst``
    regressions of each loss, most negative change first, with run, seed, input and output PSNR).
    """
    summary, worst_rows = {}, []
    for loss, arm in study_arms(runs).items():
        frames = [r.per_image.assign(run=r.name, seed=run_seed(r)) for r in arm if r.per_image is not None]
        if not frames:
            continue
        df = pd.concat(frames, ignore_index=True)
        df["change"] = df["psnr"] - df["input_psnr"]
        regressed = df[df["change"] < 0].sort_values(["change", "name"])
        label = loss_label(loss)
        summary[label] = {
            "regressed": len(regressed),
            "evaluated": len(df),
            "share": len(regressed) / len(df),
        }
        for _, r in regressed.head(worst).iterrows():
            worst_rows.append({"loss": label, "run": r["run"], "seed": int(r["seed"]), "name": r["name"],
                               "kind": r["kind"], "input PSNR (dB)": float(r["input_psnr"]),
                               "PSNR (dB)": float(r["psnr"]), "change (dB)": float(r["change"])})  # fmt: skip
    table = pd.DataFrame.from_dict(summary, orient="index", columns=["regressed", "evaluated", "share"])
    table.index.name = "loss"
    columns = ["loss", "run", "seed", "name", "kind", "input PSNR (dB)", "PSNR (dB)", "change (dB)"]
    return table, pd.DataFrame(worst_rows, columns=columns)


# per_image.csv column (``{j}``: each prompt component) -> the ablation's name in the tables
ABLATIONS = {
    "psnr_own_mean": "own type's mean weights",
    "psnr_other_mean": "other type's mean weights",
    "psnr_uniform": "uniform weights",
    "psnr_onehot_{j}": "one-hot on component {j}",
    "psnr_zero_prompt": "prompt zeroed",
}
_NEW_ABLATIONS = ("psnr_uniform", "psnr_zero_prompt")  # present only in evaluations with the ablations


def _ablation_columns(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, name) of the ablation columns ``df`` holds, in ``ABLATIONS`` order."""
    found = []
    for column, name in ABLATIONS.items():
        if "{j}" in column:
            prefix = column.replace("{j}", "")
            js = sorted(
                int(c[len(prefix) :])
                for c in df.columns
                if c.startswith(prefix) and c[len(prefix) :].isdigit()
            )
            found += [(column.format(j=j), name.format(j=j)) for j in js]
        elif column in df.columns and df[column].notna().any():
            found.append((column, name))
    return found


def prompt_ablations(runs: Sequence[Run]) -> pd.DataFrame | None:
    """Per loss, degradation type and ablation: the mean PSNR change against the image's own prompts
    (ablated - plain, paired on each image) with its t interval over the image-seed evaluations.

    ``None`` when no run's evaluation holds the ablations (uniform weights, prompt zeroed): an evaluation
    made before them has the swap columns only.
    """
    rows = []
    for loss, arm in study_arms(runs).items():
        frames = [r.per_image for r in arm if r.per_image is not None]
        if not frames or not any(c in f.columns for f in frames for c in _NEW_ABLATIONS):
            continue
        df = pd.concat(frames, ignore_index=True)
        for kind in [k for k in KINDS if (df["kind"] == k).any()]:
            sel = df[df["kind"] == kind]
            for column, name in _ablation_columns(df):
                ci = mean_interval(sel[column] - sel["psnr"])
                rows.append({"loss": loss_label(loss), "kind": kind, "ablation": name, "column": column,
                             **_interval_row(ci)})  # fmt: skip
    if not rows:
        return None
    return pd.DataFrame(rows)


def prompt_type_accuracy(runs: Sequence[Run]) -> pd.DataFrame | None:
    """Per loss: how well the prompt weights (all levels) tell rain from snow, over its seeds.

    ``correct`` of ``images``: leave-one-out nearest-class-mean classifications (within each run, summed over
    seeds), the ``accuracy`` with its Wilson 95% interval (``above chance``: the interval excludes 50%), and
    the L1 gap between the mean rain and snow weights (mean over seeds; 0: same weights). ``None`` without
    prompt weights.
    """
    rows = {}
    for loss, arm in study_arms(runs).items():
        correct = total = 0
        gaps = []
        for run in arm:
            df = run.per_image
            if df is None or not prompt_levels(df):
                continue
            cols = [c for cs in prompt_levels(df).values() for c in cs]
            x, kinds = df[cols].to_numpy(float), df["kind"].to_numpy()
            k = centroid_loo_correct(x, kinds)
            if k is None:
                continue
            correct, total = correct + k, total + len(x)
            gaps.append(float(np.abs(x[kinds == "rain"].mean(0) - x[kinds == "snow"].mean(0)).sum()))
        if total:
            low, high = wilson_interval(correct, total)
            rows[loss_label(loss)] = {"correct": correct, "images": total, "accuracy": correct / total,
                                      "accuracy low": low, "accuracy high": high, "above chance": low > 0.5,
                                      "L1 gap": float(np.mean(gaps))}  # fmt: skip
    if not rows:
        return None
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "loss"
    return table


def _mean_of(runs: Sequence[Run], key: str) -> float:
    if key == "images_seen":
        values = [run_images_seen(r) for r in runs if not math.isnan(run_images_seen(r))]
    else:
        values = [float(r.metrics[key]) for r in runs if r.metrics.get(key) is not None]
    return float(np.mean(values)) if values else float("nan")


def compute_table(runs: Sequence[Run]) -> pd.DataFrame | None:
    """PSNR per compute: for each loss trained for several numbers of steps (:func:`compute_series`), per
    step count the mean best validation PSNR with its t interval over seeds, the mean images seen and wall
    time. ``None`` without such a series."""
    rows = []
    for loss, series in compute_series(runs).items():
        for steps, group in series.items():
            ci = mean_interval([float(r.metrics["best_val_psnr"]) for r in group])
            seeds = ", ".join(str(run_seed(r)) for r in group)
            rows.append({
                "loss": loss_label(loss), "steps": int(steps), "seeds": seeds, "n": ci["n"],
                "images seen": _mean_of(group, "images_seen"),
                "wall time (s)": _mean_of(group, "wall_seconds"),
                "PSNR (dB)": ci["mean"], "PSNR low": ci["low"], "PSNR high": ci["high"],
            })  # fmt: skip
    return pd.DataFrame(rows) if rows else None


def compute_gain(runs: Sequence[Run]) -> dict[str, Any] | None:
    """The last step of the longest compute series: PSNR at the largest step count minus PSNR at the one
    before, paired by seed, with its t interval over seeds (``resolved``: still rising or falling), and that
    gain per doubling of the images seen. ``None`` without a series."""
    series = compute_series(runs)
    if not series:
        return None
    loss, points = max(series.items(), key=lambda item: len(item[1]))
    (s0, before), (s1, after) = list(points.items())[-2:]
    by_seed = {run_seed(r): float(r.metrics["best_val_psnr"]) for r in before}
    diffs = [
        float(r.metrics["best_val_psnr"]) - by_seed[run_seed(r)] for r in after if run_seed(r) in by_seed
    ]
    ci = mean_interval(diffs)
    images0, images1 = _mean_of(before, "images_seen"), _mean_of(after, "images_seen")
    doublings = math.log2(images1 / images0) if images0 > 0 and images1 > 0 else float("nan")
    return {
        "loss": loss_label(loss), "from_steps": int(s0), "to_steps": int(s1), "from_images": images0,
        "to_images": images1, "points": len(points), "mean": ci["mean"], "low": ci["low"], "high": ci["high"],
        "n": ci["n"], "resolved": excludes_zero(ci["low"], ci["high"]),
        "per_doubling": ci["mean"] / doublings if doublings and not math.isnan(doublings) else float("nan"),
    }  # fmt: skip


def context_table(runs: Sequence[Run], data_name: str | None = None) -> pd.DataFrame:
    """Our results beside the numbers they are often compared with, each row labelled by its setting: the
    seed solution (``SEED_RESULTS``), the best public solution (``PUBLIC_BEST``), PromptIR's published
    Rain100L scores (``PROMPTIR_PAPER``), and ours (mean over seeds, validation on our data)."""
    rows = {}
    for loss, psnr in SEED_RESULTS.items():
        rows[f"seed solution, {loss_label(loss)}"] = {"PSNR (dB)": psnr, **SEED_SETTING}
    rows["best public solution"] = dict(PUBLIC_BEST, **{"PSNR (dB)": PUBLIC_BEST["psnr"]})
    for name, entry in PROMPTIR_PAPER.items():
        rows[f"PromptIR paper, {name}"] = dict(entry, **{"PSNR (dB)": entry["psnr"]})
    for loss, arm in study_arms(runs).items():
        first = arm[0]
        preset = first.config.get("preset") or first.metrics.get("preset") or "?"
        params = first.metrics.get("params")
        size = f" ({int(params) / 1e6:.1f} M)" if params else ""
        devices = sorted({str(r.metrics.get("device", "?")).split(" ")[0] for r in arm})
        rows[f"ours, {loss_label(loss)}"] = {
            "PSNR (dB)": _mean_of(arm, "best_val_psnr"),
            "scored on": f"validation split of {data_name or first.config.get('data_dir', 'our data')}",
            "model": f"{preset} PromptIR{size}",
            "hardware": ", ".join(d.upper() if d in ("cpu", "cuda") else d for d in devices),
            "source": f"this report, mean of {len(arm)} seeds"
            if len(arm) > 1
            else f"this report, one run (seed {run_seed(first)})",
        }
    table = pd.DataFrame.from_dict(rows, orient="index")[
        ["PSNR (dB)", "scored on", "model", "hardware", "source"]
    ]
    table.index.name = "result"
    return table


def _joined(values: Sequence[Any]) -> Any:
    """One value when all agree, else the distinct ones joined by commas (in order of appearance)."""
    distinct = list(dict.fromkeys("-" if v is None else v for v in values))
    if len(distinct) == 1:
        return distinct[0]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct):
        distinct = sorted(distinct)
    return ", ".join(str(v) for v in distinct)


def _display(value: Any) -> Any:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return value


def settings_table(runs: Sequence[Run], fixed_split: str | None = None) -> pd.DataFrame:
    """The seed solution's training settings (``config.RECIPES["seed"]``) beside ours, one row per setting.

    ``ours``: the value every run shares, or the distinct values joined (e.g. the losses, the seeds);
    ``differs``: whether ours is not the seed's (false where either is not known). The seed solution trained
    on a GPU in mixed precision; values it does not state are "-". ``fixed_split``: how the data set fixes
    its split (e.g. ``"split.csv, by scene"``), shown instead of the ``val_fraction`` the runs then ignore.
    """
    from hw4lib.config import make_config

    seed_cfg = {**dataclasses.asdict(make_config("seed")), "device": "GPU", "precision": "mixed (AMP)"}
    for key in ("val_fraction", "seed", "max_train_steps"):
        seed_cfg[key] = None  # not stated by the seed solution
    ours: dict[str, list[Any]] = {}
    for run in runs:
        cfg = {**run.config, "device": run.metrics.get("device"), "precision": run.metrics.get("precision"),
               "training_steps": run.metrics.get("steps")}  # fmt: skip
        for key, _ in [*_CONFIG_ROWS, ("training_steps", ""), ("device", "")]:
            ours.setdefault(key, []).append(_display(cfg.get(key)))
    rows = {}
    for key, title in [*_CONFIG_ROWS, ("training_steps", "training steps"), ("device", "device")]:
        seed_value = (
            _display(seed_cfg.get(key)) if key != "patch_size" or seed_cfg.get(key) else "whole image"
        )
        mine = _joined(ours.get(key, ["-"]))
        if mine == "-" and seed_value == "-":
            continue
        if key == "patch_size" and mine == "-":
            mine = "whole image"
        known = "-" not in (mine, seed_value)
        differs = known and str(mine) != str(seed_value)
        rows[title] = {"seed solution": seed_value, "ours": mine, "differs": differs}
    if fixed_split and "validation fraction" in rows:
        rows["validation fraction"].update(ours=f"fixed by the data set ({fixed_split})", differs=False)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "setting"
    return table


def split_description(dataset: dict[str, Any] | None) -> str | None:
    """``"split.csv, by scene"`` when a data set's description (its ``synth.json``) fixes its split, else
    None (the runs split at random with their ``val_fraction`` and seed)."""
    split = (dataset or {}).get("split")
    if not isinstance(split, dict) or not split.get("file"):
        return None
    return f"{split['file']}, by {split['by']}" if split.get("by") else str(split["file"])


def compute_accounting(runs: Sequence[Run]) -> pd.DataFrame:
    """What each run cost: loss, seed, optimiser steps, images seen (:func:`run_images_seen`), wall time (s)
    and device."""
    rows = {
        run.name: {
            "loss": loss_label(run.loss), "seed": run_seed(run), "steps": run.metrics.get("steps"),
            "images seen": run_images_seen(run), "wall time (s)": run.metrics.get("wall_seconds"),
            "device": run.metrics.get("device", "-"),
        }
        for run in runs
    }  # fmt: skip
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "run"
    return table
