"""The study's analyses beyond the loss table: each loss's effect per degradation type over seeds, the level
pattern within each type, intervals clustered by scene, the test of the study's own hypothesis, and whether
the ranking survives more compute.

The unit of inference matters: the validation images of the study set are scenes seen twice (``rain-N`` and
``snow-N`` share scene N), so an interval over images treats the two views of a scene as independent. Where
the report pools images it also gives the interval over scenes (:func:`clustered_paired`); effects per type
are taken over seeds (:func:`per_type_paired`), the unit a conclusion about a loss rests on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hw4lib.data import KINDS
from hw4lib.losses import loss_label, parse_spec
from hw4lib.runs import Run
from hw4lib.study.stats import LEVEL, excludes_zero, mean_interval, pearson_interval
from hw4lib.study.tables import (
    REFERENCE,
    comparison_steps,
    compute_series,
    reference_loss,
    run_seed,
    seed_pairs,
    study_arms,
)

__all__ = [
    "scene_of",
    "per_type_paired",
    "clustered_paired",
    "level_within_type",
    "hypothesis_tests",
    "scale_table",
]

_SCENE = re.compile(r"^(?:rain|snow)-(\d+)$")


def scene_of(name: str) -> str:
    """The scene an image shows: ``rain-15`` and ``snow-15`` are scene ``15``; other names are their own."""
    match = _SCENE.match(str(name))
    return match.group(1) if match else str(name)


def _over_seeds(values: Sequence[float], tests: int = 1) -> dict[str, Any]:
    """Mean over seeds with its 95% t interval, and the interval widened for ``tests`` comparisons
    (Bonferroni: each at level 1 - 0.05 / tests)."""
    ci = mean_interval(values)
    wide = mean_interval(values, level=1 - (1 - LEVEL) / tests)
    return {
        **ci,
        "resolved": excludes_zero(ci["low"], ci["high"]),
        "low corrected": wide["low"],
        "high corrected": wide["high"],
        "resolved corrected": excludes_zero(wide["low"], wide["high"]),
    }


def per_type_paired(runs: Sequence[Run], reference: str = REFERENCE) -> pd.DataFrame:
    """Each loss against ``reference`` per degradation type, over seeds: per seed the mean PSNR difference on
    that type's validation images (the same images, same seed), then the mean over seeds with its t interval
    over seeds. Every (loss, type) pair is one test; ``tests`` says how many were made, and ``resolved
    corrected`` whether the interval excludes 0 after a Bonferroni correction for them. ``all`` rows: both
    types together (not counted as tests)."""
    arms = study_arms(runs)
    ref_loss = reference_loss(arms, reference)
    per_loss = {loss: seed_pairs(arms, loss, ref_loss) for loss in arms if loss != ref_loss}
    per_loss = {loss: pairs for loss, pairs in per_loss.items() if len(pairs) >= 2}
    tests = len(per_loss) * len(KINDS)
    rows = []
    for loss, pairs in per_loss.items():
        for kind in (*KINDS, "all"):
            means = [float((m if kind == "all" else m[m["kind"] == kind])["diff"].mean()) for _, m in pairs]
            rows.append(
                {
                    "comparison": f"{loss_label(loss)} - {loss_label(ref_loss)}",
                    "loss": loss,
                    "kind": kind,
                    "per seed": ", ".join(f"{v:+.2f}" for v in means),
                    "tests": tests,
                    **_over_seeds(means, tests if kind != "all" else 1),
                }
            )
    columns = [
        "comparison",
        "loss",
        "kind",
        "per seed",
        "n",
        "mean",
        "low",
        "high",
        "resolved",
        "low corrected",
        "high corrected",
        "resolved corrected",
        "tests",
    ]
    return pd.DataFrame(rows, columns=columns)


def clustered_paired(runs: Sequence[Run], reference: str = REFERENCE) -> pd.DataFrame:
    """Each loss against ``reference``, every image-seed difference pooled and averaged per scene (over its
    seeds and both types), with the t interval over scenes: the pooled interval without treating the two
    views of a scene, or the seeds of an image, as independent."""
    arms = study_arms(runs)
    ref_loss = reference_loss(arms, reference)
    rows = []
    for loss in arms:
        pairs = seed_pairs(arms, loss, ref_loss) if loss != ref_loss else []
        if not pairs:
            continue
        pooled = pd.concat([m[["name", "diff"]] for _, m in pairs])
        scenes = pooled.groupby(pooled["name"].map(scene_of))["diff"].mean()
        ci = mean_interval(scenes.to_numpy())
        rows.append(
            {
                "comparison": f"{loss_label(loss)} - {loss_label(ref_loss)}",
                "scenes": ci["n"],
                "images": int(pooled["name"].nunique()),
                "mean": ci["mean"],
                "low": ci["low"],
                "high": ci["high"],
                "resolved": excludes_zero(ci["low"], ci["high"]),
            }
        )
    return pd.DataFrame(rows, columns=["comparison", "scenes", "images", "mean", "low", "high", "resolved"])


def level_within_type(points: pd.DataFrame) -> pd.DataFrame:
    """Pearson's r between input PSNR and the difference against the reference, within each degradation type
    (Fisher z interval over that type's images; within a type each scene appears once, so its images are
    independent scenes), beside the r over both types."""
    rows = []
    for comparison, group in points.groupby("comparison", sort=False):
        for kind in (*KINDS, "both"):
            part = group if kind == "both" else group[group["kind"] == kind]
            ci = pearson_interval(part["input_psnr"], part["diff"])
            rows.append(
                {
                    "comparison": comparison,
                    "kind": kind,
                    "r": ci["r"],
                    "low": ci["low"],
                    "high": ci["high"],
                    "n": ci["n"],
                    "resolved": excludes_zero(ci["low"], ci["high"]),
                }
            )
    return pd.DataFrame(rows, columns=["comparison", "kind", "r", "low", "high", "n", "resolved"])


# ------------------------------------------------------------------------------ the hypothesis, tested


def _arm_means(arm: Sequence[Run]) -> dict[str, list[float]]:
    """Per type and overall: the runs' best validation PSNR (one value per seed)."""
    out: dict[str, list[float]] = {"all": [float(r.metrics["best_val_psnr"]) for r in arm]}
    for kind in KINDS:
        out[kind] = [float(r.metrics.get(f"best_val_psnr_{kind}", float("nan"))) for r in arm]
    return out


