"""The report: a snapshot of the runs, and ``report.md`` / ``report.html`` written from it.

Pipeline (``notebooks/report.ipynb`` calls these in order):

1. :func:`collect_runs` copies the small files of each run folder (``config.json``, ``history.csv``,
   ``metrics.json``) into a snapshot under ``report/run-data/<name>/`` and, where the run's checkpoint and
   data are at hand, evaluates it once on its validation images (``hw4lib.probe``: ``eval/per_image.csv``,
   the images of the visual comparison). The snapshot is small and committed, so the report can be rebuilt
   (and tested) on a clone that has neither checkpoints nor data.
2. The numbers come from ``hw4lib.tables``, the figures from ``hw4lib.plots``.
3. :func:`write_report` renders ``report.md``: :func:`report_context` gathers the numbers, tables and the
   decisions taken from them into one dict, and the words are in ``hw4lib/templates/report.md.j2``;
   :func:`render_html` renders the Markdown to HTML.
"""

from __future__ import annotations

import glob
import html
import json
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from hw4lib import paths, tables
from hw4lib import runs as runs_mod
from hw4lib.data import KINDS
from hw4lib.io import atomic_write, write_text_atomic
from hw4lib.losses import loss_label
from hw4lib.probe import evaluate_run
from hw4lib.runs import EVAL, Run
from hw4lib.tables import (
    ReportError,
    benchmark_markdown,
    comparison_table,
    hyperparameter_table,
    run_labels,
    to_markdown,
    transfer_markdown,
)

__all__ = [
    "SNAPSHOT_DIR",
    "FIGURES_SUBDIR",
    "ReportError",
    "collect_runs",
    "collect_benchmarks",
    "report_context",
    "render_markdown",
    "template_environment",
    "write_report",
    "render_html",
]

SNAPSHOT_DIR = "report/run-data"  # committed copies of the runs' small files and evaluations
FIGURES_SUBDIR = "report"  # figures/report/


def collect_runs(
    runs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    dest: str | os.PathLike[str] = SNAPSHOT_DIR,
    data_dir: str | os.PathLike[str] | None = None,
    n_visual: int = 2,
    checkpoint: str = "best",
    prune: bool = True,
    verbose: bool = True,
    device: str = "auto",
) -> list[Run]:
    """Snapshot runs into ``dest/<name>/`` (small files + evaluation); returns them loaded from the snapshot.

    A run that is already in ``dest`` is used as it is. A run with a checkpoint is (re-)evaluated on its
    validation images; one without keeps the evaluation its snapshot has, if any. With ``prune``, snapshots in
    ``dest`` that are not among ``runs`` are removed, so the report shows exactly the runs asked for.
    """
    dest_dir = paths.resolve(dest)
    sources = runs_mod.load_runs(runs)
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
    return snapshots


def collect_benchmarks(
    pattern: str = "runs/bench-*.json", dest: str = f"{SNAPSHOT_DIR}/bench"
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Copy benchmark JSON files matching ``pattern`` into the snapshot (kept when none match) and read the
    snapshot's results: (Rain100L budget runs, synthetic-to-real transfer), each ``None`` when absent."""
    for path in sorted(glob.glob(str(paths.resolve(pattern)))):
        target = paths.resolve(dest) / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target, "wb") as f:
            f.write(Path(path).read_bytes())
    folder = paths.resolve(dest)
    return (
        tables.load_benchmarks(str(folder / "bench-rain100l-*.json")),
        tables.load_transfer(str(folder / "bench-transfer*.json")),
    )


# --------------------------------------------------------------------------------------------------- report

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "report.md.j2"  # the report's words
FIGURE_KEYS = ("curves", "visual_rain", "visual_snow", "psnr", "prompt_weights", "prompt_pca", "prompt_swap")
NA = "n/a"  # a number the runs do not have

