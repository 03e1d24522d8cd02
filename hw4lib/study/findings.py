"""What the template says about the study's analyses (``analyses``), as lists, Markdown tables and decisions:
effects per type over seeds, the level pattern within each type, intervals over scenes, the hypothesis test,
the ranking at more compute, how the runs were fed, and what the report could not do.

Every decision is read off an interval (it excludes 0 or not), never off a flag computed elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from hw4lib.data import KINDS, augment_mode
from hw4lib.losses import loss_label
from hw4lib.runs import Run, safe_name
from hw4lib.study import quoted
from hw4lib.study.output import interval_text, md_cell, plain_interval, prose, signed
from hw4lib.study.stats import excludes_zero

__all__ = [
    "per_type", "clustered", "within_type", "hypotheses", "scale", "training_diet", "limits", "study_hours",
    "reproduce", "error_location", "visual",
]  # fmt: skip

ASSUMED_GPU_TFLOPS = (25.0, 100.0)  # sustained training speeds assumed for a GPU estimate (not measured)


def _ci(row: Any, mean: str = "mean", low: str = "low", high: str = "high") -> dict[str, Any]:
    lo, hi = float(row[low]), float(row[high])
    return {"mean": float(row[mean]), "low": lo, "high": hi, "resolved": excludes_zero(lo, hi)}


def per_type(table: pd.DataFrame | None) -> dict[str, Any]:
    """Each loss against the reference per type over seeds: a Markdown table, the comparisons, how many tests
    were made and which intervals exclude 0 before and after the Bonferroni correction."""
    if table is None or table.empty:
        return {"per_type": None}
    shown = pd.DataFrame(
        {
            "comparison": [md_cell(c) for c in table["comparison"]],
            "type": table["kind"],
            "per seed (dB)": table["per seed"],
            "over seeds (dB) [95% CI]": [
                interval_text(m, lo, hi) for m, lo, hi in table[["mean", "low", "high"]].to_numpy()
            ],
            "corrected [CI]": [
                f"[{signed(lo)}, {signed(hi)}]" if k != "all" else "-"
                for lo, hi, k in table[["low corrected", "high corrected", "kind"]].to_numpy()
            ],
        }
    )
    tested = table[table["kind"] != "all"]
    rows = [
        {
            "name": prose(r["comparison"]),
            "kind": r["kind"],
            **_ci(r),
            "per_seed": r["per seed"],
            "corrected": bool(r["resolved corrected"]),
        }
        for _, r in tested.iterrows()
    ]
    return {
        "per_type": {
            "table": shown.to_markdown(index=False, disable_numparse=True),
            "tests": int(table["tests"].iloc[0]),
            "rows": rows,
            "resolved": [r for r in rows if r["resolved"]],
            "corrected": [r for r in rows if r["corrected"]],
            "opposite": _opposite(rows),
        }
    }


def _opposite(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Comparisons resolved on both types with opposite signs: better on one type, worse on the other."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_name.setdefault(r["name"], []).append(r)
    return [
        name
        for name, rs in by_name.items()
        if len(rs) == len(KINDS)
        and all(r["resolved"] for r in rs)
        and min(r["mean"] for r in rs) < 0 < max(r["mean"] for r in rs)
    ]


def clustered(table: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    """The pooled differences with their interval over scenes."""
    if table is None or table.empty:
        return None
    return [
        {"name": prose(r["comparison"]), "scenes": int(r["scenes"]), "images": int(r["images"]), **_ci(r)}
        for _, r in table.iterrows()
    ]


def within_type(table: pd.DataFrame | None, squared: dict[str, bool]) -> dict[str, Any]:
    """Per comparison: r within rain, within snow and over both, with the mechanism's test: the slope is
    attributed to a squared term only when no loss without one shows it too."""
    if table is None or table.empty:
        return {"within": None}
    rows = []
    for comparison, group in table.groupby("comparison", sort=False):
        label = comparison.split(" - ")[0]
        by_kind = {
            r["kind"]: {
                "r": float(r["r"]),
                "low": float(r["low"]),
                "high": float(r["high"]),
                "n": int(r["n"]),
                "resolved": bool(r["resolved"]),
            }
            for _, r in group.iterrows()
        }
        rows.append(
            {
                "name": prose(comparison),
                "label": prose(label),
                "squared": squared.get(label, False),
                "by_kind": by_kind,
                # the types within which the slope is resolved below 0
                "kept": [k for k in KINDS if by_kind.get(k, {}).get("resolved") and by_kind[k]["r"] < 0],
            }
        )
    shown = pd.DataFrame(
        {
            "comparison": [md_cell(r["name"]) for r in rows],
            **{
                f"r {k} [95% CI]": [
                    plain_interval(r["by_kind"][k]["r"], r["by_kind"][k]["low"], r["by_kind"][k]["high"])
                    + f" (n {r['by_kind'][k]['n']})"
                    for r in rows
                ]
                for k in (*KINDS, "both")
            },
        }
    )
    negative = [r for r in rows if r["by_kind"]["both"]["resolved"] and r["by_kind"]["both"]["r"] < 0]
    return {
        "within": {
            "table": shown.to_markdown(index=False, disable_numparse=True),
            "rows": rows,
            "slopes": negative,  # pooled slopes resolved below 0
            "squared_slopes": [r for r in negative if r["squared"]],
            "other_slopes": [r for r in negative if not r["squared"]],
        }
    }


def hypotheses(tests: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The hypothesis tests, labels made safe for prose."""
    if not tests:
        return None
    out = []
    for t in tests:
        t = dict(t)
        t["label"] = prose(t["label"])
        if "parts" in t:
            t["parts"] = {kind: prose(loss_label(spec)) for kind, spec in t["parts"].items()}
            t["best"] = prose(t["best"])
        t["tests"] = [{**c, "against": prose(c["against"])} for c in t["tests"]]
        out.append(t)
    return out


