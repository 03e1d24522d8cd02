"""What the prompts learned, as tables from the per-image evaluation (``probe``): how differently the prompt
weights treat rain and snow (:func:`prompt_separation`, :func:`prompt_type_accuracy`), and what changing the
weights costs (:func:`prompt_swap_table`, :func:`prompt_ablations`).

PromptIR never sees a label saying "rain" or "snow": if its prompt weights separate the two, it found the
degradation type on its own; if changing them lowers PSNR, the decoder uses them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hw4lib.data import KINDS
from hw4lib.losses import loss_label
from hw4lib.runs import Run
from hw4lib.study.stats import (
    centroid_loo_accuracy,
    centroid_loo_correct,
    interval_row,
    mean_interval,
    wilson_interval,
)
from hw4lib.study.tables import run_labels, study_arms

__all__ = [
    "ABLATIONS", "prompt_levels", "prompt_separation", "prompt_type_accuracy", "prompt_swap_table",
    "prompt_ablations",
]  # fmt: skip


def prompt_levels(per_image: pd.DataFrame) -> dict[str, list[str]]:
    """The prompt-weight columns of a per-image table by level: ``{"prompt1": ["prompt1_0", ...], ...}``."""
    levels: dict[str, list[str]] = {}
    for col in per_image.columns:
        head, _, idx = col.rpartition("_")
        if head.startswith("prompt") and idx.isdigit():
            levels.setdefault(head, []).append(col)
    return {k: sorted(v, key=lambda c: int(c.rpartition("_")[2])) for k, v in sorted(levels.items())}


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


PERMUTATIONS = 1000  # label shufflings of the permutation null of a classification accuracy


def _chance_side(low: float, high: float) -> str:
    """``"above"``, ``"below"`` or ``"includes"``: where an accuracy's interval lies against 50%."""
    return "above" if low > 0.5 else "below" if high < 0.5 else "includes"


def prompt_type_accuracy(runs: Sequence[Run], permutations: int = PERMUTATIONS) -> pd.DataFrame | None:
    """Per loss: how well the prompt weights (all levels) tell rain from snow, over its seeds.

    ``correct`` of ``images``: leave-one-out nearest-class-mean classifications (within each run, summed over
    seeds), the ``accuracy`` with its Wilson 95% interval and where it lies against 50% (``side``: above,
    below, includes). The Wilson interval treats the images as independent trials, and leave-one-out
    nearest-mean classification scores below 50% on pure noise, so each accuracy is also set against a
    permutation null: the same procedure with the types shuffled within each run (``permutations`` times,
    seeded), its mean accuracy, its central 95% range and the share of shufflings at or below / at or
    above the observed count (``p below``, ``p above``). The L1 gap between the mean rain and snow weights
    (mean over seeds; 0: same weights). ``None`` without prompt weights.
    """
    rng = np.random.default_rng(0)
    rows = {}
    for loss, arm in study_arms(runs).items():
        correct = total = 0
        gaps, null = [], np.zeros(permutations)
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
            null += [centroid_loo_correct(x, rng.permutation(kinds)) for _ in range(permutations)]
        if total:
            low, high = wilson_interval(correct, total)
            rows[loss_label(loss)] = {
                "correct": correct, "images": total, "accuracy": correct / total, "accuracy low": low,
                "accuracy high": high, "side": _chance_side(low, high),
                "null accuracy": float(null.mean() / total),
                "null low": float(np.quantile(null, 0.025) / total),
                "null high": float(np.quantile(null, 0.975) / total),
                "p below": float((null <= correct).mean()), "p above": float((null >= correct).mean()),
                "L1 gap": float(np.mean(gaps)),
            }  # fmt: skip
    if not rows:
        return None
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "loss"
    return table


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
                             **interval_row(ci)})  # fmt: skip
    if not rows:
        return None
    return pd.DataFrame(rows)
