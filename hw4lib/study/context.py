"""The words of the report: :func:`report_context` turns the runs and their computed tables into what
``templates/report.md.j2`` fills in (numbers, Markdown tables, figure links, and the decisions taken from the
numbers), and :func:`render_markdown` renders it.

Every decision the report states is taken here by a stated rule: an interval that excludes 0 (a resolved
difference), and the thresholds below (``SWAP_COST_DB``, ``INERT_DB``,
``TRANSFER_GAIN_DB``). Nothing is computed from the runs twice: the tables come from
``report_tables.compute_tables``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import pandas as pd

from hw4lib import paths
from hw4lib.data import KINDS, augment_mode
from hw4lib.losses import loss_label
from hw4lib.runs import Run
from hw4lib.study import findings, quoted
from hw4lib.study.figures import FIGURE_KEYS
from hw4lib.study.output import (
    NA,
    ablations_markdown,
    benchmark_markdown,
    comparison_markdown,
    compute_markdown,
    fmt,
    frame_markdown,
    interval_text,
    md_cell,
    prose,
    separation_markdown,
    signed,
    summary_markdown,
    transfer_markdown,
)
from hw4lib.study.prompts import PERMUTATIONS, prompt_levels
from hw4lib.study.stats import excludes_zero
from hw4lib.study.tables import REFERENCE, band_labels, run_labels, run_seed, shown_runs, study_arms

if TYPE_CHECKING:
    from hw4lib.study.report_tables import ReportTables

__all__ = ["TEMPLATE", "TEMPLATES_DIR", "TITLE", "template_environment", "report_context", "render_markdown"]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "report.md.j2"  # the report's words
TITLE = "Rain and snow removal with PromptIR: a loss-function study"

# the decisions the report states, and the thresholds that take them
SWAP_COST_DB = -0.3  # a swap cost below this means the decoder relies on the prompt
INERT_DB = 0.01  # re-weighted prompts whose whole interval stays within +-this changed nothing
TRANSFER_GAIN_DB = 2.0  # a transfer gain of at least this is a lasting part of real deraining
MANY_RUNS = 6  # the header lists the runs by name up to this many, else counts them


# -------------------------------------------------------------------------------------------- the template


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


def template_environment() -> jinja2.Environment:
    """The Jinja2 environment of ``templates/`` (strict: a variable the context lacks is an error)."""
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
        f2_or_na=fmt,
        signed2=signed,
        pct="{:.0%}".format,
        thousands="{:,.0f}".format,
        g="{:g}".format,
        code="`{}`".format,
        unwrap=_unwrap,
        cell=md_cell,
        interval=interval_text,
        ci=lambda c: interval_text(c["mean"], c["low"], c["high"]),
        sentence=_sentence,
    )
    return env


# ------------------------------------------------------------------------------------ the method, the data


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
    return {
        "counts": sorted(counts.items()),  # validation images per type
        "split": split or None,  # pairs / val / train / evaluated (capped: fewer evaluated than held out)
        "val_fraction": float(cfg["val_fraction"]) if "val_fraction" in cfg else None,
        "seed": cfg.get("seed", 0),
        "patch_size": cfg.get("patch_size"),
        "augment": augment_mode(cfg.get("augment", "x8")),
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


def _settings(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of the hyperparameter table: the seed solution's value, ours, and whether they differ (the
    template adds the reason for each deviation)."""
    return [
        {
            "setting": setting,
            "seed": md_cell(r["seed solution"]),
            "ours": md_cell(r["ours"]),
            "differs": bool(r["differs"]),
        }
        for setting, r in table.iterrows()
    ]


def _accounting(table: pd.DataFrame) -> dict[str, Any]:
    """The cost table, the total hours, the devices and the step counts."""
    wall = pd.to_numeric(table["wall time (s)"], errors="coerce")
    devices = sorted({str(d).split(" ")[0] for d in table["device"].dropna()})
    return {
        "accounting_table": frame_markdown(table),
        "total_hours": float(wall.sum()) / 3600 if wall.notna().any() else None,
        "devices": devices,
        "steps": sorted({int(s) for s in pd.to_numeric(table["steps"], errors="coerce").dropna()}),
    }


# ------------------------------------------------------------------------------------- the loss comparison