# the decisions the report states, and the thresholds that take them
SIGNIFICANT_SE = 2  # a paired difference counts when |mean| exceeds this many standard errors
PROMPT_VERDICTS = ((0.9, "clear"), (0.7, "partial"))  # leave-one-out accuracy -> verdict; below: "none"
SWAP_COST_DB = -0.3  # a swap cost below this means the decoder relies on the prompt
TRANSFER_GAIN_DB = 2.0  # a transfer gain of at least this is a lasting part of real deraining


def _fmt(value: Any, nd: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    return f"{value:.{nd}f}"


def _link(path: str | os.PathLike[str], out_dir: Path) -> str:
    return Path(os.path.relpath(paths.resolve(path), out_dir)).as_posix()


def _unwrap(text: str) -> str:
    """The lines of a template block joined by spaces: a wrapped paragraph becomes one Markdown line."""
    joined = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return joined + "\n" if text.endswith("\n") else joined


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
        signed2="{:+.2f}".format,
        pct="{:.0%}".format,
        thousands="{:,}".format,
        g="{:g}".format,
        code="`{}`".format,
        unwrap=_unwrap,
    )
    return env


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


def _paired(paired: pd.DataFrame | None) -> dict[str, Any]:
    """Paired per-image differences, and those larger than ``SIGNIFICANT_SE`` standard errors."""
    if paired is None or paired.empty:
        return {"paired": None, "significant": []}
    rows = [
        {
            "name": idx,
            "mean": row["mean (dB)"],
            "se": row["s.e. (dB)"],
            "better": int(row["images better"]),
            "images": int(row["images"]),
        }
        for idx, row in paired.iterrows()
    ]
    significant = [r["name"] for r in rows if pd.notna(r["se"]) and abs(r["mean"]) > SIGNIFICANT_SE * r["se"]]
    return {"paired": rows, "significant": significant}


def _seed_order_agrees(runs: Sequence[Run]) -> bool | None:
    """Whether our runs rank the seed solution's losses as it did; None with fewer than two of them."""
    ours = [r for r in runs if r.loss in tables.SEED_RESULTS]
    if len(ours) < 2:
        return None
    seed_order = sorted((r.loss for r in ours), key=tables.SEED_RESULTS.get, reverse=True)
    our_order = sorted(ours, key=lambda r: float(r.metrics["best_val_psnr"]), reverse=True)
    return [r.loss for r in our_order] == seed_order