def _paired_over_seeds(
    arms: dict[str, list[Run]], loss: str, other: str, kind: str = "all"
) -> dict[str, Any]:
    """``loss`` minus ``other`` on the same images, per seed (on ``kind``'s images, or all), over seeds."""
    pairs = seed_pairs(arms, loss, other)
    means = [float((m if kind == "all" else m[m["kind"] == kind])["diff"].mean()) for _, m in pairs]
    return {"against": loss_label(other), "kind": kind, **_over_seeds(means)}


def _verdict(result: dict[str, Any]) -> str:
    if not result["resolved"]:
        return "not resolved"
    return "held" if result["mean"] > 0 else "contradicted"


def hypothesis_tests(runs: Sequence[Run]) -> list[dict[str, Any]] | None:
    """The study's hypothesis (MSE helps the heavily degraded images, L1 and L1+SSIM the light ones), tested
    by the losses built from it, each with the prediction made from the other losses' runs before its own
    result:

    - a loss by type (``mse@snow+l1_ssim@rain``): predicted to reach, on each type, what its loss for that
      type reached trained alone, so overall the mean of those, above the best single loss; tested by its
      paired difference over seeds against the best single loss and against each part on that part's type;
    - a loss by error size without the type (``berhu``): predicted to beat both L1 and MSE overall.
    ``None`` when the runs hold neither."""
    arms = study_arms(runs)
    plain = [loss for loss in arms if "@" not in loss and loss != "berhu"]
    if not plain:
        return None
    means = {loss: _arm_means(arm) for loss, arm in arms.items()}
    best = max(plain, key=lambda loss: np.nanmean(means[loss]["all"]))
    out = []
    for loss in arms:
        terms = parse_spec(loss)
        if all(kind is not None for _, _, kind in terms) and {k for _, _, k in terms} == set(KINDS):
            parts = {kind: name for _, name, kind in terms}
            if not all(part in arms for part in parts.values()):
                continue
            predicted = {kind: float(np.nanmean(means[parts[kind]][kind])) for kind in KINDS}
            predicted_all = float(np.mean(list(predicted.values())))
            observed = {k: mean_interval(v) for k, v in means[loss].items()}
            against_best = _paired_over_seeds(arms, loss, best)
            per_part = [_paired_over_seeds(arms, loss, parts[kind], kind) for kind in KINDS]
            out.append(
                {
                    "loss": loss,
                    "label": loss_label(loss),
                    "kind": "by type",
                    "parts": parts,
                    "predicted": predicted,
                    "predicted_all": predicted_all,
                    "best": loss_label(best),
                    "best_psnr": float(np.nanmean(means[best]["all"])),
                    "predicted_gain": predicted_all - float(np.nanmean(means[best]["all"])),
                    "observed": observed,
                    "tests": [against_best, *per_part],
                    "verdict": _verdict(against_best),
                }
            )
        elif loss == "berhu" and {"l1", "mse"} <= set(arms):
            tests = [_paired_over_seeds(arms, loss, other) for other in ("l1", "mse")]
            verdicts = {_verdict(t) for t in tests}
            verdict = verdicts.pop() if len(verdicts) == 1 else "mixed"
            out.append(
                {
                    "loss": loss,
                    "label": loss_label(loss),
                    "kind": "by error size",
                    "observed": {k: mean_interval(v) for k, v in means[loss].items()},
                    "tests": tests,
                    "verdict": verdict,
                }
            )
    return out or None