def scale(table: pd.DataFrame | None) -> dict[str, Any] | None:
    """The ranking at the comparison's length and at the longest: a Markdown table and the trends."""
    if table is None or table.empty:
        return None
    shown = pd.DataFrame(
        {
            "loss": [md_cell(v) for v in table["loss"]],
            "type": table["kind"],
            f"PSNR at {int(table['short'].iloc[0]):,} steps": table["PSNR short"].map("{:.2f}".format),
            f"PSNR at {int(table['long'].iloc[0]):,} steps": table["PSNR long"].map("{:.2f}".format),
        }
    )
    compared = table.dropna(subset=["change"]) if "change" in table.columns else table.iloc[0:0]
    if not compared.empty:
        shown["difference to L1, short -> long (dB)"] = [
            f"{signed(r['diff short'])} -> {signed(r['diff long'])}" if pd.notna(r.get("change")) else "-"
            for _, r in table.iterrows()
        ]
        shown["change [95% CI]"] = [
            interval_text(r["change"], r["change low"], r["change high"])
            if pd.notna(r.get("change"))
            else "-"
            for _, r in table.iterrows()
        ]
    trends = [
        {
            "label": prose(r["loss"]),
            "kind": r["kind"],
            "trend": r["trend"],
            "before": r["diff short"],
            "after": r["diff long"],
            **_ci(r, "change", "change low", "change high"),
        }
        for _, r in compared.iterrows()
    ]
    return {
        "table": shown.to_markdown(index=False, disable_numparse=True),
        "short": int(table["short"].iloc[0]),
        "long": int(table["long"].iloc[0]),
        "trends": trends,
        "flips": [t for t in trends if t["trend"] == "flips"],
        "moved": [t for t in trends if t["trend"] in ("grows", "shrinks", "flips")],
        "seeds": int(compared["seeds"].max()) if not compared.empty else 0,
    }