def _analysis(runs: Sequence[Run], table: pd.DataFrame, paired: pd.DataFrame | None) -> dict[str, Any]:
    """Ranking, gains over the input, paired differences, best per type, agreement with the seed."""
    labels = run_labels(runs)
    scores = {label: float(table.loc[label, "PSNR (dB)"]) for label in labels}
    base = float(table.iloc[0]["PSNR (dB)"])
    best_per_kind = []
    for kind in KINDS:
        col = f"PSNR {kind}"
        best = max(labels, key=lambda lbl, c=col: table.loc[lbl, c])
        best_per_kind.append(
            {"kind": kind, "label": best, "psnr": table.loc[best, col], "input": table.iloc[0][col]}
        )
    return {
        "ranking": [
            {"label": label, "psnr": scores[label]} for label in sorted(scores, key=scores.get, reverse=True)
        ],
        "input_psnr": base,
        "gains": [{"label": label, "gain": scores[label] - base} for label in labels],
        "spread": max(scores.values()) - min(scores.values()),
        **_paired(paired),
        "best_per_kind": best_per_kind,
        "seed_order_agrees": _seed_order_agrees(runs),
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


def _per_run(runs: Sequence[Run]) -> dict[str, Any]:
    """Each run's learning curve summary and, where evaluated, how many images it improves."""
    curves, improved = [], []
    for label, run in zip(run_labels(runs), runs, strict=True):
        h = run.history
        last = float(h["val_psnr"].iloc[-1]) if "val_psnr" in h.columns else float("nan")
        curves.append(
            {"label": label, "best_epoch": run.metrics["best_epoch"], "epochs": run.epochs, "last": last}
        )
        if run.per_image is not None:
            pi = run.per_image
            improved.append(
                {"label": label, "better": int((pi["psnr"] > pi["input_psnr"]).sum()), "images": len(pi)}
            )
    return {"curves": curves, "improved": improved}


def _separation_markdown(separation: pd.DataFrame) -> str:
    sep = separation.copy()
    sep["L1 gap"] = sep["L1 gap"].map(lambda v: f"{v:.2f}")
    sep["separation"] = sep["separation"].map(lambda v: f"{v:.2f}")
    sep["LOO acc"] = sep["LOO acc"].map(lambda v: f"{v:.0%}")
    sep = sep.rename(columns={"LOO acc": "LOO accuracy"})
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
            context["prompt_accuracy"] = {"accuracy": acc, "run": best["run"], "verdict": verdict}
    swaps = {k: v for k, v in (swaps or {}).items() if v is not None}
    context["swaps"] = [
        {
            "label": label,
            # rounded as shown, + 0.0: no "-0.00"
            "costs": [{"kind": k, "cost": round(v, 2) + 0.0} for k, v in t["swap cost (dB)"].items()],
        }
        for label, t in swaps.items()
    ]
    worst = min((float(t["swap cost (dB)"].min()) for t in swaps.values()), default=None)
    context["swap_cost_matters"] = worst is not None and worst < SWAP_COST_DB
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
) -> dict[str, Any]:
    """What ``report.md.j2`` fills in: numbers, formatted tables, lists and the decisions taken from them.

    Figures are links relative to ``out_dir`` (``None`` when missing). Arguments as :func:`write_report`.
    """
    table = comparison_table(runs)
    cfg = runs[0].config
    return {
        "run_names": [r.name for r in runs],
        "labels": run_labels(runs),
        "data_name": data_name or (str(cfg["data_dir"]) if "data_dir" in cfg else None),
        "figures": {key: _link(figures[key], out_dir) if figures.get(key) else None for key in FIGURE_KEYS},
        **_method(runs[0]),
        "hyperparameter_table": to_markdown(hyperparameter_table(runs)).rstrip(),
        "comparison_table": to_markdown(table).rstrip(),
        **_analysis(runs, table, paired),
        **_seed(),
        **_per_run(runs),
        **_prompts(separation, swaps),
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
) -> Path:
    """Write ``report.md`` (the seed solution's outline), every number and figure from ``runs``.

    ``figures`` maps keys (``curves``, ``visual_rain``, ``visual_snow``, ``psnr``, ``prompt_weights``,
    ``prompt_pca``, ``prompt_swap``) to saved PNGs; missing ones leave out their paragraph.
    """
    out = paths.resolve(out_dir) if out_dir is not None else paths.report_dir()
    out.mkdir(parents=True, exist_ok=True)
    context = report_context(
        runs, figures, out, paired=paired, separation=separation, swaps=swaps, benchmarks=benchmarks,
        data_name=data_name, transfer=transfer,
    )  # fmt: skip
    return write_text_atomic(render_markdown(context), out / "report.md")


_HTML_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 980px;
       margin: 2em auto; padding: 0 1em; line-height: 1.5; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; }
img { max-width: 100%; }
code, pre { background: #f6f8fa; }
pre { padding: 0.6em; overflow-x: auto; }
"""


def render_html(md_path: str | os.PathLike[str], out_path: str | os.PathLike[str] | None = None) -> Path:
    """Render ``report.md`` to a standalone ``report.html`` beside it (mistune, which nbconvert uses)."""
    import mistune

    md_path = paths.resolve(md_path)
    text = md_path.read_text(encoding="utf-8")
    markdown = mistune.create_markdown(plugins=["table"])
    body = markdown(text)
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), "Report")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
    target = Path(out_path) if out_path is not None else md_path.with_suffix(".html")
    return write_text_atomic(page, target)
