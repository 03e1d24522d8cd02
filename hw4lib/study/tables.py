"""The report's tables: numbers computed from runs, as data frames (no words, no figures, no files).

Which runs are which: :func:`study_arms` groups the runs by loss (several seeds each) at the training length
most losses share (the loss comparison); a loss's runs at other lengths are its compute series
(:func:`compute_series`);
figures of single runs show one run per loss (:func:`shown_runs`, its lowest seed). Then per subject:

- the comparison: :func:`comparison_table` (one row per run), :func:`loss_summary` (per loss, means over
  seeds with 95% intervals), :func:`paired_vs_reference` (per-image paired differences against L1);
- the degradation level and failures: :func:`level_differences`, :func:`level_dependence`,
  :func:`failure_cases`;
- compute and context: :func:`compute_table`, :func:`compute_gain`, :func:`compute_accounting`,
  :func:`settings_table`, :func:`context_table` (ours beside the results of ``quoted``).

The prompt tables are in ``prompts``, the statistics in ``stats``; ``report_tables.compute_tables``
computes every table of a report once.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hw4lib.data import KINDS
from hw4lib.losses import loss_label
from hw4lib.runs import Run
from hw4lib.study import quoted
from hw4lib.study.stats import excludes_zero, interval_row, mean_interval, pearson_interval

__all__ = [
    "ReportError", "DEFAULT_BANDS", "REFERENCE", "run_labels", "run_seed", "run_steps", "run_images_seen",
    "comparison_steps", "study_arms", "compute_series", "shown_runs", "comparison_table", "loss_summary",
    "paired_vs_reference", "reference_loss", "seed_pairs",
    "level_differences", "band_labels", "level_dependence", "failure_cases", "compute_table", "compute_gain",
    "compute_accounting", "settings_table", "split_description", "context_table",
]  # fmt: skip

DEFAULT_BANDS = (22.0, 26.0)  # input-PSNR band edges (dB) of the by-degradation-level table
REFERENCE = "l1"  # the loss every other loss is paired against (else the first loss of the runs)


class ReportError(ValueError):
    """Runs the report cannot use together; the message says what is missing and how to produce it."""


# ---------------------------------------------------------------------------------------------- which runs


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


def run_labels(runs: Sequence[Run]) -> list[str]:
    labels = [r.label for r in runs]
    return labels if len(set(labels)) == len(labels) else [r.name for r in runs]


def comparison_steps(runs: Sequence[Run]) -> float | None:
    """The training length of the loss comparison: the step count at which the most losses have runs (on a
    tie, the one with more runs, then the longer). Runs of other lengths form compute and scale series."""
    losses: dict[float, set[str]] = {}
    count: dict[float, int] = {}
    for run in runs:
        steps = run_steps(run)
        if not math.isnan(steps):
            losses.setdefault(steps, set()).add(run.loss)
            count[steps] = count.get(steps, 0) + 1
    if not losses:
        return None
    return max(losses, key=lambda s: (len(losses[s]), count[s], s))


def study_arms(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """The loss comparison: per loss spec (in order of first appearance), its runs at the comparison's
    length (:func:`comparison_steps`), sorted by seed. A loss's runs of other lengths belong to its compute
    series (:func:`compute_series`)."""
    steps = comparison_steps(runs)
    arms: dict[str, list[Run]] = {}
    for run in runs:
        if steps is None or math.isnan(run_steps(run)) or run_steps(run) == steps:
            arms.setdefault(run.loss, []).append(run)
    return {loss: sorted(arm, key=run_seed) for loss, arm in arms.items()}


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


def shown_runs(runs: Sequence[Run]) -> list[Run]:
    """One run per loss of the comparison (its lowest seed): the runs that figures of single runs show."""
    return [arm[0] for arm in study_arms(runs).values()]


def reference_loss(arms: dict[str, list[Run]], reference: str) -> str:
    if not arms:
        raise ReportError("no runs to compare")
    return reference if reference in arms else next(iter(arms))


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


def _mean_of(runs: Sequence[Run], key: str) -> float:
    if key == "images_seen":
        values = [run_images_seen(r) for r in runs if not math.isnan(run_images_seen(r))]
    else:
        values = [float(r.metrics[key]) for r in runs if r.metrics.get(key) is not None]
    return float(np.mean(values)) if values else float("nan")


# ------------------------------------------------------------------------------------- the loss comparison


_COMPARISON_COLUMNS = [
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
    table = table.reindex(columns=_COMPARISON_COLUMNS)
    table.index.name = "loss"
    for col in ("best epoch", "epochs", "params"):
        table[col] = table[col].astype("Int64")
    return table


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


def seed_pairs(arms: dict[str, list[Run]], loss: str, ref_loss: str) -> list[tuple[int, pd.DataFrame]]:
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


def paired_vs_reference(runs: Sequence[Run], reference: str = REFERENCE) -> pd.DataFrame:
    """Per-image PSNR differences of each loss against ``reference`` (default L1, else the first loss).

    For each seed, the runs of both losses with that seed score the same validation images: ``seed s`` rows
    hold the mean per-image difference with its t interval over those images. With two or more seeds,
    ``over seeds`` is the mean of the per-seed means with its t interval over seeds (the interval that
    includes seed-to-seed variation: the one a conclusion rests on), and ``all images`` pools every
    image-seed difference (a t interval that treats them as independent, so narrower). ``resolved``: the
    interval excludes 0. ``better``: images (or seeds) where the loss beats the reference.
    """
    arms = study_arms(runs)
    ref_loss = reference_loss(arms, reference)
    rows = []
    for loss in arms:
        if loss == ref_loss:
            continue
        pairs = seed_pairs(arms, loss, ref_loss)
        comparison = f"{loss_label(loss)} - {loss_label(ref_loss)}"
        for seed, merged in pairs:
            ci = mean_interval(merged["diff"])
            rows.append({"comparison": comparison, "scope": f"seed {seed}", "unit": "images",
                         **interval_row(ci), "better": int((merged["diff"] > 0).sum())})  # fmt: skip
        if len(pairs) >= 2:
            means = [float(m["diff"].mean()) for _, m in pairs]
            better = int(sum(m > 0 for m in means))
            rows.append({"comparison": comparison, "scope": "over seeds", "unit": "seeds",
                         **interval_row(mean_interval(means)), "better": better})  # fmt: skip
            pooled = pd.concat([m["diff"] for _, m in pairs])
            better = int((pooled > 0).sum())
            rows.append({"comparison": comparison, "scope": "all images", "unit": "image-seed pairs",
                         **interval_row(mean_interval(pooled)), "better": better})  # fmt: skip
    columns = ["comparison", "scope", "unit", "n", "mean (dB)", "low (dB)", "high (dB)", "better", "resolved"]
    return pd.DataFrame(rows, columns=columns)


# ------------------------------------------------------------------------- the degradation level, failures


def level_differences(runs: Sequence[Run], reference: str = REFERENCE) -> pd.DataFrame:
    """Per loss and validation image: the PSNR difference against ``reference`` (same seed), averaged over
    the seeds that scored the image, with the image's input PSNR (how degraded it is) and type."""
    arms = study_arms(runs)
    ref_loss = reference_loss(arms, reference)
    frames = []
    for loss in arms:
        if loss == ref_loss:
            continue
        pairs = seed_pairs(arms, loss, ref_loss)
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
                {"comparison": comparison, "band": label, **interval_row(mean_interval(values))}
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