def training_diet(run: Run, train_pairs: int | None) -> dict[str, Any]:
    """What an epoch of ``run`` showed the model, computed from its plan and config: optimiser steps per
    epoch, crops per epoch, and crops per training image (the recipe's ``patches_per_image`` is only a cap
    when ``max_train_steps`` stops the epoch early)."""
    plan = run.plan or {}
    steps = plan.get("steps_per_epoch")
    batch = plan.get("global_batch") or run.config.get("batch_size")
    if not steps or not batch:
        return {"diet": None}
    crops = int(steps) * int(batch)
    return {
        "diet": {
            "steps": int(steps),
            "batch": int(batch),
            "crops": crops,
            "per_image": crops / train_pairs if train_pairs else None,
            "patches_per_image": run.config.get("patches_per_image"),
            "capped": bool(run.config.get("max_train_steps")),
            "augment": augment_mode(run.config.get("augment")),
        }
    }


def limits(params: int, preset: str, devices: Sequence[str], own_data: bool) -> dict[str, Any]:
    """What the report could not do (``missing``: the course's data, the full model, a GPU; a leaderboard
    score is always missing: the report never uploads), and an estimate of what the full experiment would
    take: the seed solution's recipe (the full model, 25 epochs of whole 256 px images, batch 1) on the
    course data, its FLOPs counted on the meta device, at assumed sustained GPU speeds (an estimate, not a
    measurement)."""
    from hw4lib.config import make_config
    from hw4lib.planning import count_on_meta

    course = quoted.COURSE_DATA
    config = make_config("seed", device="cpu")
    _, forward, full_params = count_on_meta(config, 1, (course["side"], course["side"]))
    train_pairs = round(course["pairs"] * (1 - config.val_fraction))
    steps = train_pairs * config.epochs
    step_flops = 3 * forward  # forward + backward
    total = steps * step_flops
    hours = [total / (rate * 1e12) / 3600 for rate in ASSUMED_GPU_TFLOPS]
    missing = {"data": not own_data, "model": preset != "full", "gpu": "cuda" not in devices}
    words = (("data", "the course's data"), ("leaderboard", "a leaderboard score"),
             ("model", "the full model"), ("gpu", "a GPU"))  # fmt: skip
    lacks = [what for key, what in words if missing.get(key, key == "leaderboard")]
    return {
        "limits": {
            "params": params,
            "preset": preset,
            "full_params": full_params,
            "steps": steps,
            "train_pairs": train_pairs,
            "epochs": config.epochs,
            "side": course["side"],
            "forward_gflop": forward / 1e9,
            "pflop": total / 1e15,
            "rates": ASSUMED_GPU_TFLOPS,
            "hours": hours,
            "study_runs": None,
            "test_images": course["test_images"],
            "missing": missing,
            "lacks": lacks,  # what the report was made without, in words (a leaderboard score: always)
            "estimate": any(missing.values()),
        }
    }


def study_hours(limits_context: dict[str, Any], runs_per_study: int) -> dict[str, Any]:
    """The estimate for the whole study (``runs_per_study`` runs of the seed recipe)."""
    lim = dict(limits_context["limits"])
    lim["study_runs"] = runs_per_study
    lim["study_hours"] = [h * runs_per_study for h in lim["hours"]]
    return {"limits": lim}


def reproduce(runs: Sequence[Run], data_kind: str) -> dict[str, Any]:
    """The commands that retrain and rebuild this report: the demo's and the study's make targets, or for a
    study of one's own data the ``make study`` line with the runs' data, recipe, preset, seeds and losses,
    and the ``report`` command over their run folders."""
    if data_kind != "own":
        return {"reproduce": {"kind": data_kind}}
    from hw4lib.config import RECIPES

    first = runs[0].config
    recipe = first.get("recipe") or "seed"
    parts = [f"DATA={first.get('data_dir', 'data')}", f"RECIPE={recipe}"]
    preset = first.get("preset")
    if preset and preset != RECIPES.get(recipe, {}).get("preset", "full"):
        parts.append(f"PRESET={preset}")
    seeds = sorted({int(r.config.get("seed", 0)) for r in runs})
    losses = list(dict.fromkeys(str(r.config.get("loss")) for r in runs))
    parts.append("SEEDS=" + ",".join(str(s) for s in seeds))
    parts.append("LOSSES=" + ",".join(losses))
    run = runs[0]  # named <prefix>-<loss>-s<seed> by the study (protocol.data_jobs)
    suffix = "-" + safe_name(f"{run.config.get('loss')}-s{int(run.config.get('seed', 0))}")
    stem = run.name[: -len(suffix)] if run.name.endswith(suffix) else run.name
    return {
        "reproduce": {
            "kind": "own",
            "make": "make study " + " ".join(f'"{p}"' if ("*" in p or " " in p) else p for p in parts),
            "report": f'python -m hw4lib report --runs "runs/{stem}-*-s*" --out runs/{stem}-report',
        }
    }


