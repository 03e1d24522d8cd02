"""Tables as text: every table saved as Markdown, LaTeX and CSV (:func:`save_table`), and the Markdown of
the tables ``report.md`` shows, with cells made safe for Markdown (a loss label's ``*`` must not start
emphasis, a ``|`` must not split a cell).

Numbers are formatted by their column (:func:`format_table`): PSNR with 2 decimals, SSIM with 4, differences
signed, shares as percentages, counts with thousands separators; a missing value is "-" (in a sentence
"n/a"). Intervals read ``+0.12 [-0.03, +0.27]``.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hw4lib import paths
from hw4lib.paths import atomic_write, write_text_atomic

__all__ = [
    "NA", "format_table", "to_markdown", "to_latex", "save_table", "fmt", "signed", "escape", "prose",
    "md_cell", "interval_text", "plain_interval", "frame_markdown", "comparison_markdown", "summary_markdown",
    "separation_markdown", "ablations_markdown", "compute_markdown", "benchmark_markdown",
    "transfer_markdown",
]  # fmt: skip

NA = "n/a"  # a number the runs do not have, in a sentence


# ----------------------------------------------------------------------- every table: Markdown, LaTeX, CSV


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


# -------------------------------------------------------------------------- cells and numbers in report.md


def fmt(value: Any, nd: int = 2) -> str:
    """``value`` with ``nd`` decimals; ``n/a`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    return f"{value:.{nd}f}"


def signed(value: Any) -> str:
    """``+0.12``; ``n/a`` when missing; never ``-0.00``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    return f"{round(float(value), 2) + 0.0:+.2f}"


_UNESCAPED = {c: re.compile(r"(?<!\\)" + re.escape(c)) for c in "*|"}

def escape(text: Any, chars: str) -> str:
    """``text`` with each of ``chars`` backslash-escaped, once (an escaped one stays as it is)."""
    out = str(text)
    for c in chars:
        out = _UNESCAPED[c].sub("\\" + c, out)
    return out


def prose(text: Any) -> str:
    """A label safe in Markdown prose: ``L1 + 0.1*Edge(Y)`` keeps its ``*`` (two of them would start
    emphasis)."""
    return escape(text, "*")


def md_cell(value: Any) -> str:
    """A value safe inside a Markdown table cell (no emphasis from ``*``, no column break from ``|``); a label
    already escaped for prose is not escaped twice."""
    return escape(value, "|*")


def interval_text(mean: float, low: float, high: float) -> str:
    """``+0.12 [-0.03, +0.27]`` (the bracket left out where there is no interval)."""
    if low is None or math.isnan(low):
        return signed(mean)
    return f"{signed(mean)} [{signed(low)}, {signed(high)}]"


def plain_interval(mean: float, low: float, high: float, spec: str = "{:.2f}") -> str:
    """``24.26 [24.01, 24.50]``: an interval unsigned, as a table cell shows a level."""
    if low is None or math.isnan(low):
        return spec.format(mean)
    return f"{spec.format(mean)} [{spec.format(low)}, {spec.format(high)}]"


# --------------------------------------------------------------------------------- the tables of report.md


def frame_markdown(df: pd.DataFrame, index: bool = True) -> str:
    """A formatted table (:func:`format_table`), Markdown-safe cells."""
    shown = format_table(df).map(md_cell)
    if index:
        shown.index = [md_cell(i) for i in df.index]
        shown.index.name = df.index.name or ""
    numeric = [
        pd.api.types.is_numeric_dtype(df[c]) or "(dB)" in str(c) or str(c).startswith("PSNR") for c in df
    ]
    align = (["left"] if index else []) + ["right" if num else "left" for num in numeric]
    return shown.to_markdown(index=index, colalign=align, disable_numparse=True)


def comparison_markdown(table: pd.DataFrame) -> str:
    """Table 1 of single runs (``tables.comparison_table``), Markdown-safe labels."""
    table = table.copy()
    table.index = pd.Index([md_cell(i) for i in table.index], name=table.index.name)
    return to_markdown(table).rstrip()


def summary_markdown(summary: pd.DataFrame) -> str:
    """Table 1 of a study: per loss the seeds, mean PSNR and SSIM with their 95% intervals, per-type means."""
    shown = pd.DataFrame(index=summary.index)
    shown["seeds"] = summary["seeds"]
    shown["PSNR (dB) [95% CI]"] = [
        plain_interval(m, lo, hi) for m, lo, hi in summary[["PSNR (dB)", "PSNR low", "PSNR high"]].to_numpy()
    ]
    shown["SSIM [95% CI]"] = [
        plain_interval(m, lo, hi, "{:.4f}")
        for m, lo, hi in summary[["SSIM", "SSIM low", "SSIM high"]].to_numpy()
    ]
    for col in ("PSNR rain", "PSNR snow"):
        shown[col] = [fmt(v) for v in summary[col]]
    shown["gain (dB)"] = [signed(v) for v in summary["gain (dB)"]]
    shown.index = [md_cell(i) for i in shown.index]
    shown.index.name = "loss"
    return shown.to_markdown(disable_numparse=True, colalign=["left"] + ["right"] * len(shown.columns))


def separation_markdown(separation: pd.DataFrame) -> str:
    """Table 2 (``prompts.prompt_separation``): per run and prompt level, the gap between the types' mean
    weights, their separation and the accuracy of telling them apart."""
    sep = separation.copy()
    sep["L1 gap"] = sep["L1 gap"].map(lambda v: f"{v:.2f}")
    sep["separation"] = sep["separation"].map(lambda v: f"{v:.2f}")
    sep["LOO acc"] = sep["LOO acc"].map(lambda v: f"{v:.0%}")
    sep = sep.rename(columns={"LOO acc": "LOO accuracy"})
    sep["run"] = sep["run"].map(md_cell)
    return sep.to_markdown(index=False, disable_numparse=True, colalign=("left", "left") + ("right",) * 3)


def ablations_markdown(table: pd.DataFrame) -> str:
    """The prompt ablations (``prompts.prompt_ablations``): per loss and ablation, the mean change with its
    interval, a column per degradation type."""
    bounds = table[["mean (dB)", "low (dB)", "high (dB)"]].to_numpy()
    cells = table.assign(cell=[interval_text(m, lo, hi) for m, lo, hi in bounds])
    display = cells.pivot_table(
        index=["loss", "ablation"], columns="kind", values="cell", aggfunc="first", sort=False
    )
    display.columns = [f"{kind} (dB) [95% CI]" for kind in display.columns]
    return frame_markdown(display.reset_index().set_index("loss"))


def compute_markdown(table: pd.DataFrame) -> str:
    """The compute series (``tables.compute_table``): per step count, the mean PSNR with its interval."""
    shown = table.copy()
    shown["PSNR (dB) [95% CI]"] = [
        plain_interval(m, lo, hi) for m, lo, hi in table[["PSNR (dB)", "PSNR low", "PSNR high"]].to_numpy()
    ]
    shown = shown[["loss", "steps", "seeds", "images seen", "wall time (s)", "PSNR (dB) [95% CI]"]]
    return frame_markdown(shown, index=False)


def _cell(value: Any, spec: str = "{:.2f}") -> str:
    """A table cell: ``spec`` applied to ``value``, or "-" when it is missing (None or NaN)."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return "-" if missing else spec.format(value)


def benchmark_markdown(table: pd.DataFrame) -> str:
    """The Rain100L budget runs (``snapshot.load_benchmarks``): PSNR plain, with TTA and mirrored."""
    names = {
        "preset": "preset", "budget_s": "budget (s)", "input_psnr": "input PSNR", "val_psnr": "PSNR",
        "val_psnr_tta": "PSNR + TTA", "val_psnr_tta_hflip": "PSNR + mirror",
        "val_ssim": "SSIM", "steps_per_s": "steps/s", "peak_mem_mb": "peak MiB",
        "n_val": "test pairs", "device": "device",
    }  # fmt: skip
    specs = {"budget_s": "{:.0f}", "val_ssim": "{:.4f}", "steps_per_s": "{:.2f}", "peak_mem_mb": "{:.0f}"}
    shown = pd.DataFrame(index=table.index)
    for key, title in names.items():
        if key in table.columns:
            spec = specs.get(key, "{:.2f}" if "psnr" in key else "{}")
            shown[title] = [_cell(v, spec) for v in table[key]]
    shown.index.name = "result"
    return shown.to_markdown(disable_numparse=True, colalign=["left"] + ["right"] * len(shown.columns))


def transfer_markdown(table: pd.DataFrame) -> str:
    """The synthetic-to-real transfer (``snapshot.load_transfer``), TTA gains over the TTA subset's input."""
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