# ------------------------------------------------------------------------------ compute, settings, context


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


def context_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Our results beside the numbers they are often compared with, each row labelled by its setting: the
    seed solution (``SEED_RESULTS``), the best public solution (``PUBLIC_BEST``), PromptIR's published
    Rain100L scores (``PROMPTIR_PAPER``), all from ``quoted``; and ours (mean over seeds, validation on our
    data)."""
    rows = {}
    for loss, psnr in quoted.SEED_RESULTS.items():
        rows[f"seed solution, {loss_label(loss)}"] = {"PSNR (dB)": psnr, **quoted.SEED_SETTING}
    rows["best public solution"] = dict(quoted.PUBLIC_BEST, **{"PSNR (dB)": quoted.PUBLIC_BEST["psnr"]})
    for name, entry in quoted.PROMPTIR_PAPER.items():
        rows[f"PromptIR paper, {name}"] = dict(entry, **{"PSNR (dB)": entry["psnr"]})
    for loss, arm in study_arms(runs).items():
        first = arm[0]
        preset = first.config.get("preset") or first.metrics.get("preset") or "?"
        params = first.metrics.get("params")
        size = f" ({int(params) / 1e6:.1f} M)" if params else ""
        devices = sorted({str(r.metrics.get("device", "?")).split(" ")[0] for r in arm})
        rows[f"ours, {loss_label(loss)}"] = {
            "PSNR (dB)": _mean_of(arm, "best_val_psnr"),
            "scored on": f"validation split of {first.config.get('data_dir', 'our data')}",
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