def is_finite(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


# --------------------------------------------------------------------- where the error sits, and how it looks

ERROR_CLASS_WORDS = {
    "edges": "edges and texture",
    "degradation": "the streaks and flakes",
    "veil": "the veil",
    "flat": "flat regions",
}


def error_location(table: pd.DataFrame | None) -> dict[str, Any]:
    """Per loss, its squared error split over the pixel classes of ``errors`` (error share beside pixel
    share), as a Markdown table; the class holding most of each loss's error and the one holding most more
    than its area (error share / pixel share); and where each loss's worst case has its error."""
    if table is None or table.empty:
        return {"error_location": None}
    from hw4lib.study.errors import CLASSES

    shown = pd.DataFrame(
        {
            "loss": [md_cell(prose(str(label))) for label in table["loss"]],
            **{
                f"{c} (% of error / % of pixels)": [
                    f"{100 * r[f'err_{c}']:.0f} / {100 * r[f'px_{c}']:.0f}" for _, r in table.iterrows()
                ]
                for c in CLASSES
            },
            "evaluations": [int(n) for n in table["images"]],
        }
    )
    rows = []
    for _, r in table.iterrows():
        excess = {c: float(r[f"excess_{c}"]) for c in CLASSES if is_finite(float(r[f"excess_{c}"]))}
        most = max(excess, key=excess.get) if excess else None
        row = {
            "label": prose(str(r["loss"])),
            "where": ERROR_CLASS_WORDS[r["where"]],
            "share": float(r[f"err_{r['where']}"]),
            "pixels": float(r[f"px_{r['where']}"]),
            "excess": ERROR_CLASS_WORDS[most] if most else None,
            "excess_ratio": excess.get(most) if most else None,
            "worst": None,
        }
        if isinstance(r.get("worst_name"), str):
            where = r["worst_where"]
            row["worst"] = {"name": r["worst_name"], "change": float(r["worst_change"]),
                            "where": ERROR_CLASS_WORDS[where],
                            "share": float(r[f"worst_err_{where}"])}  # fmt: skip
        rows.append(row)
    same = len({row["where"] for row in rows}) == 1
    return {
        "error_location": {
            "table": shown.to_markdown(index=False, disable_numparse=True),
            "rows": rows,
            "same_where": rows[0]["where"] if same else None,
        }
    }


def visual(table: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    """Per type, the loss that leaves the least error in the magnified windows of the visual comparison (mean
    window PSNR over the shown images), against the input's window and the other losses."""
    if table is None or table.empty:
        return None
    out = []
    for kind, group in table[table["image"] == "all"].groupby("kind", sort=False):
        best = group.loc[group["window PSNR (dB)"].idxmax()]
        others = group[group.index != best.name]
        out.append(
            {
                "kind": kind,
                "images": int(table[(table["kind"] == kind) & (table["image"] != "all")]["image"].nunique()),
                "best": prose(str(best["loss"])),
                "window": float(best["window PSNR (dB)"]),
                "input_window": float(best["input window PSNR (dB)"]),
                "others": [{"label": prose(str(o["loss"])), "window": float(o["window PSNR (dB)"])}
                           for _, o in others.iterrows()],  # fmt: skip
            }
        )
    return out or None