def _ci(
    row: pd.Series | dict[str, Any], mean: str = "mean (dB)", low: str = "low (dB)", high: str = "high (dB)"
):
    """``{mean, low, high, n, resolved}`` of a table row (the interval columns of ``tables``)."""
    return {
        "mean": float(row[mean]),
        "low": float(row[low]),
        "high": float(row[high]),
        "n": int(row["n"]) if "n" in row and pd.notna(row["n"]) else 0,
        "resolved": bool(row.get("resolved", excludes_zero(float(row[low]), float(row[high])))),
    }


def _seed_order_agrees(means: dict[str, float]) -> bool | None:
    """Whether our mean scores rank the seed solution's losses as it did; None with fewer than two of them."""
    ours = [loss for loss in means if loss in quoted.SEED_RESULTS]
    if len(ours) < 2:
        return None
    seed_order = sorted(ours, key=quoted.SEED_RESULTS.get, reverse=True)
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
            {"kind": kind, "label": prose(best), "psnr": summary.loc[best, col], "input": base[col]}
        )
    return {
        "ranking": [
            {"label": prose(lbl), "psnr": scores[lbl]} for lbl in sorted(scores, key=scores.get, reverse=True)
        ],
        "input_psnr": float(base["PSNR (dB)"]),
        "gains": [{"label": prose(lbl), "gain": float(summary.loc[lbl, "gain (dB)"])} for lbl in labels],
        "spread": max(scores.values()) - min(scores.values()),
        "best_per_kind": best_per_kind,
        "seed_order_agrees": _seed_order_agrees({loss: scores[loss_label(loss)] for loss in arms}),
    }


def _seed() -> dict[str, Any]:
    """The seed solution's scores (``quoted.SEED_RESULTS``) and their gaps over its first loss."""
    seed = quoted.SEED_RESULTS
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
            "name": prose(name), "seeds": per_seed, "over": over_ci, "images": pooled_ci,
            "decisive": decisive, "resolved": decisive["resolved"], "better": decisive["mean"] > 0,
        })  # fmt: skip
    return {"paired": comparisons or None, "resolved": [c["name"] for c in comparisons if c["resolved"]]}


def _squared(spec: str) -> bool:
    """Whether the loss has a squared-error term (MSE)."""
    return any(term.rpartition("*")[2].strip() in ("mse", "l2") for term in spec.split("+"))


def _level(computed: ReportTables, arms: dict[str, list[Run]]) -> dict[str, Any]:
    """Per comparison: Pearson r of the difference with the input PSNR (Fisher z interval) and band means."""
    corr, band_table = computed.level_correlation, computed.level_bands
    if corr is None or band_table is None:
        return {"level": None, "level_bands": band_labels(computed.band_edges)}
    spec_of = {loss_label(loss): loss for loss in arms}
    rows = []
    for _, c in corr.iterrows():
        label = c["comparison"].split(" - ")[0]
        bands_of = band_table[band_table["comparison"] == c["comparison"]]
        rows.append({
            "name": prose(c["comparison"]), "label": prose(label),
            "squared": _squared(spec_of.get(label, "")),
            "r": float(c["r"]), "low": float(c["r low"]), "high": float(c["r high"]), "n": int(c["n"]),
            "resolved": bool(c["resolved"]),
            "bands": [
                {"band": b["band"], **_ci(b)} for _, b in bands_of.iterrows()
            ],
        })  # fmt: skip
    return {"level": rows, "level_bands": band_labels(computed.band_edges)}