# ------------------------------------------------------------------------------ more compute


def scale_table(runs: Sequence[Run], reference: str = REFERENCE) -> pd.DataFrame | None:
    """Does the ranking survive more compute? For every loss trained at the comparison's length and at a
    longer one (the scale series), per type and overall: the mean best validation PSNR over seeds at each
    length, the difference against ``reference`` at each length (paired by seed, over seeds), and the change
    of that difference from the shorter to the longer run (paired by seed, with its t interval over seeds).
    ``None`` without a longer series."""
    short = comparison_steps(runs)
    series = compute_series(runs)
    ref = reference if reference in series else None
    longer = sorted({s for points in series.values() for s in points if short is not None and s > short})
    if short is None or not longer or ref is None:
        return None
    long = longer[-1]
    rows = []
    for loss, points in series.items():
        if short not in points or long not in points:
            continue
        for kind in ("all", *KINDS):
            key = "best_val_psnr" if kind == "all" else f"best_val_psnr_{kind}"
            psnr = {
                s: {run_seed(r): float(r.metrics.get(key, math.nan)) for r in points[s]}
                for s in (short, long)
            }
            refs = {
                s: {run_seed(r): float(r.metrics.get(key, math.nan)) for r in series[ref][s]}
                for s in (short, long)
            }
            row = {"loss": loss_label(loss), "kind": kind, "short": int(short), "long": int(long)}
            both = sorted(set(psnr[short]) & set(psnr[long]))  # the same seeds at both lengths
            for s, tag in ((short, "short"), (long, "long")):
                row[f"PSNR {tag}"] = mean_interval([psnr[s][k] for k in both])["mean"]
            if loss != ref:
                seeds = sorted(set(psnr[short]) & set(psnr[long]) & set(refs[short]) & set(refs[long]))
                diff = {s: [psnr[s][k] - refs[s][k] for k in seeds] for s in (short, long)}
                change = mean_interval([b - a for a, b in zip(diff[short], diff[long], strict=True)])
                row.update(
                    {
                        "diff short": float(np.mean(diff[short])),
                        "diff long": float(np.mean(diff[long])),
                        "change": change["mean"],
                        "change low": change["low"],
                        "change high": change["high"],
                        "seeds": len(seeds),
                        "trend": _trend(diff[short], diff[long], change),
                    }
                )
            rows.append(row)
    return pd.DataFrame(rows) if rows else None


def _trend(before: Sequence[float], after: Sequence[float], change: dict[str, float]) -> str:
    """``flips`` (the mean difference changes sign and the change is resolved), ``grows`` / ``shrinks`` (its
    size, resolved), ``holds`` (the change is not resolved)."""
    a, b = float(np.mean(before)), float(np.mean(after))
    if not excludes_zero(change["low"], change["high"]):
        return "holds"
    if a * b < 0:
        return "flips"
    return "grows" if abs(b) > abs(a) else "shrinks"