def _failures(summary: pd.DataFrame, worst: pd.DataFrame, listed: int = 3) -> dict[str, Any]:
    """Per loss: its regressions and its ``listed`` worst ones (``tables.failure_cases``)."""
    if summary.empty:
        return {"failures": None}
    rows = []
    for label, r in summary.iterrows():
        picks = worst[worst["loss"] == label].head(listed)
        rows.append({
            "label": prose(label), "regressed": int(r["regressed"]), "evaluated": int(r["evaluated"]),
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
            better = int((df["psnr"] > df["input_psnr"]).sum())
            out.append({"label": prose(loss_label(loss)), "better": better, "images": len(df)})
    return out


def _curves(arms: dict[str, list[Run]]) -> list[dict[str, Any]]:
    """Per loss: best epoch and epochs of each seed's run, how many peaked at the last epoch, last PSNR."""
    out = []
    for loss, arm in arms.items():
        last = [float(r.history["val_psnr"].iloc[-1]) for r in arm if "val_psnr" in r.history.columns]
        best = [int(r.metrics["best_epoch"]) for r in arm]
        epochs = [r.epochs for r in arm]
        out.append({
            "label": prose(loss_label(loss)), "best_epoch": best[0], "epochs": epochs[0], "runs": len(arm),
            "at_end": sum(b == e for b, e in zip(best, epochs, strict=True)),
            "last": sum(last) / len(last) if last else float("nan"),
        })  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------------- prompts


def _prompts(separation: pd.DataFrame | None, swaps: dict[str, pd.DataFrame | None] | None) -> dict[str, Any]:
    """Separation table, best rain/snow accuracy, swap costs and whether they matter."""
    context: dict[str, Any] = {"separation_table": None, "prompt_accuracy": None}
    if separation is not None and not separation.empty:
        context["separation_table"] = separation_markdown(separation)
        total = separation[(separation["level"] == "all") & separation["LOO acc"].notna()]
        if not total.empty:  # leave-one-out needs two images of a type
            best = total.loc[total["LOO acc"].idxmax()]
            # no verdict from the number alone: the permutation null (type_accuracy) decides
            context["prompt_accuracy"] = {"accuracy": float(best["LOO acc"]), "run": prose(best["run"])}
    swaps = {k: v for k, v in (swaps or {}).items() if v is not None}
    context["swaps"] = [
        {
            "label": prose(label),
            # rounded as shown, + 0.0: no "-0.00"
            "costs": [{"kind": k, "cost": round(v, 2) + 0.0} for k, v in t["swap cost (dB)"].items()],
        }
        for label, t in swaps.items()
    ]
    worst = min((float(t["swap cost (dB)"].min()) for t in swaps.values()), default=None)
    context["swap_cost_matters"] = worst is not None and worst < SWAP_COST_DB
    return context


def _type_accuracy(table: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    """Per loss: rain or snow told apart by the prompt weights, with its Wilson interval (and on which side
    of 50% it lies) and the permutation null of the same procedure."""
    if table is None:
        return None
    return [
        {"label": prose(label), "correct": int(r["correct"]), "images": int(r["images"]),
         "accuracy": float(r["accuracy"]), "low": float(r["accuracy low"]), "high": float(r["accuracy high"]),
         "side": r["side"], "gap": float(r["L1 gap"]), "null": float(r["null accuracy"]),
         "null_low": float(r["null low"]), "null_high": float(r["null high"]),
         "p_below": float(r["p below"]), "p_above": float(r["p above"])}
        for label, r in table.iterrows()
    ]  # fmt: skip


def _ablations(table: pd.DataFrame | None, arms: dict[str, list[Run]]) -> dict[str, Any]:
    """The prompt ablations per loss and type (mean change with its interval), and the decisions: removing
    the prompt costs PSNR (every zeroed-prompt interval below 0), uniform weights cost PSNR."""
    evaluated = [r.per_image for arm in arms.values() for r in arm if r.per_image is not None]
    has_prompts = any(prompt_levels(df) for df in evaluated)
    if table is None:
        return {"ablations": None, "ablations_missing": has_prompts}
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
        by_loss.append({"label": prose(label), "zero": pick("psnr_zero_prompt"),
                        "uniform": pick("psnr_uniform"), "other": pick("psnr_other_mean"),
                        "best_onehot": best})  # fmt: skip
    zero = [c for loss in by_loss for c in loss["zero"]]
    uniform = [c for loss in by_loss for c in loss["uniform"]]
    reweighted = uniform + [c for loss in by_loss for c in loss["other"]]
    return {
        "ablations": {
            "table": ablations_markdown(table),
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


# -------------------------------------------------------------------------------------- compute, real data


def _compute(table: pd.DataFrame | None, gain: dict[str, Any] | None) -> dict[str, Any] | None:
    """The compute series: its table and the change over its last step (``tables.compute_gain``)."""
    if table is None:
        return None
    gain = {**gain, "loss": prose(gain["loss"])} if gain else gain
    return {
        "table": compute_markdown(table),
        "gain": gain,
        "max_images": float(table["images seen"].max()),
        "max_steps": int(table["steps"].max()),
        "points": len(table),
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


# --------------------------------------------------------------------------------------------- the context


def report_context(
    runs: Sequence[Run],
    computed: ReportTables,
    figures: dict[str, Path | None],
    out_dir: Path,
    dataset: dict[str, Any] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """What ``report.md.j2`` fills in: numbers, formatted tables, lists and the decisions taken from them.

    ``computed``: the report's tables (``report_tables.compute_tables``); ``dataset``: the snapshot's
    ``dataset.json``. Figures are links relative to ``out_dir`` (``None`` when missing).
    """
    arms = study_arms(runs)
    shown = shown_runs(runs)
    summary = computed.summary
    multi_seed = max(len(arm) for arm in arms.values()) >= 2
    table_1 = summary_markdown(summary) if multi_seed else comparison_markdown(computed.comparison)
    seeds = sorted({run_seed(r) for arm in arms.values() for r in arm})
    cfg = shown[0].config
    generator = str((dataset or {}).get("generator", ""))
    demo = bool(generator) or cfg.get("recipe") == "demo"  # a generated set, or the demo's recipe
    kind = "study" if generator.endswith("build_study_dataset") else "demo" if demo else "own"
    devices = _accounting(computed.accounting)["devices"]
    return {
        "title": title or TITLE,
        "reference": prose(loss_label(REFERENCE if REFERENCE in arms else next(iter(arms)))),
        "run_names": [r.name for r in runs],
        "many_runs": len(runs) > MANY_RUNS,
        "labels": [prose(label) for label in run_labels(shown)],
        "losses": [{"spec": loss, "label": prose(loss_label(loss))} for loss in arms],
        "multi_seed": multi_seed,
        "seeds": seeds,
        "n_seeds": min(len(arm) for arm in arms.values()),
        "data_name": str(cfg["data_dir"]) if "data_dir" in cfg else None,
        "dataset": _dataset(dataset),
        "is_study": kind == "study",
        "rain100l_test": bool(dataset) and dataset.get("source") == "rain100l",
        "figures": {key: _link(figures[key], out_dir) if figures.get(key) else None for key in FIGURE_KEYS},
        **_method(shown[0]),
        "settings": _settings(computed.settings),
        **_accounting(computed.accounting),
        "comparison_table": table_1,
        **_analysis(summary, arms),
        **_paired(computed.paired),
        **_level(computed, arms),
        **_failures(computed.failures, computed.worst),
        **_seed(),
        "curves": _curves(arms),
        "improved": _improved(arms),
        **_prompts(computed.separation, computed.swaps),
        "type_accuracy": _type_accuracy(computed.type_accuracy),
        **_ablations(computed.ablations, arms),
        "compute": _compute(computed.compute, computed.compute_gain),
        "context_table": frame_markdown(computed.context),
        "public_over_private": quoted.PUBLIC_OVER_PRIVATE_DB,
        "permutations": PERMUTATIONS,
        **findings.per_type(computed.per_type),
        "clustered": findings.clustered(computed.clustered),
        **findings.within_type(computed.level_within, {loss_label(s): _squared(s) for s in arms}),
        "hypotheses": findings.hypotheses(computed.hypotheses),
        "scale": findings.scale(computed.scale),
        **findings.training_diet(shown[0], (_method(shown[0])["split"] or {}).get("train")),
        **findings.study_hours(
            findings.limits(int(shown[0].metrics["params"]), str(cfg.get("preset")), devices, kind == "own"),
            sum(len(arm) for arm in arms.values()),
        ),
        **findings.reproduce([r for arm in arms.values() for r in arm], kind),
        **findings.error_location(computed.error_location),
        "visual": findings.visual(computed.visual),
        **_benchmarks(computed.benchmarks, computed.transfer),
        "promptir_rain100l": quoted.PROMPTIR_PAPER["single-task"]["psnr"],
    }


def render_markdown(context: dict[str, Any]) -> str:
    """``report.md.j2`` rendered with ``context`` (see :func:`report_context`)."""
    return template_environment().get_template(TEMPLATE).render(context)
